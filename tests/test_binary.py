"""Tests for edgecompress.binary: schemes, numerics against references, lint, serialization."""

import larq as lq
import numpy as np
import pytest
from conftest import residual_cnn, sequential_cnn, weights_fingerprint

from edgecompress import binary
from edgecompress._keras import keras, tf

SCHEMES = ["binaryconnect", "bwn", "xnor", "binarynet", "stochastic"]


def _np_sign(x):
    return np.where(x >= 0, 1.0, -1.0).astype("float32")


def _bnn(kind):
    """Sequential or Functional conv net following BNN practice (BN before binary layers)."""
    L = keras.layers
    if kind == "sequential":
        return keras.Sequential([
            keras.Input((12, 12, 1)), L.Conv2D(8, 3, name="c1"), L.BatchNormalization(name="b1"),
            L.Conv2D(8, 3, padding="same", name="c2"), L.MaxPooling2D(name="p2"),
            L.BatchNormalization(name="b2"), L.Flatten(name="f"), L.Dense(16, name="d1"),
            L.BatchNormalization(name="b3"), L.Dense(4, name="d2")], name="seq")
    inp = keras.Input((12, 12, 1))
    x = L.BatchNormalization(name="b0")(L.Conv2D(8, 3, padding="same", name="c1")(inp))
    y = L.BatchNormalization(name="b1")(L.Conv2D(8, 3, padding="same", name="c2")(x))
    x = L.Add(name="add")([x, y])
    x = L.BatchNormalization(name="b2")(L.Conv2D(8, 3, strides=2, name="c3")(x))
    x = L.BatchNormalization(name="b3")(L.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inp, L.Dense(4, name="d2")(L.Dense(16, name="d1")(x)), name="func")


def _run(model, x):
    return model(np.asarray(x), training=False).numpy()


def _quant_layers(model):
    return [layer for layer in model.layers if isinstance(layer, lq.layers_base.BaseLayer)]


# ---------------------------------------------------------------- binarize


@pytest.mark.parametrize("kind", ["sequential", "functional"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_binarizes_and_keeps_input(kind, scheme, rng):
    model = _bnn(kind)
    before = weights_fingerprint(model)
    bnn = binary.binarize(model, scheme)
    assert weights_fingerprint(model) == before
    assert type(bnn) is type(model)
    quant = _quant_layers(bnn)
    # first (c1) and last (d2) kept float, every other Conv2D/Dense binarized
    assert {layer.name for layer in quant} == ({"c2", "d1"} if kind == "sequential"
                                               else {"c2", "c3", "d1"})
    for layer in quant:
        assert layer.kernel_quantizer.precision == 1
        src = model.get_layer(layer.name)
        for a, b in zip(src.get_weights(), layer.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)  # float weights carried as latent weights
        assert (layer.input_quantizer is not None) == (scheme in ("xnor", "binarynet"))
    x = rng.random((3, 12, 12, 1), dtype=np.float32)
    assert np.isfinite(_run(bnn, x)).all()
    if kind == "sequential":
        return
    # a training step runs (gradients flow through every quantizer)
    bnn.compile(binary.bop_optimizer(keras.optimizers.legacy.Adam(1e-3)), "mse", run_eagerly=True)
    bnn.fit(x, np.zeros((3, 4), "float32"), epochs=1, verbose=0)


def test_keep_first_last_false_and_explicit_layers():
    model = sequential_cnn()
    every = binary.binarize(model, "bwn", keep_first_last=False)
    assert {layer.name for layer in _quant_layers(every)} == {"conv1", "conv2", "fc1", "fc2"}
    only = binary.binarize(model, binary.get("binarynet"), layers=["conv1"])
    assert [layer.name for layer in _quant_layers(only)] == ["conv1"]
    # binary activations: the ReLU of a binarized layer is dropped (sign is the non-linearity)
    assert only.get_layer("conv1").activation is keras.activations.linear
    assert every.get_layer("conv1").activation is keras.activations.relu  # float activations kept


def test_depthwise_is_kept_and_residual_model_works():
    model = residual_cnn()
    bnn = binary.binarize(model, "xnor")
    assert isinstance(bnn.get_layer("res_dw"), keras.layers.DepthwiseConv2D)
    assert isinstance(bnn.get_layer("side"), binary.XnorConv2D)
    assert _run(bnn, np.ones((1, 12, 12, 1), "float32")).shape == (1, 4)


@pytest.mark.parametrize("call, match", [
    (lambda m: binary.binarize(m, "ternary"), "`scheme` must be one of"),
    (lambda m: binary.binarize(m, "bwn", layers=["bn1"]), "must name Conv2D/Dense"),
    (lambda m: binary.binarize(m, "bwn", layers=["nope"]), "not in the model"),
    (lambda m: binary.binarize(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]),
                               "bwn"), "no layer to binarize"),
    (lambda m: binary.binarize(binary.binarize(m, "bwn", layers=["conv1"]), "bwn",
                               layers=["conv1"]), "must name plain Conv2D"),
    (lambda m: binary.Scheme("x", "ste_sign", activation_scaling=True), "activation_scaling"),
    (lambda m: binary.bop_optimizer(threshold=0), "`threshold` must be > 0"),
    (lambda m: binary.StochasticSign(clip_value=-1), "`clip_value`"),
])
def test_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(sequential_cnn())


