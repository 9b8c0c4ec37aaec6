"""Budget search benchmark (#20): LeNet-5 into 17 / 32 / 64 KB of flash with an 8 KB arena, the
same search on ResNet-8 and the DS-CNN (synthetic data: flash/arena/latency only), a dense MNIST
autoencoder (a regression output, judged by its reconstruction error), and candidates per hour on
1 and 2 local workers and a local 2-CPU Ray cluster.

    python -m edgecompress.bench.search --mnist-dir ../shared/data/mnist
"""

from __future__ import annotations

import logging
import os
import statistics
import time

import numpy as np

KB = 1024
LENET_FLASH = (17_276, 32 * KB, 64 * KB)


def _search(model, train, target, max_drop, quick, seed, **kwargs):
    from edgecompress import search

    settings = dict(ratios=(0.5,), rank_fractions=(0.25,), lut_bits=(), epochs=1, top_k=1,
                    scan_samples=200, step=1.0, max_iterations=2) if quick else {}
    settings.update(kwargs)
    start = time.time()
    result = search.search(model, train, target, max_drop=max_drop, seed=seed, **settings)
    return result, time.time() - start, os.getloadavg()[0]


def _row(name, result, seconds, load, test=None):
    from edgecompress.search.core import describe
    from edgecompress.search.measure import tflite_scores

    best = result.winner or result.closest
    row = {"model / target": name, "fits": "yes" if result.winner else "no: " + "; ".join(best["misses"]),
           "flash B": best["flash"], "arena B": best["arena"],
           "val acc": best["accuracy"], "val drop pp": best["drop"], "moves": len(result.iterations),
           "proposals": len(result.sensitivities), "candidates": len(result.candidates),
           "search s": seconds, "load avg": load, "plan": describe(best)}
    if test is not None:
        row["test acc"] = next(iter(tflite_scores(best["litert_tflite"], test, result.tasks).values()))
    return row


def table(rows):
    from edgecompress.bench import table as render

    return render(rows)


def lenet_rows(train, test, quick=False, seeds=(0, 1, 2), epochs=10, workers=None,
               budgets=LENET_FLASH, int8_io=None):
    """Median over seeds of the LeNet-5 search at each flash budget (arena 8 KB, 0.5 pp).

    The search's validation split is held out of the baseline's training: on digits the
    baseline learned, its accuracy (and so every drop) would be inflated."""
    from edgecompress.measure import keras_accuracy
    from edgecompress.pipeline import train_baseline
    from edgecompress.search.core import _split

    rows = []
    budgets = budgets[:1] if quick else budgets
    for flash in budgets:
        runs = []
        for seed in seeds[:1] if quick else seeds:
            fit, val = _split(train, None, seed)
            model = train_baseline(fit, test, epochs=1 if quick else epochs, seed=seed, verbose=0)
            result, seconds, load = _search(model, fit, f"flash={flash},arena={8 * KB}", 0.5, quick,
                                            seed, workers=workers, validation=val, int8_io=int8_io)
            row = _row(f"LeNet-5, flash {flash:,} B, arena 8 KB (seed {seed})", result, seconds, load,
                       test)
            row["float test acc"] = keras_accuracy(model, test)
            runs.append(row)
            print(table([row]), flush=True)  # every seed, as it comes
        runs.sort(key=lambda r: r["test acc"])
        rows.append(runs[len(runs) // 2])  # the median seed by test accuracy
    return rows


def synthetic_rows(quick=False, workers=None):
    """ResNet-8 (32x32x3) and the DS-CNN (49x10x1) into 32 KB flash / 16 KB arena on random data:
    the accuracy figures mean nothing (marked synthetic); flash, arena and latency do."""
    from edgecompress import models
    from edgecompress._keras import keras

    rng = np.random.default_rng(0)
    rows = []
    for name, model in (("ResNet-8", models.resnet8(input_shape=(32, 32, 3), num_classes=10)),
                        ("DS-CNN", models.ds_cnn())):
        n = 300 if quick else 1000
        x = rng.random((n, *model.inputs[0].shape[1:]), dtype=np.float32)
        y = rng.integers(0, int(model.outputs[0].shape[-1]), n)
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, verbose=0)
        result, seconds, load = _search(model, (x, y), f"flash={32 * KB},arena={16 * KB},latency=50ms",
                                        100.0, quick, 0, workers=workers)
        row = _row(f"{name}, flash 32 KB, arena 16 KB (synthetic data)", result, seconds, load)
        best = result.winner or result.closest
        row["latency ms"] = best["latency_ms"]
        row["val acc"] = "synthetic"
        rows.append(row)
        keras.backend.clear_session()
    return rows


def autoencoder_rows(train, test, quick=False, workers=None, epochs=10, max_drops=(10.0, 20.0)):
    """A dense MNIST autoencoder (784-128-32-128-784, sigmoid output: 210k parameters, 243 KB
    as int8) into 64 KB flash / 24 KB arena within each of ``max_drops`` percent more validation
    MSE; the test MSE of the best file in LiteRT on the test digits against the float model's."""
    from edgecompress._keras import keras
    from edgecompress.search.core import _split, describe
    from edgecompress.search.measure import tflite_scores

    x, xt = train[0], test[0]
    fit, val = _split((x, x), None, 0)  # the validation digits stay out of the baseline's training
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Flatten(),
                              keras.layers.Dense(128, activation="relu"), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(int(np.prod(x.shape[1:])), activation="sigmoid"),
                              keras.layers.Reshape(x.shape[1:])])
    model.compile("adam", "mse")
    model.fit(*fit, epochs=1 if quick else epochs, batch_size=64, verbose=0)
    float_mse = float(np.mean((model.predict(xt, verbose=0) - xt) ** 2))
    rows = []
    for max_drop in max_drops[:1] if quick else max_drops:
        result, seconds, load = _search(model, fit, f"flash={64 * KB},arena={24 * KB}", max_drop, quick, 0,
                                        workers=workers, validation=val)
        best = result.winner or result.closest
        test_mse = next(iter(tflite_scores(best["litert_tflite"], (xt, xt), result.tasks).values()))
        rows.append({"model / target": f"MNIST autoencoder, flash 64 KB, arena 24 KB, max {max_drop:g}% more MSE",
                     "fits": "yes" if result.winner else "no: " + "; ".join(best["misses"]),
                     "int8 PTQ flash B": result.candidates[0]["flash"], "flash B": best["flash"],
                     "arena B": best["arena"], "val mse drop %": best["drop"], "float test mse": float_mse,
                     "test mse": test_mse, "moves": len(result.iterations),
                     "candidates": len(result.candidates), "search s": seconds, "load avg": load,
                     "plan": describe(best)})
    return rows


