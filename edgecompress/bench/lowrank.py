"""Low-rank benchmark: SVD of LeNet-300-100's FC layers, Tucker-2 / spatial SVD of LeNet-5's convs.

Everything runs side by side in one process on the same data. Float TFLite latency is measured
with the LiteRT interpreter (1 thread, batch 1), interleaving the models, and quoted as medians.

Command (MNIST t10k as the test set)::

    PYTHONPATH=. python -m edgecompress.bench.lowrank --mnist-dir /path/to/mnist

Without ``--mnist-dir`` the 1,000 held-out MNIST-5k digits are the test set.
"""

from __future__ import annotations

if __name__ == "__main__":  # options (and --help) before TensorFlow loads
    import sys

    from edgecompress import bench

    sys.exit(bench.main(__spec__.name, description=__doc__))

import os
import tempfile

from edgecompress import lowrank, models
from edgecompress._keras import keras, tf
from edgecompress.bench.harness import compare_latency
from edgecompress.measure import keras_accuracy, keras_macs


def _train(model, train, epochs, lr=1e-3, seed=0):
    keras.utils.set_random_seed(seed)
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    model.fit(*train, epochs=epochs, batch_size=64, verbose=0)
    return model


def _params(model, names):
    return int(sum(model.get_layer(n).count_params() for n in names))


def _tflite(model, folder, name):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path = os.path.join(folder, f"{name}.tflite")
    with open(path, "wb") as f:
        f.write(converter.convert())
    return path


def latency_us(paths, rounds=15, invokes=50) -> list[float]:
    """Median microseconds per batch-1 invoke of each file, through the one harness."""
    lat = compare_latency({str(i): p for i, p in enumerate(paths)}, rounds=rounds, invokes=invokes)
    return [lat.median(str(i)) for i in range(len(paths))]


def run(train, test, quick=False, fc_ratio=0.18, conv_ratio=0.3) -> list[dict]:
    """Rows for the Markdown table (see module docstring)."""
    epochs, ft_epochs = (2, 1) if quick else (12, 4)
    rows = []

    # --- LeNet-300-100: SVD of every FC layer to `fc_ratio` of their parameters, ranks by plain
    # singular-value energy and by response energy (factorize(data=...): 1,000 training images) ---
    fc = ["fc1", "fc2", "fc3"]
    fc_ft, fc_lr = (1, 1e-3) if quick else (8, 1e-3)
    base = _train(models.lenet_300_100(), train, epochs)
    base_acc, base_fc = keras_accuracy(base, test), _params(base, fc)
    rows.append(dict(model="LeNet-300-100", variant="float", ranks="-", fc_params=base_fc,
                     macs=keras_macs(base), accuracy=base_acc))
    for label, data in (("energy", None), ("response energy", train[0][:1000])):
        small, report = lowrank.factorize(base, method="svd", target_ratio=fc_ratio, data=data,
                                          return_report=True)
        no_ft = keras_accuracy(small, test)
        _train(small, train, fc_ft, lr=fc_lr)
        acc = keras_accuracy(small, test)
        fc_after = sum(r.params_after for r in report.factorized) + sum(
            r.params_before for r in report.skipped)
        rows.append(dict(model="LeNet-300-100", variant=f"SVD target_ratio={fc_ratio} by {label} "
                         f"+ {fc_ft}-epoch fine-tune", ranks=_ranks(report), fc_params=fc_after,
                         macs=keras_macs(small), accuracy=acc, accuracy_no_ft=no_ft,
                         fc_param_ratio=base_fc / fc_after, delta_pp=100 * (acc - base_acc)))

    # --- LeNet-5: conv layers by MAC target, "auto" (spatial SVD conv1, Tucker-2 conv2) and
    # spatial SVD for both -----------------------------------------------------------------------
    convs = ["conv1", "conv2"]
    base5 = _train(models.lenet5(), train, epochs)
    base5_acc = keras_accuracy(base5, test)
    variants = []
    for method in ("auto", "spatial_svd"):
        fact, rep = lowrank.factorize(base5, method=method, layers=convs, target="macs",
                                      target_ratio=conv_ratio, return_report=True)
        no_ft = keras_accuracy(fact, test)
        _train(fact, train, ft_epochs, lr=3e-4)
        variants.append((method, fact, rep, no_ft, keras_accuracy(fact, test)))
    with tempfile.TemporaryDirectory() as tmp:
        paths = [_tflite(base5, tmp, "base")] + [_tflite(v[1], tmp, v[0]) for v in variants]
        lat = latency_us(paths, rounds=5 if quick else 15)
    conv_macs = sum(r.macs_before for r in variants[0][2])
    rows.append(dict(model="LeNet-5", variant="float", ranks="-", conv_macs=conv_macs,
                     macs=keras_macs(base5), accuracy=base5_acc, tflite_us=lat[0]))
    for (method, fact, rep, no_ft, acc), us in zip(variants, lat[1:], strict=False):
        after = sum(r.macs_after for r in rep)
        rows.append(dict(model="LeNet-5", variant=f"{method} convs, target_ratio={conv_ratio} MACs "
                         f"+ {ft_epochs}-epoch fine-tune", ranks=_ranks(rep), conv_macs=after,
                         macs=keras_macs(fact), accuracy=acc, accuracy_no_ft=no_ft, tflite_us=us,
                         conv_mac_ratio=conv_macs / after, latency_ratio=lat[0] / us,
                         delta_pp=100 * (acc - base5_acc)))
    return rows


def _ranks(report) -> str:
    return ", ".join(f"{r.layer}:{r.method}@{r.rank}" for r in report.factorized) or "-"


COLUMNS = ["model", "variant", "ranks", "fc_params", "conv_macs", "macs", "accuracy",
           "accuracy_no_ft", "delta_pp", "fc_param_ratio", "conv_mac_ratio", "tflite_us",
           "latency_ratio"]