def test_depthwise_named_is_refused():
    with pytest.raises(ValueError, match="of class DepthwiseConv2D"):
        binary.binarize(residual_cnn(), "bwn", layers=["res_dw"])


def test_subclassed_is_refused():
    from conftest import Subclassed

    with pytest.raises(TypeError, match="subclassed"):
        binary.binarize(Subclassed(), "bwn")


# ---------------------------------------------------------------- numerics (larq style)


@pytest.mark.parametrize("layer_kind", ["conv", "dense"])
def test_binary_layer_equals_float_layer_on_signed_inputs(layer_kind, rng):
    shape = (2, 6, 6, 3) if layer_kind == "conv" else (2, 10)
    x = rng.normal(size=shape).astype("float32")
    base = (keras.layers.Conv2D(5, 3, padding="same", name="l") if layer_kind == "conv"
            else keras.layers.Dense(5, name="l"))
    model = keras.Sequential([keras.Input(shape[1:]), base])
    bnn = binary.binarize(model, "binarynet", keep_first_last=False)
    kernel, bias = model.get_weights()
    ref = keras.Sequential([keras.Input(shape[1:]), type(base).from_config(base.get_config())])
    ref.set_weights([_np_sign(kernel), bias])
    np.testing.assert_allclose(_run(bnn, x), _run(ref, _np_sign(x)),
                               rtol=1e-5, atol=1e-5)


def test_bwn_scaling_matches_numpy(rng):
    model = keras.Sequential([keras.Input((5, 5, 3)), keras.layers.Conv2D(4, 3, use_bias=False)])
    bnn = binary.binarize(model, "bwn", keep_first_last=False)
    w = model.get_weights()[0]
    alpha = np.abs(w).mean(axis=(0, 1, 2))  # one per output channel
    x = rng.normal(size=(2, 5, 5, 3)).astype("float32")
    patches = np.stack([x[:, i:i + 3, j:j + 3, :] for i in range(3) for j in range(3)], 1)
    ref = np.einsum("npijc,ijck->npk", patches, _np_sign(w) * alpha).reshape(2, 3, 3, 4)
    np.testing.assert_allclose(_run(bnn, x), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_xnor_conv_scaling_matches_numpy(padding, rng):
    model = keras.Sequential([keras.Input((6, 6, 2)),
                              keras.layers.Conv2D(3, 3, padding=padding, name="c")])
    model.layers[0].set_weights([rng.normal(size=(3, 3, 2, 3)).astype("float32"),
                                 rng.normal(size=3).astype("float32")])
    bnn = binary.binarize(model, "xnor", keep_first_last=False)
    w, b = model.get_weights()
    x = rng.normal(size=(2, 6, 6, 2)).astype("float32")
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))) if padding == "same" else x
    alpha = np.abs(w).mean(axis=(0, 1, 2))
    a = np.abs(xp).mean(-1)  # mean over channels; padded zeros count in K (as in the paper)
    size = xp.shape[1] - 2
    ref = np.zeros((2, size, size, 3), "float32")
    for i in range(size):
        for j in range(size):
            patch = np.where(xp[:, i:i + 3, j:j + 3, :] >= 0, 1.0, -1.0)
            if padding == "same":  # larq pads with 0 *after* sign (pad_values=0)
                patch = patch * (np.abs(xp[:, i:i + 3, j:j + 3, :]) > 0)
            k = a[:, i:i + 3, j:j + 3].mean(axis=(1, 2))
            ref[:, i, j] = np.einsum("nijc,ijck->nk", patch, _np_sign(w)) * alpha * k[:, None] + b
    np.testing.assert_allclose(_run(bnn, x), ref, rtol=1e-4, atol=1e-4)


