"""LeNet-5 (Caffe / Deep Compression variant) and LeNet-300-100.

References:
    LeCun et al., "Gradient-based learning applied to document recognition", 1998.
    Han et al., "Deep Compression", ICLR 2016 (the Caffe LeNet-5 and LeNet-300-100 they prune).
"""

from __future__ import annotations

from edgecompress._keras import keras
from edgecompress.models._checks import check_builder_args


def lenet5(input_shape=(28, 28, 1), num_classes: int = 10, name: str = "lenet5",
           dropout: float = 0.0) -> keras.Model:
    """Caffe LeNet-5: conv 20@5x5, max-pool, conv 50@5x5, max-pool, FC 500, FC ``num_classes``.

    431,080 parameters on 28x28x1 inputs with 10 classes. The output is a softmax.
    ``dropout > 0`` adds Dropout before each FC layer (Hinton et al.'s regularized teacher;
    no parameters, removed at export).
    """
    check_builder_args(input_shape, num_classes, min_size=12)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}")
    inp = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(20, 5, name="conv1")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(50, 5, name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="drop1")(x)
    x = keras.layers.Dense(500, activation="relu", name="fc1")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="drop2")(x)
    out = keras.layers.Dense(num_classes, activation="softmax", name="fc2")(x)
    return keras.Model(inp, out, name=name)


def lenet_300_100(input_shape=(28, 28, 1), num_classes: int = 10, name: str = "lenet_300_100"):
    """LeNet-300-100: flatten, FC 300, FC 100, FC ``num_classes`` (266,610 parameters on MNIST)."""
    check_builder_args(input_shape, num_classes, min_size=1)
    inp = keras.Input(input_shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inp)
    x = keras.layers.Dense(300, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(100, activation="relu", name="fc2")(x)
    out = keras.layers.Dense(num_classes, activation="softmax", name="fc3")(x)
    return keras.Model(inp, out, name=name)
