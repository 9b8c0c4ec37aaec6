"""Binarization schemes: which larq quantizers and constraint each paper's method uses."""

from __future__ import annotations

from dataclasses import dataclass

import larq as lq

from edgecompress._keras import keras
from edgecompress.binary.quantizers import StochasticSign


def _weight_clip():
    return lq.constraints.WeightClip(1.0)


# Activations that are >= 0 (or nearly) after their layer: a sign() of them is almost always +1,
# so a binary activation right after one carries no information.
RELU_LIKE = frozenset({"relu", "relu6", "elu", "selu", "gelu", "swish", "silu", "softplus",
                       "leaky_relu"})
# Layers that keep every value's sign class (>= 0 stays >= 0): looked through to find the layer
# that produces a binary layer's input.
_L = keras.layers
SIGN_KEEPING = (_L.MaxPooling2D, _L.AveragePooling2D, _L.MaxPooling1D, _L.AveragePooling1D,
                _L.Flatten, _L.Reshape, _L.Dropout, _L.SpatialDropout2D, _L.ZeroPadding2D,
                _L.Cropping2D, _L.UpSampling2D)


@dataclass(frozen=True)
class Scheme:
    """How :func:`~edgecompress.binary.binarize` turns a Conv2D/Dense into a larq layer.

    Args:
        name: the scheme's name (used in reports).
        kernel_quantizer: larq quantizer identifier (string, dict or Quantizer) for the weights.
        input_quantizer: quantizer for the layer's inputs, or None to keep float activations.
        weight_clip: clip the latent weights to [-1, 1] after each update (BinaryConnect).
        activation_scaling: use XNOR-Net's input scaling K (``XnorConv2D`` / ``XnorDense``).
    """

    name: str
    kernel_quantizer: object
    input_quantizer: object = None
    weight_clip: bool = True
    activation_scaling: bool = False

    def __post_init__(self):
        if self.kernel_quantizer is None:
            raise ValueError(
                "`kernel_quantizer` must be a binary larq quantizer. Received: kernel_quantizer=None"
            )
        if self.activation_scaling and self.input_quantizer is None:
            raise ValueError(
                "`activation_scaling` needs binary inputs; set `input_quantizer`. "
                "Received: input_quantizer=None"
            )

    @property
    def binary_activations(self) -> bool:
        return self.input_quantizer is not None

    def layer_kwargs(self) -> dict:
        """Fresh quantizer/constraint objects for one layer (never shared between layers)."""
        kwargs = {
            "kernel_quantizer": lq.quantizers.get(_fresh(self.kernel_quantizer)),
            "input_quantizer": lq.quantizers.get(_fresh(self.input_quantizer)),
        }
        if self.weight_clip:
            kwargs["kernel_constraint"] = _weight_clip()
        return kwargs


def _fresh(identifier):
    """A new quantizer object with the same config (a layer must not share a quantizer layer)."""
    if isinstance(identifier, lq.quantizers.Quantizer):
        return type(identifier).from_config(identifier.get_config())
    return identifier


SCHEMES = {
    # Courbariaux et al. 2015: sign weights (STE = hard-tanh gradient), float activations.
    "binaryconnect": Scheme("binaryconnect", "ste_sign"),
    # Rastegari et al. 2016: sign(W) * mean|W| per output channel, float activations.
    "bwn": Scheme("bwn", "magnitude_aware_sign"),
    # Rastegari et al. 2016: binary weights (alpha) and activations (K).
    "xnor": Scheme("xnor", "magnitude_aware_sign", "ste_sign", activation_scaling=True),
    # Hubara/Courbariaux et al. 2016: binary weights and activations, hard-tanh STE.
    "binarynet": Scheme("binarynet", "ste_sign", "ste_sign"),
    # Courbariaux et al. 2015, stochastic variant: P(+1) = hard_sigmoid(w) while training.
    "stochastic": Scheme("stochastic", StochasticSign()),
}


def get(identifier) -> Scheme:
    """Resolve a scheme name (``binaryconnect``, ``bwn``, ``xnor``, ``binarynet``, ``stochastic``)
    or pass a :class:`Scheme` through."""
    if isinstance(identifier, Scheme):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in SCHEMES:
        return SCHEMES[identifier.lower()]
    raise ValueError(
        f"`scheme` must be one of {sorted(SCHEMES)} or a Scheme. Received: scheme={identifier!r}"
    )


__all__ = ["Scheme", "SCHEMES", "get", "StochasticSign"]
