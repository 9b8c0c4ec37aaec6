"""The quantization family on real graphs: the architecture matrix and the traced regressions.

Each cell either works (output shape equal, finite outputs, the family's figure changed: <= k
distinct kernel values after clustering, fake-quant wrappers for QAT, PQ codebooks) or refuses
with a one-line message naming the layer and the reason.
"""

import logging

import numpy as np
import pytest

from edgecompress import quantization as Q
from edgecompress._keras import keras, tf
from edgecompress.quantization import product, qat_graph
from edgecompress.surgery import flatten, iter_layers
from tests.conftest import weights_fingerprint

KERNELS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)


def ds_cnn():
    """MLPerf Tiny keyword spotting DS-CNN (49x10x1), two depthwise-separable blocks."""
    inp = keras.Input((49, 10, 1))
    x = keras.layers.Conv2D(16, (10, 4), strides=2, padding="same", name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    for i in range(2):
        x = keras.layers.DepthwiseConv2D(3, padding="same", name=f"dw{i}")(x)
        x = keras.layers.BatchNormalization(name=f"dw{i}_bn")(x)
        x = keras.layers.ReLU(name=f"dw{i}_relu")(x)
        x = keras.layers.Conv2D(16, 1, name=f"pw{i}")(x)
        x = keras.layers.BatchNormalization(name=f"pw{i}_bn")(x)
        x = keras.layers.ReLU(name=f"pw{i}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(12, activation="softmax", name="fc")(x), name="ds_cnn")


def fc_autoencoder(blocks=(128, 128, 8, 128, 128)):
    """MLPerf Tiny anomaly-detection autoencoder (640 inputs, Dense->BN->ReLU blocks, MSE)."""
    inp = keras.Input((640,))
    x = inp
    for i, units in enumerate(blocks):
        x = keras.layers.Dense(units, name=f"fc{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inp, keras.layers.Dense(640, name="out")(x), name="fc_autoencoder")


def conv1d_net():
    inp = keras.Input((64, 3))
    x = keras.layers.Conv1D(8, 5, activation="relu", name="c1")(inp)
    x = keras.layers.MaxPooling1D(2, name="pool")(x)
    x = keras.layers.Conv1D(16, 3, name="c2")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(4, name="fc")(x), name="conv1d_net")


def separable_layernorm():
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.ZeroPadding2D(1, name="pad"),
        keras.layers.SeparableConv2D(8, 3, name="sep"),
        keras.layers.LayerNormalization(name="ln"),
        keras.layers.ReLU(name="relu"),
        keras.layers.Conv2D(8, 3, dilation_rate=2, name="dilated"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(4, name="fc"),
    ], name="sep_ln")


def grouped_unet():
    inp = keras.Input((16, 16, 8))
    a = keras.layers.Conv2D(16, 3, padding="same", groups=4, activation="relu", name="grouped")(inp)
    b = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="down")(a)
    c = keras.layers.Conv2DTranspose(16, 3, strides=2, padding="same", name="up")(b)
    x = keras.layers.Concatenate(name="skip")([a, c])
    return keras.Model(inp, keras.layers.Conv2D(4, 1, name="head")(x), name="grouped_unet")


def nested_two_heads():
    block = keras.Sequential([
        keras.Input((8, 8, 8)),
        keras.layers.Conv2D(8, 3, padding="same", name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(name="relu"),
    ], name="block")
    inp = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = block(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, [keras.layers.Dense(4, name="cls")(x), keras.layers.Dense(1, name="reg")(x)],
                       name="nested")


def mobilenet():
    return keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=4)


def mobilenet_v3_small():
    return keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75, weights=None, classes=4)


LIGHT = [ds_cnn, fc_autoencoder, conv1d_net, separable_layernorm, grouped_unet, nested_two_heads, mobilenet,
         mobilenet_v3_small]
HEAVY = ["EfficientNetB0", "DenseNet121"]


@pytest.fixture(scope="module")
def heavy():
    """The two heavy keras.applications models, built once for the module."""
    keras.utils.set_random_seed(0)
    return {name: getattr(keras.applications, name)(input_shape=(32, 32, 3), weights=None, classes=4)
            for name in HEAVY}


