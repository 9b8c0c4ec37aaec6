"""Sparsity regularizers that drive weights (L1) or whole filters (group lasso) to zero.

After training with them, ``prune_filters(model, criterion="threshold", threshold=...)`` removes
the filters they drove to (near) zero.

References:
    Wen et al., "Learning Structured Sparsity in Deep Neural Networks", NeurIPS 2016.
    Yuan & Lin, "Model selection and estimation in regression with grouped variables", 2006.
"""

from __future__ import annotations

from edgecompress import surgery
from edgecompress._keras import check_graph_model, keras, tf


def _check_strength(value, argument):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"`{argument}` must be a number >= 0. Received: {argument}={value!r}")
    return float(value)


@keras.utils.register_keras_serializable(package="edgecompress")
class L1(keras.regularizers.Regularizer):
    """``l1 * sum(|w|)``: unstructured sparsity.

    Args:
        l1: strength (>= 0).
    """

    def __init__(self, l1=1e-4):
        self.l1 = _check_strength(l1, "l1")

    def __call__(self, x):
        return self.l1 * tf.reduce_sum(tf.abs(x))

    def get_config(self):
        return {"l1": self.l1}


@keras.utils.register_keras_serializable(package="edgecompress")
class GroupLasso(keras.regularizers.Regularizer):
    """``strength * sum over output filters of ||w_f||_2``: drives whole filters to zero.

    A filter is the kernel slice of one output channel (``kernel[..., f]``), for Conv2D and Dense.

    Args:
        strength: strength (>= 0).
    """

    def __init__(self, strength=1e-3):
        self.strength = _check_strength(strength, "strength")

    def __call__(self, x):
        flat = tf.reshape(x, (-1, tf.shape(x)[-1]))
        return self.strength * tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(flat), axis=0) + 1e-12))

    def get_config(self):
        return {"strength": self.strength}


def add_sparsity_regularizer(model, regularizer, layers=None):
    """A clone of ``model`` with ``regularizer`` as the kernel regularizer of its Conv2D/Dense layers.

    Args:
        model: a built Sequential or Functional model (not modified).
        regularizer: :class:`L1`, :class:`GroupLasso` or any Keras regularizer.
        layers: names of the layers to regularize; None means every Conv2D and Dense
            (DepthwiseConv2D excluded).

    Returns:
        A new, uncompiled model with the same weights.
    """
    check_graph_model(model)
    if not isinstance(regularizer, keras.regularizers.Regularizer):
        raise ValueError("`regularizer` must be a keras Regularizer such as L1() or GroupLasso(). "
                         f"Received: regularizer={regularizer!r}")
    chosen = surgery.find_layers(model, layers, (keras.layers.Conv2D, keras.layers.Dense))
    names = {layer.name for layer in chosen
             if not isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose))}

    def rule(layer):
        if layer.name not in names:
            return None
        config = layer.get_config()
        config["kernel_regularizer"] = keras.regularizers.serialize(regularizer)
        cls = type(layer)
        with keras.utils.custom_object_scope({cls.__name__: cls}):
            new = cls.from_config(config)
        return surgery.Replacement([new], [layer.get_weights()])

    return surgery.rebuild(model, rule)
