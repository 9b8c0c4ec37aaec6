"""Quantization steps: ``cluster`` (tfmot weight sharing), ``quantize_weights`` (scalar n-bit),
``product_quantize`` and ``quantize_aware`` (tfmot QAT)."""

from __future__ import annotations

from edgecompress import quantization
from edgecompress.datasets import CALIBRATION_SAMPLES
from edgecompress.quantization.product import SUPPORTED as PQ_TYPES
from edgecompress.quantization.scalar import QUANTIZABLE
from edgecompress.recipe.schema import LAYERS, Param, choice, int_range, register

BOOL = Param((bool,), None)


@register("cluster", {
    "clusters": int_range(2, 65536),
    "init": choice(quantization.INITS),
    "per_channel": BOOL,
    "preserve_sparsity": BOOL,
    "layers": LAYERS,
}, layer_types=quantization.CLUSTERABLE)
def cluster(state, clusters, init, per_channel, preserve_sparsity, layers):
    given = {"clusters": clusters, "init": init, "per_channel": per_channel,
             "preserve_sparsity": preserve_sparsity}
    state.model = quantization.cluster_weights(state.model, layers=layers,
                                               **{k: v for k, v in given.items() if v is not None})


@register("quantize_weights", {
    "bits": int_range(2, 8),
    "per_channel": BOOL,
    "symmetric": BOOL,
    "layers": LAYERS,
}, layer_types=QUANTIZABLE)
def quantize_weights(state, bits, per_channel, symmetric, layers):
    given = {"bits": bits, "per_channel": per_channel, "symmetric": symmetric}
    result = quantization.quantize_weights(state.model, layers=layers,
                                           **{k: v for k, v in given.items() if v is not None})
    state.model = result[0] if isinstance(result, tuple) else result


@register("product_quantize", {
    "subvector_size": Param((int,), None, lambda x: x >= 1, "an int >= 1"),
    "codebook_size": Param((int,), None, lambda x: x >= 2, "an int >= 2"),
    "calibrate": Param((bool,), True),
    "layers": LAYERS,
}, layer_types=PQ_TYPES)
def product_quantize(state, subvector_size, codebook_size, calibrate, layers):
    given = {"subvector_size": subvector_size, "codebook_size": codebook_size}
    calibration = state.train[0][:CALIBRATION_SAMPLES] if calibrate else None
    state.model = quantization.product_quantize(state.model, layers=layers, calibration_data=calibration,
                                                **{k: v for k, v in given.items() if v is not None})


#: Steps whose structural rewrite validation does not replay: a ``quantize_aware`` after one of
#: them is tried at its step, not before training.
_UNREPLAYED = ("factorize", "prune_filters", "binarize", "product_quantize")


def _trial(context, params):
    """Annotate a clone of the model as the step will see it (no calibration, nothing trained), so
    a layer tfmot cannot quantize is named before any step trains."""
    import logging
    import warnings

    earlier = [s.kind for s in context.steps_before if s.kind in _UNREPLAYED]
    if earlier:
        logging.getLogger("edgecompress.recipe").info(
            "quantize_aware is tried when it runs, after step kind %s rewrites the model", earlier[-1])
        return
    kwargs = {"preserve": params["preserve"]} if params["preserve"] is not None else {}
    with warnings.catch_warnings():  # tfmot's "No clustering performed": nothing is clustered yet
        warnings.simplefilter("ignore")
        quantization.quantize_aware(context.model, **kwargs)


@register("quantize_aware", {"preserve": choice(quantization.PRESERVE)}, check=_trial)
def quantize_aware(state, preserve):
    kwargs = {"preserve": preserve} if preserve is not None else {}
    state.model = quantization.quantize_aware(state.model, calibration_data=state.train[0][:CALIBRATION_SAMPLES],
                                              **kwargs)
