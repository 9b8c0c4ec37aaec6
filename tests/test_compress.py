"""`edgecompress compress` end to end on tiny data: every step kind runs and lands in the report."""

import json

import pytest

from edgecompress._keras import keras
from edgecompress.cli import main

RECIPES = {
    "prune_cluster_pack": """
name = "dc"
[[step]]
kind = "prune_low_magnitude"
target_sparsity = 0.5
[[step]]
kind = "fit"
[[step]]
kind = "strip"
[[step]]
kind = "cluster"
clusters = 8
init = "linear"
preserve_sparsity = true
[[step]]
kind = "fit"
[[step]]
kind = "strip"
[[step]]
kind = "pack"
[[step]]
kind = "export"
mode = "int8"
c_array = true
""",
    "factorize_filters_qat": """
[[step]]
kind = "factorize"
rank = 4
[[step]]
kind = "prune_filters"
ratio = 0.25
[[step]]
kind = "quantize_aware"
[[step]]
kind = "fit"
[[step]]
kind = "export"
mode = "int8"
""",
    "binary": """
[[step]]
kind = "binarize"
scheme = "binarynet"
keep_first_last = false
[[step]]
kind = "fit"
[[step]]
kind = "export"
mode = "binary"
""",
    "swap_distill_pq": """
[[step]]
kind = "swap_backbone"
backbone = "small_cnn"
filters = [4]
dense = [16]
[[step]]
kind = "distill"
teacher = "baseline"
mixup = 0.5
[[step]]
kind = "product_quantize"
subvector_size = 2
codebook_size = 4
layers = ["fc1"]
[[step]]
kind = "quantize_weights"
bits = 6
[[step]]
kind = "strip"
[[step]]
kind = "export"
mode = "float16"
""",
}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.keras"
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(name="flatten"),
                              keras.layers.Dense(16, activation="relu", name="fc1"),
                              keras.layers.Dense(10, activation="softmax", name="fc2")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.save(path)
    return path


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_compress_runs_every_step_kind(name, model_path, tmp_path, capsys):
    recipe = tmp_path / f"{name}.toml"
    recipe.write_text(RECIPES[name])
    out = tmp_path / "out"
    argv = [str(model_path), "--recipe", str(recipe), "--data", "digits", "-o", str(out), "--quiet",
            "--max-drop", "100"]  # an untrained model: this test is about every step kind running
    code = main(["compress", *argv])
    assert code == 0, capsys.readouterr().err[-2000:]
    report = json.loads((out / "report.json").read_text())
    names = [a["name"] for a in report["artifacts"]]
    assert names[:2] == ["baseline_float32", "baseline_int8_ptq"] and len(names) >= 3
    for artifact in report["artifacts"]:
        assert (out / f"{artifact['name']}.{'ecpk' if artifact['mode'] == 'packed' else 'tflite'}").exists()
        assert artifact["accuracy"] is not None
    assert (out / "pareto.png").stat().st_size > 5000 and (out / "report.md").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    if name == "prune_cluster_pack":
        assert sorted(p.suffix for p in (out / "micro").iterdir()) == [".cc", ".h"]
        packed = next(a for a in report["artifacts"] if a["mode"] == "packed")
        assert packed["nonzero_params"] < 0.6 * packed["params"]
    assert main(["compress", *argv]) == 2  # exists, no --overwrite
    assert "not empty" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained_path(tmp_path_factory):
    from edgecompress import datasets

    keras.utils.set_random_seed(0)
    (x, y), _ = datasets.load("digits")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu", name="fc1"),
                              keras.layers.Dense(10, activation="softmax", name="fc2")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=15, verbose=0)
    path = tmp_path_factory.mktemp("trained") / "mlp.keras"
    model.save(path)
    return path


def test_compress_that_breaks_max_drop_exits_1_and_names_the_step(trained_path, tmp_path, capsys):
    recipe = tmp_path / "crush.toml"
    recipe.write_text('max_drop = 1.0\n[[step]]\nkind = "strip"\n[[step]]\nkind = "factorize"\nrank = 1\n'
                      '[[step]]\nkind = "export"\nmode = "float32"\n')
    out = tmp_path / "out"
    code = main(["compress", str(trained_path), "--recipe", str(recipe), "--data", "digits", "-o", str(out),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "accuracy guard" in err and "step 2 (factorize) lost the most" in err, err
    report = json.loads((out / "report.json").read_text())
    failed = [a for a in report["artifacts"] if a["status"] == "FAILED"]
    assert [a["name"] for a in failed] == ["crush_float32"]
    assert report["guard"]["worst"]["step"] == 2
    trace = report["trace"]
    assert [e["kind"] for e in trace] == ["input", "strip", "factorize", "export"]
    assert trace[0]["scores"]["fc2"] > 0.8 and trace[2]["scores"]["fc2"] < trace[0]["scores"]["fc2"] - 0.01
    assert "FAILED" in (out / "report.md").read_text()
    # the same run with a generous limit passes
    code = main(["compress", str(trained_path), "--recipe", str(recipe), "--data", "digits", "-o", str(out),
                 "--quiet", "--overwrite", "--max-drop", "100"])
    assert code == 0


@pytest.mark.parametrize("text, flag, message", [
    ('[[step]]\nkind = "prune_low_magnitude"\nlayers = {kinds = ["conv"]}\n', [], "selects no layer"),
    ('[[step]]\nkind = "fit"\naugment = {shift = 4}\n', [], "under half the input"),
    ('max_drop = 200\n[[step]]\nkind = "strip"\n', [], "`max_drop` must be a number in"),
    ('[[step]]\nkind = "strip"\n', ["--max-drop", "-3"], "`--max-drop` must be a number in"),
])
def test_bad_new_keys_exit_2_and_write_nothing(text, flag, message, trained_path, tmp_path, capsys):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    out = tmp_path / "out"
    code = main(["compress", str(trained_path), "--recipe", str(recipe), "--data", "digits", "-o", str(out),
                 "--quiet", *flag])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()
