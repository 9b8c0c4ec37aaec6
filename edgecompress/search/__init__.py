"""Budget-driven compression: fit a model into a device's flash, arena and latency.

``edgecompress compress MODEL --data DATA --target flash=64KB,arena=20KB --max-drop 1.0 -o OUT``
runs :func:`search` and writes its outputs with :func:`write_outputs`. Names load on first use,
so the command line's parser starts no TensorFlow.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "search": "core", "SearchResult": "core", "require_winner": "core",
    "PRUNE_RATIOS": "core", "RANK_FRACTIONS": "core", "LUT_BITS": "core", "STEP": "core",
    "FINAL_EPOCHS": "core", "TOP_K": "core", "MAX_ITERATIONS": "core",
    "write_outputs": "outputs", "recipe_toml": "outputs", "Action": "space",
    "Target": "targets", "parse_target": "targets", "Executor": "jobs",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
