"""tflite_export.micro and the TFLM runner: C array that compiles, TFLM's op verdict, the exact arena."""

import shutil
import subprocess

import numpy as np
import pytest
from _export_models import tiny_larq, tiny_lenet

from edgecompress._keras import keras, tf
from tflite_export import runtime
from tflite_export.micro import TFLM_OPS, arena_estimate, to_c_array
from tflite_export.runtime import MicroOpsError, TFLMRunner, allocates, measure_arena
from tflite_export.verify import verify


def _write(model, path, quantize=False):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        x = np.random.default_rng(0).random((10, *model.inputs[0].shape[1:]), dtype=np.float32)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([s[None]] for s in x)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(conv.convert())
    return path


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory):
    return _write(tiny_lenet(), tmp_path_factory.mktemp("m") / "lenet.tflite", quantize=True)


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_c_array_compiles_and_round_trips(int8_file, tmp_path):
    report = to_c_array(int8_file, tmp_path, "g_lenet")
    assert report.flash_bytes == int8_file.stat().st_size
    assert report.unsupported_ops == [] and report.micro_ready
    source = (tmp_path / "g_lenet.cc").read_text()
    assert "alignas(16) const unsigned char g_lenet[]" in source
    assert f"const unsigned int g_lenet_len = {report.flash_bytes};" in source
    assert "extern const unsigned char g_lenet[];" in (tmp_path / "g_lenet.h").read_text()
    # The bytes in the array are the file's bytes.
    body = source[source.index("{") + 1 : source.index("}")]
    values = bytes(int(v, 16) for v in body.replace("\n", "").split(","))
    assert values == int8_file.read_bytes()
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Werror", "-c", "g_lenet.cc", "-o", "g_lenet.o"],
                   cwd=tmp_path, check=True, capture_output=True)
    # A second translation unit links against the array through the header.
    (tmp_path / "main.cc").write_text(
        '#include "g_lenet.h"\nint main() { return g_lenet_len > 0 && g_lenet[4] == 0x54 ? 0 : 1; }\n'
    )
    subprocess.run(["g++", "main.cc", "g_lenet.o", "-o", "main"], cwd=tmp_path, check=True,
                   capture_output=True)
    assert subprocess.run([str(tmp_path / "main")]).returncode == 0  # 'T' of TFL3


def test_arena_estimate_by_hand(tmp_path):
    # 64 -> 32 -> 16 floats: op 1 holds input (256 B) + hidden (128 B); op 2 hidden + output (64 B).
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32), keras.layers.Dense(16)])
    path = _write(model, tmp_path / "mlp.tflite")
    info = runtime.inspect(path)
    assert info.ops == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert arena_estimate(info) == 256 + 128
    report = to_c_array(path, tmp_path, "mlp")
    # TFLM's head is exactly the activation peak; its persistent tail comes on top.
    assert report.arena_head == 384 and report.arena_tail > 0
    assert report.arena_head + report.arena_tail - 16 <= report.arena_bytes <= report.arena_head + report.arena_tail
    rounded = -(-report.arena_bytes // 16) * 16
    assert f"constexpr unsigned int mlp_arena_size = {rounded};" in (tmp_path / "mlp.h").read_text()


@pytest.fixture(scope="module")
def lenet_int8(tmp_path_factory):
    """LeNet-5 (431k parameters), 1 epoch on 1,000 MNIST-5k digits, full-int8: the model, the
    file, 200 held-out digits and 100 training inputs for calibration."""
    from edgecompress import datasets, models

    (x, y), (xt, yt) = datasets.load("mnist5k")
    keras.utils.set_random_seed(0)
    model = models.lenet5()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:1000], y[:1000], epochs=1, batch_size=64, verbose=0)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s[None]] for s in x[:100])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path = tmp_path_factory.mktemp("tflm") / "lenet5_int8.tflite"
    path.write_bytes(conv.convert())
    return model, path, (xt[:200], yt[:200]), x[:100]


