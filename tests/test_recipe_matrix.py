"""Every shipped recipe on models it was not written for: each run ends in verified files, or in a
refusal that names the step (and the layer or input) before training.

CI runs every (model, recipe) pair through validation and four pairs end to end (:data:`CI_PAIRS`).
Set EDGECOMPRESS_FULL_MATRIX=1 to run all 70 pairs end to end (the README table comes from that).
"""

import os

import pytest

from edgecompress import recipe as recipes
from edgecompress.pipeline import shipped_recipe
from tests._recipe_matrix import MODELS, REFUSAL, data, run_one

SHIPPED = sorted(p.stem for p in shipped_recipe("x").parent.glob("*.toml"))
#: The end-to-end runs in CI: four recipes on four small models (plus the two-output test). Every
#: shipped recipe also runs on LeNet-5 in tests/test_demo.py; the other pairs run in the full
#: matrix (EDGECOMPRESS_FULL_MATRIX=1), too slow for CI on a shared 2-core machine.
CI_PAIRS = {
    "binary": "ds_cnn",
    "filter_pruning": "conv1d",
    "lowrank": "autoencoder",
    "quantization": "conv1d",
}

#: Pairs refused at validation, and why (so a refusal that goes away, or appears, is noticed).
REFUSED = {
    ("product_quantization", "conv1d"): "product_quantize",  # no Dense/Conv2D with >= 4096 weights
    ("binary", "conv1d"): "binarize",  # its only Conv2D/Dense layer is the last one, kept float
}


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_every_shipped_recipe_validates_or_refuses_by_step(model_name, mnist5k):
    model = MODELS[model_name]()
    train, _ = data(model_name, model, mnist5k)
    for name in SHIPPED:
        recipe = recipes.load(shipped_recipe(name))
        expected = REFUSED.get((name, model_name))
        if expected is None:
            recipes.validate(recipe, model, train[1])
            continue
        with pytest.raises(recipes.RecipeError) as info:
            recipes.validate(recipe, model, train[1])
        assert REFUSAL.match(str(info.value)) and f"({expected})" in str(info.value), str(info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("recipe_name", sorted(CI_PAIRS))
def test_shipped_recipe_runs_on_a_matrix_model(recipe_name, tmp_path, mnist5k):
    model_name = CI_PAIRS[recipe_name]
    outcome, detail = run_one(model_name, recipe_name, tmp_path, mnist5k)
    expected = "refused" if (recipe_name, model_name) in REFUSED else ("verified", "guard")
    assert outcome in expected, detail


def test_two_output_model_runs_pruning(tmp_path, mnist5k):
    outcome, detail = run_one("two_heads", "pruning", tmp_path, mnist5k)
    assert outcome in ("verified", "guard"), detail


@pytest.mark.skipif(not os.environ.get("EDGECOMPRESS_FULL_MATRIX"), reason="set EDGECOMPRESS_FULL_MATRIX=1")
@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("recipe_name", SHIPPED)
def test_full_matrix(recipe_name, model_name, tmp_path, mnist5k):
    outcome, detail = run_one(model_name, recipe_name, tmp_path, mnist5k)
    expected = "refused" if (recipe_name, model_name) in REFUSED else ("verified", "guard")
    assert outcome in expected, detail
