"""The one place Keras is imported, and the checks that classify a model.

edgecompress runs on Keras 2 (``tf_keras``): tfmot and larq only work with it.
Every other module does ``from edgecompress._keras import keras, tf``.
"""

from __future__ import annotations

import sys

from edgecompress import _KERAS3_MESSAGE, _ensure_legacy_keras

_ensure_legacy_keras()  # again: TensorFlow may have been imported since edgecompress was

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

KerasTensor = keras.__internal__.KerasTensor  # the exported name of tf_keras.src...KerasTensor

if tf.keras.layers.Dense is not keras.layers.Dense:  # pragma: no cover - guarded above
    raise ImportError(_KERAS3_MESSAGE)

SEQUENTIAL = "sequential"
FUNCTIONAL = "functional"
NESTED = "nested"
SUBCLASSED = "subclassed"
KERAS3 = "keras3"


def model_kind(model) -> str:
    """Classify ``model`` as sequential, functional, nested, subclassed or keras3.

    ``nested`` means a Sequential or Functional model that holds another model as a layer.
    """
    if _is_keras3(model):
        return KERAS3
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a tf_keras Model. Received: model of type {type(model).__name__}"
        )
    if isinstance(model, keras.Sequential):
        kind = SEQUENTIAL
    elif getattr(model, "_is_graph_network", False):
        kind = FUNCTIONAL
    else:
        return SUBCLASSED
    if any(isinstance(layer, keras.Model) for layer in model.layers):
        return NESTED
    return kind


def _is_keras3(obj) -> bool:
    keras3 = sys.modules.get("keras")
    model_cls = getattr(keras3, "Model", None)
    return isinstance(model_cls, type) and isinstance(obj, model_cls) and not isinstance(
        obj, keras.Model
    )


def check_graph_model(model, argument: str = "model") -> str:
    """Raise unless ``model`` is a Sequential or Functional tf_keras model (nested allowed).

    Returns:
        The model kind.
    """
    kind = model_kind(model) if isinstance(model, keras.Model) or _is_keras3(model) else None
    if kind is None:
        raise TypeError(
            f"`{argument}` must be a tf_keras Sequential or Functional model. "
            f"Received: {type(model).__name__}"
        )
    if kind == KERAS3:
        raise TypeError(
            f"`{argument}` is a Keras 3 model ({type(model).__module__}.{type(model).__name__}); "
            "edgecompress needs tf_keras (Keras 2). Save it with `model.save('model.keras')` in "
            "Keras 3 and pass the file instead: edgecompress translates Keras 3 files."
        )
    if kind == SUBCLASSED:
        raise TypeError(
            f"`{argument}` is a subclassed model ({type(model).__name__}); its graph cannot be "
            "read or rewritten. Rebuild it as a Sequential or Functional model "
            "(keras.Input + layer calls)."
        )
    if not model.built or not model.inputs:
        raise ValueError(
            f"`{argument}` is not built. Give it an input shape (keras.Input or "
            "`input_shape=`) or call it on data first."
        )
    return kind
