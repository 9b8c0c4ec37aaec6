import warnings

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
from conftest import Subclassed, residual_cnn, sequential_cnn, weights_fingerprint

from edgecompress import pruning, surgery
from edgecompress._keras import keras

BUILDERS = {"sequential": sequential_cnn, "functional_residual": residual_cnn}


def _data(rng, n=64, shape=(12, 12, 1), classes=4):
    return rng.random((n, *shape), dtype=np.float32), rng.integers(0, classes, n)


def _fit(model, x, y, epochs=2, batch_size=16, **kwargs):
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, **kwargs)
    return model


# ---------------------------------------------------------------- magnitude pruning


@pytest.mark.parametrize("kind,schedule,target", [
    ("sequential", None, 0.8),
    ("functional_residual", None, 0.8),
    ("functional_residual", pruning.ConstantSparsity(0.6), 0.6),
], ids=["sequential_default", "residual_default", "residual_constant"])
def test_default_schedule_prunes_in_a_short_run(kind, schedule, target, rng):
    model = BUILDERS[kind]()
    before = weights_fingerprint(model)
    x, y = _data(rng)
    pruned = pruning.prune_low_magnitude(model, schedule)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "cannot reach" warning
        _fit(pruned, x, y)  # 8 steps, no UpdatePruningStep given
    assert weights_fingerprint(model) == before
    report = pruning.sparsity_report(pruned)
    by_name = {r["layer"]: r for r in report}
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and not isinstance(
                layer, keras.layers.DepthwiseConv2D):
            assert by_name[layer.name]["sparsity"] == pytest.approx(target, abs=0.06)
    stripped = pruning.strip(pruned)
    assert [l.name for l in stripped.layers] == [l.name for l in model.layers]
    assert not pruning.magnitude.pruning_wrappers(stripped)
    assert type(stripped) in (keras.Sequential, keras.Model) or type(stripped).__name__ == "Functional"
    np.testing.assert_allclose(stripped.predict(x[:8], verbose=0), pruned.predict(x[:8], verbose=0),
                               atol=1e-6)
    assert pruning.sparsity_report(stripped) == report


def test_tfmot_tutorial_schedule_warns_and_prunes_nothing(rng):
    x, y = _data(rng)
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.5, 0.8, 0, 64)  # frequency=100
    pruned = pruning.prune_low_magnitude(sequential_cnn(), schedule)
    with pytest.warns(UserWarning, match=r"cannot reach its target sparsity 0.80.*reach 0.00"):
        _fit(pruned, x, y, epochs=1)
    assert all(r["zeros"] == 0 for r in pruning.sparsity_report(pruned))


