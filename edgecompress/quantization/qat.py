"""Quantization-aware training on tfmot, with collaborative optimization (PQAT, CQAT, PCQAT).

Beyond tfmot: the input is cloned first; unsupported layers are reported by name and class with
the fix; and ``calibration_data`` sets the activation ranges before training. tfmot starts every
activation range at [-6, 6] and moves it with an EMA of decay 0.999, so a short QAT run (the
tutorial's 1 epoch on 1,000 images is 2 steps) exports with ranges that are still almost [-6, 6]:
that, not the weights, is what drops accuracy. Calibrating the ranges first fixes it.

References:
    Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
    Only Inference", CVPR 2018.
    tfmot collaborative optimization: sparsity- and cluster-preserving QAT (PQAT, CQAT, PCQAT).
"""

from __future__ import annotations

import re

import numpy as np
import tensorflow_model_optimization as tfmot

from edgecompress._keras import check_graph_model, keras
from edgecompress._progress import Progress
from edgecompress.quantization import qat_graph
from edgecompress.surgery import attach, find_layers, iter_layers

_q = tfmot.quantization.keras
PRESERVE = ("none", "sparsity", "clusters", "both")
EMA_DECAY = 0.999  # tfmot's MovingAverageQuantizer


def get_scheme(preserve):
    """Resolve ``preserve`` to a tfmot quantize scheme (a scheme instance is returned as is)."""
    if isinstance(preserve, _q.QuantizeScheme):
        return preserve
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (  # noqa: E501
        default_8bit_cluster_preserve_quantize_scheme as cqat,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (  # noqa: E501
        default_8bit_prune_preserve_quantize_scheme as pqat,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_scheme as plain,
    )

    schemes = {
        "none": plain.Default8BitQuantizeScheme,
        "sparsity": pqat.Default8BitPrunePreserveQuantizeScheme,
        "clusters": lambda: cqat.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False),
        "both": lambda: cqat.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True),
    }
    if preserve not in schemes:
        raise ValueError(
            f"`preserve` must be one of {PRESERVE}. Received: preserve={preserve!r}")
    return schemes[preserve]()


def quantize_aware(model: keras.Model, preserve="none", skip=None, calibration_data=None):
    """A QAT clone of ``model`` (8-bit weights and activations), optionally preserving sparsity
    and/or the clusters of a pruned / clustered model, ready for ``compile`` + ``fit``.

    Before tfmot annotates it, the clone is rewritten (see :mod:`.qat_graph`): nested models are
    inlined, batch norms folded into the conv before them or, like ``Rescaling``,
    ``Normalization`` and TFOpLambda constant arithmetic, turned into per-channel 1x1 depthwise
    convs; Conv1D, ``Multiply`` and activations tfmot has no rule for get quantize configs. What
    is still unquantizable is left float and listed in ``result.transform_report``
    (a :class:`~.qat_graph.QATReport`).

    Args:
        model: a built Sequential or Functional tf_keras model without pruning/clustering
            wrappers (strip them first). Never modified.
        preserve: ``none`` (QAT), ``sparsity`` (PQAT), ``clusters`` (CQAT) or ``both`` (PCQAT).
            With clusters preserved, ``fit`` warns "Gradients do not exist for variables
            ['<layer>/kernel:0', ...]". It is benign: tfmot trains each layer's
            ``cluster_centroids`` and ``ori_weights`` and assigns the kernel from them on every
            training step, so the kernel itself is off the gradient path (checked: the kernels
            change during ``fit`` and keep their cluster count).
        skip: names of layers to leave in float (not annotated for quantization).
        calibration_data: input samples; when given, every activation range is set from them
            before returning, instead of tfmot's [-6, 6] start. Recommended for short fine-tuning.

    Returns:
        A new, uncompiled tfmot QAT model. Export it with full-int8 TFLite conversion.

    Raises:
        ValueError: for an unknown ``preserve``, a bad ``skip`` name, a pruning or clustering
            wrapper still on (with the fix), or a layer tfmot cannot
            quantize nor leave float (a TFOpLambda tfmot cannot clone), named with its class.

    Example:
        >>> qat = quantize_aware(model, calibration_data=x_train[:256])
        >>> qat.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy")
        >>> qat.fit(x_train, y_train, epochs=1)
        >>> qat.transform_report.skipped  # the layers left float, and why

    References:
        Jacob et al., CVPR 2018.
    """
    check_graph_model(model)
    scheme = get_scheme(preserve)
    _refuse_wrappers(model)
    skipped = {layer.name for layer in find_layers(model, skip, (keras.layers.Layer,), "skip")} \
        if skip is not None else set()
    report = qat_graph.QATReport("quantize_aware")
    progress = Progress("quantize_aware", 4, unit="stage")
    private = qat_graph.prepare(model, report)
    progress.step("graph rewritten")
    for layer in private.layers:
        if type(layer).__name__ == "TFOpLambda" and layer.name not in skipped:
            raise ValueError(
                f"`model` has layer '{layer.name}' (TFOpLambda `{layer.symbol}`), which tfmot QAT "
                "cannot clone or quantize (only `+ - * /` with a scalar or per-channel constant "
                "are rewritten). Write it as a Keras layer.")
    annotated = qat_graph.annotate(private, skipped, report)
    progress.step(f"{len(report.transformed)} layers annotated")
    try:
        with _q.quantize_scope():
            result = _q.quantize_apply(annotated, scheme)
        progress.step("tfmot quantize_apply done")
    except RuntimeError as err:  # tfmot: "Layer name:<class '...'> is not supported. ..."
        found = re.search(r"Layer (\S+?):<class '([\w.]+)'> is not supported", str(err))
        if found is None:
            raise
        name, cls = found.group(1), found.group(2).rsplit(".", 1)[-1]
        raise ValueError(
            f"`model` has layer '{name}' of class {cls}, which tfmot's 8-bit QAT does not "
            f"support. Pass skip=['{name}'] to keep it in float, or annotate it with "
            "tfmot.quantization.keras.quantize_annotate_layer(layer, quantize_config=...) in "
            "your model and pass the annotated model.") from None
    if calibration_data is not None:
        calibrate(result, calibration_data)
        progress.step("activation ranges calibrated")
    progress.close()
    attach(result, report)
    report.warn_if_noop()
    return result


