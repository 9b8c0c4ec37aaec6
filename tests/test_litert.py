"""tflite_export.runtime (reader + LiteRT/LCE runners) and measure() on .tflite files."""

import numpy as np
import pytest
from conftest import residual_cnn, sequential_cnn

from edgecompress import measure as measure_fn
from edgecompress._keras import keras, tf
from edgecompress.measure import keras_macs
from tflite_export import runtime


def _convert(model, int8=False, int8_io=False, optimizations=None, x=None):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if optimizations:
        conv.optimizations = optimizations
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x[i : i + 1]] for i in range(len(x)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((24, 12, 12, 1), dtype=np.float32), rng.integers(0, 4, 24)


@pytest.mark.parametrize("build", [sequential_cnn, residual_cnn])
def test_inspect_float_matches_keras(build, data):
    model = build()
    info = runtime.inspect(_convert(model))
    assert info.macs == keras_macs(model)
    params = sum(v.size for v in info.constants.values())
    # BatchNormalization folds into weights or a MUL, equal biases share a buffer: between
    # the kernels alone and everything Keras holds.
    kernels = sum(w.numpy().size for w in model.weights if "kernel" in w.name)
    assert kernels <= params <= model.count_params()
    assert "CONV_2D" in info.ops and "FULLY_CONNECTED" in info.ops
    assert all(v.dtype == np.float32 for v in info.constants.values())


@pytest.mark.parametrize("int8_io", [False, True])
def test_runner_int8_quantizes_and_dequantizes(int8_io, data):
    x, _ = data
    model = sequential_cnn()
    runner = runtime.Runner(_convert(model, int8=True, int8_io=int8_io, x=x))
    assert runner.input_dtype == (np.int8 if int8_io else np.float32)
    out = runner.predict(x, batch_size=7)  # 24 = 3 * 7 + 3: resizes the batch twice
    assert out.dtype == np.float32 and out.shape == (24, 4)
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=0.05)


def test_inspect_int8_constants_are_dequantized(data):
    x, _ = data
    model = sequential_cnn()
    info = runtime.inspect(_convert(model, int8=True, x=x))
    fc2 = [v for k, v in info.constants.items() if "fc2/MatMul" in k]
    assert len(fc2) == 1 and fc2[0].dtype == np.float32
    # Per-channel int8 dequantized: close to the Keras kernel (transposed: [units, in]).
    np.testing.assert_allclose(fc2[0], model.get_layer("fc2").kernel.numpy().T, atol=0.02)


def test_sparse_constant_is_densified():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, use_bias=False)])
    kernel = model.get_weights()[0]
    kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.8)] = 0
    model.set_weights([kernel])
    raw = _convert(model, optimizations=[tf.lite.Optimize.EXPERIMENTAL_SPARSITY])
    info = runtime.inspect(raw)
    assert "DENSIFY" in info.ops
    (dense,) = info.constants.values()
    np.testing.assert_array_equal(dense, kernel.T)
    x = np.random.default_rng(1).random((3, 64), dtype=np.float32)
    np.testing.assert_allclose(runtime.Runner(raw).predict(x), x @ kernel, atol=1e-5)


def test_lce_binary_file_runs_and_counts(data):
    import larq as lq
    import larq_compute_engine as lce

    x, _ = data
    kw = dict(kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)
    model = keras.Sequential([
        keras.Input((12, 12, 1)),
        keras.layers.Conv2D(8, 3, use_bias=False),
        keras.layers.BatchNormalization(),
        lq.layers.QuantConv2D(16, 3, input_quantizer="ste_sign", **kw),
        keras.layers.BatchNormalization(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4, activation="softmax"),
    ])
    raw = lce.convert_keras_model(model)
    info = runtime.inspect(raw)
    assert "LceBconv2d" in info.ops and info.is_lce
    assert info.macs == keras_macs(model)
    binary = [v for v in info.constants.values() if v.shape == (16, 3, 3, 8)]
    assert len(binary) == 1
    np.testing.assert_array_equal(binary[0], np.sign(model.layers[2].kernel.numpy()).transpose(3, 0, 1, 2))
    runner = runtime.Runner(raw)
    assert runner.backend == "lce"
    np.testing.assert_allclose(runner.predict(x[:5]), model.predict(x[:5], verbose=0), atol=1e-4)
    assert runtime.benchmark(raw, runs=2, warmup=1) > 0


def test_measure_tflite_file(tmp_path, data):
    x, y = data
    model = sequential_cnn()
    path = tmp_path / "m.tflite"
    path.write_bytes(_convert(model))
    m = measure_fn(path, (x, y))
    assert m.file_bytes == path.stat().st_size and 0 < m.gzip_bytes < m.file_bytes
    assert m.macs == keras_macs(model)
    keras_acc = float(np.mean(model.predict(x, verbose=0).argmax(1) == y))
    assert m.accuracy == pytest.approx(keras_acc)
    assert m.params <= model.count_params() and m.nonzero_params <= m.params


@pytest.mark.parametrize(
    "content, error",
    [(None, FileNotFoundError), (b"not a flatbuffer", ValueError)],
)
def test_bad_files(tmp_path, content, error):
    path = tmp_path / "bad.tflite"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match="tflite|TFLite"):
        runtime.Runner(path)
    with pytest.raises(error):
        runtime.inspect(path)


def test_bad_arguments():
    with pytest.raises(TypeError, match="path_or_bytes"):
        runtime.Runner(3)
    with pytest.raises(ValueError, match="num_threads"):
        runtime.Runner(b"", num_threads=0)


def test_latency_harness_alternates_and_flags_a_loaded_machine(data, caplog):
    from unittest import mock

    from edgecompress.bench.harness import compare_latency, latency_note

    x, _ = data
    files = {"a": _convert(sequential_cnn()), "b": _convert(residual_cnn())}
    with mock.patch("os.getloadavg", return_value=(0.5, 0.5, 0.5)):
        quiet = compare_latency(files, rounds=3, invokes=2, warmup=1)
    assert set(quiet.files) == {"a", "b"} and quiet.warning == "" and quiet.load_average == 0.5
    assert all(r.median_us >= r.min_us > 0 and r.spread_us >= 0 for r in quiet.files.values())
    assert quiet.ratio("b", "a") == quiet.median("a") / quiet.median("b")
    with mock.patch("os.getloadavg", return_value=(99.0, 99.0, 99.0)):
        loaded = compare_latency(files, rounds=2, invokes=1, warmup=0)
    assert "above the" in loaded.warning and "not reliable" in caplog.text
    assert "WARNING" in latency_note(loaded) and "3 alternating rounds" in latency_note(quiet)
    with pytest.raises(ValueError, match="`rounds` must be"):
        compare_latency(files, rounds=0)


def test_report_latency_fills_tflite_artifacts_only(tmp_path):
    from edgecompress.artifacts import Artifact
    from edgecompress.bench.harness import time_artifacts

    (tmp_path / "a.tflite").write_bytes(_convert(sequential_cnn()))
    artifacts = [Artifact(name="a", path=str(tmp_path / "a.tflite")),
                 Artifact(name="packed", path=str(tmp_path / "p.ecpk"))]
    report = time_artifacts(artifacts, rounds=2, invokes=1)
    assert artifacts[0].latency_us == report.median(str(tmp_path / "a.tflite")) > 0
    assert artifacts[1].latency_us is None
    assert time_artifacts(artifacts[1:]) is None
