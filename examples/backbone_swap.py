"""Swap a large backbone for a lightweight one and train it with the Distiller.

A LeNet-5 teacher (431k parameters) is trained on MNIST-5k; a 5k-parameter student takes its place,
trained on the teacher's soft targets with the same shifted digits the teacher sees. Prints the
accuracy, size and latency of both.

    python examples/backbone_swap.py            # ~10 epochs each
    python examples/backbone_swap.py --fast     # a smoke run (or EDGECOMPRESS_FAST=1)
"""

import argparse
import os
import time

import numpy as np

from edgecompress import datasets, keras, measure, models, tf
from edgecompress.distillation import Distiller


def small_student():
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x), name="student")


def shifted(x, y, batch=64):
    """Random shifts of up to 2 pixels; the Distiller feeds the same shifted batch to the teacher."""
    def shift(img, label):
        img = tf.image.pad_to_bounding_box(img, 2, 2, 32, 32)
        return tf.image.random_crop(img, (28, 28, 1)), label
    return (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x)).map(shift)
            .batch(batch).prefetch(2))


def latency_ms(model, x, repeats=50):
    sample = tf.constant(x[:1])
    fn = tf.function(lambda t: model(t, training=False))
    fn(sample)  # trace once
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(sample).numpy()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true", default=bool(os.environ.get("EDGECOMPRESS_FAST")))
    args = parser.parse_args()
    epochs = 1 if args.fast else 10
    (x_train, y_train), (x_test, y_test) = datasets.load("mnist5k")
    if args.fast:
        x_train, y_train = x_train[:512], y_train[:512]

    teacher = models.lenet5()
    teacher.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    teacher.fit(shifted(x_train, y_train), epochs=epochs, verbose=2)

    distiller = Distiller(teacher, small_student())      # defaults: T=4, alpha=0.5
    distiller.compile("adam", metrics=["accuracy"])
    distiller.fit(shifted(x_train, y_train), epochs=epochs, verbose=2,
                  validation_data=(x_test, y_test))
    student = distiller.student                          # a plain Functional model: export it

    print(f"{'model':10} {'params':>8} {'float32 KB':>10} {'accuracy':>9} {'latency ms':>10}")
    for name, model in (("teacher", teacher), ("student", student)):
        m = measure(model, (x_test, y_test))
        print(f"{name:10} {m.params:8,} {m.float32_bytes / 1024:10.1f} {m.accuracy:9.4f} "
              f"{latency_ms(model, x_test):10.2f}")


if __name__ == "__main__":
    main()
