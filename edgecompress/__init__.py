"""edgecompress: compress a trained Keras CNN and take it to a phone or a microcontroller.

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` (its one environment write) so that
TensorFlow, whenever it loads, makes ``tf.keras`` Keras 2 (tf_keras), the Keras that tfmot and
larq need. If TensorFlow was already imported with Keras 3, the import fails with an ImportError
that says what to do. Nothing else is imported until used: subpackages (``ec.pruning``,
``ec.datasets``, ...) and ``ec.keras``/``ec.tf`` load on first attribute access, so
``edgecompress --version`` never starts TensorFlow.
"""

from __future__ import annotations

import importlib
import os
import sys

__version__ = "0.1.0"

_KERAS3_MESSAGE = (
    "TensorFlow was imported with Keras 3 (TF_USE_LEGACY_KERAS unset; importing tfmot first "
    "does this too) before edgecompress, so tfmot and larq cannot work. "
    "Set TF_USE_LEGACY_KERAS=1 before anything imports TensorFlow (for example `export "
    "TF_USE_LEGACY_KERAS=1` in the shell, or `os.environ['TF_USE_LEGACY_KERAS'] = '1'` as the "
    "first line of your script), or import edgecompress first."
)


def _ensure_legacy_keras() -> None:
    # TensorFlow picks its Keras when it is imported: setting the variable later leaves
    # `tensorflow.keras` (which larq imports from) on Keras 3 even if `tf.keras` looks right.
    # Child processes inherit the variable, which they need for the same reason.
    loaded = sys.modules.get("tensorflow")
    if loaded is not None and not getattr(loaded, "_tf_uses_legacy_keras", True):
        raise ImportError(_KERAS3_MESSAGE)
    os.environ["TF_USE_LEGACY_KERAS"] = "1"


_ensure_legacy_keras()

_HERE = os.path.dirname(__file__)
_SUBPACKAGES = tuple(
    name for name in ("binary", "datasets", "distillation", "loading", "lowrank", "measure",
                      "models", "pruning", "quantization", "recipe", "report", "search", "surgery",
                      "tasks", "bench")
    if os.path.exists(os.path.join(_HERE, name)) or os.path.exists(os.path.join(_HERE, f"{name}.py"))
)
_NAMES = {"keras": "edgecompress._keras", "tf": "edgecompress._keras",
          "model_kind": "edgecompress._keras", "Measurement": "edgecompress.measure"}

__all__ = ["keras", "tf", "model_kind", "measure", "Measurement", "__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")  # also sets the attribute
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
