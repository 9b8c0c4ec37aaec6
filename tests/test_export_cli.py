"""tflite-export CLI: good and bad inputs, exit codes, one-line errors, no partial files."""

import json
import re
import struct
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from _export_models import digits, listing, tiny_lenet, trained

from tflite_export.cli import main

FIELDS = ["path", "mode", "bytes", "gzip_bytes", "ops", "agreement", "accuracy",
          "keras_accuracy", "max_abs_diff", "rel_l2", "outputs", "runtime", "flash_bytes", "arena",
          "tflm_agreement", "tflm_outputs", "latency_us", "notes", "micro_compression"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    (x, y), _ = digits()
    path = tmp_path_factory.mktemp("model") / "lenet.keras"
    trained(tiny_lenet(), x, y).save(path)
    return path


def _errors(capfd):
    err = capfd.readouterr().err
    return [line for line in err.splitlines() if line.startswith("tflite-export:")]


def test_int8_verify_c_array_json(saved, tmp_path, capfd):
    out = tmp_path / "m.tflite"
    code = main([str(saved), "-o", str(out), "--mode", "int8", "--calibration", "digits",
                 "--int8-io", "--verify", "digits", "--min-agreement", "0.9",
                 "--c-array", str(tmp_path / "fw"), "--json"])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)  # stdout is exactly one JSON object
    assert list(report) == FIELDS and report["mode"] == "int8" and report["agreement"] >= 0.9
    assert report["bytes"] == out.stat().st_size
    assert "converting to int8" in captured.err and "Traceback" not in captured.err
    assert listing(tmp_path / "fw") == ["m.cc", "m.h"]


def test_summary_table_with_npz_and_idx(saved, tmp_path, capfd):
    (x, y), (xt, yt) = digits()
    np.savez(tmp_path / "cal.npz", x=x[:50], y=y[:50])
    images, labels = tmp_path / "t-images.idx", tmp_path / "t-labels.idx"
    raw = (xt[:60, ..., 0] * 255).round().astype(np.uint8)
    images.write_bytes(struct.pack(">IIII", 0x803, *raw.shape) + raw.tobytes())
    labels.write_bytes(struct.pack(">II", 0x801, 60) + yt[:60].astype(np.uint8).tobytes())
    out = tmp_path / "m.tflite"
    code = main([str(saved), "-o", str(out), "--mode", "dynamic", "--calibration",
                 str(tmp_path / "cal.npz"), "--verify", f"{images},{labels}"])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    assert "agreement" in captured.out and "accuracy (keras)" in captured.out
    assert out.exists()
    # The same IDX pair as two paths.
    assert main([str(saved), "-o", str(out), "--overwrite", "--verify", str(images), str(labels)]) == 0


def test_failed_verification_exits_1_without_file(saved, tmp_path, capfd):
    out = tmp_path / "m.tflite"
    from test_export import _WrongRunner

    with mock.patch("tflite_export.verify.Runner", _WrongRunner):
        code = main([str(saved), "-o", str(out), "--verify", "digits", "--min-agreement", "0.99"])
    assert code == 1
    errors = _errors(capfd)
    assert len(errors) == 1 and re.search(r"agreement 0\.\d+ < min_agreement=0.99", errors[0])
    assert listing(tmp_path) == []


def test_float_ops_in_int8_exit_1(saved, tmp_path, capfd):
    with mock.patch("tflite_export.convert.float_ops", return_value=["SIN (x)"]):
        code = main([str(saved), "-o", str(tmp_path / "m.tflite"), "--mode", "int8",
                     "--calibration", "digits"])
    assert code == 1
    errors = _errors(capfd)
    assert len(errors) == 1 and "SIN (x)" in errors[0]
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    "args, match",
    [
        (["--mode", "int8"], "needs --calibration"),
        (["--int8-io"], "--int8-io needs --mode int8"),
        (["--min-agreement", "2", "--verify", "digits"], r"\[0, 1\]"),
        (["--min-agreement", "0.5"], "needs --verify"),
        (["--mode", "int5"], "invalid choice"),
        (["--bogus"], "unrecognized arguments"),
        (["--verify", "nosuchdata"], "`--verify` must be one of"),
        (["--verify", "a.idx", "b.idx", "c.idx"], "two IDX paths"),
        (["--verify", "missing.npz"], "missing.npz: no such file"),
        (["--verify", "mnist5k"],
         r"`--verify` inputs must have shape \(8, 8, 1\) to fit the model. Received: \(28, 28, 1\)"),
    ],
)
def test_usage_errors_exit_2(saved, tmp_path, capfd, args, match):
    code = main([str(saved), "-o", str(tmp_path / "m.tflite"), *args])
    assert code == 2
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("tflite-export: error")]
    assert len(errors) == 1 and "Traceback" not in err
    assert re.search(match, errors[0])
    assert listing(tmp_path) == []


@pytest.mark.parametrize("content", [None, b"", b"garbage"])
def test_bad_model_files_exit_2(tmp_path, capfd, content):
    model = tmp_path / "bad.keras"
    if content is not None:
        model.write_bytes(content)
    assert main([str(model), "-o", str(tmp_path / "m.tflite")]) == 2
    assert len(_errors(capfd)) == 1
    assert not (tmp_path / "m.tflite").exists()


def test_existing_output_needs_overwrite(saved, tmp_path, capfd):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"old")
    assert main([str(saved), "-o", str(out)]) == 2
    assert "--overwrite" in _errors(capfd)[0]
    assert out.read_bytes() == b"old"


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "--calibration" in capsys.readouterr().out


def test_console_module_refuses_an_existing_output_in_one_line(saved, tmp_path):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"old")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    again = subprocess.run([sys.executable, "-m", "tflite_export", str(saved), "-o", str(out)],
                           capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert out.read_bytes() == b"old"


def test_micro_lut_c_array(saved, tmp_path, capfd):
    out, fw = tmp_path / "m.tflite", tmp_path / "fw"
    code = main([str(saved), "-o", str(out), "--mode", "int8", "--calibration", "digits",
                 "--verify", "digits", "--micro", "--micro-compress", "lut", "--c-array", str(fw)])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    assert "arena (TFLM)" in captured.out and "LUT tensors" in captured.out
    header = (fw / "m.h").read_text()
    assert "constexpr unsigned int m_arena_size = " in header
    assert f"const unsigned int m_len = {out.stat().st_size};" in (fw / "m.cc").read_text()


def test_binary_keras_file_exports_through_the_cli(tmp_path):
    """``python -m tflite_export.cli`` registers edgecompress/larq classes (the library export()
    does not); run in a fresh process, where nothing else has imported them. Only the JSON
    report reaches stdout."""
    from edgecompress import binary

    path = tmp_path / "bnn.keras"
    binary.binarize(tiny_lenet(), "binarynet").save(path)
    out = tmp_path / "bnn.tflite"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "tflite_export.cli", str(path), "-o", str(out),
                          "--mode", "binary", "--verify", "digits", "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert list(report) == FIELDS  # no TensorFlow chatter on stdout
    assert report["mode"] == "binary" and report["bytes"] == out.stat().st_size
    assert any(op.startswith("Lce") for op in report["ops"])
