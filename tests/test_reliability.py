"""Cross-family guarantees: no transform changes its input, outputs survive a kill, runs repeat."""

import signal
import subprocess
import sys

import pytest
from conftest import residual_cnn, sequential_cnn, weights_fingerprint

from edgecompress import binary, lowrank, pruning, quantization
from edgecompress._keras import keras

TRANSFORMS = {
    "prune_low_magnitude": lambda m: pruning.prune_low_magnitude(m),
    "prune_filters": lambda m: pruning.prune_filters(m, 0.5),
    "cluster": lambda m: quantization.cluster_weights(m, clusters=4, init="linear"),
    "product_quantize": lambda m: quantization.product_quantize(m, 2, 4, layers=["fc1"]),
    "quantize_weights": lambda m: quantization.quantize_weights(m, 4)[0],  # (model, report)
    "quantize_aware": lambda m: quantization.quantize_aware(m, skip=_batch_norms(m)),
    "binarize": lambda m: binary.binarize(m, "xnor", keep_first_last=False),
    "factorize": lambda m: lowrank.factorize(m, energy=0.8),
}


def _batch_norms(model):
    # tfmot's QAT refuses a BatchNormalization after an activated conv; keep them in float
    return [layer.name for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("builder", [sequential_cnn, residual_cnn], ids=["sequential", "residual"])
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transform_leaves_input_untouched(name, builder):
    model = builder()
    before = weights_fingerprint(model)
    names = [w.name for w in model.weights]
    result = TRANSFORMS[name](model)  # every transform applies to both fixtures
    assert isinstance(result, keras.Model) and result is not model
    assert weights_fingerprint(model) == before
    assert [w.name for w in model.weights] == names


def test_distill_leaves_teacher_untouched(rng):
    from edgecompress.distillation import Distiller

    teacher, student = sequential_cnn(), sequential_cnn()
    before = weights_fingerprint(teacher)
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    x = rng.random((32, 12, 12, 1)).astype("float32")
    distiller.fit(x, rng.integers(0, 4, 32), epochs=1, verbose=0)
    assert weights_fingerprint(teacher) == before


# The process is killed at the injected point: half-way through writing the bytes, or with the
# whole file written but not yet renamed into place.
_KILLED_EXPORT = """
import os, pathlib, signal, sys
from edgecompress import _io

def half_write(self, data):
    with open(self, "wb") as fh:
        fh.write(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

def before_rename(src, dst):
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[1] == "half_write":
    pathlib.Path.write_bytes = half_write
else:
    _io.os.replace = before_rename
from tflite_export.cli import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize("fault", ["half_write", "before_rename"])
def test_sigkill_during_export_leaves_old_file(tmp_path, fault):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "m.keras")
    out = tmp_path / "m.tflite"
    out.write_bytes(b"old file")
    proc = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, fault, str(tmp_path / "m.keras"),
                           "-o", str(out), "--overwrite"], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]  # the fault fired
    assert out.read_bytes() == b"old file"
    visible = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert sorted(visible) == ["m.keras", "m.tflite"]


def test_same_seed_same_exported_bytes(tmp_path):
    from edgecompress import datasets
    from tflite_export import export

    (x, y), _ = datasets.load("digits")
    blobs = []
    for run in range(2):
        keras.backend.clear_session()  # same auto layer names, which end up in the file
        keras.utils.set_random_seed(7)
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                                  keras.layers.Flatten(), keras.layers.Dense(10)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x[:256], y[:256], epochs=1, batch_size=32, shuffle=False, verbose=0)
        path = tmp_path / f"run{run}.tflite"
        export(model, path, "int8", representative_data=x[:64])
        blobs.append(path.read_bytes())
    assert blobs[0] == blobs[1]


def test_pruning_resumed_from_checkpoint_keeps_its_step(tmp_path, rng):
    x = rng.random((64, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 4, 64)
    model = pruning.prune_low_magnitude(sequential_cnn(), schedule=pruning.PolynomialDecay(
        target=0.8, end_step=40))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)  # 8 steps
    model.save(tmp_path / "ckpt.keras")
    from edgecompress.loading import load_model
    from edgecompress.registration import register_edgecompress_objects

    register_edgecompress_objects()
    resumed = load_model(tmp_path / "ckpt.keras")
    steps = {int(v.numpy()) for v in resumed.weights if "pruning_step" in v.name}
    assert steps == {8}
    resumed.compile("adam", "sparse_categorical_crossentropy")
    resumed.fit(x, y, epochs=1, batch_size=16, verbose=0)
    steps = {int(v.numpy()) for v in resumed.weights if "pruning_step" in v.name}
    assert steps == {12}
