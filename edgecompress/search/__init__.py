"""Budget-driven compression: fit a model into a device's flash, arena and latency.

``edgecompress compress MODEL --data DATA --target flash=64KB,arena=20KB --max-drop 1.0 -o OUT``
runs :func:`search` and writes its outputs with :func:`write_outputs`.
"""

from edgecompress.search.core import (  # noqa: F401
    MARGINS,
    PRUNE_RATIOS,
    RANK_FRACTIONS,
    SearchResult,
    allocate,
    require_winner,
    search,
)
from edgecompress.search.outputs import recipe_toml, write_outputs  # noqa: F401
from edgecompress.search.space import Action  # noqa: F401
from edgecompress.search.targets import Target, parse_target  # noqa: F401

__all__ = ["search", "SearchResult", "Target", "parse_target", "Action", "allocate",
           "require_winner", "write_outputs", "recipe_toml", "PRUNE_RATIOS", "RANK_FRACTIONS",
           "MARGINS"]
