"""Tiny models for the tflite_export tests (trained for a few steps only)."""

from edgecompress._keras import keras


def tiny_lenet(input_shape=(8, 8, 1), classes=10):
    """A LeNet-like conv net: conv, pool, conv, flatten, dense, softmax."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="fc1"),
            keras.layers.Dense(classes, activation="softmax", name="fc2"),
        ],
        name="tiny_lenet",
    )


def trained(model, x, y, steps=120):
    keras.utils.set_random_seed(0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=max(1, steps * 32 // len(x)), verbose=0)
    return model


def tiny_larq(input_shape=(8, 8, 1), classes=10):
    import larq as lq

    binary = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                  kernel_constraint="weight_clip", use_bias=False)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            lq.layers.QuantConv2D(16, 3, padding="same", kernel_quantizer="ste_sign",
                                  kernel_constraint="weight_clip", use_bias=False),
            keras.layers.BatchNormalization(momentum=0.9),
            lq.layers.QuantConv2D(16, 3, **binary),
            keras.layers.BatchNormalization(momentum=0.9),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes, activation="softmax"),
        ],
        name="tiny_larq",
    )


def digits():
    from edgecompress import datasets

    (x, y), (xt, yt) = datasets.load("digits")
    return (x, y), (xt[:150], yt[:150])


def listing(folder):
    return sorted(p.name for p in folder.iterdir())

