"""Graph rewrites that make a real model quantizable by tfmot's 8-bit QAT, and its annotation.

tfmot's default 8-bit scheme refuses (or crashes on) layers that real models are full of: a
BatchNormalization that does not follow a conv, ``Rescaling`` / ``Normalization`` preprocessing,
the squeeze-excite ``Multiply``, the TFOpLambda arithmetic of hard-swish (``x + 3.0``,
``x * (1/6)``), Conv1D and nested models. This goes beyond tfmot, through the surgery core:

- nested models are inlined (:func:`edgecompress.surgery.flatten`);
- a BatchNormalization directly after a Conv1D / Conv2D / DepthwiseConv2D / Dense (its only
  consumer, linear activation) is folded into that layer's kernel and bias;
- every other per-channel affine op (a standalone BatchNormalization, ``Rescaling``,
  ``Normalization``, a TFOpLambda ``+ - * /`` with a scalar or per-channel constant) becomes a
  1x1 ``DepthwiseConv2D``, which tfmot quantizes per channel and TFLite runs as int8
  ``DEPTHWISE_CONV_2D`` (with a ``Reshape`` on each side for 2-D and 3-D tensors);
- Conv1D gets a (per-tensor) weight config, weightless merges and activations without a tfmot rule
  (``Multiply``, ``Subtract``, ``Maximum``, ``hard_sigmoid``, ...) get an output quantizer;
  average pooling keeps its input's scale (no output quantizer: TFLite's AVERAGE_POOL_2D needs
  the same scale in and out, which tfmot's own rule breaks on DenseNet's transitions);
- a conv or dense with a fused activation TFLite cannot fuse (``swish``, as in EfficientNet's
  squeeze-excite) is split into the layer and an ``Activation``, so both outputs get ranges;
- anything else (``LayerNormalization``, custom layers) is left float and reported.

References:
    Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
    Only Inference", CVPR 2018 (batch-norm folding, section 3.2).
    Krishnamoorthi, "Quantizing deep convolutional networks for efficient inference: A
    whitepaper", 2018.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras import quantize_aware_activation
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_configs as configs,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_registry as registry,
)

from edgecompress._keras import KerasTensor, keras, tf
from edgecompress.surgery import DROP, Replacement, TransformReport, flatten, rebuild

_q = tfmot.quantization.keras
_REGISTRY = registry.Default8BitQuantizeRegistry()
_FOLD_INTO = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
_NOT_FOLDABLE = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.SeparableConv1D,
                 keras.layers.SeparableConv2D)
_ARITHMETIC = {"__operators__.add": "add", "math.add": "add", "math.subtract": "subtract",
               "math.multiply": "multiply", "math.truediv": "divide", "math.divide": "divide"}
_OUTPUT_QUANTIZED = (keras.layers.Multiply, keras.layers.Subtract, keras.layers.Maximum,
                     keras.layers.Minimum, keras.layers.Average)
# int8 kernels that keep their input's scale: an output quantizer of their own would violate
# TFLite's same-scale constraint (AVERAGE_POOL_2D) or is needless (max-pooling, upsampling)
_SAME_SCALE = (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.MaxPooling1D,
               keras.layers.UpSampling1D)
_ACTIVATION_NAMES = (quantize_aware_activation.QuantizeAwareActivation._PRE_QUANT_ACTIVATIONS
                     | quantize_aware_activation.QuantizeAwareActivation._POST_QUANT_ACTIVATIONS
                     | {"relu6"})
# fused into the conv / dense kernel by TFLite, or quantized before the activation by tfmot
_FUSED_ACTIVATIONS = {"linear", "relu", "relu6", "softmax", "sigmoid", "tanh"}
_FLOAT_REASONS = {
    keras.layers.LayerNormalization: "tfmot has no 8-bit rule for LayerNormalization; left float, so an "
                                     "int8 export keeps its MEAN, SQUARED_DIFFERENCE, RSQRT, MUL and ADD "
                                     "ops in float (export with mode='dynamic', or replace the layer)",
}


@dataclass
class QATReport(TransformReport):
    """A :class:`TransformReport` plus the graph rewrites done before annotation.

    Attributes:
        rewritten: original layer name -> what it became (folded into a layer, or a 1x1
            DepthwiseConv2D affine).
    """

    rewritten: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "rewritten": dict(self.rewritten)}

    def to_markdown(self) -> str:
        rows = [f"| {name} | rewritten | {what} |" for name, what in self.rewritten.items()]
        return "\n".join([super().to_markdown(), *rows])


def prepare(model: keras.Model, report: QATReport) -> keras.Model:
    """A flat copy of ``model`` whose affine ops are folded or rewritten as described above."""
    flat = flatten(model) if any(isinstance(layer, keras.Model) for layer in model.layers) else model
    folds = _fold_plan(flat)
    folded_into = {id(producer): bn for producer, bn in folds}
    dropped = {id(bn) for _, bn in folds}

    def rule(layer):
        if id(layer) in dropped:
            return DROP
        if id(layer) in folded_into:
            bn = folded_into[id(layer)]
            report.rewritten[bn.name] = f"folded into '{layer.name}'"
            return _fold(layer, *_batchnorm_affine(bn))
        split = _split_activation(layer)
        if split is not None:
            report.rewritten[layer.name] = f"activation '{_activation_name(layer)}' split into its own layer"
            return split
        affine = _affine_of(layer)
        if affine is None:
            return None
        replacement = _as_depthwise(layer, *affine)
        if replacement is not None:
            report.rewritten[layer.name] = "per-channel affine as a 1x1 DepthwiseConv2D"
        return replacement

    return rebuild(flat, rule)


def annotate(model: keras.Model, skip: set, report: QATReport) -> keras.Model:
    """Annotate every layer tfmot (or a config here) can quantize; report the rest as float."""

    def one(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        if layer.name in skip:
            report.skipped[layer.name] = "in `skip`: left float"
            return layer
        config, reason = _quantize_config(layer)
        if reason is not None:
            report.skipped[layer.name] = reason
            return layer
        report.transformed.append(layer.name)
        return _q.quantize_annotate_layer(layer, quantize_config=config)

    return keras.models.clone_model(model, clone_function=one)


def _quantize_config(layer):
    """(tfmot QuantizeConfig or None for the registry's own, reason to leave float or None)."""
    cls = type(layer)
    if isinstance(layer, keras.layers.Activation) and _activation_name(layer) not in _ACTIVATION_NAMES:
        return configs.Default8BitOutputQuantizeConfig(), None
    if cls in _SAME_SCALE:
        return configs.NoOpQuantizeConfig(), None
    if _REGISTRY._is_supported_layer(cls) or cls in (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D):
        return None, None
    if cls is keras.layers.Conv1D:
        # per-tensor: tfmot's per-axis weight quantizer fails on a rank-3 kernel
        return registry.Default8BitQuantizeConfig(["kernel"], ["activation"], False), None
    if cls in _OUTPUT_QUANTIZED:
        return configs.Default8BitOutputQuantizeConfig(), None
    if cls.__name__ == "TFOpLambda":
        return None, (f"TFOpLambda '{layer.symbol}' has no 8-bit rule and tfmot cannot clone it; "
                      "write it as a Keras layer")
    for kind, reason in _FLOAT_REASONS.items():
        if isinstance(layer, kind):
            return None, reason
    return None, (f"tfmot has no 8-bit rule for {cls.__name__}; left float, so an int8 export keeps "
                  "its ops in float")


def _split_activation(layer):
    """A weighted layer with a fused activation TFLite cannot fuse (swish, gelu, ...) as the layer
    plus an Activation layer, so the pre-activation output gets a range of its own."""
    if not layer.weights or not callable(getattr(layer, "activation", None)):
        return None
    if _activation_name(layer) in _FUSED_ACTIVATIONS:
        return None
    config = {**layer.get_config(), "activation": "linear"}
    activation = keras.layers.Activation(layer.get_config()["activation"], name=f"{layer.name}_activation")
    return Replacement([type(layer).from_config(config), activation], [layer.get_weights(), None])


def _activation_name(layer) -> str:
    return getattr(layer.activation, "__name__", str(layer.activation))


def _consumers(model) -> dict:
    """id(layer) -> the layers that consume its output (model outputs count as a consumer)."""
    users: dict[int, list] = {}
    for depth in model._nodes_by_depth.values():
        for node in depth:
            for parent in node.parent_nodes:
                users.setdefault(id(parent.layer), []).append(node.layer)
    for tensor in model.outputs:
        users.setdefault(id(tensor._keras_history.layer), []).append(None)
    return users


def _fold_plan(model) -> list:
    """(producer, batchnorm) pairs where the BN can be folded into the producer's weights."""
    users = _consumers(model)
    pairs = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer.inbound_nodes) != 1:
            continue
        if not _last_axis(layer):
            continue
        parents = layer.inbound_nodes[0].parent_nodes
        if len(parents) != 1:
            continue
        producer = parents[0].layer
        if (isinstance(producer, _FOLD_INTO) and not isinstance(producer, _NOT_FOLDABLE)
                and len(producer.inbound_nodes) == 1 and users.get(id(producer)) == [layer]
                and _activation_name(producer) == "linear"
                and getattr(producer, "data_format", "channels_last") == "channels_last"):
            pairs.append((producer, layer))
    return pairs


