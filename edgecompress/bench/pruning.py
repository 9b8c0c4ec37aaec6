"""Pruning benchmark: filter pruning speed/accuracy and unstructured sparsity vs the tfmot recipe.

Rows (one process, same data, side by side):
* ``lenet5``: the float baseline; ``lenet5_filters50``: 50% of the filters of every prunable group
  removed with ``prune_filters`` (l1) and fine-tuned. int8 TFLite latency (LiteRT, batch 1, median)
  and accuracy for both.
* ``ours_poly80``: ``prune_low_magnitude`` with the default ``PolynomialDecay(0.8)`` fitted to the
  run; ``tfmot_tutorial``: tfmot's tutorial recipe (PolynomialDecay 0.5 -> 0.8, end_step = the
  run, its default frequency=100, batch 128, UpdatePruningStep). gzip of the float and int8
  TFLite files, and the wall time of each pruning ``fit``.

Command::

    nice python -m edgecompress.bench.pruning [--quick] [--mnist-dir DIR]

The int8/float conversion is done here with the TFLite converter (the benchmark may; the pruning
package never imports ``tflite_export``).
"""

from __future__ import annotations

if __name__ == "__main__":  # options (and --help) before TensorFlow loads
    import sys

    from edgecompress import bench

    sys.exit(bench.main(__spec__.name, description=__doc__))

import gzip
import math
import time

import numpy as np
import tensorflow_model_optimization as tfmot

from edgecompress import models, pruning
from edgecompress._keras import keras, tf
from edgecompress.bench.harness import compare_latency
from edgecompress.measure import keras_accuracy


def _tflite(model, calib=None, sparse=False) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    opts = []
    if calib is not None:
        opts.append(tf.lite.Optimize.DEFAULT)
        conv.representative_dataset = lambda: ([c[None]] for c in calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if sparse:
        opts.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    conv.optimizations = opts
    return conv.convert()


def _interpreter(blob):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=blob, num_threads=1)
    it.allocate_tensors()
    return it


def _tflite_accuracy(blob, data, limit=1000) -> float:
    x, y = data
    it = _interpreter(blob)
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    hits = 0
    for i in range(min(limit, len(x))):
        it.set_tensor(inp, x[i:i + 1].astype(np.float32))
        it.invoke()
        hits += int(it.get_tensor(out).argmax() == y[i])
    return hits / min(limit, len(x))


def _gz(blob: bytes) -> int:
    return len(gzip.compress(blob, compresslevel=9, mtime=0))


def _compile(model):
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def run(train, test, quick=False) -> list[dict]:
    x_tr, y_tr = train
    calib = x_tr[:100]
    epochs = 2 if quick else 4
    keras.utils.set_random_seed(0)
    base = _compile(models.lenet5(input_shape=x_tr.shape[1:]))
    base.fit(x_tr, y_tr, epochs=epochs, batch_size=64, verbose=0)
    rows = []

    int8_files = {}

    def row(name, model, **extra):
        int8_files[name] = _tflite(model, calib)
        r = {"name": name, "params": int(model.count_params()),
             "accuracy": keras_accuracy(model, test),
             "int8_accuracy": _tflite_accuracy(int8_files[name], test),
             "int8_gzip": _gz(int8_files[name]), **extra}
        rows.append(r)
        return r

    # structured: 50% of the filters, fine-tuned; both int8 files timed side by side
    b = row("lenet5", base)
    small = _compile(pruning.prune_filters(base, 0.5, "l1"))
    small.fit(x_tr, y_tr, epochs=2 if quick else 3, batch_size=64, verbose=0)
    s = row("lenet5_filters50", small)
    lat = compare_latency(int8_files, rounds=3 if quick else 10, invokes=50 if quick else 300)
    for r in (b, s):
        r["int8_latency_us"] = lat.median(r["name"])
        r["load_average"] = lat.load_average
    s["speedup"] = lat.ratio("lenet5_filters50", "lenet5")
    s["accuracy_drop_pp"] = 100 * (b["accuracy"] - s["accuracy"])

    # unstructured 80%: ours (default schedule) vs the tfmot tutorial recipe, same epochs/batch
    steps = math.ceil(len(x_tr) / 128) * 2
    reps = 1 if quick else 3
    times = {"ours": [], "tfmot": []}
    results = {}
    for _ in range(reps):
        ours = _compile(pruning.prune_low_magnitude(base))
        t0 = time.perf_counter()
        ours.fit(x_tr, y_tr, epochs=2, batch_size=128, verbose=0)
        times["ours"].append(time.perf_counter() - t0)
        raw = _compile(tfmot.sparsity.keras.prune_low_magnitude(
            keras.models.clone_model(base), tfmot.sparsity.keras.PolynomialDecay(0.5, 0.8, 0, steps)))
        _load_base(raw, base)
        t0 = time.perf_counter()
        raw.fit(x_tr, y_tr, epochs=2, batch_size=128, verbose=0,
                callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
        times["tfmot"].append(time.perf_counter() - t0)
        results = {"ours": pruning.strip(ours), "tfmot": tfmot.sparsity.keras.strip_pruning(raw)}
    base_float = _tflite(base)
    for name, model in (("ours_poly80", results["ours"]), ("tfmot_tutorial", results["tfmot"])):
        key = "ours" if name.startswith("ours") else "tfmot"
        flt, sparse_flt = _tflite(model), _tflite(model, sparse=True)
        int8 = _tflite(model, calib)
        kernels = [w for w in model.get_weights() if w.ndim > 1]
        rows.append({
            "name": name, "params": int(model.count_params()),
            "sparsity": 1 - sum(np.count_nonzero(k) for k in kernels) / sum(k.size for k in kernels),
            "accuracy": keras_accuracy(model, test), "float_gzip": _gz(flt),
            "float_gzip_ratio": _gz(base_float) / _gz(flt), "sparse_float_bytes": len(sparse_flt),
            "int8_gzip": _gz(int8), "int8_gzip_ratio": _gz(base_float) / _gz(int8),
            "fit_s_median": float(np.median(times[key])),
        })
    rows[-2]["fit_time_ratio_vs_tfmot"] = rows[-2]["fit_s_median"] / rows[-1]["fit_s_median"]
    rows.insert(2, {"name": "lenet5_float_tflite", "float_gzip": _gz(base_float)})
    return rows


def _load_base(wrapped, base):
    """Load ``base``'s weights into tfmot's wrapped clone (inner layers, by name)."""
    for layer in wrapped.layers:
        inner = getattr(layer, "layer", layer)
        src = base.get_layer(inner.name)
        inner.set_weights(src.get_weights())
