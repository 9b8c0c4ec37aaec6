"""Design-rule lint for binarized networks (survey Sec. 4.4 and common BNN practice)."""

from __future__ import annotations

from dataclasses import dataclass

import larq as lq

from edgecompress._keras import check_graph_model, keras
from edgecompress.binary.schemes import RELU_LIKE, SIGN_KEEPING
from edgecompress.surgery import iter_layers

RULES = {
    "binary-1x1-conv": "avoid 1x1 binary convolutions: they binarize a channel mix with no "
                       "spatial redundancy and lose the most accuracy",
    "bn-before-binary": "put BatchNormalization before each binary layer (BN -> binary "
                        "activation -> binary conv -> pool)",
    "activation-bits": "feed binary layers activations of at most 4 bits",
    "relu-before-sign": "a ReLU-like activation right before a sign quantizer makes every "
                        "binary input +1",
    "binary-first-layer": "keep the first layer in higher precision",
    "binary-last-layer": "keep the last layer in higher precision",
}

_WEIGHT_LAYERS = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)


@dataclass(frozen=True)
class LintWarning:
    """One broken design rule: ``rule`` (a key of :data:`RULES`), the layer, and why."""

    rule: str
    layer: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.layer}: {self.message}"


def _precision(quantizer):
    if quantizer is None:
        return 32
    return getattr(quantizer, "precision", None) or 32


def is_binary_layer(layer) -> bool:
    """A larq layer whose kernel is quantized to 1 bit."""
    quantizer = getattr(layer, "kernel_quantizer", None) or getattr(
        layer, "depthwise_quantizer", None)
    return isinstance(layer, lq.layers_base.BaseLayer) and _precision(quantizer) == 1


def _inbound(layer):
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes:
        return []
    inbound = nodes[0].inbound_layers
    return list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]


def _activation_name(layer):
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", None) if act is not None else None


def _producer(layer):
    """The nearest layer upstream of ``layer`` that is not shape-only (None at a model input)."""
    seen = 0
    up = _inbound(layer)
    while len(up) == 1 and isinstance(up[0], SIGN_KEEPING) and seen < 100:
        up, seen = _inbound(up[0]), seen + 1
    if len(up) != 1 or isinstance(up[0], keras.layers.InputLayer):
        return None
    return up[0]


def lint(model: keras.Model) -> list[LintWarning]:
    """Check a (larq) model against common BNN design rules.

    Rules (keys of :data:`RULES`): ``binary-1x1-conv`` (a 1x1 binary conv on a map larger than
    1x1; :func:`dense_as_conv`'s 1x1-on-1x1 convs are Dense layers and pass), ``bn-before-binary``,
    ``activation-bits`` (inputs of a binary layer with more than 4 bits), ``relu-before-sign``,
    ``binary-first-layer`` and ``binary-last-layer``.

    Returns:
        A list of :class:`LintWarning`, in model order; empty when every rule holds.

    References:
        - Survey Sec. 4.4; Bethge et al. Back to Simplicity: How to Train Accurate BNNs from
          Scratch? 2019. https://arxiv.org/abs/1906.08637
        - Rastegari et al. XNOR-Net (block order BN -> BinActiv -> BinConv -> Pool). ECCV 2016.
    """
    check_graph_model(model)
    layers = list(iter_layers(model))
    weight_layers = [layer for layer in layers if isinstance(layer, _WEIGHT_LAYERS)]
    found = []

    def warn(rule, layer, detail):
        found.append(LintWarning(rule, layer.name, f"{detail}; {RULES[rule]}"))

    for layer in layers:
        if not is_binary_layer(layer):
            continue
        if weight_layers and layer is weight_layers[0]:
            warn("binary-first-layer", layer, "the first weight layer is binary")
        if weight_layers and layer is weight_layers[-1]:
            warn("binary-last-layer", layer, "the last weight layer is binary")
        kernel = getattr(layer, "kernel_size", None)
        spatial = tuple(layer.input_shape[1:3]) if len(layer.input_shape) == 4 else None
        if kernel == (1, 1) and spatial != (1, 1):
            warn("binary-1x1-conv", layer, f"1x1 binary conv on a {spatial} map")
        bits = _precision(getattr(layer, "input_quantizer", None))
        producer = _producer(layer)
        if bits > 4 and layer is not weight_layers[0]:
            warn("activation-bits", layer, f"its inputs have {bits} bits")
        if producer is not None and not isinstance(producer, keras.layers.BatchNormalization):
            if layer is not weight_layers[0]:
                warn("bn-before-binary", layer,
                     f"its input comes from '{producer.name}' ({type(producer).__name__}), "
                     "not from BatchNormalization")
        if bits == 1 and producer is not None and _activation_name(producer) in RELU_LIKE:
            warn("relu-before-sign", layer, f"'{producer.name}' applies "
                 f"{_activation_name(producer)} before this layer's sign")
    return found
