"""Shared fixtures: tiny models of every kind, and the shipped data."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from edgecompress._keras import keras, tf  # noqa: E402

tf.config.threading.set_inter_op_parallelism_threads(2)


def sequential_cnn(input_shape=(12, 12, 1), classes=4):
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(6, 3, activation="relu", name="conv1"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(16, activation="relu", name="fc1"),
            keras.layers.Dense(classes, activation="softmax", name="fc2"),
        ],
        name="seq_cnn",
    )


def residual_cnn(input_shape=(12, 12, 1), classes=4):
    inp = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
    y = keras.layers.Conv2D(8, 3, padding="same", name="res_a")(x)
    y = keras.layers.BatchNormalization(name="res_bn")(y)
    y = keras.layers.ReLU(name="res_relu")(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="res_dw")(y)
    x = keras.layers.Add(name="add")([x, y])
    z = keras.layers.Conv2D(4, 1, name="side")(x)
    x = keras.layers.Concatenate(name="concat")([x, z])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc1")(x)
    out = keras.layers.Dense(classes, activation="softmax", name="fc2")(x)
    return keras.Model(inp, out, name="res_cnn")


def multi_io_model():
    a = keras.Input((6,), name="a")
    b = keras.Input((4,), name="b")
    shared = keras.layers.Dense(5, activation="tanh", name="shared")
    x = keras.layers.Concatenate(name="cat")([shared(keras.layers.Dense(4, name="pa")(a)),
                                               shared(b)])
    out1 = keras.layers.Dense(3, name="head1")(x)
    out2 = keras.layers.Dense(2, name="head2")(x)
    return keras.Model([a, b], [out1, out2], name="multi_io")


def nested_model():
    inner = keras.Sequential(
        [keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3, name="inner_conv"),
         keras.layers.GlobalAveragePooling2D(name="inner_gap")], name="inner")
    inp = keras.Input((12, 12, 1))
    out = keras.layers.Dense(3, name="head")(inner(inp))
    return keras.Model(inp, out, name="outer")


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)


def weights_fingerprint(model):
    """A hash of a model's weights and config, to prove a transform left it untouched."""
    import hashlib
    import json

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    h.update(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    return h.hexdigest()


@pytest.fixture(scope="session")
def mnist5k():
    from edgecompress import datasets

    return datasets.load("mnist5k")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
