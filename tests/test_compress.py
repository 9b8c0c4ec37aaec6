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