def _model(make, request):
    if isinstance(make, str):
        return request.getfixturevalue("heavy")[make]
    keras.utils.set_random_seed(0)
    return make()


def _inputs(model, n=4, seed=0):
    shape = (n, *model.inputs[0].shape[1:])
    scale = 255.0 if model.name.startswith(("efficientnet", "MobilenetV3")) else 1.0
    return (np.random.default_rng(seed).random(shape) * scale).astype("float32")


def _outputs(model, x):
    out = model(x)
    return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]


def _check_works(model, result, x):
    before, after = _outputs(model, x), _outputs(result, x)
    assert [o.shape for o in after] == [o.shape for o in before]
    assert all(np.isfinite(o).all() for o in after)


MATRIX = [pytest.param(m, id=m.__name__) for m in LIGHT] + [
    pytest.param(name, id=name, marks=pytest.mark.slow) for name in HEAVY]


@pytest.mark.parametrize("make", MATRIX)
def test_matrix_cluster(make, request):
    model = _model(make, request)
    before = weights_fingerprint(model)
    clustered = Q.cluster_weights(model, clusters=4)
    stripped = Q.strip(clustered)
    assert weights_fingerprint(model) == before
    _check_works(model, stripped, _inputs(model))
    report = clustered.transform_report
    assert report.transformed
    for layer in iter_layers(stripped):
        if isinstance(layer, KERNELS):
            kernel = layer.depthwise_kernel if isinstance(layer, keras.layers.DepthwiseConv2D) else layer.kernel
            assert layer.name in report.transformed
            assert len(np.unique(kernel.numpy())) <= 4, layer.name
        assert not isinstance(layer, Q.ClusterableDepthwiseConv2D)


@pytest.mark.parametrize("make", MATRIX)
def test_matrix_qat(make, request):
    model = _model(make, request)
    before = weights_fingerprint(model)
    x = _inputs(model, 8)
    qat = Q.quantize_aware(model, calibration_data=x)
    assert weights_fingerprint(model) == before
    _check_works(model, qat, x[:4])
    wrapped = {layer.name.removeprefix("quant_") for layer in qat.layers
               if type(layer).__name__ == "QuantizeWrapperV2"}
    report = qat.transform_report
    split = {layer.name for layer in iter_layers(model) if isinstance(layer, keras.layers.SeparableConv2D)}
    assert wrapped and set(report.transformed) - wrapped <= split  # tfmot splits separable convs
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in qat.layers)
    for layer in qat.layers:  # every kernel is fake-quantized, or left float with its reason
        if isinstance(layer, KERNELS + (keras.layers.SeparableConv2D,)):
            assert layer.name in report.skipped, layer.name
    if make is separable_layernorm:
        assert "LayerNormalization" in report.skipped["ln"]
    if make is mobilenet_v3_small:  # the hard-swish arithmetic became 1x1 depthwise affines
        assert sum("affine" in why for why in report.rewritten.values()) >= 10


@pytest.mark.parametrize("make", MATRIX)
def test_matrix_product_quantize(make, request):
    model = _model(make, request)
    pq = Q.product_quantize(model, subvector_size=4, codebook_size=4)
    _check_works(model, pq, _inputs(model))
    report = pq.transform_report
    quantized = [layer for layer in iter_layers(pq) if isinstance(layer, product.PQ_LAYERS)]
    assert quantized and sorted(report.transformed) == sorted(layer.name for layer in quantized)
    for layer in quantized:
        assert layer.codebooks.shape[1] <= 4
        assert len(np.unique(layer.assignments.numpy())) <= 4
    assert all(why and "\n" not in why for why in report.skipped.values())  # one line, with the reason
    if make is grouped_unet:
        assert "groups=4" in report.skipped["grouped"] and "`layers`" not in report.skipped["grouped"]
        assert "Conv2DTranspose" in report.skipped["up"]


# ---------------------------------------------------------------- #22.2: TFOpLambda arithmetic

