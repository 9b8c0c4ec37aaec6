"""Benchmark: the lightweight and shallow backbones side by side on MNIST.

Each backbone is trained a few epochs on ``train`` (MNIST-5k), exported to full-int8 TFLite,
verified, and measured on ``test`` (the MNIST t10k set when given): parameters, MACs, int8 file
bytes, single-thread int8 latency (median, batch 1) and int8 accuracy. A second table compares
MobileNetV2-0.35 at 96x96x3 (the visual-wake-words configuration) as int8 and float32 files.

Run (from the repository root)::

    nice python -m edgecompress.bench.backbones --mnist-dir /path/to/mnist

Without ``--mnist-dir`` it evaluates on MNIST-5k's 1,000 held-out digits.
"""

from __future__ import annotations


def _arguments(parser) -> None:
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per backbone")
    parser.add_argument("--no-vww", action="store_true", help="skip the 96x96 latency table")


if __name__ == "__main__":  # options (and --help) before TensorFlow loads
    import sys

    from edgecompress import bench

    sys.exit(bench.main(__spec__.name, description=__doc__, add_arguments=_arguments, report="_report"))

import tempfile
import time
from pathlib import Path

import numpy as np

from edgecompress import measure, models
from edgecompress._keras import keras, tf
from edgecompress._markdown import table as markdown_table
from edgecompress.bench.harness import compare_latency
from edgecompress.datasets import CALIBRATION_SAMPLES

# (name, builder) on 28x28x1 / 10 classes.
BACKBONES = [
    ("lenet_300_100", lambda: models.lenet_300_100((28, 28, 1), 10)),
    ("lenet5", lambda: models.lenet5((28, 28, 1), 10)),
    ("small_cnn (8,16)+32", lambda: models.small_cnn((28, 28, 1), 10, (8, 16), (32,))),
    ("resnet8", lambda: models.resnet8((28, 28, 1), 10)),
    ("mobilenet_v2 a=0.35", lambda: models.mobilenet_v2((28, 28, 1), 10, alpha=0.35)),
    ("shufflenet_v2 0.5x", lambda: models.shufflenet_v2((28, 28, 1), 10, scale=0.5)),
]


def _train(model, train, epochs, seed=0):
    # A few epochs of 4,000 digits are ~130 steps: BatchNorm's moving statistics (momentum
    # 0.99, 0.999 in MobileNetV2) would still mostly hold their initial values. 0.9 lets them
    # converge; it changes nothing else in the network.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    keras.utils.set_random_seed(seed)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", ["accuracy"])
    start = time.perf_counter()
    model.fit(*train, epochs=epochs, batch_size=64, verbose=0)
    return time.perf_counter() - start


def run(train, test, quick: bool = False, runs: int = 100, epochs: int = 3, log=None) -> list[dict]:
    """Train, export and measure every backbone; returns one row per backbone.

    Args:
        train: ``(x, y)`` 28x28x1 images in [0, 1] and integer labels.
        test: ``(x, y)`` to measure accuracy on.
        quick: 1 epoch and 20 latency runs instead of ``epochs`` and ``runs``.
        runs: latency runs (the median is reported).
        epochs: training epochs per backbone.
        log: called with each finished row (e.g. ``print``).
    """
    import tflite_export  # benchmarks may bridge to the exporter

    epochs, runs = (1, 20) if quick else (epochs, runs)
    rows = []
    calib = train[0][np.random.default_rng(0).choice(len(train[0]), CALIBRATION_SAMPLES, replace=False)]
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in BACKBONES:
            model = build()
            seconds = _train(model, train, epochs)
            m = measure(model, test)
            files[name] = Path(tmp) / f"{name}.tflite"
            report = tflite_export.export(
                model, files[name], "int8", representative_data=calib, verify_data=test
            )
            rows.append(dict(
                name=name, params=m.params, macs=m.macs, int8_bytes=report.bytes,
                keras_accuracy=m.accuracy, int8_accuracy=report.accuracy,
                agreement=report.agreement, train_s=seconds, epochs=epochs,
            ))  # fmt: skip
            if log:
                log(rows[-1])
        lat = compare_latency(files, rounds=3 if quick else 10, invokes=runs)
    for row in rows:
        row["int8_latency_us"] = lat.median(row["name"])
        row["load_average"] = lat.load_average
    return rows


def vww_latency(train, runs: int = 100, quick: bool = False) -> dict:
    """MobileNetV2-0.35 at 96x96x3: int8 vs float32 single-thread latency of the same model.

    The model is untrained (no 96x96 data ships with the project); it is calibrated on MNIST
    digits resized to 96x96 and tiled to 3 channels, so this measures speed, not accuracy.
    """
    import tflite_export

    runs = 20 if quick else runs
    x = train[0][np.random.default_rng(0).choice(len(train[0]), 64, replace=False)]
    x = np.repeat(tf.image.resize(x, (96, 96)).numpy(), 3, axis=-1)
    model = models.mobilenet_v2((96, 96, 3), 2, alpha=0.35)
    result = {"name": "mobilenet_v2 a=0.35 96x96x3", "params": model.count_params(),
              "macs": measure(model).macs}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for mode in ("float32", "int8"):
            files[mode] = Path(tmp) / f"{mode}.tflite"
            report = tflite_export.export(model, files[mode], mode, representative_data=x, verify_data=x)
            result[f"{mode}_bytes"] = report.bytes
            result[f"{mode}_agreement"] = report.agreement
        lat = compare_latency(files, rounds=3 if quick else 10, invokes=runs)
    for mode in files:
        result[f"{mode}_latency_us"] = lat.median(mode)
    result["int8_speedup"] = lat.ratio("int8", "float32")
    result["load_average"] = lat.load_average
    return result


def to_markdown(rows: list[dict], vww: dict | None = None) -> str:
    text = markdown_table(
        ["backbone", "params", "MACs", "int8 bytes", "int8 latency (µs, 1 thread)", "Keras acc.",
         "int8 acc.", "int8/Keras agreement"],
        ([r["name"], f"{r['params']:,}", f"{r['macs']:,}", f"{r['int8_bytes']:,}",
          f"{r['int8_latency_us']:,.0f}", f"{r['keras_accuracy']:.4f}", f"{r['int8_accuracy']:.4f}",
          f"{r['agreement']:.4f}"] for r in rows), align="l" + "r" * 7)
    if vww:
        text += "\n\n" + markdown_table(
            ["MobileNetV2-0.35 96x96x3", "params", "MACs", "float32 bytes", "int8 bytes",
             "float32 µs", "int8 µs", "int8 speed-up"],
            [["untrained, 2 classes", f"{vww['params']:,}", f"{vww['macs']:,}",
              f"{vww['float32_bytes']:,}", f"{vww['int8_bytes']:,}",
              f"{vww['float32_latency_us']:,.0f}", f"{vww['int8_latency_us']:,.0f}",
              f"{vww['int8_speedup']:.2f}x"]], align="l" + "r" * 7)
    return text


def _report(train, test, args) -> str:
    rows = run(train, test, quick=args.quick, epochs=args.epochs,
               log=lambda r: print(r, flush=True))
    vww = None if args.no_vww else vww_latency(train, quick=args.quick)
    return to_markdown(rows, vww)
