import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import Subclassed, residual_cnn, sequential_cnn, weights_fingerprint

from edgecompress import surgery
from edgecompress._keras import keras
from edgecompress.distillation import Distiller, LogitMSE, SoftTargetKL, get
from edgecompress.distillation import losses as dlosses

SHAPE, CLASSES = (12, 12, 1), 4


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *SHAPE)).astype("float32")
    y = (x[:, :6].mean(axis=(1, 2, 3)) > 0).astype("int64") + 2 * (x[:, :, :6].mean(axis=(1, 2, 3)) > 0)
    return x, y


def _logits_student(softmax=True, name="student"):
    """Functional student; the softmax is fused into the last Dense (or absent)."""
    inp = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="s_conv")(inp)
    x = keras.layers.Flatten(name="s_flat")(x)
    x = keras.layers.Dense(8, activation="relu", name="s_fc")(x)
    out = keras.layers.Dense(CLASSES, activation="softmax" if softmax else None, name="s_out")(x)
    return keras.Model(inp, out, name=name)


def _teacher(seed=1):
    """Sequential teacher ending in a separate Softmax layer (logits readable for references)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(SHAPE),
        keras.layers.Conv2D(8, 3, activation="relu", name="t_conv"),
        keras.layers.BatchNormalization(name="t_bn"),
        keras.layers.Dropout(0.3),
        keras.layers.Flatten(name="t_flat"),
        keras.layers.Dense(16, activation="relu", name="t_fc"),
        keras.layers.Dense(CLASSES, name="t_logits"),
        keras.layers.Softmax(name="t_softmax"),
    ], name="teacher")


def _logits_of(model, x):
    """Reference logits in numpy: the pre-softmax layer, or log-probabilities for a fused softmax."""
    if isinstance(model.layers[-1], keras.layers.Softmax):
        return keras.Model(model.inputs, model.layers[-2].output).predict(x, verbose=0)
    out = model.predict(x, verbose=0)
    return np.log(out) if model.layers[-1].activation.__name__ == "softmax" else out


def _np_softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _np_loss(name, t, s):
    if name == "kl":
        pt, ps = _np_softmax(t), _np_softmax(s)
        return np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), -1))
    if name == "cross_entropy":
        return np.mean(-np.sum(_np_softmax(t) * np.log(_np_softmax(s)), -1))
    tc, sc = t - t.mean(-1, keepdims=True), s - s.mean(-1, keepdims=True)
    return np.mean((tc - sc) ** 2)


def _one_step_logs(distiller, x, y):
    distiller.compile(keras.optimizers.SGD(0.0), metrics=["accuracy"])
    hist = distiller.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return {k: v[0] for k, v in hist.history.items()}


# --------------------------------------------------------------------------------- loss numbers
def test_distillation_loss_matches_numpy_with_t_squared():
    x, y = _data()
    teacher, student = _teacher(), _logits_student()
    distiller = Distiller(teacher, student, temperature=4.0, alpha=0.3)
    logs = _one_step_logs(distiller, x, y)  # end to end through train_step
    t, s = _logits_of(teacher, x), _logits_of(student, x)
    ref = 16.0 * _np_loss("kl", t / 4, s / 4)
    np.testing.assert_allclose(logs["distillation_loss"], ref, rtol=1e-4)
    assert not np.isclose(ref, _np_loss("kl", t / 4, s / 4), rtol=0.1)  # T**2 really matters
    hard = np.mean(-np.log(_np_softmax(s)[np.arange(len(y)), y]))
    np.testing.assert_allclose(logs["student_loss"], hard, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], 0.3 * hard + 0.7 * ref, rtol=1e-4)


@pytest.mark.parametrize("loss", ["kl", "cross_entropy", "mse"])
@pytest.mark.parametrize("temperature", [1.0, 2.5, 8.0])
def test_soft_loss_is_t_squared_times_loss_of_scaled_logits(loss, temperature):
    rng = np.random.default_rng(1)
    t, s = (3 * rng.standard_normal((2, 16, CLASSES))).astype("float32")
    distiller = Distiller(_teacher(), _logits_student(), temperature, distillation_loss=loss)
    got = distiller.soft_loss(t, s).numpy()
    np.testing.assert_allclose(got, temperature**2 * _np_loss(loss, t / temperature, s / temperature),
                               rtol=1e-5)
    if loss == "mse":  # T**2 * mse(t/T, s/T) == mse(t, s)
        np.testing.assert_allclose(got, _np_loss("mse", t, s), rtol=1e-5)


def test_swapping_teacher_and_student_changes_the_loss():
    x, y = _data()
    a, b = _teacher(), _logits_student()
    forward = _one_step_logs(Distiller(a, b), x, y)["distillation_loss"]
    backward = _one_step_logs(Distiller(b, a), x, y)["distillation_loss"]
    assert forward > 0 and backward > 0
    assert not np.isclose(forward, backward, rtol=1e-3)


# ------------------------------------------------------------------------------ training checks
@pytest.mark.parametrize("softmax", [True, False], ids=["softmax_output", "logits_output"])
def test_alpha_one_equals_plain_cross_entropy_training(softmax):
    x, y = _data(48)
    keras.utils.set_random_seed(3)
    student = _logits_student(softmax)
    twin = surgery.clone(student)
    twin.compile(keras.optimizers.SGD(0.1),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax))
    twin.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    distiller = Distiller(_teacher(), student, temperature=3.0, alpha=1.0)
    distiller.compile(keras.optimizers.SGD(0.1))
    distiller.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for got, want in zip(student.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("student_builder", [sequential_cnn, residual_cnn],
                         ids=["sequential", "functional_residual"])
def test_teacher_is_bit_identical_after_fit_and_student_learns(student_builder):
    x, y = _data(64)
    teacher = _teacher()
    bn = teacher.get_layer("t_bn")
    bn.set_weights([w + 0.5 for w in bn.get_weights()])
    before = weights_fingerprint(teacher)
    student = student_builder(SHAPE, CLASSES)
    w0 = [w.copy() for w in student.get_weights()]
    distiller = Distiller(teacher, student, alpha=0.2)
    distiller.compile(keras.optimizers.Adam(0.01), metrics=["accuracy"])
    hist = distiller.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert weights_fingerprint(teacher) == before
    assert distiller.student is student
    assert any(not np.array_equal(a, b) for a, b in zip(w0, student.get_weights(), strict=True))
    assert hist.history["distillation_loss"][-1] < hist.history["distillation_loss"][0]


def test_trained_student_reloads_with_plain_load_model(tmp_path):
    x, y = _data()
    distiller = Distiller(_teacher(), _logits_student(), feature_pairs=[("t_fc", "s_fc")])
    distiller.compile("adam")
    distiller.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "student.keras")
    distiller.student.save(path)
    loaded = keras.models.load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in distiller.student.layers]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), distiller.student.predict(x, verbose=0),
                               atol=1e-6)


def test_distiller_config_and_save_round_trip(tmp_path):
    x, y = _data()
    distiller = Distiller(_teacher(), _logits_student(), temperature=2.5, alpha=0.25,
                          distillation_loss="mse", feature_pairs=[("t_conv", "s_conv")],
                          feature_weight=0.5)
    distiller.compile("adam", metrics=["accuracy"])
    distiller.fit(x, y, epochs=1, verbose=0)
    config = distiller.get_config()
    assert {k: config[k] for k in ("temperature", "alpha", "feature_weight", "feature_pairs")} == {
        "temperature": 2.5, "alpha": 0.25, "feature_weight": 0.5,
        "feature_pairs": [["t_conv", "s_conv"]]}
    path = str(tmp_path / "distiller.keras")
    distiller.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Distiller) and isinstance(loaded.distillation_loss, LogitMSE)
    assert (loaded.temperature, loaded.alpha) == (2.5, 0.25)
    np.testing.assert_allclose(loaded.student.predict(x, verbose=0),
                               distiller.student.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0), distiller.evaluate(x, y, verbose=0),
                               rtol=1e-5)


def test_distiller_config_starts_from_the_base_and_keeps_trainable(tmp_path):
    distiller = Distiller(_teacher(), _logits_student(), temperature=3.0, name="kd")
    distiller.trainable = False
    config = distiller.get_config()
    assert config["trainable"] is False and config["name"] == "kd"
    again = Distiller.from_config(config)
    assert not again.trainable and again.temperature == 3.0 and again.name == "kd"
    path = str(tmp_path / "frozen.keras")
    distiller.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Distiller) and not loaded.trainable and loaded.temperature == 3.0


def test_callbacks_monitor_student_metrics(tmp_path):
    x, y = _data(64)
    xv, yv = _data(32, seed=5)
    path = str(tmp_path / "best.keras")
    distiller = Distiller(_teacher(), _logits_student())
    distiller.compile(keras.optimizers.SGD(0.0), metrics=["accuracy"])  # nothing improves
    hist = distiller.fit(
        x, y, epochs=6, verbose=0, validation_data=(xv, yv),
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=1),
                   keras.callbacks.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)])
    assert len(hist.history["loss"]) == 2  # stopped after `patience` epochs without improvement
    assert {"val_accuracy", "val_loss", "val_student_loss"} <= set(hist.history)
    np.testing.assert_allclose(hist.history["val_loss"], hist.history["val_student_loss"])
    best = keras.models.load_model(path)
    np.testing.assert_allclose(best.student.predict(xv, verbose=0),
                               distiller.student.predict(xv, verbose=0), atol=1e-6)


# ------------------------------------------------------------------------------ feature hints
@pytest.mark.parametrize("pair,adapter_cls", [
    (("t_conv", "s_conv"), keras.layers.Conv2D),   # (10,10,8) <- (10,10,4)
    (("t_fc", "s_fc"), keras.layers.Dense),        # (16,) <- (8,)
    (("t_logits", "s_out"), type(None)),           # same shape: no adapter
])
def test_feature_hints_through_adapter(pair, adapter_cls):
    x, y = _data()
    teacher, student = _teacher(), _logits_student()
    params = student.count_params()
    distiller = Distiller(teacher, student, alpha=0.5, feature_pairs=[pair], feature_weight=2.0)
    assert isinstance(distiller.adapters[0], adapter_cls)
    logs = _one_step_logs(distiller, x, y)
    t = keras.Model(teacher.inputs, teacher.get_layer(pair[0]).output).predict(x, verbose=0)
    s = keras.Model(student.inputs, student.get_layer(pair[1]).output).predict(x, verbose=0)
    if distiller.adapters[0] is not None:
        s = distiller.adapters[0](s).numpy()
    np.testing.assert_allclose(logs["feature_loss"], np.mean((t - s) ** 2), rtol=1e-4)
    np.testing.assert_allclose(
        logs["loss"], 0.5 * logs["student_loss"] + 0.5 * logs["distillation_loss"]
        + 2.0 * logs["feature_loss"], rtol=1e-5)
    assert student.count_params() == params  # the adapter is not part of the student
    if adapter_cls is not type(None):
        kernel = distiller.adapters[0].kernel.numpy().copy()
        distiller.compile("adam")
        distiller.fit(x, y, epochs=1, verbose=0)
        assert not np.allclose(kernel, distiller.adapters[0].kernel.numpy())  # it learns


# ------------------------------------------------------------------------- compressed students
def test_pruned_student_is_distilled_while_pruned():
    import tensorflow_model_optimization as tfmot

    x, y = _data(64)
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.75, begin_step=0, frequency=1)
    student = tfmot.sparsity.keras.prune_low_magnitude(_logits_student(), pruning_schedule=schedule)
    distiller = Distiller(_teacher(), student, feature_pairs=[("t_fc", "prune_low_magnitude_s_fc")])
    distiller.compile("adam", metrics=["accuracy"])
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0,
                  callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(distiller.student)
    kernel = stripped.get_layer("s_fc").kernel.numpy()
    np.testing.assert_allclose(np.mean(kernel == 0), 0.75, atol=0.01)


def test_qat_student_is_distilled():
    import tensorflow_model_optimization as tfmot

    x, y = _data(64)
    student = tfmot.quantization.keras.quantize_model(_logits_student())
    distiller = Distiller(_teacher(), student)
    logs = _one_step_logs(distiller, x, y)
    t = _logits_of(_teacher(), x)
    s = np.log(student.predict(x, verbose=0))
    np.testing.assert_allclose(logs["distillation_loss"],
                               16 * _np_loss("kl", t / 4, s / 4), rtol=1e-3)


def test_larq_binary_student_is_distilled():
    import larq as lq

    x, y = _data(64)
    kw = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    student = keras.Sequential([
        keras.Input(SHAPE),
        lq.layers.QuantConv2D(8, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                              use_bias=False, name="b_conv1"),
        keras.layers.BatchNormalization(),
        lq.layers.QuantConv2D(8, 3, use_bias=False, name="b_conv2", **kw),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        lq.layers.QuantDense(CLASSES, use_bias=False, name="b_out", **kw),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("softmax"),
    ])
    distiller = Distiller(_teacher(), student, feature_pairs=[("t_conv", "b_conv1")])
    distiller.compile("adam", metrics=["accuracy"])
    hist = distiller.fit(x, y, epochs=3, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    kernel = student.get_layer("b_conv2").kernel.numpy()
    assert np.all(np.abs(kernel) <= 1)  # larq's constraint still applies


# ---------------------------------------------------------------------------- distribution
_MIRRORED = textwrap.dedent("""
    import numpy as np
    from edgecompress._keras import keras, tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    from edgecompress import surgery
    from edgecompress.distillation import Distiller
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 4, 32)

    def net(width, seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(width, 3, activation="relu"),
                                 keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")])

    def run(strategy):
        with strategy.scope():
            teacher, student = net(8, 1), net(3, 2)
            d = Distiller(teacher, student, temperature=2.0, alpha=0.3)
            d.compile(keras.optimizers.SGD(0.5), metrics=["accuracy"])
        t0 = [w.copy() for w in teacher.get_weights()]
        hist = d.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_data=(x, y))
        assert all(np.array_equal(a, b) for a, b in zip(t0, teacher.get_weights()))
        return student.get_weights(), hist.history

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    w2, h2 = run(mirrored)
    w1, h1 = run(tf.distribute.get_strategy())
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for key in ("loss", "distillation_loss", "student_loss", "val_accuracy"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-4)
    print("MIRRORED_OK")
