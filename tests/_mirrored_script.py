"""Run by test_distribute.py in a fresh process: two logical CPUs must exist before TF starts."""

import json
import sys

import edgecompress  # noqa: F401  (legacy-Keras guard first)
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from edgecompress import binary, datasets, models, pruning, quantization  # noqa: E402
from edgecompress._keras import keras  # noqa: E402

(x, y), _ = datasets.load("digits")
x, y = x[:256], y[:256]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
results = {"replicas": strategy.num_replicas_in_sync}


def small():
    return keras.Sequential([keras.Input((8, 8, 1)),
                             keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
                             keras.layers.Flatten(name="flatten"),
                             keras.layers.Dense(32, activation="relu", name="fc1"),
                             keras.layers.Dense(10, activation="softmax", name="fc2")])


def fit(model):
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    return float(history.history["loss"][-1]), float(history.history["loss"][0])


for family in sys.argv[1:]:
    with strategy.scope():
        base = small()
        if family == "pruning":
            model = pruning.prune_low_magnitude(base, schedule=pruning.ConstantSparsity(0.5))
        elif family == "clustering":
            model = quantization.cluster_weights(base, clusters=8, init="linear")
        elif family == "qat":
            model = quantization.quantize_aware(base)
        elif family == "binary":
            model = binary.binarize(base, "binaryconnect")
        last, first = fit(model)
    out = {"loss_first": first, "loss_last": last}
    if family == "pruning":
        kernel = pruning.strip(model).get_layer("fc1").get_weights()[0]
        out["sparsity"] = float(np.mean(kernel == 0))
    if family == "clustering":
        kernel = quantization.strip(model).get_layer("fc1").get_weights()[0]
        out["unique"] = int(np.unique(kernel).size)
    results[family] = out
print("RESULT " + json.dumps(results))
