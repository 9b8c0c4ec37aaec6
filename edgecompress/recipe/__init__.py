"""TOML recipes: an ordered list of compression steps run on a model.

A recipe is data, never code: it is read with the standard library's TOML reader, every step is
validated when read, and again against the model (layer selectors, augmentation, tasks, the
backbone) before any training starts. Example::

    name = "deep_compression"
    max_drop = 2.0                # pp of accuracy (percent more error for regression)
    [[step]]
    kind = "prune_low_magnitude"
    target_sparsity = 0.9
    layers = {kinds = ["conv", "dense"], exclude = "first_last"}
    [[step]]
    kind = "fit"
    epochs = 3                    # augment = "auto": small shifts for images, none otherwise
    [[step]]
    kind = "strip"
    [[step]]
    kind = "export"
    mode = "int8"

Each step kind lives in one module with its keys and its runner (:data:`STEPS`).
"""

from edgecompress.recipe import (  # noqa: F401
           backbone,
           binary,
           distill,
           fit,
           lowrank,
           output,
           pruning,
           quantization,
)
from edgecompress.recipe.guard import AccuracyGuardError
from edgecompress.recipe.parser import Recipe, Step, check_max_drop, load, parse
from edgecompress.recipe.run import RunResult, run, split_validation, validate
from edgecompress.recipe.schema import STEPS, RecipeError

__all__ = ["load", "parse", "run", "validate", "split_validation", "Recipe", "Step", "RecipeError",
           "AccuracyGuardError", "RunResult", "STEPS", "check_max_drop"]
