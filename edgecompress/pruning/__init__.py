"""Pruning and sparsity constraints (survey §2): magnitude pruning on tfmot, structured filter
pruning that removes filters, sparsity regularizers and the iterative prune -> fine-tune loop."""

from edgecompress.pruning.filters import CRITERIA as FILTER_CRITERIA  # noqa: F401
from edgecompress.pruning.filters import filter_importance, prune_filters  # noqa: F401
from edgecompress.pruning.iterative import CRITERIA as ITERATIVE_CRITERIA  # noqa: F401
from edgecompress.pruning.iterative import iterative_prune  # noqa: F401
from edgecompress.pruning.magnitude import (  # noqa: F401
    PrunedModel,
    PrunedSequential,
    PruneLowMagnitude,
    prune_low_magnitude,
    sparsity_report,
    strip,
)
from edgecompress.pruning.regularizers import L1, GroupLasso, add_sparsity_regularizer  # noqa: F401
from edgecompress.pruning.schedules import ConstantSparsity, PolynomialDecay  # noqa: F401
