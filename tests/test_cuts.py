"""surgery.cuts: cut tensors of a graph and per-layer scans that rerun only after the cut."""

import pytest

from edgecompress._keras import keras
from edgecompress.measure import keras_accuracy
from edgecompress.surgery import cuts


def _residual_net():
    inp = keras.Input((8, 8, 3), name="x")
    a = keras.layers.Conv2D(8, 3, padding="same", name="a")(inp)
    b = keras.layers.Conv2D(8, 3, padding="same", name="b")(a)
    merged = keras.layers.ReLU(name="relu")(keras.layers.Add(name="add")([a, b]))
    inner = keras.Sequential([keras.layers.Conv2D(8, 1, name="inner_conv"), keras.layers.ReLU()],
                             name="nested")
    h = keras.layers.GlobalAveragePooling2D(name="gap")(inner(merged))
    return keras.Model(inp, keras.layers.Dense(5, name="head")(h))


def _producer(tensor):
    return tensor._keras_history.layer.name


def test_cut_tensors_are_the_tensors_every_path_crosses():
    model = _residual_net()
    # ``b``'s output is not one (``a``'s is live beside it, for the shortcut); the output is not
    # one either (nothing runs after it)
    assert [_producer(t) for _, t in cuts.cut_tensors(model)] == ["a", "add", "relu", "nested", "gap"]


@pytest.mark.parametrize("name", ["a", "b", "inner_conv", "head"])
def test_layer_scan_equals_a_full_pass_after_the_layer_changes(name, rng):
    model = _residual_net()
    x = rng.standard_normal((64, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 5, 64)
    layer = next(layer for layer in cuts.iter_layers(model) if layer.name == name)
    scan = cuts.LayerScan(model, (x, y), [layer], batch_size=16)
    assert scan.baseline == pytest.approx(keras_accuracy(model, (x, y)))
    assert (scan._start[id(layer)] > 0) == (name != "a")  # measured from a cut when one precedes
    original = layer.kernel.numpy()
    for scale in (0.0, -1.0, 3.0):
        layer.kernel.assign(original * scale + (scale == 0.0) * rng.standard_normal(original.shape))
        assert scan.accuracy(layer) == pytest.approx(keras_accuracy(model, (x, y)))
    layer.kernel.assign(original)
    assert scan.accuracy(layer) == pytest.approx(scan.baseline)


def test_layer_scan_of_a_sequential_model_equals_full_passes(rng):
    from conftest import sequential_cnn

    model = sequential_cnn()
    x = rng.random((40, *model.inputs[0].shape[1:])).astype("float32")
    y = rng.integers(0, model.outputs[0].shape[-1], 40)
    layers = [layer for layer in model.layers if hasattr(layer, "kernel")]
    scan = cuts.LayerScan(model, (x, y), layers, batch_size=16)
    assert [scan._start[id(layer)] for layer in layers] == list(range(len(layers)))  # each from the cut before it
    for layer in layers:
        original = layer.kernel.numpy()
        layer.kernel.assign(rng.standard_normal(original.shape).astype("float32"))
        assert scan.accuracy(layer) == pytest.approx(keras_accuracy(model, (x, y)))
        layer.kernel.assign(original)


def test_layer_scan_of_a_subclassed_model_uses_full_passes(rng):
    from conftest import Subclassed

    model = Subclassed()
    x = rng.standard_normal((20, 6)).astype("float32")
    model(x)
    y = rng.integers(0, 3, 20)
    scan = cuts.LayerScan(model, (x, y), [model.dense])
    model.dense.kernel.assign(-model.dense.kernel)
    assert scan._start[id(model.dense)] == 0
    assert scan.accuracy(model.dense) == pytest.approx(keras_accuracy(model, (x, y)))
