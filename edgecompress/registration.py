"""Make the classes of files written by edgecompress, larq and tfmot known to tf_keras.

:func:`edgecompress.loading.load_model` loads with what is registered and imports no family, so
that ``tflite_export`` stays independent of them. The ``edgecompress`` side (its CLI, the recipe
steps, the pipeline) calls :func:`register_edgecompress_objects` once before it loads a file that
may hold our layers, larq's layers or tfmot's wrappers.
"""

from __future__ import annotations

import functools
import importlib

from edgecompress._keras import keras

# Our registered layers, quantizers, schedules and losses live in these packages.
_FAMILIES = ("binary", "distillation", "models", "pruning", "quantization")


@functools.lru_cache(maxsize=1)
def edgecompress_objects() -> dict:
    """The classes that tfmot keeps in its scopes rather than registering globally.

    Importing larq and our families registers the rest (``register_keras_serializable``).
    """
    import larq  # noqa: F401 - registers its layers and quantizers
    import tensorflow_model_optimization as tfmot

    for package in _FAMILIES:
        importlib.import_module(f"edgecompress.{package}")
    objects = {}
    for scope in (tfmot.sparsity.keras.prune_scope, tfmot.clustering.keras.cluster_scope,
                  tfmot.quantization.keras.quantize_scope):
        for mapping in scope().custom_objects:
            objects.update(mapping)
    return objects


def register_edgecompress_objects() -> None:
    """Register edgecompress's, larq's and tfmot's classes with tf_keras (idempotent).

    Example:
        >>> from edgecompress.registration import register_edgecompress_objects
        >>> register_edgecompress_objects()
        >>> model = edgecompress.loading.load_model("pruned.keras")
    """
    keras.utils.get_custom_objects().update(edgecompress_objects())