def test_xnor_dense_scaling_matches_numpy(rng):
    model = keras.Sequential([keras.Input((7,)), keras.layers.Dense(3, activation="relu")])
    bnn = binary.binarize(model, "xnor", keep_first_last=False)
    w, b = model.get_weights()
    x = rng.normal(size=(4, 7)).astype("float32")
    k = np.abs(x).mean(-1, keepdims=True)
    ref = _np_sign(x) @ (_np_sign(w) * np.abs(w).mean(0)) * k + b  # ReLU dropped by binarize
    np.testing.assert_allclose(_run(bnn, x), ref, rtol=1e-4, atol=1e-5)


def test_stochastic_sign_mean_matches_probability():
    x = tf.constant(np.linspace(-1.5, 1.5, 13, dtype="float32"))
    q = binary.StochasticSign(seed=None)
    draws = q(tf.tile(x[None], (2000, 1)), training=True).numpy()
    assert set(np.unique(draws)) == {-1.0, 1.0}
    p = np.clip((x.numpy() + 1) / 2, 0, 1)
    np.testing.assert_allclose(draws.mean(0), 2 * p - 1, atol=0.07)  # E[q] = 2p - 1; std of the mean <= 0.023
    # deterministic outside training
    for training in (False, None):
        np.testing.assert_array_equal(q(x, training=training).numpy(), _np_sign(x.numpy()))


def test_stochastic_sign_gradient_is_clipped_ste():
    x = tf.Variable([-2.0, -0.5, 0.3, 1.0, 1.5])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(binary.StochasticSign()(x, training=True))
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0, 1, 1, 1, 0])


def test_stochastic_kernel_is_random_in_fit_and_fixed_in_predict():
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(8, name="d")])
    model.set_weights([np.full((32, 8), 0.1, "float32"), np.zeros(8, "float32")])
    bnn = binary.binarize(model, "stochastic", keep_first_last=False)
    x = np.ones((1, 32), "float32")
    train_outs = {tuple(bnn(x, training=True).numpy().ravel()) for _ in range(5)}
    assert len(train_outs) > 1  # P(+1) = 0.55 per weight: draws differ
    np.testing.assert_array_equal(bnn(x, training=False).numpy(), np.full((1, 8), 32.0))


# ---------------------------------------------------------------- tooling


def test_summary_counts_bits_and_macs():
    bnn = binary.binarize(_bnn("sequential"), "binarynet")
    info = binary.summary(bnn)
    c2 = 3 * 3 * 8 * 8
    d1 = 5 * 5 * 8 * 16  # flatten of the 5x5x8 map after pooling
    assert info["params_by_bits"][1] == c2 + d1
    assert info["macs_by_precision"][1] == c2 * 10 * 10 + d1
    assert 0 < info["binary_mac_fraction"] < 1
    assert info["compression"] > 1 and info["memory_bytes"] < info["float32_bytes"]


def test_flip_ratio_scope_adds_metrics(rng):
    with binary.flip_ratio_scope():
        bnn = binary.binarize(sequential_cnn(), "binarynet")
    bnn.compile(binary.bop_optimizer(), "sparse_categorical_crossentropy")
    history = bnn.fit(rng.random((8, 12, 12, 1)), rng.integers(0, 4, 8), epochs=1, verbose=0)
    assert any(key.startswith("flip_ratio") for key in history.history)
    assert isinstance(binary.flip_ratio(), lq.metrics.FlipRatio)


# ---------------------------------------------------------------- lint


