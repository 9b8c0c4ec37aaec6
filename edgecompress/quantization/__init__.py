"""Parameter quantization (survey section 3): k-means weight sharing on tfmot with a packed
codebook format, scalar n-bit, product quantization (Q-CNN), and QAT with collaborative
optimization on tfmot."""

from edgecompress.quantization.clustering import (  # noqa: F401
    CLUSTERABLE,
    DEFAULT_CLUSTERS,
    DEFAULT_INIT,
    INITS,
    ClusterableDepthwiseConv2D,
    cluster_weights,
    get_init,
    strip,
)
from edgecompress.quantization.packed import load_packed, save_packed  # noqa: F401
from edgecompress.quantization.product import (  # noqa: F401
    PQConv2D,
    PQDense,
    decode,
    pq_size,
    product_quantize,
)
from edgecompress.quantization.scalar import ScalarReport, fake_quantize, quantize_weights  # noqa: F401

__all__ = [
    "cluster_weights", "get_init", "strip", "DEFAULT_CLUSTERS", "DEFAULT_INIT", "ClusterableDepthwiseConv2D",
    "save_packed", "load_packed",
    "quantize_weights", "fake_quantize", "ScalarReport",
    "product_quantize", "decode", "pq_size", "PQDense", "PQConv2D",
]

from edgecompress.quantization.qat import PRESERVE, calibrate, get_scheme, quantize_aware  # noqa: E402,F401

__all__ += ["quantize_aware", "calibrate", "get_scheme", "PRESERVE", "INITS", "CLUSTERABLE"]
