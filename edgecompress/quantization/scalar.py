"""Uniform scalar n-bit weight quantization (simulated: weights are rounded to n-bit levels).

References:
    Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
    Only Inference", CVPR 2018 (affine per-channel quantization).
    Gong et al., "Compressing Deep Convolutional Networks using Vector Quantization", 2014
    (scalar quantization of weights as the baseline of the survey's section 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecompress._keras import check_graph_model, keras
from edgecompress.measure import keras_accuracy
from edgecompress.surgery import (
    Replacement,
    TransformReport,
    attach,
    copy_layer,
    find_layers,
    iter_layers,
    rebuild,
)

QUANTIZABLE = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)


@dataclass
class ScalarReport:
    """What :func:`quantize_weights` measured.

    Attributes:
        bits: bits per weight.
        layers: per layer: ``{"params", "bits", "bytes", "float32_bytes", "max_abs_error"}``;
            ``bytes`` counts the packed n-bit kernel plus one float32 scale (and zero point) per
            channel; biases stay float32.
        bytes: total packed bytes of the quantized kernels and their scales.
        float32_bytes: the same kernels as float32.
        accuracy: top-1 accuracy of the simulated model on ``data``, if given.
    """

    bits: int
    layers: dict = field(default_factory=dict)
    bytes: int = 0
    float32_bytes: int = 0
    accuracy: float | None = None

    @property
    def ratio(self) -> float:
        return self.float32_bytes / max(self.bytes, 1)


def fake_quantize(w: np.ndarray, bits: int, per_channel: bool = True,
                  symmetric: bool = True) -> np.ndarray:
    """Round ``w`` to 2**bits uniform levels (per last-axis channel or per tensor)."""
    axes = tuple(range(w.ndim - 1)) if per_channel and w.ndim > 1 else None
    if symmetric:
        levels = 2 ** (bits - 1) - 1  # narrow range, zero exact: [-levels, levels]
        scale = np.max(np.abs(w), axis=axes, keepdims=True) / levels
        scale = np.where(scale == 0, 1.0, scale)
        return (np.clip(np.round(w / scale), -levels, levels) * scale).astype(w.dtype)
    lo = np.minimum(np.min(w, axis=axes, keepdims=True), 0)
    hi = np.maximum(np.max(w, axis=axes, keepdims=True), 0)
    scale = (hi - lo) / (2 ** bits - 1)
    scale = np.where(scale == 0, 1.0, scale)
    zero = np.round(-lo / scale)
    q = np.clip(np.round(w / scale) + zero, 0, 2 ** bits - 1)
    return ((q - zero) * scale).astype(w.dtype)


def quantize_weights(model: keras.Model, bits: int = 8, per_channel: bool = True,
                     symmetric: bool = True, layers=None, data=None):
    """Quantize the kernels of Conv1D / Conv2D / Dense / DepthwiseConv2D layers uniformly to ``bits`` bits.

    The result is a simulated ("fake-quantized") float model: each kernel holds at most 2**bits
    distinct values per channel (per tensor when ``per_channel=False``), so you can see how few
    bits each layer tolerates before committing to a format. Biases are left in float32.

    Args:
        model: a built Sequential or Functional tf_keras model (never modified).
        bits: 2..8 bits per weight.
        per_channel: one scale per output channel (as TFLite int8 does) or one per tensor.
        symmetric: symmetric narrow range with zero exact, or affine (min/max with a zero point).
        layers: layer names to quantize; None for every Conv1D/Conv2D/Dense/DepthwiseConv2D.
        data: optional ``(x, y)`` with integer labels; the report then carries the accuracy.

    Returns:
        ``(quantized_model, ScalarReport)``; ``quantized_model.transform_report`` lists the
        quantized layers and the weighted layers left as they were.

    Raises:
        ValueError: for ``bits`` outside 2..8 or a bad layer name.

    References:
        Jacob et al., CVPR 2018.
    """
    check_graph_model(model)
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not 2 <= bits <= 8:
        raise ValueError(f"`bits` must be an int in [2, 8]. Received: bits={bits!r}")
    selected = {layer.name for layer in find_layers(model, layers, QUANTIZABLE)}
    report = ScalarReport(bits=int(bits))
    outcome = TransformReport("quantize_weights")
    for layer in iter_layers(model):
        if layer.name in selected:
            outcome.transformed.append(layer.name)
        elif layer.weights and not isinstance(layer, QUANTIZABLE):
            outcome.skipped[layer.name] = f"{type(layer).__name__} has no scalar weight rule"

    def rule(layer):
        if layer.name not in selected:
            return None
        weights = layer.get_weights()
        kernel = weights[0]
        flat = kernel.reshape(kernel.shape[:2] + (-1,)) if kernel.ndim == 4 and isinstance(
            layer, keras.layers.DepthwiseConv2D) else kernel  # channels = cin * multiplier
        q = fake_quantize(flat, int(bits), per_channel, symmetric).reshape(kernel.shape)
        channels = flat.shape[-1] if per_channel else 1
        packed = -(-kernel.size * bits // 8) + channels * 4 * (1 if symmetric else 2)
        report.layers[layer.name] = {
            "params": int(kernel.size), "bits": int(bits), "bytes": int(packed),
            "float32_bytes": int(kernel.size * 4),
            "max_abs_error": float(np.max(np.abs(q - kernel))),
        }
        report.bytes += packed
        report.float32_bytes += kernel.size * 4
        return Replacement([copy_layer(layer)], [[q] + weights[1:]])

    result = rebuild(model, rule)
    attach(result, outcome)
    outcome.warn_if_noop()
    if data is not None:
        report.accuracy = keras_accuracy(result, data)
    return result, report