def test_lint_finds_seeded_mistakes():
    L, lql = keras.layers, lq.layers
    kw = {"kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip"}
    bad = keras.Sequential([
        keras.Input((10, 10, 1)),
        lql.QuantConv2D(8, 3, name="first_bin", **kw),                               # first binary
        L.Conv2D(8, 3, activation="relu", name="float_relu"),
        lql.QuantConv2D(8, 3, input_quantizer="ste_sign", name="no_bn", **kw),      # no BN, ReLU
        L.BatchNormalization(name="bn"),
        lql.QuantConv2D(8, 1, input_quantizer="ste_sign", name="one_by_one", **kw),  # 1x1
        L.BatchNormalization(name="bn2"),
        lql.QuantConv2D(8, 3, input_quantizer=lq.quantizers.DoReFa(8), name="eight_bit", **kw),
        L.BatchNormalization(name="bn3"), L.Flatten(),
        lql.QuantDense(4, input_quantizer="ste_sign", name="last_bin", **kw),        # last binary
    ])
    found = {(w.rule, w.layer) for w in binary.lint(bad)}
    assert found == {
        ("binary-first-layer", "first_bin"), ("bn-before-binary", "no_bn"),
        ("relu-before-sign", "no_bn"), ("binary-1x1-conv", "one_by_one"),
        ("activation-bits", "eight_bit"), ("binary-last-layer", "last_bin"),
    }
    assert all(w.rule in binary.RULES and w.layer in str(w) for w in binary.lint(bad))


def test_lint_is_quiet_on_a_good_bnn_and_dense_as_conv():
    bnn = binary.binarize(_bnn("sequential"), "binarynet")
    assert binary.lint(bnn) == []
    assert binary.lint(binary.dense_as_conv(bnn)) == []  # 1x1 conv on a 1x1 map is a Dense


def test_a_recipe_binarize_step_logs_its_summary_once(caplog):
    """The recipe validates the step with binarizable_layers (silent), then runs binarize (logs)."""
    from types import SimpleNamespace

    from edgecompress.recipe.schema import STEPS

    model, kind = sequential_cnn(), STEPS["binarize"]
    params = {"scheme": "binarynet", "keep_first_last": False, "layers": None}
    state = SimpleNamespace(model=model)
    with caplog.at_level("INFO", logger="edgecompress"):
        kind.check(SimpleNamespace(model=model), params)
        kind.run(state, **params)
    summaries = [r.getMessage() for r in caplog.records if "BatchNormalization in front" in r.getMessage()]
    assert len(summaries) == 1 and "fc1, fc2" in summaries[0]
    assert [layer.name for layer in binary.binarizable_layers(model, False)[0]] == \
        state.model.transform_report.transformed


# ---------------------------------------------------------------- dense_as_conv, save/load


@pytest.mark.parametrize("scheme", ["binarynet", "xnor", "bwn"])
def test_dense_as_conv_is_the_same_function(scheme, rng):
    bnn = binary.binarize(_bnn("sequential"), scheme, keep_first_last=False)
    before = weights_fingerprint(bnn)
    conv = binary.dense_as_conv(bnn)
    assert weights_fingerprint(bnn) == before
    assert not any(isinstance(layer, lq.layers.QuantDense) for layer in conv.layers)
    x = rng.random((3, 12, 12, 1), dtype=np.float32)
    np.testing.assert_allclose(_run(conv, x), _run(bnn, x),
                               rtol=1e-4, atol=1e-4)


def test_dense_as_conv_errors():
    with pytest.raises(ValueError, match="no binary QuantDense"):
        binary.dense_as_conv(sequential_cnn())
    with pytest.raises(ValueError, match="must name QuantDense"):
        binary.dense_as_conv(sequential_cnn(), layers=["fc1"])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_keras_save_and_plain_load(scheme, tmp_path, rng):
    bnn = binary.binarize(_bnn("functional"), scheme)
    path = tmp_path / "bnn.keras"
    bnn.save(path)
    loaded = keras.models.load_model(path)
    x = rng.random((2, 12, 12, 1), dtype=np.float32)
    np.testing.assert_allclose(_run(loaded, x), _run(bnn, x),
                               rtol=1e-5, atol=1e-5)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in bnn.layers]


# ---------------------------------------------------------------- LCE export