def _arithmetic_model():
    keras.utils.set_random_seed(0)  # 8-bit error relative to the output's max varies with the init
    inp = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    y = keras.layers.ReLU(6.0, name="relu6")(x + 3.0) * (1.0 / 6.0)  # MobileNetV3 hard-sigmoid
    z = keras.layers.Multiply(name="hard_swish")([x, y])
    z = 2.0 - z / 4.0
    z = z * np.arange(1, 5, dtype="float32")
    se = keras.layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(z)
    se = keras.layers.Conv2D(2, 1, activation="swish", name="se_reduce")(se)  # EfficientNet's SE
    se = keras.layers.Conv2D(4, 1, activation="sigmoid", name="se_expand")(se)
    z = keras.layers.Multiply(name="se_excite")([z, se])
    return keras.Model(inp, keras.layers.Flatten(name="flat")(z))


def test_qat_rewrites_tfoplambda_constant_arithmetic():
    """Regression for #22.2: `x + 3.0` crashed inside tfmot ('list' object has no attribute 'dtype')."""
    model = _arithmetic_model()
    x = np.random.default_rng(1).normal(size=(32, 6, 6, 3)).astype("float32")
    qat = Q.quantize_aware(model, calibration_data=x)
    assert not any(type(layer).__name__ == "TFOpLambda" for layer in qat.layers)
    rewritten = qat.transform_report.rewritten
    assert len([n for n in rewritten if n.startswith("tf.")]) == 5
    assert "split" in rewritten["se_reduce"] and "se_expand" not in rewritten
    np.testing.assert_allclose(qat(x).numpy(), model(x).numpy(), atol=0.1 * np.abs(model(x)).max())
    exact = qat_graph.prepare(model, qat_graph.QATReport("t"))  # the float rewrite alone is exact
    np.testing.assert_allclose(exact(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_qat_refuses_tfoplambda_it_cannot_rewrite():
    inp = keras.Input((8,))
    model = keras.Model(inp, keras.layers.Dense(4)(tf.math.square(inp)))
    with pytest.raises(ValueError, match=r"layer 'tf.math.square' \(TFOpLambda `math.square`\).*Keras layer"):
        Q.quantize_aware(model)


def test_qat_folds_and_affines_are_exact_in_float():
    """BN after a conv is folded, other BN / Rescaling / Normalization become 1x1 depthwise affines."""
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inp)
    norm = keras.layers.Normalization(name="norm", mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 4.0])
    x = norm(x)
    x = keras.layers.Conv2D(6, 3, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn_folded")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.BatchNormalization(name="bn_after_relu")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(5, name="fc")(x)
    x = keras.layers.BatchNormalization(name="bn_dense")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(size=n), rng.normal(size=n), rng.uniform(0.5, 2, n)])
    report = qat_graph.QATReport("t")
    flat = qat_graph.prepare(model, report)
    assert report.rewritten["bn_folded"] == "folded into 'conv'"
    assert report.rewritten["bn_dense"] == "folded into 'fc'"
    for name in ("rescale", "norm", "bn_after_relu"):
        assert "affine" in report.rewritten[name]
        assert isinstance(flat.get_layer(name), keras.layers.DepthwiseConv2D)
    x = rng.uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(flat(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_qat_flattens_nested_models():
    keras.utils.set_random_seed(0)
    model = nested_two_heads()
    x = _inputs(model, 8)
    qat = Q.quantize_aware(model, calibration_data=x)
    assert not any(isinstance(layer, keras.Model) for layer in qat.layers)
    assert {"conv", "stem", "cls", "reg"} <= {layer.name.removeprefix("quant_") for layer in qat.layers}
    for a, b in zip(_outputs(model, x), _outputs(qat, x)):
        np.testing.assert_allclose(a, b, atol=0.1 * np.abs(a).max() + 1e-3)


def test_flatten_keeps_shared_blocks_and_renames_clashes():
    block = keras.Sequential([keras.Input((6,)), keras.layers.Dense(6, name="fc"), keras.layers.ReLU()],
                             name="block")
    inp = keras.Input((6,))
    x = keras.layers.Dense(6, name="stem")(inp)
    inner = keras.Model(block.inputs, keras.layers.Dense(6, name="stem")(block.outputs[0]), name="inner")
    y = block(inner(x))
    model = keras.Model(inp, keras.layers.Dense(2, name="head")(block(y)))
    flat = flatten(model)
    assert not any(isinstance(layer, keras.Model) for layer in flat.layers)
    assert "inner_stem" in [layer.name for layer in flat.layers]
    assert len(flat.weights) == len(model.weights)  # block's fc is shared, not duplicated
    x = np.random.default_rng(0).random((3, 6)).astype("float32")
    np.testing.assert_allclose(flat(x).numpy(), model(x).numpy(), rtol=1e-6)


# ---------------------------------------------------------------- #22.3 and #17.4: PQ selection

def test_pq_skips_conv_transpose_and_grouped_by_default():
    """Regression for #22.3: Conv2DTranspose was quantized as a Conv2D (crash); a grouped conv
    was refused with a message about `layers`, which the user never passed."""
    model = grouped_unet()
    x = _inputs(model, 8)
    pq = Q.product_quantize(model, 4, 4, calibration_data=x)
    assert isinstance(pq.get_layer("up"), keras.layers.Conv2DTranspose)
    assert isinstance(pq.get_layer("down"), Q.PQConv2D) and isinstance(pq.get_layer("head"), Q.PQConv2D)
    assert "kernels are laid out" in pq.transform_report.skipped["up"]
    with pytest.raises(ValueError, match=r"'up' \(Conv2DTranspose\).*not supported"):
        Q.product_quantize(model, 4, 4, layers=["up"])
    with pytest.raises(ValueError, match=r"'grouped' \(Conv2D\).*groups=4"):
        Q.product_quantize(model, 4, 4, layers=["grouped"])


def test_pq_skips_layers_subvector_does_not_divide(caplog):
    """#17.4: a first conv with 3 input channels no longer refuses the whole model."""
    model = mobilenet()
    pq = Q.product_quantize(model, 4, 4)
    assert "does not divide its input channels (3)" in pq.transform_report.skipped["conv1"]
    assert isinstance(pq.get_layer("conv_pw_1"), Q.PQConv2D)
    with pytest.raises(ValueError, match=r"`layers` names layer 'conv1'.*does not divide"):
        Q.product_quantize(model, 4, 4, layers=["conv1"])
    with caplog.at_level(logging.WARNING, logger="edgecompress"):
        pq = Q.product_quantize(conv1d_net(), 3, 4)  # Conv1D unsupported, 3 does not divide fc's 16
    assert set(pq.transform_report.skipped) == {"c1", "c2", "fc"}
    assert "product_quantize changed no layer" in caplog.text


# ---------------------------------------------------------------- #22.6 and #21.3: PQ that generalizes

@pytest.fixture(scope="module")
def autoencoder_and_digits():
    from edgecompress import datasets

    (x, _), (held, _) = datasets.load("mnist5k")
    x, held = x.reshape(len(x), -1)[:, 72:712], held.reshape(len(held), -1)[:, 72:712]  # 640 real pixels
    keras.utils.set_random_seed(0)
    model = fc_autoencoder()
    model.compile("adam", "mse")
    model.fit(x[:512], x[:512], epochs=2, batch_size=64, verbose=0)
    return model, x, held[:256]


def _mse(model, pq, x):
    return float(np.mean((pq.predict(x, verbose=0) - model.predict(x, verbose=0)) ** 2))


def test_pq_refinement_stays_bounded_on_dead_dimensions(autoencoder_and_digits, caplog):
    """Regression for #22.6: on 32 calibration digits (always-zero border pixels, dead ReLUs) the
    ridge solve gave codewords ~170x the largest weight and a held-out error ~1000x worse."""
    model, x, held = autoencoder_and_digits
    with caplog.at_level(logging.WARNING, logger="edgecompress"):
        pq = Q.product_quantize(model, 4, 16, calibration_data=x[:32])
    assert "calibration_data is small for codebook_size=16" in caplog.text
    for layer in pq.layers:
        if isinstance(layer, Q.PQDense):
            assert np.abs(layer.codebooks.numpy()).max() <= 4 * np.abs(model.get_layer(layer.name).kernel).max()
    plain = Q.product_quantize(model, 4, 16)
    assert _mse(model, pq, held) < _mse(model, plain, held)


def test_pq_generalizes_with_holdout(autoencoder_and_digits):
    """#21.3: held-out error within 2x of the calibration error, with the defaults."""
    model, x, held = autoencoder_and_digits
    cal = x[:512]
    pq = Q.product_quantize(model, 4, 16, calibration_data=cal)
    assert _mse(model, pq, held) <= 2 * _mse(model, pq, cal)


def test_qcnn_refine_stops_when_held_out_error_rises():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 32))
    x_fit = rng.normal(size=(12, 8)) * np.r_[np.ones(4), np.zeros(4)]  # half the dims never excited
    x_held = rng.normal(size=(64, 8))
    books, assign = product._quantize_matrix(w, 2, 4)
    *_, errors = product._qcnn_refine(x_fit, w, books, assign, sweeps=10, x_held=x_held)
    assert len(errors) < 11 or all(b <= a for a, b in zip(errors, errors[1:]))
    best_books, best_assign, _ = product._qcnn_refine(x_fit, w, books, assign, sweeps=10, x_held=x_held)
    kernel = product._decode_matrix(best_books, best_assign)
    held = np.linalg.norm(x_held @ kernel - x_held @ w) / np.linalg.norm(x_held @ w)
    assert held == pytest.approx(min(errors), rel=1e-4)


