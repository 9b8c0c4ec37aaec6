"""Benchmark: a binarized MNIST net trained on MNIST-5k, exported with LCE, against float TFLite.

The float net is larq's MNIST tutorial architecture (3 conv + 2 dense, BN after each) with ReLU;
``binarize`` turns it into the tutorial BNN (first conv: binary weights on float pixels;
the rest: binary weights and activations), which is fine-tuned with augmentation.
``dense_as_conv`` then makes the Dense layers LCE bit-packed convolutions.

Command (trains on the 4,000 MNIST-5k training digits, like every benchmark; tests on the
MNIST t10k IDX files)::

    nice -n 10 python -m edgecompress.bench.binary --mnist-dir ../shared/data/mnist
"""

from __future__ import annotations

if __name__ == "__main__":  # options (and --help) before TensorFlow loads
    import sys

    from edgecompress import bench

    sys.exit(bench.main(__spec__.name, description=__doc__, report="_report"))

import os
import sys
import tempfile
import time

import numpy as np

from edgecompress import binary
from edgecompress._keras import keras, tf
from edgecompress.bench.harness import compare_latency


def tutorial_net(hidden: int = 64, name: str = "mnist_float") -> keras.Model:
    """larq's MNIST tutorial architecture, in float with ReLU (no biases: BN follows)."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(32, 3, use_bias=False, activation="relu", name="conv1"),
        L.MaxPooling2D(name="pool1"), L.BatchNormalization(scale=False, name="bn1"),
        L.Conv2D(64, 3, use_bias=False, activation="relu", name="conv2"),
        L.MaxPooling2D(name="pool2"), L.BatchNormalization(scale=False, name="bn2"),
        L.Conv2D(64, 3, use_bias=False, activation="relu", name="conv3"),
        L.BatchNormalization(scale=False, name="bn3"), L.Flatten(name="flatten"),
        L.Dense(hidden, use_bias=False, activation="relu", name="fc1"),
        L.BatchNormalization(scale=False, name="bn4"),
        L.Dense(10, use_bias=False, name="fc2"),
        L.BatchNormalization(scale=False, name="bn5"), L.Activation("softmax", name="softmax"),
    ], name=name)


def to_bnn(model: keras.Model) -> keras.Model:
    """The tutorial BNN: conv1 BinaryConnect (float pixels), everything after it BinaryNet."""
    model = binary.binarize(model, "binaryconnect", layers=["conv1"])
    return binary.binarize(model, "binarynet", layers=["conv2", "conv3", "fc1", "fc2"])


def _augmented(x, y, batch, seed=0):
    shift = keras.Sequential([keras.layers.RandomTranslation(0.1, 0.1, seed=seed),
                              keras.layers.RandomRotation(0.04, seed=seed)])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(batch)
    return ds.map(lambda a, b: (shift(a, training=True), b)).prefetch(2)


def _fit(model, train, epochs, lr, optimizer=None, batch=64):
    sched = keras.optimizers.schedules.CosineDecay(lr, epochs * -(-len(train[0]) // batch))
    model.compile(optimizer or keras.optimizers.legacy.Adam(sched),
                  "sparse_categorical_crossentropy", ["accuracy"])
    log = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: print(
        f"  {model.name} epoch {e + 1}/{epochs}: {logs}", file=sys.stderr, flush=True))
    model.fit(_augmented(*train, batch), epochs=epochs, verbose=0, callbacks=[log])
    return model


def recalibrate_bn(model, x, count=2000):
    """Set every BatchNormalization's moving statistics to the exact statistics of ``x``.

    After a short augmented run the moving averages of the float net lagged far behind (47%
    inference vs 97% training-mode accuracy on MNIST t10k); one large batch with momentum 0 fixes it.
    """
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(x[:count], training=True)
    for bn, momentum in zip(bns, saved, strict=True):
        bn.momentum = momentum
    return model


def _convert(model, path, lce: bool) -> bytes:
    import larq_compute_engine

    if lce:
        data = larq_compute_engine.convert_keras_model(model)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        data = converter.convert()
    with open(path, "wb") as f:
        f.write(data)
    return data


def run(train, test, quick: bool = False, hidden: int = 256, float_epochs: int = 4,
        bnn_epochs: int = 40) -> list[dict]:
    """Train float -> binarize -> fine-tune; export float TFLite and LCE; measure side by side.

    Rows: float Keras/TFLite, BNN Keras, BNN LCE with Dense as FULLY_CONNECTED, BNN LCE with
    ``dense_as_conv``; plus the size of the exact tutorial net (hidden=64) untrained, for scale.
    """
    from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

    if quick:
        float_epochs, bnn_epochs = 1, 2
        train = (train[0][:1000], train[1][:1000])
    keras.utils.set_random_seed(0)
    x_te, y_te = test
    fmodel = recalibrate_bn(_fit(tutorial_net(hidden), train, float_epochs, 1e-3), train[0])
    start = time.perf_counter()
    bnn = _fit(to_bnn(fmodel), train, bnn_epochs, 1e-3)
    train_seconds = time.perf_counter() - start
    deploy = binary.dense_as_conv(bnn)
    rows, tmp = [], tempfile.mkdtemp(prefix="ec_bench_binary_")
    bnn.save(os.path.join(tmp, "bnn.keras"))  # kept for inspection / re-export
    print(f"trained in {train_seconds:.0f} s; models in {tmp}", file=sys.stderr, flush=True)

    files = {}
    def acc(pred):
        return float(np.mean(np.argmax(pred, -1) == y_te[: len(pred)]))

    float_bytes = _convert(fmodel, os.path.join(tmp, "float.tflite"), lce=False)
    keras_bnn = bnn.predict(x_te, verbose=0, batch_size=500)
    for name, model, lce in [("float (TFLite)", fmodel, False),
                             ("BNN, LCE, Dense as FULLY_CONNECTED", bnn, True),
                             ("BNN, LCE, dense_as_conv", deploy, True)]:
        data = float_bytes if not lce else _convert(model, os.path.join(tmp, "m.tflite"), True)
        interp = LceInterpreter(data, num_threads=1)
        pred = interp.predict(x_te)
        files[name] = data
        info = binary.summary(model)
        rows.append({
            "name": name, "params": model.count_params(), "bytes": len(data),
            "size_ratio": len(float_bytes) / len(data),
            "accuracy": acc(pred),
            "agreement_with_keras": (float(np.mean(np.argmax(pred, -1) == np.argmax(keras_bnn, -1)))
                                     if lce else None),
            "max_abs_diff": float(np.abs(pred - keras_bnn).max()) if lce else None,
            "binary_mac_fraction": info["binary_mac_fraction"],
            "larq_memory_bytes": info["memory_bytes"],
        })
    # Every file in LCE's interpreter (the float file too), timed side by side.
    lat = compare_latency(files, rounds=3 if quick else 10, invokes=5 if quick else 20, runtime="lce")
    for row in rows:
        row["latency_ms_lce_interpreter"] = lat.median(row["name"]) / 1e3
        row["load_average"] = lat.load_average
    rows[0]["keras_accuracy"] = acc(fmodel.predict(x_te, verbose=0, batch_size=500))
    rows[-1]["keras_accuracy"] = acc(keras_bnn)
    rows[-1]["bnn_train_seconds"] = train_seconds

    # The exact tutorial net (hidden=64): size ratio only, untrained.
    small = tutorial_net(64)
    small_float = _convert(small, os.path.join(tmp, "s.tflite"), False)
    small_lce = _convert(binary.dense_as_conv(to_bnn(small)), os.path.join(tmp, "s_lce.tflite"),
                         True)
    rows.append({"name": "tutorial net (hidden=64), LCE dense_as_conv, untrained",
                 "params": small.count_params(), "bytes": len(small_lce),
                 "size_ratio": len(small_float) / len(small_lce),
                 "float_bytes": len(small_float)})
    return rows


COLUMNS = ["name", "params", "bytes", "size_ratio", "accuracy", "keras_accuracy",
           "agreement_with_keras", "max_abs_diff", "latency_ms_lce_interpreter",
           "binary_mac_fraction"]


def _report(train, test, args) -> str:
    from edgecompress.bench import table

    tf.config.threading.set_intra_op_parallelism_threads(2)  # before TensorFlow's first op
    return table(run(train, test, quick=args.quick), COLUMNS)
