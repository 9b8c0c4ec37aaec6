"""Verification that cannot be fooled: every output by name, non-finite fails, regression by error,
TFLM in the loop, and an exporter that loads no compression family."""

import subprocess
import sys

import numpy as np
import pytest
from _export_models import digits, tiny_larq, tiny_lenet, trained

from edgecompress._keras import keras
from tflite_export import VerificationError, export
from tflite_export.cli import main
from tflite_export.verify import match_outputs, verify


def two_heads(units=3):
    """Two same-shaped heads and a value head; the converter orders the file's outputs by name,
    reversed (zeta, value, alpha), so position 0 of the file is not Keras's output 0."""
    keras.utils.set_random_seed(1)
    x = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu")(x)
    alpha = keras.layers.Dense(units, activation="softmax", name="alpha")(h)
    zeta = keras.layers.Dense(units, activation="softmax", name="zeta")(h)
    value = keras.layers.Dense(1, name="value")(h)
    return keras.Model(x, [alpha, zeta, value])


@pytest.fixture(scope="module")
def x8():
    return np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)


def test_two_same_shaped_heads_are_matched_by_name(x8, tmp_path):
    model = two_heads()
    report = export(model, tmp_path / "m.tflite", "float32", verify_data=x8, min_agreement=1.0)
    assert [h["name"] for h in report.outputs] == ["alpha", "zeta", "value"]
    assert [h["compare"] for h in report.outputs] == ["top1", "top1", "error"]
    assert all(h["max_abs_diff"] < 1e-5 for h in report.outputs)
    assert report.agreement == 1.0 and report.rel_l2 < 1e-5
    # The file does put the outputs in another order: matching by position (as verify did
    # before, issue #22.1) compares alpha with zeta.
    from tflite_export.runtime import Runner

    runner = Runner(tmp_path / "m.tflite")
    assert runner.output_names[0] == "zeta" != model.output_names[0]
    by_position = runner.predict(x8)[0]
    assert np.mean(by_position.argmax(-1) == model.predict(x8, verbose=0)[0].argmax(-1)) < 0.9


def test_outputs_that_do_not_pair_up_are_refused():
    assert match_outputs(["b", "a"], ["a", "b"]) == [1, 0]
    assert match_outputs(["StatefulPartitionedCall:0"], ["dense"]) == [0]
    with pytest.raises(ValueError, match="by name"):
        match_outputs(["out_0", "out_1"], ["a", "b"])


def test_regression_head_is_judged_by_relative_error(x8, tmp_path):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(8)])
    targets = (x8, np.tanh(x8))  # real-valued targets: a regression output
    with pytest.raises(VerificationError, match="relative L2 error .* > max_rel_error=1e-09"):
        export(model, tmp_path / "r.tflite", "int8", representative_data=x8, verify_data=targets,
               max_rel_error=1e-9)
    assert not (tmp_path / "r.tflite").exists()
    report = export(model, tmp_path / "r.tflite", "int8", representative_data=x8, verify_data=targets,
                    max_rel_error=0.2)
    assert report.agreement is None and 0 < report.rel_l2 <= 0.2
    assert report.outputs[0]["compare"] == "error"


def nan_model():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    kernel, bias = model.get_weights()
    kernel[0, 0] = np.nan
    model.set_weights([kernel, bias])
    return model


def test_nan_outputs_fail_even_though_argmax_agrees(tmp_path):
    (_, _), (xt, yt) = digits()
    with pytest.raises(VerificationError, match="non-finite"):
        export(nan_model(), tmp_path / "n.tflite", "float32", verify_data=(xt, yt))
    assert not (tmp_path / "n.tflite").exists()


def test_nan_model_exits_1_from_the_cli(tmp_path, capfd):
    (_, _), (xt, yt) = digits()
    nan_model().save(tmp_path / "n.keras")
    np.savez(tmp_path / "v.npz", x=xt[:20], y=yt[:20])
    out = tmp_path / "n.tflite"
    code = main([str(tmp_path / "n.keras"), "-o", str(out), "--verify", str(tmp_path / "v.npz")])
    err = capfd.readouterr().err
    assert code == 1 and "non-finite" in err and "Traceback" not in err
    assert not out.exists()


@pytest.fixture(scope="module")
def lenet():
    (x, y), test = digits()
    return trained(tiny_lenet(), x, y, steps=300), x, test


