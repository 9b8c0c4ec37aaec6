"""BNN training and reporting helpers on larq: Bop, flip ratio, bit/memory/MAC summary."""

from __future__ import annotations

import larq as lq

from edgecompress._keras import check_graph_model, keras
from edgecompress.surgery import iter_layers


def bop_optimizer(fp_optimizer=None, threshold: float = 1e-8, gamma: float = 1e-4):
    """Bop for the binary weights, ``fp_optimizer`` for everything else (BN, float layers).

    A thin, checked front to ``larq.optimizers.CaseOptimizer`` + ``larq.optimizers.Bop``. Bop
    flips a binary weight when its gradient's exponential moving average (rate ``gamma``) exceeds
    ``threshold`` and agrees in sign; it ignores the latent weights' magnitude.

    Args:
        fp_optimizer: a (legacy) Keras optimizer for the float variables; default Adam(0.01).
        threshold: flip threshold tau, > 0.
        gamma: adaptivity rate, in (0, 1].

    References:
        - Helwegen et al. Latent Weights Do Not Exist: Rethinking Binarized Neural Network
          Optimization. NeurIPS 2019. https://arxiv.org/abs/1906.02107
    """
    if not threshold > 0:
        raise ValueError(f"`threshold` must be > 0. Received: threshold={threshold}")
    if not 0 < gamma <= 1:
        raise ValueError(f"`gamma` must be in (0, 1]. Received: gamma={gamma}")
    if fp_optimizer is None:
        fp_optimizer = keras.optimizers.legacy.Adam(0.01)
    return lq.optimizers.CaseOptimizer(
        (lq.optimizers.Bop.is_binary_variable, lq.optimizers.Bop(threshold=threshold, gamma=gamma)),
        default_optimizer=fp_optimizer,
    )


def flip_ratio_scope():
    """Context manager: larq layers *built* inside it log ``flip_ratio/<quantizer>`` metrics.

    Example:
        >>> with flip_ratio_scope():
        ...     bnn = binarize(model, "binarynet")
        >>> bnn.compile(...); bnn.fit(...)   # history has flip_ratio/... per binary kernel
    """
    return lq.context.metrics_scope(["flip_ratio"])


def flip_ratio() -> lq.metrics.FlipRatio:
    """larq's FlipRatio metric: the fraction of binary values that changed since the last update."""
    return lq.metrics.FlipRatio()


def summary(model: keras.Model) -> dict:
    """larq's ``models.summary`` figures as data: weights by bit width, memory, MACs by precision.

    Returns:
        ``{"layers": [{"name", "input_precision", "params_by_bits", "memory_bytes",
        "macs_by_precision"}...], "params_by_bits", "memory_bytes", "float32_bytes",
        "int8_float_bytes", "compression", "macs_by_precision", "binary_mac_fraction"}``.
        ``memory_bytes`` counts each weight at its bit width (BatchNorm fused as larq does);
        ``compression`` is float32 bytes / memory bytes. See also ``larq.models.summary``
        (the same figures as a printed table).
    """
    check_graph_model(model)
    profile = lq.models.ModelProfile(model)
    rows = []
    for lp in _leaf_profiles(profile):
        rows.append({
            "name": lp.name,
            "input_precision": lp.input_precision or 32,
            "params_by_bits": {b: lp.weight_count(b) for b in lp.unique_param_bidtwidths},
            "memory_bytes": lp.memory / 8,
            "macs_by_precision": {
                p: lp.op_count("mac", p) or 0 for p in lp.unique_op_precisions
            },
        })
    bits = profile.unique_param_bidtwidths
    precisions = profile.unique_op_precisions
    macs = {p: profile.op_count("mac", p) for p in precisions}
    total_macs = sum(macs.values())
    return {
        "layers": rows,
        "params_by_bits": {b: profile.weight_count(b) for b in bits},
        "memory_bytes": profile.memory / 8,
        "float32_bytes": profile.fp_equivalent_memory / 8,
        "int8_float_bytes": profile.int8_fp_weights_memory / 8,
        "compression": profile.fp_equivalent_memory / max(profile.memory, 1),
        "macs_by_precision": macs,
        "binary_mac_fraction": macs.get(1, 0) / total_macs if total_macs else 0.0,
    }


def _leaf_profiles(profile):
    for lp in profile.layer_profiles:
        if isinstance(lp, lq.models.ModelProfile):
            yield from _leaf_profiles(lp)
        else:
            yield lp



def calibrate_batchnorm(model: keras.Model, x, batch_size: int = 256) -> keras.Model:
    """Set every BatchNormalization's moving statistics to its batch statistics on ``x``, in place.

    A binarized layer's outputs have another scale than the float layer's, but the BN after it
    keeps the float model's moving statistics (or the initial 0 / 1) until training has moved
    them, at momentum 0.99 slowly. Until then, inference does not normalize: with XNOR-Net's
    input scale K, the magnitude grows from layer to layer and a deep residual net (ResNet50,
    DenseNet121) overflows to inf after a short fit, although its weights stay finite. One
    training-mode pass over ``x`` with momentum 0 (AdaBN) sets the statistics inference needs;
    call it after :func:`~edgecompress.binary.binarize` (and after a short fit if wanted).

    Args:
        model: a (binarized) model; its BN layers' moving mean and variance are overwritten.
        x: a batch of real inputs (the first ``batch_size`` are used), or a list for several inputs.
        batch_size: how many samples make the statistics, >= 2.

    Returns:
        ``model``.

    References:
        - Li et al. Revisiting Batch Normalization For Practical Domain Adaptation (AdaBN).
          ICLR Workshop 2017. https://arxiv.org/abs/1603.04779
    """
    check_graph_model(model)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"`batch_size` must be an int >= 2. Received: batch_size={batch_size!r}")
    norms = [layer for layer in iter_layers(model)
             if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        raise ValueError(f"`model` has no BatchNormalization layer to calibrate. "
                         f"Received: model '{model.name}'")
    batch = [a[:batch_size] for a in x] if isinstance(x, (list, tuple)) else x[:batch_size]
    momenta = [layer.momentum for layer in norms]
    try:
        for layer in norms:
            layer.momentum = 0.0
        model(batch, training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
    return model
