"""tflite_export.export: every mode verified, int8 float-op check, atomic writes, argument errors."""

from unittest import mock

import numpy as np
import pytest
from _export_models import digits, listing, tiny_larq, tiny_lenet, trained
from conftest import Subclassed, weights_fingerprint

import tflite_export
from edgecompress._keras import keras, tf
from tflite_export import ExportReport, FloatOpsError, VerificationError, export, runtime
from tflite_export.convert import representative_dataset

FIELDS = ["path", "mode", "bytes", "gzip_bytes", "ops", "agreement", "accuracy",
          "keras_accuracy", "max_abs_diff", "rel_l2", "outputs", "runtime", "flash_bytes", "arena",
          "tflm_agreement", "tflm_outputs", "latency_us", "notes", "micro_compression"]


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def model(data):
    (x, y), _ = data
    return trained(tiny_lenet(), x, y)


@pytest.fixture(scope="module")
def float_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("f") / "f.tflite"
    export(model, path, "float32")
    return path


@pytest.fixture(scope="module")
def float_bytes(float_file):
    return float_file.stat().st_size


@pytest.mark.parametrize(
    "mode, int8_io, min_agreement, max_ratio, needs",
    [
        ("float32", False, 1.0, 1.0, None),
        ("dynamic", False, 0.97, 0.5, None),
        ("float16", False, 0.99, 0.6, "DEQUANTIZE"),
        ("int8", False, 0.95, 0.5, "QUANTIZE"),
        ("int8", True, 0.95, 0.5, None),
        ("int16x8", False, 0.97, 0.6, None),
    ],
)
def test_modes_pass_verification(model, data, tmp_path, float_bytes, mode, int8_io,
                                 min_agreement, max_ratio, needs):
    (x, _), test = data
    before = weights_fingerprint(model)
    path = tmp_path / f"{mode}.tflite"
    report = export(model, path, mode, representative_data=x, int8_io=int8_io,
                    verify_data=test, min_agreement=min_agreement)
    assert weights_fingerprint(model) == before
    assert isinstance(report, ExportReport) and list(report.to_dict()) == FIELDS
    assert report.bytes == path.stat().st_size and report.gzip_bytes > 0
    assert report.bytes <= max_ratio * float_bytes + 1
    assert report.agreement >= min_agreement
    assert abs(report.accuracy - report.keras_accuracy) <= 0.05
    assert "CONV_2D" in report.ops and (needs is None or needs in report.ops)
    runner = runtime.Runner(path)
    if int8_io:
        assert runner.input_dtype == np.int8 and runner.output_dtype == np.int8
        assert "QUANTIZE" not in report.ops and "DEQUANTIZE" not in report.ops
    if mode == "int8":
        types = {t["type"] for t in runtime.inspect(path).tensors if t["constant"]}
        assert "FLOAT32" not in types
    assert listing(tmp_path) == [path.name]


def test_binary_larq_model(data, tmp_path):
    (x, y), test = data
    model = trained(tiny_larq(), x, y, steps=20)
    report = export(model, tmp_path / "b.tflite", "binary", verify_data=(test[0][:40], test[1][:40]),
                    min_agreement=0.9)
    assert "LceBconv2d" in report.ops
    assert report.max_abs_diff < 1e-3
    float_report = export(model, tmp_path / "f.tflite", "float32")
    assert report.bytes < float_report.bytes


def test_binary_needs_larq_layers(model, tmp_path):
    with pytest.raises(ValueError, match="larq"):
        export(model, tmp_path / "b.tflite", "binary")


def test_int8_float_ops_are_listed_and_nothing_written(data, tmp_path):
    (x, _), _ = data
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3)(inp)
    h = keras.layers.Lambda(tf.math.floor, name="floor")(h)
    out = keras.layers.Dense(3)(keras.layers.Flatten()(h))
    with pytest.raises(FloatOpsError, match=r"float ops.*FLOOR"):
        export(keras.Model(inp, out), tmp_path / "m.tflite", "int8", representative_data=x[:20])
    assert listing(tmp_path) == []