def test_qcnn_blocked_refinement_equals_one_residual_pass_per_subspace(monkeypatch):
    """The blocked residual (#21 scale) gives the sequential Q-CNN result of ``block=1`` (in
    float64, where rounding cannot flip an assignment), and the float32 default the same errors."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(40, 24))
    x, x_held = rng.normal(size=(200, 40)), rng.normal(size=(50, 40))
    books, assign = product._quantize_matrix(w, 2, 6)
    single = product._qcnn_refine(x, w, books, assign, sweeps=3, x_held=x_held, block=1)
    monkeypatch.setattr(product, "REFINE_DTYPE", np.float64)
    one = product._qcnn_refine(x, w, books, assign, sweeps=3, x_held=x_held, block=1)
    for block in (3, 64):
        blocked = product._qcnn_refine(x, w, books, assign, sweeps=3, x_held=x_held, block=block)
        np.testing.assert_array_equal(blocked[1], one[1])
        np.testing.assert_allclose(blocked[0], one[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(blocked[2], one[2], rtol=1e-9)
    np.testing.assert_allclose(single[2], one[2], rtol=1e-4)


def test_pq_kmeans_on_a_sample_for_wide_kernels():
    w = np.random.default_rng(0).normal(size=(8, 5000)).astype("float32")
    books, assign = product._quantize_matrix(w, 4, 8, max_points=512)
    assert books.shape == (2, 8, 4) and assign.shape == (2, 5000)
    err = np.linalg.norm(product._decode_matrix(books, assign) - w) / np.linalg.norm(w)
    full_books, full_assign = product._quantize_matrix(w, 4, 8, max_points=5000)
    full = np.linalg.norm(product._decode_matrix(full_books, full_assign) - w) / np.linalg.norm(w)
    assert err < 1.1 * full


# ---------------------------------------------------------------- #17.2 and #16.6: clustering

def test_cluster_depthwise_kernels_fine_tune_and_strip():
    """#17.2: DepthwiseConv2D kernels kept up to 2,304 distinct values after strip."""
    model = ds_cnn()
    clustered = Q.cluster_weights(model, clusters=8)
    clustered.compile("adam", "sparse_categorical_crossentropy")
    x = _inputs(model, 16)
    clustered.fit(x, np.arange(16) % 12, epochs=1, verbose=0)
    stripped = Q.strip(clustered)
    for name in ("dw0", "dw1"):
        layer = stripped.get_layer(name)
        assert type(layer) is keras.layers.DepthwiseConv2D
        assert len(np.unique(layer.depthwise_kernel.numpy())) <= 8
    np.testing.assert_allclose(stripped(x).numpy(), clustered(x).numpy(), atol=1e-5)


