import subprocess
import sys

import numpy as np
import pytest
from conftest import Subclassed, residual_cnn

from edgecompress import measure, model_kind, models
from edgecompress._keras import keras


def test_lenet5_counts_by_hand():
    m = measure(models.lenet5())
    conv1, conv2, fc1, fc2 = 20 * (25 + 1), 50 * (20 * 25 + 1), 800 * 500 + 500, 500 * 10 + 10
    assert m.params == conv1 + conv2 + fc1 + fc2 == 431_080
    assert m["params"] == m.params and m.float32_bytes == 4 * 431_080
    macs = 24 * 24 * 20 * 25 + 8 * 8 * 50 * (5 * 5 * 20) + 800 * 500 + 500 * 10
    assert m.macs == macs == 2_293_000
    assert m.file_bytes is None and m.gzip_bytes is None  # no .h5 saved unless asked
    sized = measure(models.lenet5(), file_sizes=True)
    assert sized.file_bytes > sized.float32_bytes and 0 < sized.gzip_bytes < sized.file_bytes
    assert m.unique_values["fc1"] > 1000


def test_lenet_300_100_counts():
    assert measure(models.lenet_300_100()).params == 266_610


def test_nonzero_and_unique_after_zeroing():
    model = models.lenet_300_100()
    k, b = model.get_layer("fc1").get_weights()
    k[:, :150] = 0.0
    model.get_layer("fc1").set_weights([k, b])
    m = measure(model)
    assert m.params - m.nonzero_params == 784 * 150 + 300 + 100 + 10  # zero biases count too
    assert m.sparsity == pytest.approx((784 * 150 + 410) / 266_610)


def test_depthwise_and_accuracy():
    model = residual_cnn()
    m = measure(model, data=(np.zeros((4, 12, 12, 1), "float32"), np.zeros(4, "int64")))
    dw = 12 * 12 * 8 * 9
    assert m.macs > dw and 0.0 <= m.accuracy <= 1.0


def test_model_kind():
    assert model_kind(models.lenet5()) == "functional"
    assert model_kind(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])) == "sequential"
    assert model_kind(Subclassed()) == "subclassed"
    inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    inp = keras.Input((2,))
    assert model_kind(keras.Model(inp, inner(inp))) == "nested"


def test_keras3_model_is_named(monkeypatch):
    # A real Keras 3 model needs TensorFlow loaded on Keras 3, which the guard forbids in this
    # process; the check only needs `keras.Model` of the Keras 3 package, so stand one in.
    import types

    from edgecompress._keras import check_graph_model

    fake_keras3 = types.ModuleType("keras")
    fake_keras3.Model = type("Model", (), {})
    monkeypatch.setitem(sys.modules, "keras", fake_keras3)
    model = fake_keras3.Model()
    assert model_kind(model) == "keras3"
    with pytest.raises(TypeError, match="Keras 3 model"):
        check_graph_model(model)


@pytest.mark.parametrize("first", ["tensorflow", "tensorflow_model_optimization"])
def test_guard_refuses_tensorflow_loaded_with_keras3(first):
    code = (
        "import os; os.environ.pop('TF_USE_LEGACY_KERAS', None)\n"
        f"import {first}\n"
        "import edgecompress\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "ImportError" in out.stderr and "TF_USE_LEGACY_KERAS=1" in out.stderr


def test_guard_sets_variable_before_tensorflow():
    code = "import os; os.environ.pop('TF_USE_LEGACY_KERAS', None)\nimport edgecompress, tensorflow as tf\nprint(tf.keras.layers.Dense.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().startswith("tf_keras"), out.stderr[-2000:]


def test_measure_rejects_other_objects():
    with pytest.raises(TypeError, match="model_or_path"):
        measure(42)


@pytest.mark.parametrize("wrap", ["qat", "prune", "cluster"])
def test_wrapped_models_count_the_same_parameters(wrap):
    from edgecompress import pruning, quantization

    model = models.lenet_300_100()
    wrapped = {"qat": quantization.quantize_aware, "prune": pruning.prune_low_magnitude,
               "cluster": quantization.cluster_weights}[wrap](model)
    m = measure(wrapped)
    assert m.params == 266_610 and m.macs == measure(model).macs


def test_accuracy_takes_every_label_form_for_keras_and_tflite(tmp_path, rng):
    from tflite_export import export

    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    x = rng.random((40, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 3, 40)
    export(model, tmp_path / "m.tflite", "float32")
    expected = float(np.mean(model.predict(x, verbose=0).argmax(1) == y))
    for target in (model, tmp_path / "m.tflite"):
        for labels in (y, y[:, None], np.eye(3)[y]):
            assert measure(target, (x, labels)).accuracy == pytest.approx(expected)
    with pytest.raises(ValueError, match="`data` must hold class labels"):
        measure(model, (x, rng.random(40)))
