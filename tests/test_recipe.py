import numpy as np
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
    assert r.steps[1].params == {"epochs": 2, "learning_rate": 1e-3, "batch_size": 64, "augment": "auto",
                                 "patience": 3}
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
        ("[[step]]\nkind = 'binarize'\nlayers = [1, 2]", "`layers` must be a layer name, a list of names"),
        ("[[step]]\nkind = 'binarize'\nlayers = {kind = 'conv'}", "`layers` rule keys must be some of"),
        ("[[step]]\nkind = 'binarize'\nscheme = 'tenary'", "`scheme` must be one of"),
        ("[[step]]\nkind = 'factorize'\nmethod = 'qr'\nrank = 2", "`method` must be one of"),
        ("[[step]]\nkind = 'cluster'\ninit = 'kmeans'", "`init` must be one of"),
        ("[[step]]\nkind = 'prune_filters'\nratio = 0.5\ncriterion = 'l3'", "`criterion` must be one of"),
        ("[[step]]\nkind = 'prune_filters'\nratio = 0.5\ncriterion = 'threshold'", "`threshold` must be set"),
        ("[[step]]\nkind = 'iterative_prune'\ncriterion = 'threshold'", "`criterion` must be one of"),
        ("[[step]]\nkind = 'quantize_aware'\npreserve = 'all'", "`preserve` must be one of"),
        ("[[step]]\nkind = 'swap_backbone'\nbackbone = 'vgg'", "`backbone` must be one of"),
        ("[[step]]\nkind = 'swap_backbone'\nbackbone = 'small_cnn'\nwidth = 2.0",
         "`width` is not an argument of small_cnn\\(\\)"),
        ("[[step]]\nkind = 'fit'\nshift = 2", "augment = \\{shift = N\\}"),
        ("[[step]]\nkind = 'fit'\naugment = 'heavy'", "`augment` must be 'auto', 'none'"),
        ("[[step]]\nkind = 'fit'\naugment = {shear = 1}", "`augment` keys must be some of"),
        ("max_drop = 150\n[[step]]\nkind = 'strip'", "`max_drop` must be a number in \\[0, 100\\]"),
        ("max_drop = -1\n[[step]]\nkind = 'strip'", "`max_drop` must be a number in"),
        ("task = 'ranking'\n[[step]]\nkind = 'strip'", "`task` must be one of"),
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


def test_every_step_kind_has_a_runner_beside_its_keys():
    import inspect

    for name, kind in recipe.STEPS.items():
        run_args = list(inspect.signature(kind.run).parameters)[1:]
        assert run_args == list(kind.params) + (["options"] if kind.open_keys else []), name


def test_shipped_recipes_validate():
    from edgecompress.pipeline import DEMO_RECIPES, shipped_recipe

    shipped = sorted(shipped_recipe("x").parent.glob("*.toml"))
    assert {p.stem for p in shipped} >= set(DEMO_RECIPES) | {"deep_compression_long"}
    for path in shipped:
        assert recipe.load(path).name == path.stem


@pytest.mark.parametrize("text, model, message", [
    ("[[step]]\nkind = 'prune_low_magnitude'\nlayers = {kinds = ['conv']}", "mlp", "selects no layer"),
    ("[[step]]\nkind = 'cluster'\nlayers = ['ghost']", "mlp", "names a layer that is not in the model"),
    ("[[step]]\nkind = 'fit'\naugment = {shift = 2}", "mlp", "needs one image input"),
    ("[[step]]\nkind = 'fit'\naugment = {shift = 14}", "lenet", "under half the input"),
    ("[[step]]\nkind = 'thin'", "mlp", "`thin` found no layer .*'only'"),
    ("[[step]]\nkind = 'prune_low_magnitude'\nlayers = {kinds = ['depthwise']}", "depthwise",
     "selects a layer tfmot cannot prune. Received: 'dw' of class DepthwiseConv2D"),
    ("[[step]]\nkind = 'swap_backbone'\nbackbone = 'small_cnn'", "mlp", "input_shape"),
])
def test_validation_against_the_model_names_step_and_key(text, model, message):
    from edgecompress import models
    from edgecompress._keras import keras

    built = {
        "mlp": lambda: keras.Sequential([keras.Input((12,)), keras.layers.Dense(4, activation="softmax", name="only")]),
        "lenet": models.lenet5,
        "depthwise": lambda: keras.Sequential([keras.Input((8, 8, 2)), keras.layers.DepthwiseConv2D(3, name="dw"),
                                               keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]),
    }[model]()
    with pytest.raises(RecipeError, match=message) as info:
        recipe.validate(recipe.parse(text), built)
    assert str(info.value).startswith("step 1 (") and "\n" not in str(info.value)