def _trained_like(model, seed=0):
    """Random BatchNorm statistics, as after training: untrained BN (mean 0, beta 0) turns the
    integer binary-conv results that are exactly 0 into sign ties that LCE's fused threshold and
    Keras break differently."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n),
                               rng.normal(0, 0.3, n), rng.uniform(0.5, 1.5, n)])
    return model


def _lce(model, x):
    import larq_compute_engine as lce
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    data = lce.convert_keras_model(model)
    return data, Interpreter(data).predict(x)


def _count(data, op):
    """How many operators of custom kind ``op`` the flatbuffer's main graph holds."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    codes = [c.customCode for c in model.operatorCodes]
    return sum(codes[o.opcodeIndex] == op.encode() for o in model.subgraphs[0].operators)


def test_dense_as_conv_really_binarizes_in_lce(rng, tmp_path):
    """Through tflite_export's binary mode (LCE + verification in LCE's interpreter). LCE alone
    leaves binary Dense layers float; export() bit-packs them by itself, like dense_as_conv."""
    import larq_compute_engine as lce

    from tflite_export import export

    bnn = binary.binarize(_trained_like(_bnn("sequential")), "binarynet", layers=["c2", "d1", "d2"])
    conv = binary.dense_as_conv(bnn)
    x = rng.normal(size=(32, 12, 12, 1)).astype("float32")
    lce_alone = len(lce.convert_keras_model(bnn))
    fc = export(bnn, tmp_path / "fc.tflite", mode="binary", verify_data=x)
    as_conv = export(conv, tmp_path / "conv.tflite", mode="binary", verify_data=x)
    for report in (fc, as_conv):
        assert report.agreement == 1.0 and report.max_abs_diff < 1e-3
        assert "FULLY_CONNECTED" not in report.ops
        assert report.bytes < lce_alone - 4 * 200 * 16 * 0.8  # d1's 200x16 float kernel is gone
    assert abs(fc.bytes - as_conv.bytes) < 512


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sequential", "functional"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_exports_through_lce_and_verifies(kind, scheme, rng):
    bnn = binary.dense_as_conv(binary.binarize(_trained_like(_bnn(kind)), scheme))
    x = rng.normal(size=(8, 12, 12, 1)).astype("float32")
    data, out = _lce(bnn, x)
    np.testing.assert_allclose(out, _run(bnn, x), rtol=1e-3, atol=1e-3)
    if binary.get(scheme).binary_activations:
        assert _count(data, "LceBconv2d") > 0


def test_nested_and_shared_layers(rng):
    from conftest import multi_io_model, nested_model

    nested = binary.binarize(nested_model(), "xnor", keep_first_last=False)
    assert isinstance(nested.layers[1].layers[0], binary.XnorConv2D)
    multi = binary.binarize(multi_io_model(), "bwn", keep_first_last=False)
    shared = multi.get_layer("shared")
    assert isinstance(shared, lq.layers.QuantDense) and len(shared._inbound_nodes) == 2
    outs = multi([rng.random((2, 6)), rng.random((2, 4))])
    assert [o.shape for o in outs] == [(2, 3), (2, 2)]


# ---------------------------------------------------------------- inputs of binary layers (#22.5, #21.2)


def _mobilenet_stack(size=16, blocks=4):
    """MobileNet v1 blocks: depthwise -> BN -> ReLU6 -> 1x1 conv -> BN -> ReLU6."""
    inp = keras.Input((size, size, 3))
    x = keras.layers.ReLU(6.0, name="stem_relu")(keras.layers.BatchNormalization(name="stem_bn")(
        keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(inp)))
    for i in range(blocks):
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{i}")(x)
        x = keras.layers.ReLU(6.0, name=f"dw{i}_relu")(keras.layers.BatchNormalization(name=f"dw{i}_bn")(x))
        x = keras.layers.Conv2D(16 * (i + 1), 1, use_bias=False, name=f"pw{i}")(x)
        x = keras.layers.ReLU(6.0, name=f"pw{i}_relu")(keras.layers.BatchNormalization(name=f"pw{i}_bn")(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="fc")(x))


def _binary_inputs(model, x):
    quantized = [layer for layer in model.layers if getattr(layer, "input_quantizer", None)]
    probe = keras.Model(model.inputs, [layer.input for layer in quantized])
    outs = probe(x, training=True)
    return dict(zip([layer.name for layer in quantized], outs if isinstance(outs, list) else [outs]))


