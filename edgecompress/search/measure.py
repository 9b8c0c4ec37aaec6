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


#: A regression output agrees when its error against LiteRT is under this fraction of the
#: output's RMS over the batch. TFLM's reference int8 kernels and LiteRT's optimized ones round
#: differently: on a low-rank MNIST autoencoder the worst of 32 samples differed by 6.2% (pixels by
#: up to 31 steps) while both files' MSE agreed to 4 digits.
TFLM_REL_TOLERANCE = 0.10


def tflm_agreement(tflite: bytes, x: np.ndarray, compare: dict | None = None,
                   reference: bytes | None = None) -> float:
    """The fraction of samples on which the file in TensorFlow Lite Micro agrees with
    ``reference`` (default the file itself; a LUT-compressed file's uncompressed one, which LiteRT
    can run) in LiteRT on every output: the same top-1 for a ``"top1"`` output (``compare``:
    {Keras output name: "top1" or "error"}; None: every output top-1), an error under
    :data:`TFLM_REL_TOLERANCE` of the output's RMS for an ``"error"`` one. 1.0 when the device
    runs what LiteRT runs; non-finite outputs disagree."""
    from tflite_export import runtime
    from tflite_export.verify import match_outputs

    lite = runtime.Runner(reference or tflite)
    micro = _outputs(runtime.TFLMRunner(tflite).predict(x))
    ref = _outputs(lite.predict(x))
    modes = ["top1"] * len(ref)
    if compare:
        for name, index in zip(compare, match_outputs(lite.output_names, list(compare)), strict=True):
            modes[index] = compare[name]
    n = len(x)
    agree = np.ones(n, dtype=bool)
    for mode, a, b in zip(modes, micro, ref, strict=True):
        a, b = a.reshape(n, -1).astype(np.float64), b.reshape(n, -1).astype(np.float64)
        finite_ref = np.isfinite(b).all(-1)
        agree &= np.isfinite(a).all(-1) & finite_ref
        if mode == "top1":
            agree &= a.argmax(-1) == b.argmax(-1)
        else:
            scale = max(float(np.sqrt(np.mean(b[finite_ref] ** 2))) if finite_ref.any() else 0.0, 1e-12)
            agree &= np.sqrt(np.mean((a - b) ** 2, axis=-1)) <= TFLM_REL_TOLERANCE * scale
    return float(np.mean(agree))


def tflite_scores(tflite: bytes, data, task_list) -> dict:
    """``{output: score}`` of the file in LiteRT on ``(x, y)`` (``y``: the array of one output, or
    a list in ``task_list`` order), each output scored by its :class:`~edgecompress.tasks.Task`
    and matched to the file's by name."""
    from edgecompress import tasks as tasks_lib
    from edgecompress.artifacts import tflite_predictions

    names = [t.output for t in task_list]
    labels = tasks_lib.split_labels(data[1], names)
    return {t.output: t.score(lab, pred) for t, lab, pred in
            zip(task_list, labels, tflite_predictions(tflite, data[0], names), strict=True)}


def _outputs(out) -> list[np.ndarray]:
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]
