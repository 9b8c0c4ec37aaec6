"""The one place the search meets the runtimes (:mod:`tflite_export.runtime`): flash, exact arena
and latency of a ``.tflite`` file, and its check in TensorFlow Lite Micro.

Flash is the file size (TFLM reads the flatbuffer in place). The arena is TFLM's smallest working
arena (:func:`tflite_export.runtime.measure_arena`, head plus persistent tail). Latency is LiteRT's
median batch-1 time from the shared harness (:func:`tflite_export.runtime.benchmark`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Footprint:
    """What a candidate costs on the device."""

    flash: int
    arena: int
    latency_ms: float | None = None


def footprint(tflite: bytes, latency: bool = False, latency_file: bytes | None = None) -> Footprint:
    """Flash and exact TFLM arena of a ``.tflite`` file's bytes, and (if ``latency``) LiteRT's
    latency of ``latency_file`` (default the file; a LUT-compressed file's uncompressed one, since
    LiteRT has no DECODE op)."""
    from tflite_export import runtime

    latency_ms = (runtime.benchmark(latency_file or tflite, threads=1, runs=30, warmup=5) / 1e3
                  if latency else None)
    return Footprint(flash=len(tflite), arena=int(runtime.measure_arena(tflite).bytes),
                     latency_ms=latency_ms)


def lut_compress(tflite: bytes) -> bytes:
    """The file with its few-valued weight tensors LUT-compressed for TFLite Micro
    (:func:`tflite_export.micro.lut_compress`, checked lossless in TFLM)."""
    from tflite_export import micro

    return micro.lut_compress(tflite)[0]


def tflm_agreement(tflite: bytes, x: np.ndarray, reference: bytes | None = None) -> float:
    """Top-1 agreement between the file in TensorFlow Lite Micro and ``reference`` (default the
    file itself; a LUT-compressed file's uncompressed one, which LiteRT can run) in LiteRT on
    ``x``: 1.0 when the device runs what LiteRT runs. Non-finite outputs count as disagreement."""
    from tflite_export import runtime

    micro = _first(runtime.TFLMRunner(tflite).predict(x))
    ref = _first(runtime.Runner(reference or tflite).predict(x))
    finite = np.isfinite(micro).reshape(len(x), -1).all(-1) & np.isfinite(ref).reshape(len(x), -1).all(-1)
    same = micro.reshape(len(x), -1).argmax(-1) == ref.reshape(len(x), -1).argmax(-1)
    return float(np.mean(same & finite))


def tflite_accuracy(tflite: bytes, data) -> float:
    """Top-1 accuracy of the file in LiteRT on ``(x, y)`` (class-id labels)."""
    from tflite_export import runtime

    out = _first(runtime.Runner(tflite).predict(data[0]))
    return float(np.mean(out.reshape(len(out), -1).argmax(-1) == np.asarray(data[1]).reshape(-1)))


def _first(out):
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out)
