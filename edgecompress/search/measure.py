"""The one place the search meets the runtimes: flash, arena and latency of a ``.tflite`` file,
and its check in TensorFlow Lite Micro.

Flash is the file size (TFLM reads the flatbuffer in place). The arena is TFLM's exact figure
from ``tflite_export.micro.measure_arena`` when that is available; until then it is the
activation peak over the file's op order (``tflite_export.micro.arena_estimate``), flagged
``arena_exact=False``. Latency is LiteRT's median batch-1 time from the shared harness.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("edgecompress.search")


@dataclass
class Footprint:
    """What a candidate costs on the device."""

    flash: int
    arena: int
    arena_exact: bool
    latency_ms: float | None = None


def footprint(tflite: bytes, latency: bool = False) -> Footprint:
    """Flash, arena and (if ``latency``) LiteRT latency of a ``.tflite`` file given as bytes."""
    arena, exact = _arena(tflite)
    latency_ms = None
    if latency:
        from edgecompress import litert

        latency_ms = litert.benchmark(tflite, threads=1, runs=30, warmup=5) / 1e3
    return Footprint(flash=len(tflite), arena=int(arena), arena_exact=exact, latency_ms=latency_ms)


def _arena(tflite: bytes) -> tuple[int, bool]:
    from tflite_export import micro

    exact = getattr(micro, "measure_arena", None)
    if exact is not None:
        arena = exact(tflite)
        return int(getattr(arena, "bytes", arena)), True
    from edgecompress import litert

    return micro.arena_estimate(litert.inspect(tflite)), False


def tflm_outputs(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """Run the file in the real TensorFlow Lite Micro interpreter on float inputs ``x``
    (quantized and dequantized as the file's first input/output say); returns float outputs."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(bytes(tflite), arena_size=max(len(tflite) * 4, 1 << 20))
    inp, out = interpreter.get_input_details(0), interpreter.get_output_details(0)
    rows = []
    for sample in x:
        interpreter.set_input(_quantize(sample[None], inp), 0)
        interpreter.invoke()
        rows.append(_dequantize(interpreter.get_output(0), out))
    return np.concatenate(rows)


def tflm_agreement(tflite: bytes, x: np.ndarray) -> float:
    """Top-1 agreement between TFLM and LiteRT on ``x`` (1.0: the device runs the same model).
    Non-finite outputs count as disagreement."""
    from edgecompress import litert

    micro = tflm_outputs(tflite, x)
    ref = litert.Runner(tflite).predict(x)
    ref = ref[0] if isinstance(ref, list) else ref
    finite = np.isfinite(micro).all(axis=-1) & np.isfinite(ref).all(axis=-1)
    same = micro.reshape(len(x), -1).argmax(-1) == ref.reshape(len(x), -1).argmax(-1)
    return float(np.mean(same & finite))


def tflite_accuracy(tflite: bytes, data) -> float:
    """Top-1 accuracy of the file in LiteRT on ``(x, y)`` (class-id labels)."""
    from edgecompress import litert

    out = litert.Runner(tflite).predict(data[0])
    out = out[0] if isinstance(out, list) else out
    return float(np.mean(out.reshape(len(out), -1).argmax(-1) == np.asarray(data[1]).reshape(-1)))


def _quantize(x, detail):
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x.astype(np.float32)
    scale, zero = _qparams(detail)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y, detail):
    if np.dtype(detail["dtype"]) == np.float32:
        return y.astype(np.float32)
    scale, zero = _qparams(detail)
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def _qparams(detail):
    q = detail.get("quantization_parameters") or {}
    scales, zeros = q.get("scales"), q.get("zero_points")
    if scales is not None and len(scales):
        return float(scales[0]), float(zeros[0])
    scale, zero = detail.get("quantization", (1.0, 0))
    return float(scale or 1.0), float(zero)
