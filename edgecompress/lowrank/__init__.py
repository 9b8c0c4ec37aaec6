"""Low-rank approximation (survey section 1): SVD of Dense layers, spatial SVD and Tucker-2 of
Conv2D layers, with ranks chosen by energy, by a global parameter/MAC target, or by a
per-layer accuracy-sensitivity scan. Results hold only plain Keras layers.

No maintained Keras tool does this: AIMET-Keras had spatial SVD only and is discontinued.
"""

from edgecompress.lowrank.factorize import (  # noqa: F401
    METHODS,
    TUCKER_MIN_CHANNELS,
    FactorizationReport,
    LayerFactorization,
    factorize,
)
from edgecompress.lowrank.sensitivity import (  # noqa: F401
    Sensitivity,
    SensitivityPoint,
    rank_sensitivity,
    ranks_for_accuracy,
    ranks_for_target,
)

__all__ = [
    "factorize", "rank_sensitivity", "ranks_for_accuracy", "ranks_for_target", "FactorizationReport",
    "LayerFactorization", "Sensitivity", "SensitivityPoint", "METHODS", "TUCKER_MIN_CHANNELS",
]