def test_cluster_reports_unclusterable_weights(caplog):
    model = separable_layernorm()
    with caplog.at_level(logging.WARNING, logger="edgecompress"):
        clustered = Q.cluster_weights(model, clusters=4)
    skipped = clustered.transform_report.skipped
    assert "SeparableConv2D has no clustering rule" in skipped["sep"]
    assert "LayerNormalization" in skipped["ln"]
    with caplog.at_level(logging.WARNING, logger="edgecompress"):
        inp = keras.Input((4,))
        Q.cluster_weights(keras.Model(inp, keras.layers.LayerNormalization()(inp)), clusters=2)
    assert "cluster_weights changed no layer" in caplog.text


def test_packed_lenet5_at_default_init_is_10x_under_float32(tmp_path):
    """#16.6: 16 clusters with the default init reach >= 10x under float32 LeNet-5.

    Trained weights are bell-shaped; the test gives LeNet-5 Laplace-distributed kernels of the
    trained model's scale instead of training it.
    """
    from edgecompress.models import lenet5

    keras.utils.set_random_seed(0)
    model = lenet5()
    rng = np.random.default_rng(0)
    model.set_weights([rng.laplace(scale=0.02, size=w.shape).astype("float32") for w in model.get_weights()])
    float_bytes = 4 * model.count_params()
    packed = Q.save_packed(Q.strip(Q.cluster_weights(model, Q.DEFAULT_CLUSTERS)), tmp_path / "l5.ecpk")
    assert float_bytes / packed >= 10
    kmeanspp = Q.save_packed(Q.strip(Q.cluster_weights(model, 16, init="kmeans++")), tmp_path / "pp.ecpk")
    assert kmeanspp > packed


