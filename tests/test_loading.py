import json
import zipfile

import pytest

from edgecompress._keras import keras
from edgecompress.loading import ModelFileError, load_model


def _tiny():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_roundtrip(tmp_path, suffix):
    model = _tiny()
    model.save(tmp_path / f"m{suffix}")
    loaded = load_model(tmp_path / f"m{suffix}")
    assert [w.tolist() for w in loaded.get_weights()] == [w.tolist() for w in model.get_weights()]


def _lambda_model():
    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Lambda(lambda x: x * 2)(inp))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing.keras", "existing"),
        (lambda p: (p / "empty.keras").write_bytes(b"") and p / "empty.keras" or p / "empty.keras", "empty"),
        (lambda p: (p / "c.keras").write_bytes(b"not a zip") and p / "c.keras", "corrupt"),
        (lambda p: (p / "c.h5").write_bytes(b"not hdf5") and p / "c.h5", "HDF5"),
        (lambda p: (p / "m.txt").write_text("x") and p / "m.txt", "must end in"),
    ],
    ids=["missing", "empty", "corrupt_keras", "corrupt_h5", "suffix"],
)
def test_bad_files(tmp_path, make, match):
    with pytest.raises(ModelFileError, match=match):
        load_model(make(tmp_path))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_refused_unless_unsafe(tmp_path, suffix):
    path = tmp_path / f"lam{suffix}"
    _lambda_model().save(path)
    with pytest.raises(ModelFileError, match="Lambda"):
        load_model(path)
    assert load_model(path, unsafe=True).output_shape == (None, 4)


def test_untranslatable_keras3_file_is_named(tmp_path):
    path = tmp_path / "k3.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.writestr("config.json", json.dumps({"class_name": "MyModel", "config": {}}))
        z.writestr("model.weights.h5", b"")
    with pytest.raises(ModelFileError, match="class MyModel.*subclassed Keras 3 model"):
        load_model(path)


class _Scale(keras.layers.Layer):  # deliberately not registered
    def call(self, x):
        return 3.0 * x


def test_unregistered_classes_load_through_custom_objects(tmp_path):
    inp = keras.Input((4,))
    path = tmp_path / "custom.keras"
    keras.Model(inp, _Scale(name="scale")(inp)).save(path)
    with pytest.raises(ModelFileError, match="layer .scale. of class _Scale, which is not registered"):
        load_model(path)
    model = load_model(path, custom_objects={"_Scale": _Scale})
    assert model.predict([[1.0, 2.0, 3.0, 4.0]], verbose=0).tolist() == [[3.0, 6.0, 9.0, 12.0]]
