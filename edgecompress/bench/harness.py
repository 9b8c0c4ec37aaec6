"""The one latency harness: every bench module and ``edgecompress report`` time files through it.

Files are timed side by side so they share the machine's state: they alternate round by round
(the order rotates each round), each is warmed up first, every round times ``invokes`` batch-1
inferences, and the result per file is the median over rounds with its spread (interquartile
range). The load average is recorded before and after; above the core count the figures are
flagged as unreliable (a warning on the ``edgecompress`` logger and in the result), since on a
loaded machine a time says more about the neighbours than about the model.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

log = logging.getLogger("edgecompress.bench")


@dataclass
class Latency:
    """One file's timing: ``median_us`` per inference over rounds, ``spread_us`` (p75 - p25),
    ``min_us``, and the ``backend`` that ran it."""

    median_us: float
    spread_us: float
    min_us: float
    backend: str


@dataclass
class LatencyReport:
    """What :func:`compare_latency` measured.

    Attributes:
        files: name -> :class:`Latency`.
        rounds, invokes, warmup, threads: how it was measured.
        load_average: the 1-minute load average, the larger of before and after.
        cores: the machine's core count.
        warning: why the figures are unreliable, or "".
    """

    files: dict = field(default_factory=dict)
    rounds: int = 0
    invokes: int = 0
    warmup: int = 0
    threads: int = 1
    load_average: float = 0.0
    cores: int = 1
    warning: str = ""

    def median(self, name: str) -> float:
        return self.files[name].median_us

    def ratio(self, name: str, base: str) -> float:
        """How many times faster ``name`` is than ``base`` (base median / name median)."""
        return self.files[base].median_us / self.files[name].median_us

    def to_dict(self) -> dict:
        return asdict(self)


def compare_latency(files: dict, rounds: int = 10, invokes: int = 50, warmup: int = 20,
                    threads: int = 1, runtime: str = "auto") -> LatencyReport:
    """Median batch-1 latency of each ``.tflite`` file (path or bytes), timed side by side.

    Args:
        files: name -> file.
        rounds: rounds; each round times every file once, in a rotated order.
        invokes: inferences per file per round.
        warmup: untimed inferences per file before the first round.
        threads: interpreter threads.
        runtime: ``"auto"`` (LiteRT, LCE for binary files) or a backend of
            :class:`tflite_export.runtime.Runner`.

    Returns:
        A :class:`LatencyReport`.
    """
    for name, value in (("rounds", rounds), ("invokes", invokes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
    if not isinstance(files, dict) or not files:
        raise ValueError(f"`files` must be a non-empty dict of name -> .tflite. Received: {files!r}")
    from tflite_export.runtime import Runner

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    runners = {name: Runner(f, num_threads=threads, backend=runtime) for name, f in files.items()}
    batches = {name: r.sample_batch() for name, r in runners.items()}
    for name, runner in runners.items():
        for _ in range(warmup):
            runner.run_once(batches[name])
    names = list(runners)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            runner, batch = runners[name], batches[name]
            start = time.perf_counter()
            for _ in range(invokes):
                runner.run_once(batch)
            times[name].append((time.perf_counter() - start) / invokes * 1e6)
    load = max(load_before, os.getloadavg()[0])
    report = LatencyReport(rounds=rounds, invokes=invokes, warmup=warmup, threads=threads,
                           load_average=round(load, 2), cores=cores)
    for name, t in times.items():
        q25, q50, q75 = np.percentile(t, [25, 50, 75])
        report.files[name] = Latency(median_us=float(q50), spread_us=float(q75 - q25),
                                     min_us=float(np.min(t)), backend=runners[name].backend)
    if load > cores:
        report.warning = (f"load average {load:.1f} is above the {cores} cores: these latencies "
                          "are not reliable; re-measure on a quiet machine")
        log.warning(report.warning)
    return report


def latency_note(report: LatencyReport) -> str:
    """One line for a table footnote: how the latencies were taken."""
    note = (f"batch 1, {report.threads} thread(s), median of {report.rounds} alternating rounds of "
            f"{report.invokes} inferences after {report.warmup} warm-up; load average "
            f"{report.load_average:.1f} on {report.cores} cores")
    return note + (f" (WARNING: {report.warning})" if report.warning else "")


def time_artifacts(artifacts, rounds: int = 10, invokes: int = 50) -> LatencyReport | None:
    """Fill ``latency_us`` of every artifact that is a ``.tflite`` file a phone runtime runs,
    timing them side by side (``edgecompress report``). LUT-compressed files (TFLM's DECODE) and
    other formats are left out. Returns the report, or None with no such file."""
    from tflite_export.runtime import inspect

    files = {a.path: a.path for a in artifacts
             if str(a.path).endswith(".tflite") and not any(op.endswith("DECODE") for op in inspect(a.path).ops)}
    if not files:
        return None
    report = compare_latency(files, rounds=rounds, invokes=invokes)
    for artifact in artifacts:
        if artifact.path in report.files:
            artifact.latency_us = report.median(artifact.path)
    return report
