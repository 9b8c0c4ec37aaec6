"""The tiny digits classifier the search tests share (8x8x1 inputs, 10 classes)."""

from edgecompress._keras import keras


def tiny_classifier(filters=16, units=64):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(filters, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(name="flatten"),
                              keras.layers.Dense(units, activation="relu", name="fc1"),
                              keras.layers.Dense(10, activation="softmax", name="fc2")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
