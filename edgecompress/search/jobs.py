"""Independent jobs of the search (sensitivity scans, candidate fine-tunes) and where they run:
local worker processes, or a Ray cluster through Ray's own task API.

Large inputs (the model, the data) are shared once: handed to each local worker when it starts,
or put in Ray's object store. Each job is seeded from its own arguments and starts from a clear
Keras state on one TensorFlow thread, so it gives the same result on any worker, whatever ran there
before. In this process (``workers=1``) TensorFlow's own threads may round differently.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import tempfile
from pathlib import Path

log = logging.getLogger("edgecompress.search")

_SHARED: dict = {}


def model_to_bytes(model) -> bytes:
    """The model as the bytes of a ``.keras`` file (what travels to the workers)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


def model_from_bytes(data: bytes):
    from edgecompress._keras import keras

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(data)
        return keras.models.load_model(path, compile=False)


def default_workers() -> int:
    """As many local workers as this process may use cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Executor:
    """Runs ``fn(shared, **kwargs)`` for a list of kwargs and returns the results in order.

    Args:
        workers: local worker processes (1: run in this process). Ignored with ``ray_address``.
        ray_address: a Ray cluster address, ``"auto"``, or ``"local"`` for a Ray already
            initialized in this process (``ray.init`` by the caller).
    """

    def __init__(self, workers: int | None = None, ray_address: str | None = None):
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                    or workers < 1):
            raise ValueError(f"`workers` must be an int >= 1. Received: workers={workers!r}")
        self.workers = workers or default_workers()
        self.ray_address = ray_address
        self._pool = None
        self._ray_shared = None

    @property
    def description(self) -> str:
        if self.ray_address:
            return f"Ray ({self.ray_address})"
        return f"{self.workers} local worker{'s' if self.workers > 1 else ''}"

    def start(self, shared: dict) -> Executor:
        if self.ray_address:
            import ray

            if not ray.is_initialized():
                ray.init(address=None if self.ray_address == "local" else self.ray_address,
                         include_dashboard=False, log_to_driver=False)
            self._ray_shared = ray.put(shared)
        elif self.workers > 1:
            context = multiprocessing.get_context("spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_init_worker, initargs=(shared,))
        else:
            _SHARED.clear()
            _SHARED.update(shared)
        return self

    def map(self, fn, jobs: list[dict]) -> list:
        if not jobs:
            return []
        if self.ray_address:
            import ray

            remote = ray.remote(num_cpus=1)(_ray_job)
            return ray.get([remote.remote(self._ray_shared, fn, job) for job in jobs])
        if self._pool is not None:
            return list(self._pool.map(_local_job, [fn] * len(jobs), jobs))
        return [fn(_SHARED, **job) for job in jobs]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        _SHARED.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _init_worker(shared: dict) -> None:
    _single_thread()
    _SHARED.update(shared)


def _local_job(fn, job):
    _fresh_keras()
    return fn(_SHARED, **job)


def _ray_job(shared, fn, job):  # Ray resolves the ObjectRef argument to the shared dict
    _single_thread()
    _fresh_keras()
    return fn(shared, **job)


def _fresh_keras() -> None:
    """Clear the worker's Keras state (layer name counters, the graph) so that a job does not
    depend on the jobs the worker ran before it."""
    from edgecompress._keras import keras

    keras.backend.clear_session()


def _single_thread() -> None:
    """One TensorFlow thread per worker: jobs neither fight over cores nor differ in result."""
    from edgecompress._keras import tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialized in this worker: the setting stands
        pass