""")


def test_mirrored_strategy_matches_single_device():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", _MIRRORED], env=env, capture_output=True,
                          text=True, timeout=300)
    assert "MIRRORED_OK" in proc.stdout, proc.stderr[-3000:]


# ------------------------------------------------------------------------------ losses, errors
def test_loss_resolver_and_serialization():
    assert isinstance(get("kl"), SoftTargetKL) and isinstance(get("MSE"), LogitMSE)
    for name in ("kl", "cross_entropy", "mse"):
        loss = get(name)
        again = get(dlosses.serialize(loss))
        assert type(again) is type(loss)
        assert keras.losses.get(keras.losses.serialize(loss)).__class__ is type(loss)
    with pytest.raises(ValueError, match="`distillation_loss` must be one of"):
        get("hinge_of_doom")
    with pytest.raises(ValueError, match="Received: distillation_loss=3"):
        get(3)


def test_logit_losses_are_shift_invariant():
    rng = np.random.default_rng(0)
    t, s = rng.standard_normal((2, 5, 7)).astype("float32")
    for name in ("kl", "cross_entropy", "mse"):
        loss = get(name)
        np.testing.assert_allclose(loss(t, s).numpy(), loss(t + 3.0, s - 2.0).numpy(), rtol=1e-5)
        np.testing.assert_allclose(loss(t, s).numpy(), _np_loss(name, t, s), rtol=1e-5)


def _different_head():
    return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(3)])


def _two_input_student():
    a, b = keras.Input(SHAPE), keras.Input(SHAPE)
    x = keras.layers.Flatten()(keras.layers.Add()([a, b]))
    return keras.Model([a, b], keras.layers.Dense(CLASSES, activation="softmax")(x))


def _spatial_student():
    return keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(4, 5, name="c5"),
                             keras.layers.Flatten(), keras.layers.Dense(CLASSES)])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(temperature=-1.0), ValueError, r"`temperature` must be a number > 0. Received: temperature=-1.0"),
    (dict(temperature=0), ValueError, r"`temperature` must be a number > 0"),
    (dict(temperature=float("inf")), ValueError, r"`temperature` must be a number > 0"),
    (dict(alpha=True), ValueError, r"`alpha` must be in \[0, 1\]. Received: alpha=True"),
    (dict(alpha=1.5), ValueError, r"`alpha` must be in \[0, 1\]. Received: alpha=1.5"),
    (dict(alpha=-0.1), ValueError, r"`alpha` must be in \[0, 1\]"),
    (dict(feature_weight=-1), ValueError, r"`feature_weight` must be a number >= 0"),
    (dict(student=_different_head), ValueError, r"same output shape as `teacher`.*\(None, 4\).*\(None, 3\)"),
    (dict(feature_pairs=[("t_conv", "nope")]), ValueError, r"names a layer that is not in the model. Received: 'nope'"),
    (dict(feature_pairs=[("nope", "s_conv")]), ValueError, r"feature_pairs \(teacher\).*Received: 'nope'"),
    (dict(feature_pairs=["t_conv"]), ValueError, r"list of \(teacher_layer_name, student_layer_name\)"),
    (dict(feature_pairs=[("t_conv", "c5")], student=_spatial_student), ValueError, r"same height and width"),
    (dict(feature_pairs=[("t_conv", "s_flat")]), ValueError, r"both be 4-D .* or both 2-D"),
    (dict(distillation_loss="nope"), ValueError, r"`distillation_loss` must be one of"),
    (dict(mixup=-0.5), ValueError, r"`mixup` must be a number >= 0 \(0 turns it off\). Received: mixup=-0.5"),
    (dict(mixup=1.0, student=_two_input_student), ValueError, r"`mixup` needs .* one input each. Received: 1 and 2"),
    (dict(student=Subclassed, feature_pairs=[("t_conv", "dense")]), TypeError, r"subclassed model"),
    (dict(student=lambda: "not a model"), TypeError, r"`student` must be a tf_keras"),
])
def test_bad_arguments_get_clear_errors(kwargs, error, match):
    kwargs = dict(kwargs)
    student = kwargs.pop("student", _logits_student)()
    with pytest.raises(error, match=match):
        Distiller(_teacher(), student, **kwargs)


def test_numpy_numbers_are_accepted_and_stored_as_float():
    distiller = Distiller(_teacher(), _logits_student(), temperature=np.float32(2.0),
                          alpha=np.float64(0.25), feature_weight=np.int64(0), mixup=np.float32(0))
    config = distiller.get_config()
    assert (config["temperature"], config["alpha"]) == (2.0, 0.25)
    assert all(type(config[k]) is float for k in ("temperature", "alpha", "feature_weight", "mixup"))


# ------------------------------------------------------------------------------ function matching
class _FixedMix(Distiller):
    """A Distiller whose mixup draws are fixed, so a step can be checked against numpy."""

    def mix_batch(self, x):
        from edgecompress._keras import tf

        lam = tf.constant(self.lam, tf.float32)
        mix = tf.reshape(lam, [-1, 1, 1, 1])
        return mix * x + (1 - mix) * tf.gather(x, self.perm), lam, tf.constant(self.perm)


def test_mixup_teacher_and_student_see_the_same_mixed_images_and_labels_mix():
    x, y = _data(16)
    rng = np.random.default_rng(3)
    lam, perm = rng.uniform(0, 1, 16).astype("float32"), rng.permutation(16).astype("int32")
    teacher, student = _teacher(), _logits_student()
    distiller = _FixedMix(teacher, student, temperature=2.0, alpha=0.4, mixup=1.0)
    distiller.lam, distiller.perm = lam, perm
    logs = _one_step_logs(distiller, x, y)
    x_mix = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm]
    t, s = _logits_of(teacher, x_mix), _logits_of(student, x_mix)
    np.testing.assert_allclose(logs["distillation_loss"], 4.0 * _np_loss("kl", t / 2, s / 2), rtol=1e-4)
    log_p = np.log(_np_softmax(s))
    hard = np.mean(-lam * log_p[np.arange(16), y] - (1 - lam) * log_p[np.arange(16), y[perm]])
    np.testing.assert_allclose(logs["student_loss"], hard, rtol=1e-4)
    dominant = np.where(lam >= 0.5, y, y[perm])
    np.testing.assert_allclose(logs["accuracy"], np.mean(s.argmax(-1) == dominant))
    # on the clean batch the losses differ: the mixing really happened
    assert not np.isclose(logs["distillation_loss"],
                          4.0 * _np_loss("kl", _logits_of(teacher, x) / 2, _logits_of(student, x) / 2))


def test_mixup_trains_saves_and_leaves_the_teacher_alone(tmp_path):
    x, y = _data(64)
    teacher, student = _teacher(), _logits_student()
    before = weights_fingerprint(teacher)
    keras.utils.set_random_seed(0)
    distiller = Distiller(teacher, student, temperature=1.0, alpha=0.0, mixup=1.0)
    distiller.compile(keras.optimizers.Adam(1e-2))
    hist = distiller.fit(x, y, batch_size=16, epochs=4, verbose=0)
    assert hist.history["distillation_loss"][-1] < hist.history["distillation_loss"][0]
    assert weights_fingerprint(teacher) == before
    assert Distiller.from_config(distiller.get_config()).mixup == 1.0
