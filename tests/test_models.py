"""Model builders: shapes, parameter counts against the papers, argument errors."""

import numpy as np
import pytest

import tflite_export
from edgecompress import models
from edgecompress._keras import keras
from edgecompress.models._checks import stride_plan
from tflite_export.micro import to_c_array


def test_resnet8_matches_mlperf_tiny_count():
    model = models.resnet8()
    assert model.count_params() == 78_666  # MLPerf Tiny resnet_v1_eembc, CIFAR-10
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 78_186
    assert model.output_shape == (None, 10)
    assert [layer.name for layer in model.layers if "shortcut" in layer.name] == [
        "stack2_shortcut",
        "stack3_shortcut",
    ]


def test_resnet8_mnist_shape_and_softmax():
    model = models.resnet8((28, 28, 1), 10)
    out = model(np.random.rand(2, 28, 28, 1).astype("float32"), training=False).numpy()
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


MOBILENET_IMAGENET_PARAMS = 3_538_984  # paper's 3.4M (+BN stats); keras.applications, weights=None


def test_mobilenet_v2_imagenet_config_matches_keras_applications():
    model = models.mobilenet_v2((224, 224, 3), 1000, alpha=1.0)  # built by keras.applications
    assert model.count_params() == MOBILENET_IMAGENET_PARAMS
    assert model.get_layer("out_relu").output_shape == (None, 7, 7, 1280)
    # Parameter counts do not depend on resolution or strides: our own small-input builder
    # (3 stride-2 stages at 32x32) must carry exactly the same weights, under the same names.
    own = models.mobilenet_v2((32, 32, 3), 1000, alpha=1.0)
    assert own.get_layer("out_relu").output_shape == (None, 4, 4, 1280)
    assert own.count_params() == MOBILENET_IMAGENET_PARAMS
    assert {w.name: w.shape for w in own.weights} == {w.name: w.shape for w in model.weights}


@pytest.mark.parametrize(
    "shape, alpha, classes, final_map, params",
    [
        ((28, 28, 1), 0.35, 10, (4, 4), 422_730),  # MNIST: 3 stride-2 stages, own builder
        ((96, 96, 3), 0.35, 2, (3, 3), 412_770),  # visual wake words: all 5, keras.applications
    ],
)
def test_mobilenet_v2_small_inputs(shape, alpha, classes, final_map, params):
    model = models.mobilenet_v2(shape, classes, alpha=alpha)
    assert model.get_layer("out_relu").output_shape[1:3] == final_map
    assert model.count_params() == params
    out = model(np.random.rand(2, *shape).astype("float32"), training=False).numpy()
    assert out.shape == (2, classes)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "shape, requested, kept",
    [((224, 224, 3), None, 5), ((96, 96, 3), None, 5), ((32, 32, 3), None, 3),
     ((28, 28, 1), None, 3), ((40, 24, 1), None, 3), ((12, 12, 1), None, 2), ((32, 32, 3), 5, 5)],
)  # fmt: skip
def test_stride_plan(shape, requested, kept):
    assert stride_plan(shape, requested, total=5) == kept


def test_mobilenet_v2_feature_extractor():
    model = models.mobilenet_v2((16, 16, 3), 10, alpha=1.3, include_top=False)
    assert model.output_shape == (None, 4, 4, 1664)  # 1280 widened for alpha > 1


# Trainable parameters of the ImageNet head (torchvision's counts; paper Table 5 rounds them).
SHUFFLENET_PARAMS = {0.5: (1_366_792, 1.4e6), 1.0: (2_278_604, 2.3e6), 1.5: (3_503_624, 3.5e6),
                     2.0: (7_393_996, 7.4e6)}  # fmt: skip


@pytest.mark.parametrize("scale", sorted(SHUFFLENET_PARAMS))
def test_shufflenet_v2_imagenet_head_matches_paper(scale):
    # Counts do not depend on resolution: 32x32 builds faster than 224x224 and has the same weights.
    model = models.shufflenet_v2((32, 32, 3), 1000, scale=scale)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    exact, paper = SHUFFLENET_PARAMS[scale]
    assert trainable == exact
    assert abs(trainable - paper) / paper < 0.03


@pytest.mark.parametrize(
    "shape, classes, final_map, has_pool",
    [
        ((28, 28, 1), 10, (4, 4), False),  # strides: conv1 1, pool dropped, stages 2-4 at 2
        ((16, 16, 1), 3, (4, 4), False),  # stage 2 opens with a stride-1 two-branch unit
        ((96, 96, 3), 2, (3, 3), True),  # the ImageNet strides
    ],
)
def test_shufflenet_v2_small_inputs(shape, classes, final_map, has_pool):
    model = models.shufflenet_v2(shape, classes, scale=0.5)
    assert model.get_layer("conv5_relu").output_shape[1:3] == final_map
    assert ("maxpool" in [layer.name for layer in model.layers]) == has_pool
    out = model(np.random.rand(2, *shape).astype("float32"), training=False).numpy()
    assert out.shape == (2, classes)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_channel_shuffle_and_split_match_numpy_and_reload(tmp_path):
    x = np.random.rand(2, 3, 5, 12).astype("float32")
    expect = x.reshape(2, 3, 5, 2, 6).transpose(0, 1, 2, 4, 3).reshape(2, 3, 5, 12)
    np.testing.assert_array_equal(models.ChannelShuffle(2)(x).numpy(), expect)
    inp = keras.Input((3, 5, 12))
    a, b = models.ChannelSplit(2)(inp)
    out = models.ChannelShuffle(2)(keras.layers.Concatenate()([b, a]))
    model = keras.Model(inp, out)
    expect = np.concatenate([x[..., 6:], x[..., :6]], -1)
    expect = expect.reshape(2, 3, 5, 2, 6).transpose(0, 1, 2, 4, 3).reshape(2, 3, 5, 12)
    np.testing.assert_array_equal(model(x).numpy(), expect)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(reloaded(x).numpy(), expect)