def test_verification_errors_pass_through_unchanged(monkeypatch, tmp_path):
    import numpy as np

    import tflite_export.convert
    from edgecompress._keras import keras
    from tflite_export.verify import VerificationError

    def refuse(*args, **kwargs):
        raise VerificationError("agreement 0.50 < min_agreement 0.99")

    monkeypatch.setattr(tflite_export.convert, "export", refuse)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    data = (x, np.arange(20) % 3)
    with pytest.raises(VerificationError, match="agreement 0.50"):
        recipe.run(recipe.parse("[[step]]\nkind = 'export'\nmode = 'float32'"), model, data, data, tmp_path,
                   verbose=0)


def test_two_output_regression_run_trains_and_traces_every_output(tmp_path):
    import numpy as np

    from edgecompress._keras import keras

    keras.utils.set_random_seed(0)
    i = keras.Input((6,))
    h = keras.layers.Dense(16, activation="relu")(i)
    model = keras.Model(i, [keras.layers.Dense(3, name="kind")(h), keras.layers.Dense(1, name="size")(h)])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype("float32")
    y = [(x[:, 0] > 0).astype(int) + (x[:, 1] > 0), x[:, 2:3] * 3.0]
    train, test = (x[:64], [v[:64] for v in y]), (x[64:], [v[64:] for v in y])
    text = "[[step]]\nkind = 'fit'\nepochs = 30\nlearning_rate = 0.01\npatience = 0"
    result = recipe.run(recipe.parse(text), model, train, test, tmp_path, verbose=0)
    before, after = result.trace[0]["scores"], result.trace[1]["scores"]
    assert set(before) == {"kind", "size"}
    assert after["kind"] > before["kind"] and after["size"] < 0.5 * before["size"]  # accuracy up, MSE down
    assert result.failures == {}


@pytest.mark.parametrize("shape, shift", [
    ((28, 28, 1), 2), ((32, 32, 3), 2), ((96, 96, 3), 7),
    ((49, 10, 1), 0), ((30, 1, 40), 0), ((64, 3), 0), ((640,), 0), ((16, 16, 4), 0),
])
def test_auto_augmentation_by_input_kind(shape, shift):
    from edgecompress import augment

    assert augment.resolve("auto", shape)["shift"] == shift


def test_auto_augmentation_leaves_a_conv_autoencoder_unshifted(tmp_path, caplog):
    """Its target is its input: shifting the input but not the target would teach it to undo
    shifts, so "auto" gives a regression output none (and a classifier on the same images 2 px)."""
    import logging

    import numpy as np

    from edgecompress import augment, tasks
    from edgecompress._keras import keras

    assert augment.resolve("auto", (28, 28, 1), tasks=[tasks.Task(tasks.REGRESSION)])["shift"] == 0
    assert augment.resolve("auto", (28, 28, 1), tasks=[tasks.Task(tasks.CLASSIFICATION)])["shift"] == 2
    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    out = keras.layers.Conv2D(1, 3, padding="same")(keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).random((40, 28, 28, 1)).astype("float32")
    text = "[[step]]\nkind = 'fit'\nepochs = 1\naugment = 'auto'"
    with caplog.at_level(logging.INFO, logger="edgecompress"):
        recipe.run(recipe.parse(text), model, (x[:30], x[:30]), (x[30:], x[30:]), tmp_path, verbose=0)
    assert "augment: none" in " ".join(r.getMessage() for r in caplog.records)