def test_float_op_check_by_mock(model, data, tmp_path):
    """Any float tensor in an int8 file fails, whichever op holds it."""
    (x, _), _ = data
    real = runtime.inspect

    def floaty(raw):
        info = real(raw)
        conv = next(d for d in info.op_details if d["op"] == "CONV_2D")
        info.tensors[conv["outputs"][0]]["type"] = "FLOAT32"
        return info

    with mock.patch.object(runtime, "inspect", floaty):
        with pytest.raises(FloatOpsError, match="CONV_2D"):
            export(model, tmp_path / "m.tflite", "int8", representative_data=x[:20])
    assert listing(tmp_path) == []


class _WrongRunner:
    """A runtime that answers at random: a file that disagrees with its model."""

    backend = "wrong"

    def __init__(self, tflite, backend="auto"):
        self.output_names = ["fc2"]

    def predict(self, x, batch_size=64):
        return np.random.default_rng(0).random((len(x), 10), dtype=np.float32)


def test_failed_verification_writes_nothing_and_keeps_old_file(model, data, tmp_path):
    _, test = data
    path = tmp_path / "m.tflite"
    path.write_bytes(b"old")
    with mock.patch("tflite_export.verify.Runner", _WrongRunner):
        with pytest.raises(VerificationError, match=r"agreement 0\.\d+ < min_agreement=0.99") as info:
            export(model, path, "float32", verify_data=test, min_agreement=0.99)
    assert isinstance(info.value, ValueError) and info.value.report.agreement < 0.5
    assert path.read_bytes() == b"old" and listing(tmp_path) == ["m.tflite"]


def test_failed_write_leaves_no_temp_file(model, tmp_path):
    with mock.patch("os.replace", side_effect=OSError("disk full")):
        with pytest.raises(OSError, match="disk full"):
            export(model, tmp_path / "m.tflite", "float32")
    assert listing(tmp_path) == []


def test_overwrite_false_refuses_existing(model, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite"):
        export(model, path, "float32", overwrite=False)
    assert path.read_bytes() == b"old"


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_model_from_path(model, data, tmp_path, fmt):
    _, test = data
    saved = tmp_path / f"m.{fmt}"
    model.save(saved)
    report = export(str(saved), tmp_path / "m.tflite", "float32", verify_data=test)
    assert report.agreement == 1.0


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("missing.keras", None, "existing"),
        ("empty.keras", b"", "empty"),
        ("corrupt.h5", b"not hdf5 at all", "not a valid HDF5"),
        ("corrupt.keras", b"not a zip", "corrupt zip"),
        ("model.txt", b"x", r"must end in \.keras or \.h5"),
    ],
)
def test_bad_model_paths(tmp_path, name, content, match):
    src = tmp_path / name
    if content is not None:
        src.write_bytes(content)
    with pytest.raises((ValueError, FileNotFoundError), match=match) as info:
        export(src, tmp_path / "o.tflite", "float32")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "o.tflite").exists()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(mode="int4"), ValueError, "`mode` must be one of"),
        (dict(mode="int8"), ValueError, "`representative_data` is required"),
        (dict(mode="int16x8"), ValueError, "`representative_data` is required"),
        (dict(mode="float32", int8_io=True), ValueError, "`int8_io` needs mode='int8'"),
        (dict(mode="float32", int8_io=1), ValueError, "`int8_io` must be True or False"),
        (dict(mode="float32", min_agreement=1.5, verify_data="x"), ValueError, r"in \[0, 1\]"),
        (dict(mode="float32", min_agreement=0.9), ValueError, "needs `verify_data`"),
        (dict(mode="binary", optimize_sparsity=True), ValueError, "optimize_sparsity"),
        (dict(mode="int8", representative_data=np.zeros((4, 8, 8))), ValueError, "rank 4"),
        (dict(mode="int8", representative_data=3), ValueError, "tf.data.Dataset"),
        (dict(mode="float32", path="/no/such/dir/m.tflite"), FileNotFoundError, "existing folder"),
    ],
)
def test_argument_errors(model, tmp_path, kwargs, error, match):
    kwargs = {"path": tmp_path / "m.tflite", **kwargs}
    with pytest.raises(error, match=match) as info:
        export(model, **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.parametrize("bad", [Subclassed(), "not a model path", 3])
def test_model_kinds_refused(tmp_path, bad):
    with pytest.raises((TypeError, ValueError, FileNotFoundError)):
        export(bad, tmp_path / "m.tflite", "float32")


def test_representative_data_forms(model, data):
    (x, y), _ = data
    x = x[:10]
    expected = [b[0] for b in representative_dataset(x, model)()]
    assert len(expected) == 10 and expected[0].shape == (1, 8, 8, 1)
    forms = [
        tf.data.Dataset.from_tensor_slices((x, y[:10])).batch(4),  # batched (x, y)
        tf.data.Dataset.from_tensor_slices(x),  # unbatched samples
        (s for s in x),  # a generator, consumed once
        lambda: iter([x[:5], x[5:]]),  # a callable returning batches
        [[s[None]] for s in x],  # LCE / TFLite style lists
    ]
    for form in forms:
        got = [b[0] for b in representative_dataset(form, model)()]
        assert len(got) == 10
        for a, b in zip(sorted(got, key=np.sum), sorted(expected, key=np.sum), strict=False):
            np.testing.assert_array_equal(a, b)


def test_optimize_sparsity_stores_zeros_sparsely(tmp_path):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, use_bias=False)])
    kernel = model.get_weights()[0]
    kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.9)] = 0
    model.set_weights([kernel])
    dense = export(model, tmp_path / "d.tflite", "float32")
    sparse = export(model, tmp_path / "s.tflite", "float32", optimize_sparsity=True)
    assert "DENSIFY" in sparse.ops and sparse.bytes < dense.bytes / 2


