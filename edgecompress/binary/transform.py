"""Turn a float Keras model into a larq binarized network, on the surgery core."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import larq as lq

from edgecompress import surgery
from edgecompress._keras import check_graph_model, keras, tf
from edgecompress._progress import Progress
from edgecompress.binary import schemes
from edgecompress.binary.layers import XnorConv2D, XnorDense
from edgecompress.surgery import (
    DROP,
    Replacement,
    TransformReport,
    attach,
    find_layers,
    iter_layers,
    rebuild,
)

log = logging.getLogger("edgecompress")
L = keras.layers
BINARIZABLE = (L.Conv2D, L.Dense)
_RELU_LAYERS = (L.ReLU, L.LeakyReLU, L.ELU, L.ThresholdedReLU, L.PReLU)


def is_binarizable(layer) -> bool:
    """A plain float Conv2D (groups=1, channels_last) or Dense; larq layers and transposed,
    depthwise or separable convolutions are not (LCE has no binary kernel for them)."""
    if type(layer) is keras.layers.Dense:
        return True
    return (
        type(layer) is keras.layers.Conv2D
        and layer.groups == 1
        and layer.data_format == "channels_last"
    )


def _not_binarizable_reason(layer) -> str:
    """Why a layer with a kernel stays float, or "" (binarizable, or nothing to binarize)."""
    if is_binarizable(layer) or not isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D, L.Dense,
                                                       L.DepthwiseConv2D, L.DepthwiseConv1D,
                                                       L.SeparableConv1D, L.SeparableConv2D)):
        return ""
    if isinstance(layer, lq.layers_base.BaseLayer):
        return "already a larq layer"
    if getattr(layer, "groups", 1) != 1:
        return f"grouped convolution (groups={layer.groups}): no binary kernel in LCE; left float"
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "channels_first convolution; left float"
    return f"{type(layer).__name__}: no binary kernel in Larq Compute Engine; left float"


def binarizable_layers(model: keras.Model, keep_first_last: bool = True,
                       layers: Iterable[str] | None = None) -> tuple[list, dict]:
    """The layers :func:`binarize` would binarize, and those it leaves float (with the reason).

    It checks and selects like :func:`binarize`, without building anything or logging: a recipe
    validates a ``binarize`` step with it.

    Args:
        model, keep_first_last, layers: as for :func:`binarize`.

    Returns:
        ``(selected layers in model order, {layer name: why it stays float})``.

    Raises:
        ValueError, TypeError: as :func:`binarize`.
    """
    check_graph_model(model)
    if layers is not None:
        selected = find_layers(model, layers, BINARIZABLE, argument="layers")
        for layer in selected:
            if not is_binarizable(layer):
                raise ValueError(
                    "`layers` must name plain Conv2D (groups=1, channels_last) or Dense layers. "
                    f"Received: '{layer.name}' of class {type(layer).__name__}"
                )
    skipped = {}
    if layers is None:
        candidates = [layer for layer in iter_layers(model) if is_binarizable(layer)]
        selected = candidates[1:-1] if keep_first_last else candidates
        for layer in candidates:
            if layer not in selected:
                skipped[layer.name] = "kept float (keep_first_last=True)"
        for layer in iter_layers(model):
            why = _not_binarizable_reason(layer)
            if why:
                skipped[layer.name] = why
        if not selected:
            left = "; ".join(f"'{k}': {v}" for k, v in list(skipped.items())[:6])
            raise ValueError(
                "`model` has no layer to binarize: it needs plain Conv2D/Dense layers"
                + (" besides the first and last (or pass keep_first_last=False)"
                   if keep_first_last and candidates else "")
                + f". Received: model '{model.name}' with {len(candidates)} binarizable layer(s)"
                + (f"; left float: {left}" if left else "")
            )
    return selected, skipped


def binarize(
    model: keras.Model,
    scheme="binarynet",
    keep_first_last: bool = True,
    layers: Iterable[str] | None = None,
) -> keras.Model:
    """A larq copy of ``model`` with Conv2D/Dense layers binarized by ``scheme``.

    Each selected layer becomes a larq ``QuantConv2D``/``QuantDense`` (``XnorConv2D``/``XnorDense``
    for ``"xnor"``) with the same config; its float weights are carried over as the latent weights
    that training updates. Schemes with binary activations (``xnor``, ``binarynet``) drop a
    ReLU-like ``activation`` of the binarized layers: a ReLU before a sign makes every input +1,
    and the sign is the network's non-linearity. The result must be fine-tuned (``compile`` +
    ``fit``; see :func:`bop_optimizer`).

    With binary activations the sign must see centred inputs, so ``binarize`` also fixes what
    feeds each binarized layer (a ReLU in front makes every input +1: each binarized 1x1 conv then
    outputs a constant, the BatchNormalization after it divides by a zero batch variance, and
    training goes to NaN):

    * a separate ReLU-like layer (ReLU, ReLU6, LeakyReLU, ``Activation("relu")``, ...) whose only
      consumers are binarized layers is removed (the sign is the non-linearity);
    * a binarized layer whose input does not come from a BatchNormalization (looking through
      pooling, padding, dropout, flatten and reshape) gets a new ``BatchNormalization`` right in
      front of it, named ``<layer>_in_bn`` (the "bn-before-binary" rule of :func:`lint`). This
      covers a ReLU that also feeds a float path (a residual shortcut), which is kept.

    The BatchNormalization layers still hold the float model's (or initial) moving statistics;
    call :func:`calibrate_batchnorm` with a few hundred real inputs before evaluating or exporting
    a briefly trained result (XNOR-Net on ResNet50/DenseNet121 otherwise overflows at inference).

    Args:
        model: a built Sequential or Functional tf_keras model (nested models are handled).
        scheme: ``"binaryconnect"``, ``"bwn"``, ``"xnor"``, ``"binarynet"``, ``"stochastic"`` or a
            :class:`Scheme`.
        keep_first_last: keep the first and last binarizable layers in float (common BNN practice;
            they hold few weights and lose the most accuracy). Only used when ``layers`` is None.
        layers: names of the layers to binarize; None for every binarizable layer.

    Returns:
        A new, uncompiled model. ``model`` is not changed. It carries a
        :class:`~edgecompress.surgery.TransformReport` as ``transform_report`` (binarized and
        removed layers under ``transformed``).

    Raises:
        ValueError: for an unknown scheme, a named layer that cannot be binarized, or a model with
            no layer to binarize.
        TypeError: for a subclassed or Keras 3 model.

    Example:
        >>> bnn = binarize(float_model, "binarynet")
        >>> bnn.compile(bop_optimizer(keras.optimizers.Adam(1e-3)), "sparse_categorical_crossentropy")

    References:
        - Courbariaux et al. BinaryConnect. NeurIPS 2015. https://arxiv.org/abs/1511.00363
        - Rastegari et al. XNOR-Net. ECCV 2016. https://arxiv.org/abs/1603.05279
        - Hubara et al. Binarized Neural Networks. NeurIPS 2016. https://arxiv.org/abs/1602.02830
    """
    scheme = schemes.get(scheme)
    selected, skipped = binarizable_layers(model, keep_first_last, layers)
    chosen = {id(layer) for layer in selected}
    drops, needs_bn = _centre_binary_inputs(model, selected) if scheme.binary_activations else ({}, set())

    def rule(layer):
        if id(layer) in drops:
            return DROP
        if id(layer) not in chosen:
            return None
        binary_layer = _binary_layer(layer, scheme)
        if id(layer) in needs_bn:
            norm = L.BatchNormalization(name=f"{layer.name}_in_bn")
            return Replacement([norm, binary_layer], [None, layer.get_weights()])
        return Replacement([binary_layer], [layer.get_weights()])

    with Progress("binarize", len(list(iter_layers(model)))) as progress:
        new = rebuild(model, progress.rule(rule))
    report = TransformReport(f"binarize({scheme.name})",
                             transformed=[layer.name for layer in selected]
                             + [layer.name for layer in drops.values()], skipped=skipped)
    if drops:
        log.info("binarize: removed %d ReLU-like layer(s) in front of binary inputs: %s", len(drops),
                 ", ".join(layer.name for layer in drops.values()))
    if needs_bn:
        log.info("binarize: added BatchNormalization in front of %d binarized layer(s): %s",
                 len(needs_bn), ", ".join(layer.name for layer in selected if id(layer) in needs_bn))
    report.warn_if_noop()
    return attach(new, report)


def _graph_links(model):
    """Per layer id: the inbound layers of each call, and every consumer (None = a model output)."""
    inbound, consumers = {}, {}

    def walk(m):
        for nodes in m._nodes_by_depth.values():
            for node in nodes:
                if node.is_input:
                    continue
                sources = [t._keras_history.layer for t in tf.nest.flatten(node.keras_inputs)]
                inbound.setdefault(id(node.layer), []).append(sources)
                for source in sources:
                    consumers.setdefault(id(source), []).append(node.layer)
                if isinstance(node.layer, keras.Model):
                    walk(node.layer)
        for tensor in tf.nest.flatten(m.outputs):
            consumers.setdefault(id(tensor._keras_history.layer), []).append(None)

    walk(model)
    return inbound, consumers


def _is_relu_layer(layer) -> bool:
    if isinstance(layer, _RELU_LAYERS):
        return True
    return isinstance(layer, L.Activation) and getattr(
        layer.activation, "__name__", "") in schemes.RELU_LIKE


def _centre_binary_inputs(model, selected):
    """The ReLU-like layers to remove and the binarized layers that need a BN in front."""
    inbound, consumers = _graph_links(model)
    chosen = {id(layer) for layer in selected}

    def source(layer, skip=()):
        """The nearest producer upstream, looking through sign-keeping (and ``skip``) layers."""
        for _ in range(1000):
            calls = inbound.get(id(layer), [])
            if len(calls) != 1 or len(calls[0]) != 1:
                return None
            layer = calls[0][0]
            if isinstance(layer, L.InputLayer):
                return None
            if not (isinstance(layer, schemes.SIGN_KEEPING) or id(layer) in skip):
                return layer
        return None

    def only_feeds_binary(layer, depth=0):
        users = consumers.get(id(layer), [None])
        return depth < 100 and all(
            user is not None and (id(user) in chosen or (
                isinstance(user, schemes.SIGN_KEEPING) and only_feeds_binary(user, depth + 1)))
            for user in users)

    drops = {}
    for layer in selected:
        producer = source(layer)
        if producer is not None and _is_relu_layer(producer) and only_feeds_binary(producer):
            drops[id(producer)] = producer
    needs_bn = set()
    for layer in selected:
        producer = source(layer, skip=drops)
        if producer is not None and not isinstance(producer, L.BatchNormalization):
            needs_bn.add(id(layer))
    return drops, needs_bn


def _binary_layer(layer, scheme: schemes.Scheme):
    config = layer.get_config()
    if scheme.binary_activations and config.get("activation") in schemes.RELU_LIKE:
        config["activation"] = "linear"
    config.update(scheme.layer_kwargs())
    if isinstance(layer, keras.layers.Conv2D):
        cls = XnorConv2D if scheme.activation_scaling else lq.layers.QuantConv2D
    else:
        cls = XnorDense if scheme.activation_scaling else lq.layers.QuantDense
    return cls(**config)


def dense_as_conv(model: keras.Model, layers: Iterable[str] | None = None) -> keras.Model:
    """Rewrite larq ``QuantDense`` layers as ``Reshape -> 1x1 QuantConv2D -> Reshape``.

    Same function, same weights (kernel reshaped to 1x1xInxOut), but Larq Compute Engine turns a
    binary 1x1 convolution into its bit-packed ``LceBconv2d``, while it leaves a ``QuantDense`` as a
    float ``FULLY_CONNECTED`` with 32-bit weights (larq/compute-engine #631, #744).
    ``tflite_export.export(..., mode="binary")`` applies the same rewrite by itself; call this one to
    get the rewritten Keras model. The rule is :func:`edgecompress.surgery.dense_as_conv`.

    Args:
        model: a Sequential or Functional model with ``QuantDense`` layers on 2-D inputs.
        layers: names of QuantDense layers to rewrite; None for every one with binary weights.

    Returns:
        A new model; ``model`` is not changed.

    Raises:
        ValueError: for a named layer that is not a 2-D-input QuantDense, or no layer to rewrite.
    """
    check_graph_model(model)
    if layers is not None:
        selected = find_layers(model, layers, (lq.layers.QuantDense,), argument="layers")
    else:
        selected = [
            layer for layer in iter_layers(model)
            if isinstance(layer, lq.layers.QuantDense)
            and getattr(layer.kernel_quantizer, "precision", None) == 1
        ]
    if not selected:
        raise ValueError(
            "`model` has no binary QuantDense layer to rewrite. "
            f"Received: model '{model.name}'"
        )
    return surgery.dense_as_conv(model, selected)
