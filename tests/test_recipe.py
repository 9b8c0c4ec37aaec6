import pytest

from edgecompress import recipe
from edgecompress.recipe import RecipeError

GOOD = """
name = "dc"
[[step]]
kind = "prune_low_magnitude"
target_sparsity = 0.9
[[step]]
kind = "fit"
epochs = 2
[[step]]
kind = "strip"
[[step]]
kind = "export"
mode = "int8"
"""


def test_parse_good_recipe_fills_defaults():
    r = recipe.parse(GOOD)
    assert r.name == "dc" and [s.kind for s in r.steps] == ["prune_low_magnitude", "fit", "strip", "export"]
    assert r.steps[0].params["target_sparsity"] == 0.9
    assert r.steps[1].params == {"epochs": 2, "learning_rate": 1e-3, "batch_size": 64, "shift": 0}
    assert len(r.digest) == 16


@pytest.mark.parametrize(
    "text, match",
    [
        ("name = 'x'", "at least one"),
        ("[[step]]\nepochs = 1", "step 1: missing key `kind`"),
        ("[[step]]\nkind = 'dance'", "step 1: `kind` must be one of"),
        ("[[step]]\nkind = 'fit'\nepoch = 1", "step 1 \\(fit\\): unknown key `epoch`"),
        ("[[step]]\nkind = 'fit'\nepochs = '3'", "`epochs` must be an int"),
        ("[[step]]\nkind = 'fit'\nepochs = true", "`epochs` must be an int"),
        ("[[step]]\nkind = 'fit'\nepochs = 0", "`epochs` must be an int in \\[1, 1000\\]"),
        ("[[step]]\nkind = 'strip'\n[[step]]\nkind = 'prune_filters'", "step 2 \\(prune_filters\\): missing key `ratio`"),
        ("[[step]]\nkind = 'prune_filters'\nratio = 1.0", "`ratio` must be a number in \\[0, 1\\)"),
        ("[[step]]\nkind = 'cluster'\nclusters = 1", "`clusters` must be an int in \\[2, 65536\\]"),
        ("[[step]]\nkind = 'export'\nmode = 'int4'", "`mode` must be one of"),
        ("[[step]]\nkind = 'export'\nname = '../escape'", "`name` must be a plain file name"),
        ("[[step]]\nkind = 'factorize'", "exactly one of"),
        ("[[step]]\nkind = 'factorize'\nenergy = 0.9\nrank = 3", "exactly one of"),
        ("[[step]]\nkind = 'factorize'\nenergy = 1.5", "`energy` must be a number in \\(0, 1\\]"),
        ("[[step]]\nkind = 'binarize'\nlayers = [1, 2]", "`layers` must be a list of layer names"),
        ("[[step]]\nkind = 'distill'\nmixup = -1", "`mixup` must be a number >= 0"),
        ("name = '../x'\n[[step]]\nkind = 'strip'", "`name` must be a plain name"),
        ("foo = 1\n[[step]]\nkind = 'strip'", "unknown top-level keys"),
        ("[[step]\nkind = 'strip'", "not valid TOML"),
        ("step = 3", "at least one"),
        ("step = [1]", "step 1: must be a table"),
    ],
)
def test_bad_recipes_name_step_key_and_expectation(text, match):
    with pytest.raises(RecipeError, match=match):
        recipe.parse(text)


def test_load_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="existing TOML file"):
        recipe.load(tmp_path / "nope.toml")


def test_every_step_kind_has_a_runner():
    assert set(recipe._RUNNERS) == set(recipe.STEPS)


def test_shipped_recipes_validate():
    from edgecompress.pipeline import DEMO_RECIPES, shipped_recipe

    shipped = sorted(shipped_recipe("x").parent.glob("*.toml"))
    assert {p.stem for p in shipped} >= set(DEMO_RECIPES) | {"deep_compression_long"}
    for path in shipped:
        assert recipe.load(path).name == path.stem


def test_fit_loss_sees_softmax_through_tfmot_wrappers():
    from edgecompress import models, pruning, quantization

    for wrap in (lambda m: m, quantization.quantize_aware, pruning.prune_low_magnitude):
        assert not recipe._loss_for(wrap(models.lenet_300_100())).get_config()["from_logits"]