def test_benchmark_and_lazy_names(float_file):
    assert tflite_export.benchmark(float_file, threads=1, runs=3) > 0
    with pytest.raises(AttributeError):
        tflite_export.nothing  # noqa: B018


def test_binary_lenet5_export_bit_packs_dense_by_itself(tmp_path):
    """export(..., "binary") rewrites binary QuantDense for LCE: >= 15x under float32, verified,
    and the float layers are named with their reason."""
    from edgecompress import binary, models

    model = models.lenet5()
    bnn = binary.binarize(model, "binarynet")
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    f32 = export(model, tmp_path / "f.tflite", "float32")
    report = export(bnn, tmp_path / "b.tflite", "binary", verify_data=x, min_agreement=1.0)
    assert f32.bytes >= 15 * report.bytes
    assert report.agreement == 1.0 and report.max_abs_diff < 1e-3
    assert any("bit-packed" in n for n in report.notes)
    assert any(n.startswith("fc2") or "conv1" in n for n in report.notes if "stays float" in n)
    assert "LceBconv2d" in report.ops


def test_binary_export_bit_packs_xnor_dense_too(tmp_path):
    """XnorDense (edgecompress's larq subclass) has a registered conv counterpart: export() turns
    it into a binary 1x1 conv like QuantDense, instead of leaving a float FULLY_CONNECTED."""
    from edgecompress import binary

    bnn = binary.binarize(tiny_lenet(), "xnor", layers=["conv2", "fc1"])
    for norm in bnn.layers:  # no exact zeros in front of a sign: LCE and larq break ties apart
        if isinstance(norm, keras.layers.BatchNormalization):
            norm.moving_mean.assign(norm.moving_mean - 0.1)
    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    report = export(bnn, tmp_path / "x.tflite", "binary", verify_data=x)
    assert any("bit-packed as 1x1 binary convolutions: 1 QuantDense" in n for n in report.notes)
    assert not any(n.startswith("fc1") for n in report.notes)
    assert report.bytes < 4 * 128 * 64 / 2  # fc1's float kernel alone would be 32 KB
    assert report.max_abs_diff < 1e-3