# ---------------------------------------------------------------- #17.6: scalar weights report

def test_scalar_reports_conv1d_quantized_and_separable_left():
    model = conv1d_net()
    q, _ = Q.quantize_weights(model, bits=3)
    assert sorted(q.transform_report.transformed) == ["c1", "c2", "fc"]
    for name in ("c1", "c2"):
        kernel = q.get_layer(name).kernel.numpy()
        assert max(len(np.unique(kernel[..., c])) for c in range(kernel.shape[-1])) <= 2 ** 3
    q, _ = Q.quantize_weights(separable_layernorm(), bits=4)
    assert set(q.transform_report.skipped) == {"sep", "ln"}


def test_long_transforms_log_progress_per_layer(monkeypatch, caplog):
    from edgecompress import _progress

    monkeypatch.setattr(_progress, "SHOW_AFTER_SECONDS", 0.0)
    model = fc_autoencoder((16, 8))
    with caplog.at_level(logging.INFO, logger="edgecompress"):
        Q.product_quantize(model, 4, 4)
        Q.cluster_weights(model, 4)
    assert "product_quantize: layer 3/3 'out'" in caplog.text
    assert "cluster_weights: layer 1/3 'fc0'" in caplog.text


def test_qat_int8_export_is_full_integer_and_left_float_is_named(tmp_path):
    """End to end: the rewritten arithmetic converts to a verified int8 file with no float op;
    a LayerNormalization the report leaves float is what the int8 export names."""
    import tflite_export
    from tflite_export.convert import FloatOpsError

    model = _arithmetic_model()
    x = np.random.default_rng(1).normal(size=(32, 6, 6, 3)).astype("float32")
    qat = Q.quantize_aware(model, calibration_data=x)
    report = tflite_export.export(qat, tmp_path / "a.tflite", "int8", verify_data=x)
    assert report.max_abs_diff < 0.05 * np.abs(qat(x).numpy()).max()
    assert "DEPTHWISE_CONV_2D" in report.ops and "MUL" in report.ops
    layernorm = separable_layernorm()
    qat = Q.quantize_aware(layernorm, calibration_data=_inputs(layernorm, 8))
    assert "MEAN, SQUARED_DIFFERENCE, RSQRT" in qat.transform_report.skipped["ln"]
    with pytest.raises(FloatOpsError, match=r"RSQRT \(sep_ln/ln/"):
        tflite_export.export(qat, tmp_path / "ln.tflite", "int8")