def test_tflm_agrees_with_keras_on_int8_lenet5(lenet_int8):
    model, path, data, _ = lenet_int8
    result = verify(path, model, data, runtime="tflm", min_agreement=0.97)
    assert result["runtime"] == "tflm" and result["agreement"] >= 0.97
    assert result["accuracy"] >= 0.8  # a trained LeNet-5, not a constant predictor
    # TFLM and LiteRT (XNNPACK) differ by rounding only: a few output quanta at most.
    litert = runtime.Runner(path, backend="litert").predict(data[0])
    tflm = TFLMRunner(path).predict(data[0])
    np.testing.assert_allclose(tflm, litert, atol=8 / 256)
    assert np.mean(tflm.argmax(-1) == litert.argmax(-1)) >= 0.99


def test_measured_arena_allocates_and_one_kb_less_fails(lenet_int8):
    _, path, (xt, _), _ = lenet_int8
    arena = measure_arena(path)
    assert arena.bytes > 1024 and arena.head > 0 and arena.tail > 0
    assert arena.recorded == arena.head + arena.tail
    assert allocates(path, arena.bytes) and not allocates(path, arena.bytes - 1)
    assert not allocates(path, arena.bytes - 1024)
    runner = TFLMRunner(path, arena_bytes=arena.bytes)
    assert runner.predict(xt[:5]).shape == (5, 10)
    with pytest.raises(MicroOpsError, match="arena of .* bytes is too small"):
        TFLMRunner(path, arena_bytes=arena.bytes - 1024)


def test_lce_ops_are_named_as_missing(tmp_path):
    import larq_compute_engine as lce

    path = tmp_path / "bnn.tflite"
    path.write_bytes(lce.convert_keras_model(tiny_larq()))
    report = to_c_array(path, tmp_path, "bnn")
    assert "LceBconv2d" in report.unsupported_ops and not report.micro_ready
    assert all(op not in TFLM_OPS for op in report.unsupported_ops)
    assert "FULLY_CONNECTED" in report.ops and "FULLY_CONNECTED" not in report.unsupported_ops
    assert "arena_size" not in (tmp_path / "bnn.h").read_text()
    with pytest.raises(MicroOpsError, match="LceBconv2d"):
        TFLMRunner(path)


@pytest.mark.parametrize(
    "name, out_dir, tflite, error, match",
    [
        ("1bad", None, None, ValueError, "C identifier"),
        ("has-dash", None, None, ValueError, "C identifier"),
        ("ok", "missing", None, FileNotFoundError, "out_dir"),
        ("ok", None, "missing.tflite", FileNotFoundError, "tflite_path"),
    ],
)
def test_bad_arguments(int8_file, tmp_path, name, out_dir, tflite, error, match):
    with pytest.raises(error, match=match):
        to_c_array(tmp_path / tflite if tflite else int8_file,
                   tmp_path / out_dir if out_dir else tmp_path, name)
    assert not list(tmp_path.glob("*.cc"))


def test_lut_compressed_clustered_lenet5_is_small_and_lossless_in_tflm(lenet_int8, tmp_path):
    """16-cluster LeNet-5: int8 PTQ keeps <= 16 values per channel, LUT makes the file <= 0.6x,
    and TFLM's top-1 on 200 digits is that of the uncompressed int8 file."""
    from edgecompress.quantization.clustering import cluster_weights, strip
    from tflite_export import export

    model, _, test, x = lenet_int8
    clustered = strip(cluster_weights(model, 16))
    plain = export(clustered, tmp_path / "int8.tflite", "int8", representative_data=x)
    lut = export(clustered, tmp_path / "lut.tflite", "int8", representative_data=x,
                 verify_data=test[0][:50], micro_compress="lut")
    compressed = {t["name"].split("/")[1]: t for t in lut.micro_compression["tensors"]}
    assert {"conv2", "fc1", "fc2"} <= set(compressed)
    assert all(t["bits"] == 4 and t["values"] <= 16 for t in compressed.values())
    assert lut.bytes <= 0.6 * plain.bytes and lut.flash_bytes == (tmp_path / "lut.tflite").stat().st_size
    # DECODE expands the weights into the arena: the flash saving is paid in RAM, and reported.
    assert lut.micro_compression["decode_arena_bytes"] > 0
    top1 = [TFLMRunner(tmp_path / f).predict(test[0]).argmax(-1) for f in ("int8.tflite", "lut.tflite")]
    np.testing.assert_array_equal(top1[0], top1[1])
    assert lut.tflm_agreement >= 0.9 and lut.tflm_outputs[0]["name"] == "fc2"