def test_fit_warns_on_small_data_and_states_the_split(tmp_path, caplog):
    import logging

    import numpy as np

    from edgecompress._keras import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = rng.integers(0, 3, 40)
    text = "[[step]]\nkind = 'fit'\nepochs = 60\nlearning_rate = 0.05\npatience = 2"
    with caplog.at_level(logging.INFO, logger="edgecompress"):
        result = recipe.run(recipe.parse(text), model, (x[:30], y[:30]), (x[30:], y[30:]), tmp_path, verbose=0)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "fewer than 20 a class" in messages
    assert "held out 6 of 30 training samples (stratified split, 20%)" in messages
    assert result.trace[-1]["kind"] == "fit"


def test_fit_sets_batchnorm_statistics_from_the_training_inputs(tmp_path):
    """One short epoch leaves BN moving statistics near their 0 / 1 start at momentum 0.99; the
    fit step recalibrates them (AdaBN) so validation and the export see what training saw."""
    import numpy as np

    from edgecompress._keras import keras

    keras.utils.set_random_seed(0)
    i = keras.Input((6,))
    h = keras.layers.Dense(8, name="d")(i)
    model = keras.Model(i, keras.layers.Dense(2)(keras.layers.BatchNormalization(name="bn")(h)))
    x = (np.random.default_rng(0).normal(size=(80, 6)) * 5 + 3).astype("float32")
    y = (x[:, 0] > 3).astype(int)
    text = "[[step]]\nkind = 'fit'\nepochs = 1\npatience = 0"
    result = recipe.run(recipe.parse(text), model, (x[:64], y[:64]), (x[64:], y[64:]), tmp_path,
                        verbose=0)
    fitted = result.model
    seen = keras.Model(fitted.inputs, fitted.get_layer("d").output).predict(x[:64], verbose=0)
    bn = fitted.get_layer("bn")
    assert not np.allclose(bn.moving_variance.numpy(), 1.0, atol=0.5)  # moved off the start
    assert np.all(bn.moving_variance.numpy() > 0.2 * seen.var(0))
    assert np.all(np.abs(bn.moving_mean.numpy() - seen.mean(0)) < 0.5 * seen.std(0) + 1e-3)
    assert model.get_layer("bn").moving_variance.numpy() == pytest.approx(1.0)  # input untouched


def test_models_with_a_strided_pointwise_conv_train_on_even_batches():
    """TF 2.21's oneDNN corrupts the heap in the gradient of a strided 1x1 conv on an odd batch
    (the ResNet-8 shortcut): such models get even batches, others their data untouched."""
    from edgecompress import models
    from edgecompress._onednn import even_batches, has_strided_pointwise

    resnet, lenet = models.resnet8(), models.lenet5()
    assert has_strided_pointwise(resnet) and not has_strided_pointwise(lenet)
    x, y = np.zeros((39, 2)), [np.arange(39), np.arange(39)]
    x2, y2, batch = even_batches(resnet, x, y, 64, "test")
    assert (len(x2), [len(v) for v in y2], batch) == (38, [38, 38], 64)
    x3, _, batch = even_batches(resnet, x, y[0], 13, "test")  # 39 = 3 x 13: batch 12, remainder 3 -> 38
    assert (len(x3), batch) == (38, 12)
    x4, _, _ = even_batches(resnet, np.zeros((40, 2)), np.arange(40), 64, "test")
    assert len(x4) == 40
    x5, _, batch = even_batches(lenet, x, y, 13, "test")
    assert (len(x5), batch) == (39, 13)