@pytest.mark.parametrize(
    "kwargs, params",
    [
        # conv 8 (3*3*1*8 + BN 32) + conv 16 (8*9*16 + BN 64) + fc 7*7*16*32+32 + 32*10+10
        (dict(filters=(8, 16), dense=(32,)), 72 + 32 + 1152 + 64 + 25_120 + 330),
        (dict(filters=(8,), dense=(), batch_norm=False, global_pool=True), 80 + 90),
    ],
)
def test_small_cnn_counts_and_runs(kwargs, params):
    model = models.small_cnn((28, 28, 1), 10, **kwargs)
    assert model.count_params() == params
    out = model(np.random.rand(2, 28, 28, 1).astype("float32")).numpy()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


BAD_ARGS = [
    (models.shufflenet_v2, dict(input_shape=(32, 32, 3), num_classes=10, scale=0.75), "`scale`"),
    (models.mobilenet_v2, dict(input_shape=(32, 32, 3), num_classes=10, alpha=0.25), "`alpha`"),
    (models.mobilenet_v2, dict(input_shape=(32, 32, 3), num_classes=10, alpha=1.5), "`alpha`"),
    (models.mobilenet_v2, dict(input_shape=(6, 6, 3), num_classes=10), "too small"),
    (models.mobilenet_v2, dict(input_shape=(16, 16, 3), num_classes=10, stride_stages=5),
     "too small for 5 stride-2 stages"),
    (models.shufflenet_v2, dict(input_shape=(32, 32, 3), num_classes=10, stride_stages=6),
     "`stride_stages`"),
    (models.resnet8, dict(input_shape=(4, 4, 3)), "too small"),
    (models.small_cnn, dict(input_shape=(7, 7, 1), filters=(8, 8, 8)), "too small"),
    (models.small_cnn, dict(filters=()), "`filters`"),
    (models.small_cnn, dict(dense=(0,)), "`dense`"),
    (models.lenet5, dict(input_shape=(28, 28)), "`input_shape`"),
    (models.lenet5, dict(dropout=1.0), "`dropout` must be a number in"),
] + [(builder, dict(num_classes=1), "`num_classes` must be an int >= 2")
     for builder in (models.lenet5, models.lenet_300_100, models.resnet8, models.mobilenet_v2,
                     models.shufflenet_v2, models.small_cnn)]  # fmt: skip


def test_lenet5_dropout_adds_no_parameters_and_is_inactive_at_inference():
    plain, dropped = models.lenet5(), models.lenet5(dropout=0.5)
    assert dropped.count_params() == plain.count_params() == 431_080
    assert [layer.name for layer in dropped.layers if "drop" in layer.name] == ["drop1", "drop2"]
    dropped.set_weights(plain.get_weights())
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(dropped(x, training=False), plain(x), rtol=1e-6)
    assert not np.allclose(dropped(x, training=True), plain(x))


@pytest.mark.parametrize("builder, kwargs, message", BAD_ARGS)
def test_bad_arguments_get_one_line_errors(builder, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        builder(**kwargs)
    assert "\n" not in str(info.value) and "Received:" in str(info.value)


TINY_BUILDS = [
    ("lenet5", lambda: models.lenet5((16, 16, 1), 3)),
    ("lenet_300_100", lambda: models.lenet_300_100((8, 8, 1), 3)),
    ("resnet8", lambda: models.resnet8((8, 8, 1), 3)),
    ("mobilenet_v2", lambda: models.mobilenet_v2((8, 8, 1), 3, alpha=0.35)),
    ("shufflenet_v2", lambda: models.shufflenet_v2((8, 8, 1), 3, scale=0.5)),
    ("small_cnn", lambda: models.small_cnn((8, 8, 1), 3, filters=(4, 8), dense=(8,))),
]


@pytest.mark.slow  # the converter needs 10-60 s per backbone (minutes on a loaded machine)
@pytest.mark.parametrize("name, build", TINY_BUILDS, ids=[n for n, _ in TINY_BUILDS])
def test_every_builder_exports_full_int8_for_tflite_micro(name, build, tmp_path):
    model = build()
    rng = np.random.default_rng(0)
    x = rng.random((32, *model.input_shape[1:]), dtype=np.float32)
    y = rng.integers(0, 3, 32)
    report = tflite_export.export(
        model, tmp_path / f"{name}.tflite", mode="int8", int8_io=True,
        representative_data=x, verify_data=(x, y),
    )  # fmt: skip
    # int8_io=True: export refuses any float op, boundary included (FloatOpsError).
    assert report.agreement is not None and report.max_abs_diff < 0.05
    micro = to_c_array(report.path, tmp_path, name=f"g_{name}")
    assert micro.unsupported_ops == [], micro.unsupported_ops
    assert micro.flash_bytes == report.bytes


def test_ds_cnn_counts_and_shapes():
    # stem 10*4*1*64 + BN 4*64; 4 blocks of (3*3*64 + BN 256 + 64*64 + BN 256); dense 64*12 + 12
    model = models.ds_cnn()
    assert model.count_params() == 2560 + 256 + 4 * (576 + 256 + 4096 + 256) + 780 == 24332
    assert tuple(model.outputs[0].shape) == (None, 12)
    small = models.ds_cnn((30, 1, 40), num_classes=3, filters=8, blocks=2)
    assert tuple(small.outputs[0].shape) == (None, 3)
    with pytest.raises(ValueError, match="`filters` must be an int >= 1. Received: filters=0"):
        models.ds_cnn(filters=0)