def test_own_update_callback_and_second_fit(rng):
    x, y = _data(rng)
    pruned = pruning.prune_low_magnitude(sequential_cnn(), pruning.ConstantSparsity(0.5, frequency=2))
    _fit(pruned, x, y, epochs=1, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    _fit(pruned, x, y, epochs=1)
    assert pruning.magnitude.pruning_wrappers(pruned)[0].pruning_step.numpy() == 8
    assert pruning.sparsity_report(pruned)[0]["sparsity"] == pytest.approx(0.5, abs=0.05)


def test_save_and_reload_keeps_schedule_and_masks(tmp_path, rng):
    x, y = _data(rng)
    pruned = _fit(pruning.prune_low_magnitude(residual_cnn(), m_by_n=(2, 4)), x, y, epochs=1)
    path = tmp_path / "pruned.keras"
    pruned.save(path)
    again = keras.models.load_model(path)
    assert type(again) is pruning.PrunedModel
    wrappers = pruning.magnitude.pruning_wrappers(again)
    assert wrappers[0].sparsity_m_by_n == (2, 4)
    assert wrappers[0].pruning_schedule.get_config() == (
        pruning.magnitude.pruning_wrappers(pruned)[0].pruning_schedule.get_config())
    np.testing.assert_allclose(again.predict(x[:4], verbose=0), pruned.predict(x[:4], verbose=0),
                               atol=1e-6)


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_two_of_four_sparsity(kind, rng):
    x, y = _data(rng)
    with pytest.warns(UserWarning, match="left dense"):  # conv1/stem have 1 input channel
        pruned = pruning.prune_low_magnitude(BUILDERS[kind](), m_by_n=(2, 4))
    _fit(pruned, x, y, epochs=1)
    stripped = pruning.strip(pruned)
    checked = 0
    for wrapper in pruning.magnitude.pruning_wrappers(pruned):
        kernel = stripped.get_layer(wrapper.layer.name).get_weights()[0]
        groups = np.moveaxis(kernel, -2, -1).reshape(-1, 4)  # 4 consecutive input channels
        assert (np.count_nonzero(groups, axis=1) <= 2).all()
        checked += 1
    assert checked >= 2


def test_block_sparsity_prunes_whole_blocks(rng):
    x, y = _data(rng)
    with pytest.warns(UserWarning, match="at least 2 blocks.*'fc2'"):
        pruned = pruning.prune_low_magnitude(sequential_cnn(), pruning.ConstantSparsity(0.5),
                                             block_size=(1, 4))
    assert [w.layer.name for w in pruning.magnitude.pruning_wrappers(pruned)] == ["fc1"]
    _fit(pruned, x, y, epochs=1)
    kernel = pruning.strip(pruned).get_layer("fc1").get_weights()[0]
    blocks = np.abs(kernel).reshape(kernel.shape[0], -1, 4).sum(-1)
    assert 0.4 < np.mean(blocks == 0) < 0.6
    assert np.count_nonzero(kernel) == 4 * np.count_nonzero(blocks)


@pytest.mark.parametrize("kwargs,match", [
    ({"m_by_n": (4, 4)}, "m < n"),
    ({"m_by_n": (2, 4), "layers": ["conv1"]}, "divide the input channels of layer 'conv1'"),
    ({"block_size": (2, 2), "layers": ["conv2"]}, "2-D kernels"),
    ({"block_size": (0, 2)}, "pair of positive ints"),
    ({"layers": ["flatten"]}, "cannot prune"),
    ({"layers": ["nope"]}, "not in the model"),
    ({"schedule": "x"}, "`schedule` must be"),
])
def test_magnitude_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pruning.prune_low_magnitude(sequential_cnn(), **kwargs)


def test_refuses_subclassed():
    with pytest.raises(TypeError, match="subclassed"):
        pruning.prune_low_magnitude(Subclassed())


@pytest.mark.parametrize("cls,kwargs,match", [
    (pruning.ConstantSparsity, {"target": 1.0}, r"`target` must be a float in \[0, 1\)"),
    (pruning.ConstantSparsity, {"frequency": 0}, "`frequency` must be an int >= 1"),
    (pruning.ConstantSparsity, {"begin_step": 5, "end_step": 2}, "end_step"),
    (pruning.PolynomialDecay, {"target": 0.5, "initial": 0.6}, "`initial` must be <="),
    (pruning.PolynomialDecay, {"power": 0}, "`power`"),
    (pruning.PolynomialDecay, {"begin_step": 4, "end_step": 4}, "`end_step` must be an int >= 5"),
])
def test_schedule_validation(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("schedule,steps,end,reached", [
    (pruning.PolynomialDecay(0.8), 64, 48, 0.8),  # 0.75 * 64, frequency 4
    (pruning.PolynomialDecay(0.8), 7, 5, 0.8),
    (pruning.ConstantSparsity(0.5), 3, -1, 0.5),
])
def test_schedule_resolution(schedule, steps, end, reached):
    schedule.resolve(steps)
    assert schedule.end_step == end
    assert schedule.reached(1, steps) == pytest.approx(reached)
    again = keras.utils.deserialize_keras_object(keras.utils.serialize_keras_object(schedule))
    assert type(again) is type(schedule) and again.get_config() == schedule.get_config()


# ---------------------------------------------------------------- structured filter pruning


def _x(model, rng, n=6):
    return rng.standard_normal((n, *model.inputs[0].shape[1:])).astype("float32")


def _zero_weakest(model, ratio):
    """Zero the floor(ratio * C) first filters (kernel + bias) of every prunable group."""
    graph = surgery.channel_groups(model)
    for group in graph.groups:
        if not group.prunable:
            continue
        n = int(ratio * group.channels)
        for name in group.producers:
            layer = model.get_layer(name)
            kernel, bias = layer.get_weights()
            kernel[..., :n] = 0
            bias[:n] = 0
            layer.set_weights([kernel, bias])


# Hand counts at ratio 0.5 (12x12x1 input):
#  sequential: conv1 3*3*1*3+3=30, bn1 4*3=12, conv2 3*3*3*4+4=112, fc1 (5*5*4)*8+8=808,
#              fc2 8*4+4=36 -> 998
#  residual:   stem 3*3*1*4+4=40, res_a 3*3*4*4+4=148, res_bn 16, res_dw 3*3*4+4=40,
#              side 1*1*4*2+2=10, fc1 (4+2)*8+8=56, fc2 8*4+4=36 -> 346
@pytest.mark.parametrize("kind,ratio,params", [
    ("sequential", 0.5, 998),
    ("functional_residual", 0.5, 346),
    ("sequential", 0.0, 3808),
])
def test_prune_filters_zero_filters_give_identical_outputs(kind, ratio, params, rng):
    model = BUILDERS[kind]()
    _zero_weakest(model, ratio)
    before = weights_fingerprint(model)
    small = pruning.prune_filters(model, ratio)
    assert weights_fingerprint(model) == before
    assert type(small) is type(model)
    assert small.count_params() == params  # hand count above
    x = _x(model, rng)
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_prune_filters_ratio_zero_is_identity(kind, rng):
    model = BUILDERS[kind]()
    small = pruning.prune_filters(model, 0.0, "l2")
    x = _x(model, rng)
    np.testing.assert_array_equal(small.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("criterion", ["l1", "l2", "bn_gamma"])
def test_criteria_pick_the_weakest_filters(criterion, rng):
    model = sequential_cnn()
    conv = model.get_layer("conv1")
    kernel, bias = conv.get_weights()
    scale = np.array([5, 0.1, 4, 0.2, 3, 0.3], dtype="float32")
    conv.set_weights([np.sign(kernel) * scale, bias])
    bn = model.get_layer("bn1")
    bn.set_weights([scale] + bn.get_weights()[1:])
    small = pruning.prune_filters(model, {"conv1": 0.5}, criterion)
    np.testing.assert_array_equal(small.get_layer("bn1").get_weights()[0], [5, 4, 3])
    assert small.get_layer("conv2").get_weights()[0].shape == (3, 3, 3, 8)
    assert small.get_layer("fc1").get_weights()[0].shape == (5 * 5 * 8, 16)


def test_threshold_removes_filters_driven_to_zero(rng):
    model = residual_cnn()
    for name in ("stem", "res_a"):
        kernel, bias = model.get_layer(name).get_weights()
        kernel[..., [1, 5]] *= 1e-4
        model.get_layer(name).set_weights([kernel, bias])
    small = pruning.prune_filters(model, criterion="threshold", threshold=1e-2)
    assert small.get_layer("stem").filters == 6 and small.get_layer("res_a").filters == 6
    assert small.get_layer("side").filters == 4  # no small filters there


@pytest.mark.parametrize("kwargs,match", [
    ({"ratio": 1.0}, r"`ratio` must be in \[0, 1\). Received: ratio=1.0"),
    ({"ratio": -0.1}, r"`ratio` must be in \[0, 1\)"),
    ({"ratio": 0.5, "criterion": "l3"}, "`criterion` must be one of"),
    ({"ratio": {"fc2": 0.5}}, "cannot be pruned: 'fc2' has a softmax"),
    ({"ratio": {"flatten": 0.5}}, "not a prunable Conv2D/Dense"),
    ({"ratio": {"fc1": 0.5}, "criterion": "bn_gamma"}, "needs a BatchNormalization"),
    ({"criterion": "threshold", "threshold": 1e9}, "remove every filter of layers"),
    ({"criterion": "threshold"}, "`threshold` must be a number >= 0"),
])
def test_prune_filters_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pruning.prune_filters(sequential_cnn(), **kwargs)


def test_residual_group_needs_one_ratio():
    with pytest.raises(ValueError, match="pruned jointly"):
        pruning.prune_filters(residual_cnn(), {"stem": 0.5, "res_a": 0.25})


# ---------------------------------------------------------------- regularizers and the loop


@pytest.mark.parametrize("reg,expected", [
    (pruning.L1(0.5), 0.5 * (3 + 4 + 0 + 12)),
    (pruning.GroupLasso(2.0), 2.0 * (5 + 12)),
])
def test_regularizer_values_and_config(reg, expected, tmp_path):
    w = np.array([[3.0, 0.0], [-4.0, 12.0]], dtype="float32")  # filters: [3,-4] and [0,12]
    assert float(reg(w)) == pytest.approx(expected, rel=1e-5)
    model = pruning.add_sparsity_regularizer(sequential_cnn(), reg, layers=["conv2", "fc1"])
    assert type(model.get_layer("conv2").kernel_regularizer) is type(reg)
    assert model.get_layer("conv1").kernel_regularizer is None
    path = tmp_path / "reg.keras"
    model.save(path)
    again = keras.models.load_model(path)
    assert again.get_layer("fc1").kernel_regularizer.get_config() == reg.get_config()
    with pytest.raises(ValueError, match="must be a number >= 0"):
        type(reg)(-1.0)


def test_group_lasso_training_then_threshold_pruning(rng):
    x, y = _data(rng, n=64)
    base = sequential_cnn()
    before = weights_fingerprint(base)
    model = pruning.add_sparsity_regularizer(base, pruning.GroupLasso(0.5), layers=["fc1"])
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=64, verbose=0)
    assert weights_fingerprint(base) == before
    start = np.linalg.norm(base.get_layer("fc1").get_weights()[0], axis=0)
    norms = np.linalg.norm(model.get_layer("fc1").get_weights()[0], axis=0)
    assert start.min() > 0.5 and (norms < 0.1).sum() >= 2  # filters driven towards 0
    small = pruning.prune_filters(model, None, "threshold", threshold=0.1)
    assert small.get_layer("fc1").units == 16 - int((norms < 0.1).sum())


def test_iterative_prune_history(rng, caplog):
    x, y = _data(rng, n=64)
    model = residual_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    with caplog.at_level("INFO", logger="edgecompress.pruning"):
        final, history = pruning.iterative_prune(model, (x, y), (x, y), rounds=2, target=0.5,
                                                 finetune_epochs=1)
    assert [h["round"] for h in history] == [0, 1, 2]
    assert history[0]["params"] == model.count_params() and history[-1]["params"] == final.count_params()
    assert history[0]["macs"] > history[1]["macs"] > history[2]["macs"]
    assert final.get_layer("stem").filters == 5  # 8 -> 6 -> 5 (1 - sqrt(0.5) = 29% per round)
    assert "pruning round 2/2" in caplog.text


# ---------------------------------------------------------------- Conv1D, separable, depthwise, SE (#17.3)


def _conv1d_net():
    L = keras.layers
    inp = keras.Input((20, 3))
    x = L.MaxPooling1D()(L.Conv1D(8, 3, activation="relu", name="c1")(inp))
    x = L.BatchNormalization(name="bn")(L.Conv1D(6, 3, name="c2")(x))
    x = L.SeparableConv1D(6, 3, depth_multiplier=2, name="sep1d")(x)
    x = L.Conv1D(4, 1, name="c3")(L.DepthwiseConv1D(3, name="dw1d")(x))
    return keras.Model(inp, L.Dense(3, name="head")(L.GlobalAveragePooling1D()(x)))


def _separable_se_net():
    L = keras.layers
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, name="stem")(inp)
    x = L.SeparableConv2D(8, 3, depth_multiplier=2, padding="same", name="sep")(x)
    x = L.Activation("swish")(L.BatchNormalization(name="sep_bn")(x))
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    se = L.Reshape((1, 1, 8), name="se_reshape")(L.GlobalAveragePooling2D(name="se_gap")(x))
    se = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(L.Conv2D(4, 1, name="se_reduce")(se))
    x = L.Conv2D(6, 1, name="project")(L.Multiply(name="se_mul")([x, se]))
    return keras.Model(inp, L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x)))