def _last_axis(layer) -> bool:
    rank = len(layer.input_shape)
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    return [a % rank for a in axis] == [rank - 1]


def _batchnorm_affine(bn):
    mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    gamma = bn.gamma.numpy() if bn.scale else np.ones_like(mean)
    beta = bn.beta.numpy() if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale, beta - mean * scale


def _fold(layer, scale, offset):
    """``layer`` followed by ``x * scale + offset``, as one layer with a bias."""
    config = {**layer.get_config(), "use_bias": True}
    new = type(layer).from_config(config)
    kernel = (layer.depthwise_kernel if isinstance(layer, keras.layers.DepthwiseConv2D) else layer.kernel).numpy()
    bias = layer.bias.numpy() if layer.use_bias else np.zeros(scale.shape, np.float32)
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # output channel c * multiplier + m
        folded = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        folded = kernel * scale
    return Replacement([new], [[folded.astype(np.float32), (bias * scale + offset).astype(np.float32)]])


def _affine_of(layer):
    """(scale, offset) per channel if ``layer`` computes ``x * scale + offset``, else None."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return _batchnorm_affine(layer) if len(layer.inbound_nodes) == 1 and _last_axis(layer) else None
    if isinstance(layer, keras.layers.Rescaling):
        return _per_channel(layer, layer.scale), _per_channel(layer, layer.offset)
    if isinstance(layer, keras.layers.Normalization):
        if not _last_axis(layer) or not hasattr(layer, "mean"):
            return None
        mean, var = _per_channel(layer, layer.mean), _per_channel(layer, layer.variance)
        if mean is None or var is None:
            return None
        std = np.maximum(np.sqrt(var), keras.backend.epsilon())
        return (std, mean) if layer.invert else (1 / std, -mean / std)
    if type(layer).__name__ == "TFOpLambda":
        return _arithmetic_affine(layer)
    return None


def _arithmetic_affine(layer):
    op = _ARITHMETIC.get(getattr(layer, "symbol", ""))
    if op is None or len(layer.inbound_nodes) != 1:
        return None
    node = layer.inbound_nodes[0]
    operands = list(node.call_args) + [v for k, v in node.call_kwargs.items() if k != "name"]
    tensors = [i for i, a in enumerate(operands) if isinstance(a, KerasTensor)]
    if len(operands) != 2 or len(tensors) != 1:
        return None
    const = _per_channel(layer, operands[1 - tensors[0]])
    if const is None:
        return None
    first = tensors[0] == 0
    ones, zeros = np.ones_like(const), np.zeros_like(const)
    if op == "add":
        return ones, const
    if op == "subtract":
        return (ones, -const) if first else (-ones, const)
    if op == "multiply":
        return const, zeros
    if op == "divide" and first and np.all(const != 0):
        return 1 / const, zeros
    return None


def _per_channel(layer, value):
    """``value`` (a scalar or one value per channel) as a float32 vector over the channels."""
    channels = _input_shape(layer)[-1]
    if channels is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    if array.size == 1:
        return np.full(channels, float(array.ravel()[0]), np.float32)
    if array.size == channels and array.shape[-1] == channels:
        return array.reshape(channels)
    return None


def _input_shape(layer):
    node = layer.inbound_nodes[0]
    tensors = [t for t in tf.nest.flatten((node.call_args, node.call_kwargs)) if isinstance(t, KerasTensor)]
    return tuple(tensors[0].shape)


def _as_depthwise(layer, scale, offset):
    """A 1x1 DepthwiseConv2D (with Reshapes for rank 2 and 3) computing ``x * scale + offset``."""
    shape = _input_shape(layer)
    if len(shape) not in (2, 3, 4) or any(s is None for s in shape[1:]):
        return None
    channels = shape[-1]
    depthwise = keras.layers.DepthwiseConv2D(1, use_bias=True, name=layer.name)
    weights = [scale.reshape(1, 1, channels, 1).astype(np.float32), offset.astype(np.float32)]
    if len(shape) == 4:
        return Replacement([depthwise], [weights], tensor_only=True)
    spatial = (1, 1) if len(shape) == 2 else (shape[1], 1)
    return Replacement(
        [keras.layers.Reshape((*spatial, channels), name=f"{layer.name}_to_4d"), depthwise,
         keras.layers.Reshape(shape[1:], name=f"{layer.name}_from_4d")],
        [None, weights, None], tensor_only=True)
