"""Validation before training trials ``quantize_aware``: a layer tfmot cannot quantize is refused
by step before any ``fit`` trains, through the API and the CLI (exit 2, nothing written)."""

import numpy as np
import pytest

from edgecompress import recipe as recipes
from edgecompress._keras import keras, tf
from edgecompress.cli import main

FIT_THEN_QAT = '[[step]]\nkind = "fit"\nepochs = 3\n[[step]]\nkind = "quantize_aware"\n[[step]]\nkind = "fit"\n' \
               '[[step]]\nkind = "export"\nmode = "int8"\n'


def _unquantizable():
    i = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(i)
    x = tf.math.sin(x)  # a TFOpLambda tfmot QAT can neither clone nor quantize
    x = keras.layers.Flatten()(x)
    return keras.Model(i, keras.layers.Dense(10, activation="softmax", name="head")(x))


def test_fit_then_unquantizable_qat_fails_at_validation_and_nothing_trains(tmp_path, monkeypatch):
    model = _unquantizable()
    fits = []
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, **k: fits.append(self.name))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 8, 8, 1)).astype("float32"), np.arange(40) % 10
    with pytest.raises(recipes.RecipeError, match=r"^step 2 \(quantize_aware\): .*TFOpLambda"):
        recipes.run(recipes.parse(FIT_THEN_QAT), model, (x, y), (x[:8], y[:8]), tmp_path, verbose=0)
    assert fits == [] and list(tmp_path.iterdir()) == []


def test_qat_refusal_exits_2_through_the_cli(tmp_path, capsys):
    path = tmp_path / "sin.keras"
    _unquantizable().save(path)
    recipe = tmp_path / "qat.toml"
    recipe.write_text(FIT_THEN_QAT)
    out = tmp_path / "out"
    code = main(["compress", str(path), "--recipe", str(recipe), "--data", "digits", "-o", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "step 2 (quantize_aware)" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("name", ["deep_compression", "qat"])
def test_shipped_qat_recipes_pass_the_trial_on_a_quantizable_model(name):
    from edgecompress import models
    from edgecompress.pipeline import shipped_recipe

    recipes.validate(recipes.load(shipped_recipe(name)), models.lenet5())