def test_relu_in_front_of_binary_convs_is_removed(rng):
    """Regression (#22.5): every binary input was >= 0 (all +1), gradients reached 1e9 at step 0."""
    model = _mobilenet_stack()
    x = rng.uniform(0, 1, (8, 16, 16, 3)).astype("float32")
    for scheme in ("binarynet", "xnor"):
        bnn = binary.binarize(model, scheme)
        names = {layer.name for layer in bnn.layers}
        assert not {f"dw{i}_relu" for i in range(4)} & names  # each fed one binarized pw conv
        assert {"stem_relu", "pw0_relu", "pw3_relu"} <= names  # feed a float depthwise / GAP
        for name, value in _binary_inputs(bnn, x).items():
            assert 0.2 < float((value.numpy() >= 0).mean()) < 0.8, name
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(rng.integers(0, 10, 8), bnn(x, training=True))
        grads = tape.gradient(loss, bnn.trainable_variables)
        assert max(float(tf.reduce_max(tf.abs(g))) for g in grads if g is not None) < 1e3
        assert not [w for w in binary.lint(bnn) if w.rule in ("bn-before-binary", "relu-before-sign")]


def test_relu_shared_with_a_float_shortcut_is_kept_and_centred_by_a_new_bn():
    inp = keras.Input((8, 8, 4))
    x = keras.layers.ReLU(name="relu")(keras.layers.Conv2D(8, 3, padding="same", name="c0")(inp))
    y = keras.layers.Conv2D(8, 3, padding="same", name="c1")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", name="c2")(keras.layers.BatchNormalization(name="bn1")(y))
    out = keras.layers.Dense(2, name="fc")(keras.layers.Flatten()(keras.layers.Add()([x, y])))
    bnn = binary.binarize(keras.Model(inp, out), "binarynet")
    assert isinstance(bnn.get_layer("relu"), keras.layers.ReLU)  # the shortcut still gets ReLU
    assert bnn.get_layer("c1").input.node.layer.name == "c1_in_bn"
    assert bnn.get_layer("c2").input.node.layer.name == "bn1"  # already behind a BN: nothing added
    assert set(bnn.transform_report.transformed) == {"c1", "c2"}
    float_only = binary.binarize(keras.Model(inp, out), "bwn")  # float activations: left as they are
    assert "c1_in_bn" not in [layer.name for layer in float_only.layers]


@pytest.mark.parametrize("arch", ["resnet8", "mobilenet_stack"])
def test_binarized_deep_nets_stay_finite_through_20_steps(arch, rng):
    from edgecompress.models import resnet8

    model = resnet8((8, 8, 3)) if arch == "resnet8" else _mobilenet_stack(size=8)
    x = rng.uniform(0, 1, (80, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, 80)
    for scheme in SCHEMES:
        bnn = binary.binarize(model, scheme)
        assert np.isfinite(_run(bnn, x[:4])).all(), scheme
        bnn.compile(binary.bop_optimizer(), "sparse_categorical_crossentropy")
        history = bnn.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 20 steps
        assert np.isfinite(history.history["loss"]).all(), scheme
        bad = [w.name for w in bnn.weights if not np.isfinite(w.numpy()).all()]
        assert not bad, (scheme, bad)
        assert np.isfinite(_run(bnn, x[:4])).all(), scheme


def test_calibrate_batchnorm_sets_moving_statistics_to_the_batch_statistics(rng):
    bnn = binary.binarize(_mobilenet_stack(size=8), "xnor")
    x = rng.uniform(0, 1, (16, 8, 8, 3)).astype("float32")
    norms = [layer for layer in bnn.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(bnn.inputs, [layer.input for layer in norms])
    inputs = [t.numpy().reshape(-1, t.shape[-1]) for t in probe(x, training=True)]
    momenta = [layer.momentum for layer in norms]
    assert binary.calibrate_batchnorm(bnn, x, batch_size=16) is bnn
    for layer, seen in zip(norms, inputs):
        np.testing.assert_allclose(layer.moving_mean.numpy(), seen.mean(0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), seen.var(0, ddof=1), rtol=1e-3, atol=1e-5)
    assert momenta == [layer.momentum for layer in norms]
    with pytest.raises(ValueError, match="`batch_size` must be an int >= 2"):
        binary.calibrate_batchnorm(bnn, x, batch_size=1)
