"""Parameter quantization (survey section 3): k-means weight sharing on tfmot with a packed
codebook format, scalar n-bit, product quantization (Q-CNN), and QAT with collaborative
optimization on tfmot."""

from edgecompress.quantization.clustering import cluster_weights, get_init, strip  # noqa: F401
from edgecompress.quantization.packed import load_packed, save_packed  # noqa: F401

__all__ = ["cluster_weights", "get_init", "strip", "save_packed", "load_packed"]
