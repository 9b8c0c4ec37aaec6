"""The Dense -> 1x1-convolution rewrite: one rule for every caller.

A Dense layer on 2-D inputs equals ``Reshape((1, 1, features)) -> 1x1 Conv2D -> Reshape((units,))``
with the kernel reshaped to ``1x1xfeatures x units``. Larq Compute Engine needs this form: it
bit-packs a binary 1x1 ``QuantConv2D`` into ``LceBconv2d`` but leaves a ``QuantDense`` as a float
``FULLY_CONNECTED`` (larq/compute-engine #631, #744). Beyond larq/LCE: neither has this rewrite.

Each Dense class needs its convolution counterpart (same config keys plus ``filters`` and
``kernel_size``): Keras ``Dense`` -> ``Conv2D`` and larq ``QuantDense`` -> ``QuantConv2D`` are
known; a package with its own pair calls :func:`register_conv_counterpart` where it defines them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from edgecompress._keras import keras
from edgecompress.surgery.graph import Replacement, rebuild

_COUNTERPARTS: dict[type, type] = {keras.layers.Dense: keras.layers.Conv2D}


def register_conv_counterpart(dense_class: type, conv_class: type) -> None:
    """Make ``dense_class`` layers rewritable by :func:`dense_as_conv`, as ``conv_class``.

    Raises:
        TypeError: if the classes are not a Dense and a Conv2D subclass.
    """
    if not (isinstance(dense_class, type) and issubclass(dense_class, keras.layers.Dense)
            and isinstance(conv_class, type) and issubclass(conv_class, keras.layers.Conv2D)):
        raise TypeError(
            "`register_conv_counterpart` needs a Dense subclass and a Conv2D subclass. "
            f"Received: {dense_class!r}, {conv_class!r}")
    _COUNTERPARTS[dense_class] = conv_class


def conv_counterpart(layer) -> type | None:
    """The 1x1 convolution class for exactly ``layer``'s class, or None if none is known."""
    larq = sys.modules.get("larq")  # a QuantDense exists only if larq is loaded: never import it
    if larq is not None:
        _COUNTERPARTS.setdefault(larq.layers.QuantDense, larq.layers.QuantConv2D)
    return _COUNTERPARTS.get(type(layer))


def why_not_as_conv(layer) -> str:
    """Why :func:`dense_as_conv` cannot rewrite ``layer``, or "" if it can."""
    if conv_counterpart(layer) is None:
        return (f"no 1x1 convolution counterpart is registered for class {type(layer).__name__} "
                "(see edgecompress.surgery.register_conv_counterpart)")
    if len(layer.input_shape) != 2:
        return f"input of rank {len(layer.input_shape)}, not (batch, features)"
    return ""


def dense_as_conv(model: keras.Model, layers: Iterable[keras.layers.Layer]) -> keras.Model:
    """``model`` rebuilt with each of ``layers`` as ``Reshape -> 1x1 conv -> Reshape``.

    Same function, same weights. The new layers are named ``<layer>_to_map``, ``<layer>`` and
    ``<layer>_from_map``.

    Args:
        model: a built Sequential or Functional model.
        layers: Dense layers of ``model`` (their classes registered, 2-D inputs).

    Returns:
        A new model; ``model`` is not changed.

    Raises:
        ValueError: for a layer this rewrite cannot take (named, with the reason).
    """
    chosen = {}
    for layer in layers:
        why = why_not_as_conv(layer)
        if why:
            raise ValueError(f"`layers` must be Dense layers that can become 1x1 convolutions. "
                             f"Received: '{layer.name}' ({type(layer).__name__}): {why}")
        chosen[id(layer)] = layer

    def rule(layer):
        if id(layer) not in chosen:
            return None
        config = layer.get_config()
        units, features = config.pop("units"), layer.input_shape[-1]
        conv = conv_counterpart(layer)(filters=units, kernel_size=1, **config)
        weights = layer.get_weights()
        weights[0] = weights[0].reshape(1, 1, features, units)
        return Replacement(
            [keras.layers.Reshape((1, 1, features), name=f"{layer.name}_to_map"), conv,
             keras.layers.Reshape((units,), name=f"{layer.name}_from_map")],
            [[], weights, []],
        )

    return rebuild(model, rule)