def _zero_filters(model, ratio):
    """Zero the floor(ratio * C) first output channels of every prunable group's producers."""
    for group in surgery.channel_groups(model).groups:
        n = int(ratio * group.channels) if group.prunable else 0
        for name in group.producers if n else []:
            layer = model.get_layer(name)
            weights = layer.get_weights()
            for w in weights[-2:]:  # (pointwise) kernel and bias: output channels last
                w[..., :n] = 0
            layer.set_weights(weights)


@pytest.mark.parametrize("builder,pruned,shapes", [
    (_conv1d_net, {"c1", "c2", "sep1d", "c3"},
     {"sep1d": [(3, 3, 2), (1, 6, 3)], "dw1d": [(3, 3, 1)], "c3": [(1, 3, 2)], "head": [(2, 3)]}),
    (_separable_se_net, {"stem", "sep", "se_expand", "se_reduce", "project"},
     {"sep": [(3, 3, 4, 2), (1, 1, 8, 4)], "dw": [(3, 3, 4, 1)], "se_reduce": [(1, 1, 4, 2)],
      "se_expand": [(1, 1, 2, 4)], "project": [(1, 1, 4, 3)], "head": [(3, 3)]}),
])
def test_prune_filters_of_conv1d_separable_depthwise_and_se_chains(builder, pruned, shapes, rng):
    model = builder()
    _zero_filters(model, 0.5)
    small = pruning.prune_filters(model, 0.5)
    assert set(small.transform_report.transformed) == pruned
    for name, expected in shapes.items():
        assert [tuple(w.shape) for w in small.get_layer(name).weights if len(w.shape) > 1] == expected, name
    assert small.count_params() < model.count_params()
    x = _x(model, rng)
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_prune_filters_that_prunes_nothing_warns_and_names_the_refused_layers(caplog):
    L = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 3)), L.SeparableConv2D(8, 3, name="sep"),
        L.LayerNormalization(name="ln"), L.Conv2D(4, 3, groups=2, name="grouped"),
        L.GlobalAveragePooling2D(), L.Dense(3, name="head")])
    with caplog.at_level("WARNING", logger="edgecompress"):
        small = pruning.prune_filters(model, 0.5)
    report = small.transform_report
    assert report.transformed == [] and small.count_params() == model.count_params()
    assert "'ln' (LayerNormalization): normalizes over the channels" in report.refused["sep"]
    assert "grouped convolution (groups=2)" in report.refused["grouped"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("prune_filters(l1) changed no layer" in m for m in messages)
    assert any("'sep' left unchanged" in m and "LayerNormalization" in m for m in messages)
