"""Knowledge-distillation benchmark: does a LeNet-5 teacher make a tiny student better?

Setting (issue #7): teacher LeNet-5 (431,080 parameters), student a 5,258-parameter CNN (1/82 of
the teacher); every student is trained on the 4,000 MNIST-5k training digits with the same epochs,
optimizer (Adam, lr 1e-3, batch 64) and input pipeline as its undistilled twin; accuracy on the
10,000-image MNIST test set; median over seeds.

The teacher is the regularized net of Hinton et al. (2015): LeNet-5 with dropout 0.5, trained
40 epochs with random rotations (+-10 degrees), zoom (10%) and shifts (2 px), cosine-decayed Adam.
The Distiller runs it on every student batch, so it labels each view afresh.

Pairs, side by side in one run (each distilled row against the row just above it):

* ``plain``: no augmentation for either student (Hinton's MNIST setting: the teacher's soft
  targets are the student's only regularizer);
* ``shift``: random 2-px shifts for both students (the recipe our baselines use);
* with ``pruned=True``: the student pruned to 80% sparsity by tfmot while it trains (plain);
* with ``function_matching=True``: shift pipeline, a longer cosine schedule (``fm_epochs``,
  lr 2e-3) for both, the distilled one by Beyer et al.'s function matching (``mixup=1``, ``T=1``,
  ``alpha=0``: the teacher labels mixup images of the shifted digits).

Command (writes a Markdown table to stdout)::

    nice python -m edgecompress.bench.distillation --mnist-dir ../shared/data/mnist
"""

from __future__ import annotations

PIPELINES = {"plain": 0, "shift": 2}  # name -> shift in pixels


def _pipelines(text: str) -> tuple:
    import argparse

    names = tuple(p for p in text.split(",") if p)
    if not names or not set(names) <= set(PIPELINES):
        raise argparse.ArgumentTypeError(f"must be a comma list of {list(PIPELINES)}. Received: {text!r}")
    return names


def _arguments(parser) -> None:
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--teacher-epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--temperature", type=float, help="default: the Distiller's DEFAULT_TEMPERATURE")
    parser.add_argument("--alpha", type=float, help="default: the Distiller's DEFAULT_ALPHA")
    parser.add_argument("--pipelines", type=_pipelines, default=("plain", "shift"),
                        help="comma list of plain, shift")
    parser.add_argument("--pruned", action="store_true", help="add the 80%%-pruned student pair")
    parser.add_argument("--function-matching", action="store_true",
                        help="add the function-matching pair (shift, cosine, --fm-epochs)")
    parser.add_argument("--fm-epochs", type=int, default=100)


if __name__ == "__main__":  # options (and --help) before TensorFlow loads
    import sys

    from edgecompress import bench

    sys.exit(bench.main(__spec__.name, description=__doc__, add_arguments=_arguments, report="_report"))

import statistics
import time

import numpy as np

from edgecompress import datasets
from edgecompress._keras import keras
from edgecompress._markdown import table as markdown_table
from edgecompress.distillation import Distiller
from edgecompress.distillation.distiller import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
from edgecompress.measure import keras_accuracy
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


def train_teacher(train, epochs: int = 40, seed: int = 100) -> keras.Model:
    """LeNet-5 with dropout 0.5, trained with rotations, zoom and shifts (cosine-decayed Adam)."""
    keras.utils.set_random_seed(seed)
    teacher = lenet5(dropout=0.5, name="teacher")
    steps = epochs * int(np.ceil(len(train[0]) / BATCH))
    teacher.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
                    "sparse_categorical_crossentropy")
    teacher.fit(datasets.shifted_batches(*train, BATCH, pixels=2, rotation=10, zoom=0.1, seed=seed),
                epochs=epochs, verbose=0)
    return teacher


def _student(seed, teacher, train, epochs, pixels, prune, distill, cosine=False):
    """Train one student (alone when ``distill`` is None) and return it, pruning stripped."""
    import tensorflow_model_optimization as tfmot

    keras.utils.set_random_seed(seed)
    student = student_cnn()
    callbacks = []
    steps = epochs * int(np.ceil(len(train[0]) / BATCH))
    lr = keras.optimizers.schedules.CosineDecay(2e-3, steps) if cosine else 1e-3
    if prune:
        schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.8, 0, int(steps * 0.7), frequency=10)
        student = tfmot.sparsity.keras.prune_low_magnitude(student, pruning_schedule=schedule)
        callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
    if distill is None:
        model = student
        model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    else:
        model = Distiller(teacher, student, **distill)
        model.compile(keras.optimizers.Adam(lr))
    model.fit(datasets.shifted_batches(*train, BATCH, pixels=pixels, seed=seed), epochs=epochs,
              verbose=0, callbacks=callbacks)
    return tfmot.sparsity.keras.strip_pruning(student) if prune else student


