"""Knowledge-distillation benchmark: does a LeNet-5 teacher make a tiny student better?

Setting (issue #7): teacher LeNet-5 (431k parameters), student a 5.3k-parameter CNN (1/80 of the
teacher), both trained on the 4,000 MNIST-5k training digits with Adam and the same number of
epochs; accuracy on the canonical 10,000-image MNIST test set; median over seeds.

Rows, side by side in one run:
* ``student alone +aug`` / ``distilled +aug``: the same random shifts for every model, the
  Distiller defaults (T=4, alpha=0.5): the teacher labels each shifted digit afresh;
* ``student alone`` / ``distilled (naive)``: no augmentation, alpha=0.1 (the recipe that was worse);
* ``pruned 80%`` / ``pruned 80% distilled``: the student pruned with tfmot while it trains.

Command (writes a Markdown table to stdout)::

    nice python -m edgecompress.bench.distillation \\
        --test-images ../shared/data/mnist/t10k-images-idx3-ubyte.gz \\
        --test-labels ../shared/data/mnist/t10k-labels-idx1-ubyte.gz
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edgecompress._keras import keras, tf
from edgecompress.distillation import Distiller
from edgecompress.models import lenet5

BATCH = 64


def student_cnn(name="student") -> keras.Model:
    """5,258 parameters: conv 8@3x3, pool, conv 16@3x3, pool, dense 10 (softmax)."""
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(10, activation="softmax", name="fc")(x)
    return keras.Model(inp, out, name=name)


def _dataset(x, y, augment: bool, seed: int):
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
    if augment:  # random shifts of up to 2 pixels: pad to 32x32, crop back to 28x28
        def shift(img, label):
            img = tf.image.pad_to_bounding_box(img, 2, 2, 32, 32)
            return tf.image.random_crop(img, (28, 28, 1)), label

        ds = ds.map(shift, num_parallel_calls=2)
    return ds.batch(BATCH).prefetch(2)


def _fit(model, train, epochs, augment, seed, callbacks=()):
    model.fit(_dataset(*train, augment, seed), epochs=epochs, verbose=0, callbacks=list(callbacks))


def _accuracy(model, test) -> float:
    probs = model.predict(test[0], batch_size=512, verbose=0)
    return float(np.mean(np.argmax(probs, -1) == test[1]))


def _pruned(student, steps):
    import tensorflow_model_optimization as tfmot

    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.8, 0, int(steps * 0.7), frequency=10)
    return tfmot.sparsity.keras.prune_low_magnitude(student, pruning_schedule=schedule)


def run(train, test, quick: bool = False, seeds=(0, 1, 2), epochs: int = 12,
        teacher_epochs: int = 15, progress: bool = False) -> list[dict]:
    """Train the teacher once, then each student configuration for every seed.

    Returns rows with name, params, accuracy (median over seeds), per-seed accuracies, and the
    gain over the matching undistilled twin in percentage points.
    """
    import tensorflow_model_optimization as tfmot

    if quick:
        seeds, epochs, teacher_epochs = seeds[:1], 2, 2
        train = (train[0][:1000], train[1][:1000])
        test = (test[0][:1000], test[1][:1000])
    keras.utils.set_random_seed(100)
    teacher = lenet5()
    teacher.compile("adam", "sparse_categorical_crossentropy")
    _fit(teacher, train, teacher_epochs, augment=True, seed=100)
    rows = [{"name": "teacher LeNet-5 +aug", "params": teacher.count_params(),
             "accuracy": _accuracy(teacher, test), "seeds": [], "vs twin (pp)": None}]
    if progress:
        print(rows[0], flush=True)
    steps = epochs * int(np.ceil(len(train[0]) / BATCH))
    configs = [  # name, augment, distill kwargs (None: alone), pruned, twin
        ("student alone +aug", True, None, False, None),
        ("distilled (defaults) +aug", True, {}, False, "student alone +aug"),
        ("student alone", False, None, False, None),
        ("distilled (naive: T=4, alpha=0.1)", False, dict(temperature=4.0, alpha=0.1), False,
         "student alone"),
        ("pruned 80% +aug", True, None, True, None),
        ("pruned 80% distilled +aug", True, {}, True, "pruned 80% +aug"),
    ]
    by_name = {}
    for name, augment, distill, pruned, twin in configs:
        accs = []
        start = time.perf_counter()
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            student = student_cnn()
            params = student.count_params()
            callbacks = []
            if pruned:
                student = _pruned(student, steps)
                callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
            if distill is None:
                model = student
                model.compile("adam", "sparse_categorical_crossentropy")
            else:
                model = Distiller(teacher, student, **distill)
                model.compile("adam")
            _fit(model, train, epochs, augment, seed, callbacks)
            final = tfmot.sparsity.keras.strip_pruning(student) if pruned else student
            accs.append(_accuracy(final, test))
        median = statistics.median(accs)
        row = {"name": name, "params": params, "accuracy": median,
               "seeds": [round(a, 4) for a in accs],
               "vs twin (pp)": None if twin is None else round(100 * (median - by_name[twin]), 2),
               "seconds": round(time.perf_counter() - start, 1)}
        by_name[name] = median
        rows.append(row)
        if progress:
            print(row, flush=True)
    return rows


def to_markdown(rows) -> str:
    lines = ["| model | params | test accuracy (median) | per seed | vs undistilled twin |",
             "|---|---:|---:|---|---:|"]
    for r in rows:
        gain = "" if r["vs twin (pp)"] is None else f"{r['vs twin (pp)']:+.2f} pp"
        seeds = ", ".join(f"{100 * a:.2f}" for a in r["seeds"])
        lines.append(f"| {r['name']} | {r['params']:,} | {100 * r['accuracy']:.2f}% | {seeds} | {gain} |")
    return "\n".join(lines)


def main(argv=None):
    from edgecompress import datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-images", help="MNIST t10k images (IDX); default: mnist5k split")
    parser.add_argument("--test-labels", help="MNIST t10k labels (IDX)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    train, test = datasets.load("mnist5k")
    if args.test_images:
        test = datasets.load_idx(args.test_images, args.test_labels)
    rows = run(train, test, quick=args.quick, seeds=tuple(range(args.seeds)), epochs=args.epochs,
               teacher_epochs=args.teacher_epochs, progress=True)
    print(to_markdown(rows))
    return rows


if __name__ == "__main__":
    main()
