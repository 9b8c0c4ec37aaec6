"""What every runner shares: float in, float out, batching, output names, a batch-1 timing.

A subclass opens its interpreter in ``_open`` (filling ``input_details`` / ``output_details`` as
dicts with ``dtype``, ``shape`` and ``quantization=(scale, zero_point)``) and runs one batch in
``_run``.
"""

from __future__ import annotations

import time

import numpy as np

from tflite_export.runtime.reader import inspect, read_bytes

BACKENDS = ("auto", "litert", "lce", "tflm")
_INT_TYPES = {np.int8, np.uint8, np.int16}


class Runner:
    """Run a ``.tflite`` file (path or bytes) on float inputs and get float outputs.

    ``Runner(...)`` opens the runner class of ``backend``: with ``"auto"``, Larq Compute Engine's
    interpreter for files with LCE ops, else LiteRT. ``backend`` on the instance says which ran:
    ``"litert"`` (LiteRT with its default XNNPACK delegate), ``"litert-builtin"`` (without it, for
    files XNNPACK refuses), ``"lce"`` or ``"tflm"``.

    Args:
        path_or_bytes: a ``.tflite`` path or its bytes.
        num_threads: interpreter threads (LiteRT and LCE).
        backend: one of ``BACKENDS``.

    Example:
        >>> probs = Runner("model.tflite").predict(x_test)
    """

    backend = "auto"
    max_batch: int | None = None  # None: any batch size

    def __new__(cls, path_or_bytes=None, *args, backend: str = "auto", **kwargs):
        if cls is not Runner:
            return super().__new__(cls)
        _check_threads(kwargs.get("num_threads", args[0] if args else 1))
        if backend not in BACKENDS:
            raise ValueError(f"`backend` must be one of {list(BACKENDS)}. Received: backend={backend!r}")
        if backend == "auto":
            backend = "lce" if inspect(read_bytes(path_or_bytes, "path_or_bytes")).is_lce else "litert"
        from tflite_export.runtime import lce, litert, tflm

        runner = {"litert": litert.LiteRTRunner, "lce": lce.LCERunner, "tflm": tflm.TFLMRunner}[backend]
        return super().__new__(runner)

    def __init__(self, path_or_bytes, num_threads: int = 1, backend: str = "auto", **options):
        _check_threads(num_threads)
        self.model_bytes = read_bytes(path_or_bytes, "path_or_bytes")
        self.info = inspect(self.model_bytes)
        self.num_threads = num_threads
        self.input_details: list = []
        self.output_details: list = []
        self._open(**options)

    def _open(self, **options):
        raise NotImplementedError

    def _run(self, batch) -> list:
        raise NotImplementedError

    @property
    def output_names(self) -> list:
        """Names of the outputs in :meth:`predict`'s order (signature names, see ``inspect``)."""
        return list(self.info.output_names)

    @property
    def input_dtype(self):
        return np.dtype(self.input_details[0]["dtype"])

    @property
    def output_dtype(self):
        return np.dtype(self.output_details[0]["dtype"])

    def predict(self, x, batch_size: int = 64):
        """Float outputs of the model on float inputs ``x`` (a list of arrays for several inputs).

        Returns:
            One array, or a list of arrays for several outputs, in the file's output order
            (``output_names``).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an int >= 1. Received: batch_size={batch_size!r}")
        xs = [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) else [np.asarray(x)]
        if len(xs) != len(self.input_details):
            raise ValueError(
                f"`x` must hold {len(self.input_details)} input array(s). Received: {len(xs)}"
            )
        n = len(xs[0])
        quantized = [quantize(a, d) for a, d in zip(xs, self.input_details, strict=False)]
        outputs = [[] for _ in self.output_details]
        step = min(batch_size, self.max_batch or batch_size)
        for start in range(0, n, step):
            batch = [a[start : start + step] for a in quantized]
            for i, out in enumerate(self._run(batch)):
                outputs[i].append(out)
        results = [
            dequantize(np.concatenate(o), d) for o, d in zip(outputs, self.output_details, strict=False)
        ]
        return results[0] if len(results) == 1 else results

    def sample_batch(self, seed: int = 0) -> list:
        """One batch-1 input per model input (uniform in [0, 1), quantized as the file expects)."""
        rng = np.random.default_rng(seed)
        return [
            quantize(rng.random([1, *[int(s) for s in d["shape"][1:]]], dtype=np.float32), d)
            for d in self.input_details
        ]

    def run_once(self, batch) -> list:
        """One inference on an already-quantized batch (what a latency harness times); the raw
        (not dequantized) outputs."""
        return self._run(batch)

    def benchmark(self, runs: int = 50, warmup: int = 5) -> float:
        """Median microseconds of one batch-1 inference on random inputs, after ``warmup`` runs."""
        for name, value in (("runs", runs), ("warmup", warmup)):
            if not isinstance(value, int) or value < (1 if name == "runs" else 0):
                raise ValueError(f"`{name}` must be an int >= {1 if name == 'runs' else 0}. "
                                 f"Received: {name}={value!r}")
        batch = self.sample_batch()
        times = []
        for i in range(warmup + runs):
            start = time.perf_counter()
            self._run(batch)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e6)


def _check_threads(num_threads) -> None:
    if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
        raise ValueError(f"`num_threads` must be an int >= 1. Received: num_threads={num_threads!r}")


def benchmark(path, threads: int = 1, runs: int = 50, warmup: int = 5) -> float:
    """Median microseconds per batch-1 inference of a ``.tflite`` file, with warm-up.

    Runs in the interpreter that fits the file (LiteRT, or LCE for binary files).
    """
    return Runner(path, num_threads=threads).benchmark(runs=runs, warmup=warmup)


def qparams(scale, zero) -> tuple:
    """``(scale, zero_point)`` of a tensor from scalar or per-tensor list forms (0.0: not quantized)."""
    scale = np.asarray(scale if scale is not None else 0.0, dtype=np.float64).reshape(-1)
    zero = np.asarray(zero if zero is not None else 0, dtype=np.int64).reshape(-1)
    return (float(scale[0]) if scale.size else 0.0, int(zero[0]) if zero.size else 0)


def quantize(x, detail):
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization"]
    if dtype.type in _INT_TYPES and scale:
        info = np.iinfo(dtype)
        q = np.round(np.asarray(x, dtype=np.float32) / scale + zero)
        return np.clip(q, info.min, info.max).astype(dtype)
    return np.asarray(x).astype(dtype)


def dequantize(y, detail):
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization"]
    if dtype.type in _INT_TYPES and scale:
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)
    return y.astype(np.float32)