def _refuse_wrappers(model) -> None:
    """tfmot QAT needs plain layers: a pruning or clustering wrapper still on is refused with the fix
    (tfmot itself fails with "Unknown layer: 'ClusterWeights'", or leaves a pruned layer float)."""
    from tensorflow_model_optimization.python.core.clustering.keras.cluster_wrapper import (
        ClusterWeights,
    )
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
        PruneLowMagnitude,
    )

    fixes = {ClusterWeights: ("clustering", "quantization.strip(model)", "clusters"),
             PruneLowMagnitude: ("pruning", "pruning.strip(model)", "sparsity")}
    for layer in iter_layers(model):
        for wrapper, (what, strip, keep) in fixes.items():
            if isinstance(layer, wrapper):
                raise ValueError(
                    f"`model` must hold plain layers, without tfmot {what} wrappers. Received: layer "
                    f"'{layer.name}' of class {wrapper.__name__} (around '{layer.layer.name}'). Strip them "
                    f"first ({strip}), then "
                    f"quantize_aware(stripped, preserve='{keep}') to keep the {keep} through QAT.")


def _range_variables(model):
    """The moving-average (EMA) activation ranges; weight and input ranges are set directly."""
    ends = ("activation_min", "activation_max", "output_min", "output_max")
    return [v for v in model.non_trainable_variables
            if v.name.split("/")[-1].split(":")[0].endswith(ends)]


def calibrate(model: keras.Model, data, passes: int = 3, batch_size: int = 512) -> None:
    """Set the activation ranges of a tfmot QAT model from ``data`` (in place).

    One training-mode forward pass moves each range by ``(1 - 0.999)`` toward the batch's
    min/max; this reads that step back to recover the batch range and assigns it outright.
    Weight ranges are set by the same pass (tfmot takes them from the current weights); other
    variables (batch-norm statistics, step counters) are restored afterwards.
    """
    x = np.asarray(data)[:batch_size]
    ranges = _range_variables(model)
    others = [v for v in model.non_trainable_variables
              if not v.name.split(":")[0].endswith(("_min", "_max"))]
    for _ in range(passes):
        saved = [v.numpy() for v in others]
        before = [v.numpy() for v in ranges]
        model(x, training=True)
        after = [v.numpy() for v in ranges]
        for v, value in zip(others, saved):
            v.assign(value)
        for v, old, new in zip(ranges, before, after):
            v.assign((new - EMA_DECAY * old) / (1 - EMA_DECAY))
