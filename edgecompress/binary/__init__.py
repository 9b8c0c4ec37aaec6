"""Binarized networks on larq: BinaryConnect, BWN, XNOR-Net, BinaryNet and stochastic binarization
as model transforms, BNN tooling (Bop, flip ratio, bit/memory/MAC summary), a design-rule lint, and
a Dense -> 1x1 conv rewrite so that Larq Compute Engine really binarizes fully connected layers.

Example:
    >>> from edgecompress import binary
    >>> bnn = binary.binarize(float_model, "binarynet")       # keep_first_last=True
    >>> bnn.compile(binary.bop_optimizer(), "sparse_categorical_crossentropy", ["accuracy"])
    >>> bnn.fit(x, y, epochs=10)
    >>> binary.lint(bnn), binary.summary(bnn)["compression"]
    >>> deployable = binary.dense_as_conv(bnn)                 # then export in "binary" mode
"""

from edgecompress.binary.layers import XnorConv2D, XnorDense
from edgecompress.binary.lint import RULES, LintWarning, is_binary_layer, lint
from edgecompress.binary.quantizers import StochasticSign, straight_through
from edgecompress.binary.schemes import SCHEMES, Scheme, get
from edgecompress.binary.tools import (
    bop_optimizer,
    calibrate_batchnorm,
    flip_ratio,
    flip_ratio_scope,
    summary,
)
from edgecompress.binary.transform import (
    binarizable_layers,
    binarize,
    dense_as_conv,
    is_binarizable,
)

__all__ = [
    "binarize", "binarizable_layers", "dense_as_conv", "is_binarizable", "Scheme", "SCHEMES", "get",
    "StochasticSign", "straight_through", "XnorConv2D", "XnorDense",
    "bop_optimizer", "calibrate_batchnorm", "flip_ratio", "flip_ratio_scope", "summary",
    "lint", "LintWarning", "RULES", "is_binary_layer",
]