def test_export_micro_fills_the_mcu_figures(lenet, tmp_path):
    model, x, test = lenet
    report = export(model, tmp_path / "m.tflite", "int8", representative_data=x, verify_data=test,
                    min_agreement=0.95, micro=True)
    assert report.flash_bytes == report.bytes == (tmp_path / "m.tflite").stat().st_size
    assert report.arena["bytes"] > report.arena["head"] > 0
    assert report.tflm_agreement >= 0.95 and report.tflm_outputs[0]["name"] == "fc2"


def test_micro_cli_names_the_op_tflm_lacks(tmp_path, capfd):
    tiny_larq().save(tmp_path / "b.keras")
    out = tmp_path / "b.tflite"
    code = main([str(tmp_path / "b.keras"), "-o", str(out), "--mode", "binary", "--micro"])
    err = capfd.readouterr().err
    assert code == 1 and "LceBconv2d" in err and "Traceback" not in err
    assert not out.exists()


def test_export_loads_no_compression_family(tmp_path):
    script = f"""
import sys
import numpy as np
from edgecompress._keras import keras
from tflite_export import export
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
export(model, {str(tmp_path / 'p.tflite')!r}, "float32", verify_data=np.ones((2, 4), "float32"))
families = ("lowrank", "pruning", "quantization", "binary", "distillation", "models")
print(sorted(m for m in sys.modules if m.split(".")[:2][-1] in families and m.startswith("edgecompress.")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "p.tflite").is_file()


def test_verify_refuses_bad_arguments(x8, tmp_path):
    model = two_heads()
    with pytest.raises(ValueError, match="`runtime` must be one of"):
        verify(b"", model, x8, runtime="gpu")
    with pytest.raises(ValueError, match="`min_agreement` must be"):
        verify(b"", model, x8, min_agreement=1.5)


def _qat_autoencoder(batchnorm: bool, x):
    """MLPerf-Tiny-style FC autoencoder blocks (Dense[->BN]->ReLU) under QAT, trained 2 steps:
    enough for learned ranges (a float pre-training changed nothing this test checks)."""
    import tensorflow_model_optimization as tfmot

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32,))
    h = inputs
    for units in (16, 8, 16):
        h = keras.layers.Dense(units)(h)
        h = keras.layers.BatchNormalization()(h) if batchnorm else h
        h = keras.layers.ReLU()(h)
    model = keras.Model(inputs, keras.layers.Dense(32)(h))
    qat = tfmot.quantization.keras.quantize_model(model)
    qat.compile("adam", "mse")
    qat.fit(x, x, epochs=1, verbose=0)
    return qat


def test_qat_converts_from_learned_ranges_not_recalibrated(tmp_path):
    """Issue #22.7: calibrating a QAT Dense->BN model with a representative dataset gave a file
    with relative error ~0.9; now it is refused by name, and a BN-free QAT model is exact."""
    x = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    plain = export(_qat_autoencoder(False, x), tmp_path / "q.tflite", "int8", representative_data=x,
                   verify_data=(x, x), max_rel_error=0.15)
    assert plain.rel_l2 <= 0.15 and "learned ranges" in plain.notes[0]
    from tflite_export import FloatOpsError

    with pytest.raises(FloatOpsError, match="fold the BatchNormalization"):
        export(_qat_autoencoder(True, x), tmp_path / "bn.tflite", "int8", representative_data=x,
               verify_data=(x, x), max_rel_error=0.05)
    assert not (tmp_path / "bn.tflite").exists()


def test_fc_per_tensor_drops_the_per_channel_parameters(x8, tmp_path):
    from tflite_export.runtime import inspect

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"), keras.layers.Dense(4)])
    per_channel = export(model, tmp_path / "c.tflite", "int8", representative_data=x8)
    per_tensor = export(model, tmp_path / "t.tflite", "int8", representative_data=x8,
                        verify_data=x8, fc_per_tensor=True)
    scales = [max(t["scales"] for t in inspect(tmp_path / f).tensors) for f in ("c.tflite", "t.tflite")]
    assert scales == [256, 1]
    # a float32 scale and an int64 zero point per channel: 12 bytes each, 516 channels
    assert per_channel.bytes - per_tensor.bytes >= 12 * (256 + 256 + 4 - 3) - 64
    assert per_tensor.rel_l2 < 0.2