def run(train, test, quick: bool = False, seeds=(0, 1, 2), epochs: int = 40,
        teacher_epochs: int = 40, progress: bool = False, pruned: bool = False,
        pipelines=("plain", "shift"), temperature: float = DEFAULT_TEMPERATURE,
        alpha: float = DEFAULT_ALPHA, function_matching: bool = False,
        fm_epochs: int = 100) -> list[dict]:
    """Train the teacher once, then each student pair for every seed.

    Returns rows with name, params, accuracy (median over seeds), per-seed accuracies, and the
    gain of the median over the undistilled twin's median in percentage points.
    """
    if quick:
        seeds, epochs, teacher_epochs, fm_epochs = seeds[:1], 2, 2, 2
        train = (train[0][:1000], train[1][:1000])
        test = (test[0][:1000], test[1][:1000])
    start = time.perf_counter()
    teacher = train_teacher(train, teacher_epochs)
    rows = [{"name": f"teacher LeNet-5 (dropout, affine aug, {teacher_epochs} ep)",
             "params": teacher.count_params(), "accuracy": keras_accuracy(teacher, test, 512), "seeds": [],
             "vs twin (pp)": None, "seconds": round(time.perf_counter() - start)}]
    if progress:
        print(rows[0], flush=True)
    hinton = dict(temperature=temperature, alpha=alpha)
    fm = dict(temperature=1.0, alpha=0.0, mixup=1.0)
    arms = [(p, False, epochs, False, hinton, f"T={temperature:g}, alpha={alpha:g}")
            for p in pipelines]
    if pruned:
        arms.append(("plain", True, epochs, False, hinton, f"T={temperature:g}, alpha={alpha:g}"))
    if function_matching:
        arms.append(("shift", False, fm_epochs, True, fm, "function matching (mixup, T=1, alpha=0)"))
    for pipeline, prune, n_epochs, cosine, distill, label in arms:
        twin = None
        for kind in ("alone", "distilled"):
            start = time.perf_counter()
            accs = [keras_accuracy(_student(seed, teacher, train, n_epochs, PIPELINES[pipeline], prune,
                                       None if kind == "alone" else distill, cosine), test, 512)
                    for seed in seeds]
            median = statistics.median(accs)
            schedule = f", {n_epochs} ep cosine" if cosine else ""
            rows.append({
                "name": f"{'pruned 80% ' if prune else ''}student "
                        f"{label if kind == 'distilled' else 'alone'}, {pipeline}{schedule}",
                "params": student_cnn().count_params(), "accuracy": median,
                "seeds": [round(a, 4) for a in accs],
                "vs twin (pp)": None if twin is None else round(100 * (median - twin), 2),
                "seconds": round(time.perf_counter() - start)})
            twin = median
            if progress:
                print(rows[-1], flush=True)
    return rows


def to_markdown(rows) -> str:
    return markdown_table(
        ["model", "params", "test accuracy (median)", "per seed", "vs undistilled twin"],
        ([r["name"], f"{r['params']:,}", f"{100 * r['accuracy']:.2f}%",
          ", ".join(f"{100 * a:.2f}" for a in r["seeds"]),
          "" if r["vs twin (pp)"] is None else f"{r['vs twin (pp)']:+.2f} pp"] for r in rows),
        align="lrrlr")


def _report(train, test, args) -> str:
    given = {k: v for k, v in (("temperature", args.temperature), ("alpha", args.alpha)) if v is not None}
    rows = run(train, test, quick=args.quick, seeds=tuple(range(args.seeds)), epochs=args.epochs,
               teacher_epochs=args.teacher_epochs, progress=True, pruned=args.pruned,
               pipelines=args.pipelines, function_matching=args.function_matching,
               fm_epochs=args.fm_epochs, **given)
    return to_markdown(rows)
