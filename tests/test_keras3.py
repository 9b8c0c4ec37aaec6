"""Keras 3 files in: models built and saved by Keras 3 (in a subprocess) load weight-exact."""

import json
import shutil
import warnings
import zipfile

import _keras3_models
import numpy as np
import pytest

from edgecompress import binary, keras3, lowrank, pruning, quantization
from edgecompress.loading import ModelFileError, load_model, translated_from

FILES = [f"{name}.keras" for name in _keras3_models.MODELS if name != "lambda"] + [
    f"{name}.h5" for name in _keras3_models.H5]
MOBILENETS = ("mobilenet", "mobilenet_v2", "mobilenet_v3_small")


@pytest.fixture(scope="module")
def k3(tmp_path_factory):
    out = tmp_path_factory.mktemp("keras3")
    _keras3_models.run(out, "build")
    return out


@pytest.fixture(scope="module")
def loaded(k3):
    """Translated models by file name, loaded once per module."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_model(k3 / name)
        return cache[name]

    return get


def _outputs(model, x):
    y = model(x, training=False)
    return [np.asarray(t) for t in (y if isinstance(y, list) else [y])]


def _config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _classes(entry, found):
    found.add(entry["class_name"])
    for layer in entry.get("config", {}).get("layers", []):
        _classes(layer, found)
    return found


@pytest.mark.parametrize("name", FILES)
def test_outputs_equal_keras3_predictions(k3, loaded, name):
    model = loaded(name)
    reference = np.load((k3 / name).with_suffix(".npz"))
    outputs = _outputs(model, _keras3_models.inputs((k3 / name).with_suffix(".npz")))
    assert len(outputs) == len([k for k in reference.files if k.startswith("y")])
    for i, y in enumerate(outputs):
        np.testing.assert_allclose(y, reference[f"y{i}"], atol=1e-5, rtol=0)
    assert translated_from(model).startswith("Keras 3.")


def test_the_files_use_every_supported_layer_and_activation(k3):
    found = set()
    for name in FILES:
        if name.endswith(".keras"):
            _classes(_config(k3 / name), found)
    assert set(keras3.SUPPORTED_LAYERS) <= found
    assert set(keras3.SUPPORTED_OPS[:3]) <= found  # x + 3.0, x * a, tensor - tensor
    assert set(_keras3_models.ACTIVATIONS) == set(keras3.SUPPORTED_ACTIVATIONS)


def test_shared_and_nested_layers_keep_their_structure(loaded):
    model = loaded("branches.keras")
    shared = model.get_layer("shared")
    assert len(shared._inbound_nodes) == 2  # one layer, called twice
    inner = model.get_layer("inner")
    assert inner.get_layer("block").count_params() == sum(
        w.size for w in inner.get_layer("block").get_weights())
    assert [type(layer).__name__ for layer in model.layers].count("Rescaling") == 2  # the ops


def test_lambda_follows_the_unsafe_rule(k3):
    with pytest.raises(ModelFileError, match="Lambda"):
        load_model(k3 / "lambda.keras")
    model = load_model(k3 / "lambda.keras", unsafe=True)
    reference = np.load(k3 / "lambda.npz")
    np.testing.assert_allclose(_outputs(model, reference["x0"])[0], reference["y0"], atol=1e-5)


@pytest.fixture(scope="module")
def pruned(loaded):
    cache = {}

    def get(name):
        if name not in cache:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cache[name] = pruning.prune_filters(loaded(f"{name}.keras"), ratio=0.25)
            cache[name].left_unpruned = [str(w.message) for w in caught]
        return cache[name]

    return get


@pytest.mark.parametrize("name", MOBILENETS)
def test_keras3_mobilenets_are_pruned_by_prune_filters(loaded, pruned, name):
    model = loaded(f"{name}.keras")
    assert pruned(name).count_params() < 0.9 * model.count_params()
    assert pruned(name).output_shape == model.output_shape
    # Keras 3's `x + 3.0` / `x * (1 / 6)` nodes became scalar Rescaling, which channels trace.
    assert not [m for m in pruned(name).left_unpruned if "Rescaling" in m]


@pytest.mark.slow  # the converter needs 20-30 s of CPU per MobileNet (its Keras -> SavedModel step)
@pytest.mark.parametrize("name", MOBILENETS)
def test_keras3_mobilenets_export_int8_verified(pruned, name, tmp_path):
    from tflite_export import export

    model = pruned(name)
    x = np.random.default_rng(0).normal(0, 1, (8, 32, 32, 3)).astype("float32")
    report = export(model, tmp_path / f"{name}.tflite", "int8", representative_data=x,
                    verify_data=(x, np.argmax(model.predict(x, verbose=0), axis=1)))
    assert report.agreement >= 0.5 and np.isfinite(report.max_abs_diff)
    assert "CONV_2D" in report.ops and "DEPTHWISE_CONV_2D" in report.ops


def _rewrite(src, dst, drop=(), config=None):
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for item in old.namelist():
            if item in drop:
                continue
            data = old.read(item)
            if item == "config.json" and config is not None:
                data = json.dumps(config(json.loads(data)))
            new.writestr(item, data)
    return dst


def _first_layer(config, class_name):
    return next(e for e in config["config"]["layers"] if e["class_name"] == class_name)


def _unknown(config):
    _first_layer(config, "Flatten")["class_name"] = "GRU"
    return config


def _custom(config):
    entry = _first_layer(config, "Flatten")
    entry.update(module="my_pkg.layers", class_name="MyFlatten", registered_name="my_pkg>MyFlatten")
    return config


def _wider(config):
    _first_layer(config, "Dense")["config"]["units"] = 11
    return config


BAD = {
    "truncated": (lambda src, dst: dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
                  and dst, "not a valid"),
    "no_weights": (lambda src, dst: _rewrite(src, dst, drop=("model.weights.h5",)),
                   "without model.weights.h5"),
    "unknown_layer": (lambda src, dst: _rewrite(src, dst, config=_unknown),
                      r"layer 'flatten\w*' of class GRU.*Supported: InputLayer, Conv1D"),
    "custom_layer": (lambda src, dst: _rewrite(src, dst, config=_custom),
                     r"class MyFlatten \(registered as 'my_pkg>MyFlatten'\)"),
    "wrong_shapes": (lambda src, dst: _rewrite(src, dst, config=_wider),
                     r"layer 'dense\w*' \(Dense\) needs shapes \[\(288, 11\), \(11,\)\], "
                     r"the file holds \[\(288, 16\), \(16,\)\]"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_files_one_line_error_exit_2_no_output(k3, tmp_path, kind, capsys):
    from edgecompress.cli import main as edgecompress_main
    from tflite_export.cli import main as export_main

    make, match = BAD[kind]
    bad = make(k3 / "digits_cnn.keras", tmp_path / f"{kind}.keras")
    with pytest.raises(ModelFileError, match=match) as err:
        load_model(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    out = tmp_path / "out.tflite"
    assert export_main([str(bad), "-o", str(out)]) == 2
    assert not out.exists()
    report = tmp_path / "report"
    assert edgecompress_main(["compress", str(bad), "--recipe", "lowrank", "--data", "digits",
                              "-o", str(report)]) == 2
    assert not report.exists()
    assert "Traceback" not in capsys.readouterr().err


def test_tflite_export_cli_takes_a_keras3_file(k3, tmp_path, capsys):
    from tflite_export.cli import main

    data = tmp_path / "digits.npz"
    x = np.random.default_rng(1).random((32, 8, 8, 1)).astype("float32")
    np.savez(data, x=x, y=np.zeros(32, dtype="int64"))
    out = tmp_path / "k3.tflite"
    assert main([str(k3 / "digits_cnn.keras"), "-o", str(out), "--mode", "int8",
                 "--calibration", str(data), "--verify", str(data)]) == 0
    captured = capsys.readouterr()
    assert "translated from Keras 3." in captured.out
    assert out.stat().st_size > 0


def test_compress_takes_a_keras3_file_and_writes_keras3_out(k3, tmp_path, capsys):
    from edgecompress.cli import main
    from edgecompress.keras3_save import save_keras3  # noqa: F401 - the writer under test

    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "r"\n[[step]]\nkind = "factorize"\nrank = 2\n'
                      '[[step]]\nkind = "prune_filters"\nratio = 0.25\n'
                      '[[step]]\nkind = "export"\nmode = "int8"\n')
    out = tmp_path / "report"
    shutil.copy(k3 / "digits_cnn.keras", tmp_path / "k3.keras")
    assert main(["compress", str(tmp_path / "k3.keras"), "--recipe", str(recipe), "--data",
                 "digits", "-o", str(out), "--keras3-out", "--quiet"]) == 0
    assert "translated from Keras 3." in (out / "report.md").read_text()
    assert "translated from Keras 3." in json.loads((out / "report.json").read_text())["notes"]
    final = load_model(out / "r.keras")
    back = load_model(out / "r_keras3.keras")
    assert translated_from(back).startswith("Keras 3") and translated_from(final) is None
    x = np.random.default_rng(2).random((5, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(_outputs(back, x)[0], _outputs(final, x)[0], atol=1e-6)
    assert back.count_params() == final.count_params() < load_model(k3 / "digits_cnn.keras"
                                                                     ).count_params()


def _kernel_values(model):
    return max(len(np.unique(w)) for layer in model.layers for w in layer.get_weights()[:1]
               if w.ndim > 1)


# (file, transform, check that it changed what it should); branches.keras is nested, has a
# shared layer, keras.ops arithmetic and two outputs (prune_filters leaves a shared layer alone).
FAMILIES = {
    "factorize": ("branches.keras", lambda m: lowrank.factorize(m, rank=2),
                  lambda m, base: m.count_params() < base.count_params()),
    "prune_filters": ("seq_images.keras", lambda m: pruning.prune_filters(m, ratio=0.5),
                      lambda m, base: m.count_params() < base.count_params()),
    "cluster": ("branches.keras", lambda m: quantization.strip(quantization.cluster_weights(
        m, clusters=4, init="linear")), lambda m, base: _kernel_values(m) <= 4 < _kernel_values(base)),
    "binarize": ("branches.keras", binary.binarize,
                 lambda m, base: any(type(x).__module__.startswith("larq") for x in m.layers)),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_families_take_a_translated_graph(loaded, family):
    name, transform, changed = FAMILIES[family]
    base = loaded(name)
    result = transform(base)
    assert result.output_shape == base.output_shape
    assert changed(result, base)