def scaling_rows(train, test, quick=False):
    """Candidates (scans + fine-tuned candidates) per hour of one LeNet-5 search on 1 and 2 local
    workers and on a local 2-CPU Ray cluster."""
    import ray

    from edgecompress.pipeline import train_baseline

    model = train_baseline(train, test, epochs=1 if quick else 3, seed=0, verbose=0)
    rows = []
    for label, kwargs in (("1 local worker", {"workers": 1}), ("2 local workers", {"workers": 2}),
                          ("Ray, 2 CPUs on 127.0.0.1", {"ray_address": "local"})):
        if "ray_address" in kwargs:
            ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
        try:
            result, seconds, load = _search(model, train, f"flash={32 * KB}", 1.0, quick, 0, **kwargs)
        finally:
            if "ray_address" in kwargs:
                ray.shutdown()
        jobs = len(result.sensitivities) + len(result.candidates)
        rows.append({"executor": label, "jobs": jobs, "search s": seconds, "load avg": load,
                     "jobs / hour": 3600 * jobs / seconds,
                     "winner": result.winner["name"] if result.winner else "none"})
    return rows


def _arguments(parser) -> None:
    parser.add_argument("--epochs", type=int, default=10, help="LeNet-5 baseline training epochs")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per LeNet-5 budget (median shown)")
    parser.add_argument("--workers", type=int, help="local workers for the searches (default: cores)")
    parser.add_argument("--parts", default="lenet,synthetic,autoencoder,scaling",
                        help="comma list of lenet, synthetic, autoencoder, scaling")
    parser.add_argument("--int8-io", choices=("auto", "on", "off"), default="auto",
                        help="LeNet-5: int8 files with int8 input/output (auto: the arena is set)")
    parser.add_argument("--budgets", default=",".join(map(str, LENET_FLASH)),
                        help="LeNet-5 flash budgets in bytes (comma list)")


def _report(train, test, args) -> str:
    from edgecompress._cli import UsageError

    parts = {p.strip() for p in args.parts.split(",")}
    unknown = parts - {"lenet", "synthetic", "autoencoder", "scaling"}
    if unknown:
        raise UsageError(f"`--parts` must be among lenet, synthetic, autoencoder, scaling. Received: "
                         f"{sorted(unknown)}")
    print(f"LeNet-5 trained on {len(train[0])} MNIST-5k digits, tested on {len(test[0])} "
          f"({'MNIST t10k' if args.mnist_dir else 'MNIST-5k held-out'}).{' QUICK MODE.' if args.quick else ''}\n")
    sections = []

    def section(title, text):  # printed as soon as it is measured
        sections.append(f"## {title}\n\n{text}\n")
        print(sections[-1], flush=True)

    logging.basicConfig(format="%(asctime)s %(message)s")
    logging.getLogger("edgecompress.search").setLevel(logging.INFO)
    if "lenet" in parts:
        try:
            budgets = tuple(int(b) for b in args.budgets.split(","))
        except ValueError:
            raise UsageError(f"`--budgets` must be a comma list of byte counts. Received: {args.budgets!r}") from None
        rows = lenet_rows(train, test, args.quick, tuple(range(args.seeds)), args.epochs, args.workers,
                          budgets, {"auto": None, "on": True, "off": False}[args.int8_io])
        section("LeNet-5 into a flash budget (arena 8 KB, max drop 0.5 pp; median seed)", table(rows))
    if "synthetic" in parts:
        section("ResNet-8 and DS-CNN into 32 KB flash / 16 KB arena (synthetic data)",
                table(synthetic_rows(args.quick, args.workers)))
    if "autoencoder" in parts:
        section("A dense MNIST autoencoder into 64 KB flash / 24 KB arena",
                table(autoencoder_rows(train, test, args.quick, args.workers, args.epochs)))
    if "scaling" in parts:
        rows = scaling_rows(train, test, args.quick)
        median = (f"\n\nmedian jobs/hour: {statistics.median(r['jobs / hour'] for r in rows):.0f}"
                  if len(rows) > 1 else "")
        section("Search throughput (one LeNet-5 search, flash 32 KB)", table(rows) + median)
    return None


if __name__ == "__main__":
    import sys

    from edgecompress import bench

    sys.exit(bench.main(sys.modules[__name__], add_arguments=_arguments, report=_report))
