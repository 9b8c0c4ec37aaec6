"""Budget search: strict targets, a small LeNet-5 search verified in TFLite Micro, the recipe that
reproduces its winner, and the exit codes of `edgecompress compress --target`."""

import numpy as np
import pytest
from _search_models import tiny_classifier

from edgecompress import cli, datasets, models, search
from edgecompress._errors import UsageError
from edgecompress._keras import keras
from edgecompress.search import Target, parse_target

KB = 1024


@pytest.mark.parametrize("text, expected", [
    ("flash=64KB,arena=20KB", Target(64 * KB, 20 * KB, None)),
    ("flash=17276,latency=5ms", Target(17276, None, 5.0)),
    ("arena=1.5MB, latency=500us", Target(None, int(1.5 * KB * KB), 0.5)),
    ("FLASH=2K,latency=2", Target(2 * KB, None, 2.0)),
])
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text, needle", [
    ("flash=abc", "flash='abc'"), ("flash=-4KB", "flash='-4KB'"), ("flash=0", "must be > 0"),
    ("ram=4KB", "'ram'"), ("flash=4KB,flash=8KB", "twice"), ("flash", "KEY=VALUE"),
    ("latency=5KB", "latency='5KB'"), ("", "KEY=VALUE"),
])
def test_bad_target_is_one_line_exit_2_and_no_output(tmp_path, capsys, text, needle):
    with pytest.raises(UsageError, match="`--target`"):
        parse_target(text)
    out = tmp_path / "out"
    code = cli.main(["compress", str(tmp_path / "missing.keras"), "--data", "digits",
                     "--target", text, "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]
    assert not out.exists()


def test_compress_needs_recipe_or_target(tmp_path, capsys):
    assert cli.main(["compress", "m.keras", "--data", "digits", "-o", str(tmp_path / "o")]) == 2
    assert "--target" in capsys.readouterr().err


def _tflm_top1(tflite: bytes, x):
    """Top-1 of every sample from the real TensorFlow Lite Micro interpreter."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(tflite, arena_size=1 << 20)
    assert interpreter.get_input_details(0)["dtype"] == np.float32  # int8 inside, float I/O
    top = []
    for sample in x:
        interpreter.set_input(sample[None].astype(np.float32), 0)
        interpreter.invoke()
        top.append(int(interpreter.get_output(0).argmax()))
    return np.array(top)


@pytest.fixture(scope="module")
def lenet_search():
    (x, y), _ = datasets.load("mnist5k")
    x, y = x[:1200], y[:1200]
    keras.utils.set_random_seed(0)
    model = models.lenet5()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    weights = [w.copy() for w in model.get_weights()]
    result = search.search(model, (x, y), "flash=100KB,arena=24KB", max_drop=5.0, workers=1,
                           ratios=(0.5, 0.75), rank_fractions=(0.1,), epochs=2, top_k=2,
                           scan_samples=200)
    return model, weights, result, (x, y)


def test_small_search_meets_a_loose_budget_verified_in_tflm(lenet_search):
    model, weights, result, _ = lenet_search
    winner = result.winner
    assert winner is not None, [c["misses"] for c in result.candidates]
    assert winner["flash"] == len(winner["tflite"]) <= 100 * KB
    assert winner["arena"] <= 24 * KB
    assert winner["drop"] <= 5.0
    # The int8 baseline (450 KB) misses the flash budget, and the winner is a changed model.
    baseline = result.candidates[0]
    assert baseline["name"] == "int8_ptq" and baseline["flash"] > 100 * KB
    assert any("flash" in m for m in baseline["misses"])
    assert winner["actions"]
    # The device runs the winner's model: TFLM's top-1 (the file may hold LUT-compressed
    # weights, which only TFLM decodes) against the winner's Keras model on 64 digits.
    from edgecompress.search.jobs import model_from_bytes

    x = datasets.load("mnist5k")[1][0][:64]
    keras_top1 = model_from_bytes(winner["keras"]).predict(x, verbose=0).argmax(-1)
    assert np.mean(_tflm_top1(winner["tflite"], x) == keras_top1) >= 0.95
    assert winner["tflm_agreement"] >= 0.95
    # The user's model is untouched.
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_sensitivities_and_pareto_front(lenet_search):
    _, _, result, _ = lenet_search
    kinds = {(row["action"]["layer"], row["action"]["kind"]) for row in result.sensitivities}
    assert {("conv1", "prune"), ("conv2", "prune"), ("fc1", "prune"), ("fc1", "rank")} <= kinds
    # A larger ratio leaves fewer parameters.
    fc1 = {row["action"]["value"]: row["params"] for row in result.sensitivities
           if row["action"]["layer"] == "fc1" and row["action"]["kind"] == "prune"}
    assert fc1[0.75] < fc1[0.5] < 431_080
    front = result.pareto()
    for cand in result.candidates:  # nothing off the front beats a front member on both axes
        if cand in front:
            continue
        assert any(f["flash"] <= cand["flash"] and f["accuracy"] >= cand["accuracy"] for f in front)


def test_outputs_and_recipe_reproduce_the_winner(lenet_search, tmp_path):
    from edgecompress import recipe as recipes
    from edgecompress.loading import load_model

    model, _, result, data = lenet_search
    paths = search.write_outputs(result, tmp_path)
    for key in ("tflite", "keras", "recipe", "search", "markdown", "pareto"):
        assert paths[key].is_file()
    assert paths["tflite"].read_bytes() == result.winner["tflite"]
    saved = load_model(paths["keras"], argument="model")
    assert saved.count_params() == result.winner["params"]
    parsed = recipes.load(paths["recipe"])
    kinds = [step.kind for step in parsed.steps]
    assert kinds[-1] == "export" and kinds.count("fit") == (1 if result.winner["epochs"] else 0)
    structural = recipes.Recipe(name="structure", steps=[s for s in parsed.steps
                                                         if s.kind in ("prune_filters", "factorize")])
    rebuilt, _ = recipes.run(structural, model, data, data, tmp_path, verbose=0)
    assert [(layer.name, layer.count_params()) for layer in rebuilt.layers] == \
        [(layer.name, layer.count_params()) for layer in saved.layers]


def test_impossible_budget_exits_1_naming_the_closest(tmp_path, capsys):
    model = tiny_classifier(filters=8, units=32)
    path = tmp_path / "tiny.keras"
    model.save(path)
    out = tmp_path / "out"
    code = cli.main(["compress", str(path), "--data", "digits", "--target", "flash=1KB",
                     "--ratios", "0.5", "--ranks", "0.25", "--epochs", "0", "--top-k", "1",
                     "--workers", "1", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert "closest: cand0_int8" in err and "flash" in err and "> 1,024 B" in err
    assert not out.exists()
