"""edgecompress.tasks: one rule for what each output predicts."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

from edgecompress import models, tasks
from edgecompress._keras import keras


def _two_heads():
    i = keras.Input((8,))
    h = keras.layers.Dense(4)(i)
    return keras.Model(i, [keras.layers.Dense(3, name="cls")(h), keras.layers.Dense(1, name="reg")(h)])


def _nested_softmax():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    i = keras.Input((4,))
    return keras.Model(i, inner(i))


@pytest.mark.parametrize("build, y, expected", [
    (lambda: models.lenet5(), None, [("classification", False, True)]),
    (lambda: models.lenet5(), np.eye(10)[[1, 2]], [("classification", False, False)]),
    (lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Softmax(),
                               keras.layers.Flatten()]), None, [("classification", False, True)]),
    (_nested_softmax, None, [("classification", False, True)]),
    (lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)]), np.array([0, 4, 2]),
     [("classification", True, True)]),
    (lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)]), np.array([0.5, 7.0, 2.0]),
     [("regression", False, True)]),
    (lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")]), None,
     [("binary", False, True)]),
    (lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]), np.array([0, 1, 1]),
     [("binary", True, True)]),
    (lambda: keras.Sequential([keras.Input((640,)), keras.layers.Dense(8), keras.layers.Dense(640)]),
     np.random.default_rng(0).random((3, 640)), [("regression", False, True)]),
    (lambda: keras.Sequential([keras.Input((64,)), keras.layers.Dense(8),
                               keras.layers.Dense(64, activation="sigmoid")]),
     np.random.default_rng(0).random((3, 64)), [("regression", False, True)]),
    # A one-channel sigmoid map: an autoencoder's 8x8x1 reconstruction of grey levels is a
    # regression, a 0/1 mask is per-pixel binary.
    (lambda: keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(64, activation="sigmoid"), keras.layers.Reshape((8, 8, 1))]),
     np.random.default_rng(0).random((3, 8, 8, 1)), [("regression", False, True)]),
    (lambda: keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 3, padding="same",
                                                                           activation="sigmoid")]),
     np.random.default_rng(0).integers(0, 2, (3, 8, 8, 1)), [("binary", False, True)]),
    (_two_heads, [np.array([0, 2]), np.array([0.3, 4.0])],
     [("classification", True, True), ("regression", False, True)]),
    (_two_heads, {"cls": np.eye(3)[[0, 2]], "reg": np.array([0, 1])},
     [("classification", True, False), ("binary", True, True)]),
])
def test_infer_tasks(build, y, expected):
    got = [(t.kind, t.from_logits, t.sparse) for t in tasks.infer_tasks(build(), y)]
    assert got == expected


@pytest.mark.parametrize("wrap", [
    tfmot.sparsity.keras.prune_low_magnitude,
    tfmot.quantization.keras.quantize_model,
])
def test_softmax_seen_through_tfmot_wrappers(wrap):
    (task,) = tasks.infer_tasks(wrap(models.lenet5()))
    assert (task.kind, task.from_logits, task.compare) == ("classification", False, "top1")


def test_override_and_compile_kwargs_train_each_output():
    model = _two_heads()
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    y = [np.arange(32) % 3, x[:, :1] * 2.0]
    found = tasks.infer_tasks(model, y, override=[None, "mae"])
    assert [t.kind for t in found] == ["classification", "regression"]
    assert [t.metric_name for t in found] == ["accuracy", "mae"]
    assert [t.compare for t in found] == ["top1", "error"]
    model.compile("adam", **tasks.compile_kwargs(found))
    hist = model.fit(x, y, epochs=1, verbose=0).history
    assert {"cls_accuracy", "reg_mae"} <= set(hist)
    scores = tasks.evaluate(model, (x, y), found)
    pred = model.predict(x, verbose=0)
    assert scores[0] == pytest.approx(np.mean(pred[0].argmax(-1) == y[0]))
    assert scores[1] == pytest.approx(np.mean(np.abs(pred[1] - y[1])), rel=1e-5)


@pytest.mark.parametrize("override, message", [
    ("ranking", "`task` must be one of"),
    ({"nope": "regression"}, "names outputs that do not exist"),
])
def test_bad_override(override, message):
    with pytest.raises(ValueError, match=message):
        tasks.infer_tasks(_two_heads(), override=override)


def test_labels_must_match_outputs():
    with pytest.raises(ValueError, match="one array per model output"):
        tasks.infer_tasks(_two_heads(), [np.zeros(2)])


def test_early_stopping_keeps_the_latest_of_epochs_tying_the_best():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    task_list = tasks.infer_tasks(model, np.array([0, 1]))
    history = [0.90, 0.95, 0.95, 0.95, 0.94, 0.94]

    def run(stop):
        stop.set_model(model)
        stop.on_train_begin()
        for epoch, accuracy in enumerate(history):
            model.layers[0].bias.assign([float(epoch), 0.0])  # each epoch's weights differ
            stop.on_epoch_end(epoch, {"val_accuracy": accuracy})
            if model.stop_training:
                break
        stop.on_train_end()
        return stop, epoch

    keras_rule, _ = run(keras.callbacks.EarlyStopping("val_accuracy", mode="max", patience=2,
                                                      restore_best_weights=True))
    assert keras_rule.best_epoch == 1  # Keras's strict rule: the first epoch of the plateau
    model.stop_training = False
    stop, stopped_at = run(tasks.early_stopping(task_list, patience=2))
    assert stop.monitor == "val_accuracy"
    assert stop.best_epoch == 3 and stopped_at == 5  # a tie resets the patience
    assert model.layers[0].bias.numpy()[0] == 3.0  # and its weights are restored
