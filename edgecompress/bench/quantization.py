"""Quantization benchmark: clustering + packed format, PQ, QAT vs the tfmot-tutorial recipes.

Run (MNIST-5k train, MNIST t10k test)::

    PYTHONPATH=. python -m edgecompress.bench.quantization --mnist-dir ../shared/data/mnist [--quick]

It trains on the 4,000 MNIST-5k training digits, like every benchmark.
"""

from __future__ import annotations

if __name__ == "__main__":  # options (and --help) before TensorFlow loads
    import sys

    from edgecompress import bench

    sys.exit(bench.main(__spec__.name, description=__doc__))

import gzip
import os
import tempfile

import numpy as np

from edgecompress._keras import keras, tf
from edgecompress._markdown import table as markdown_table
from edgecompress.datasets import CALIBRATION_SAMPLES
from edgecompress.measure import keras_accuracy


def _int8(model, train, test):
    """Full-int8 TFLite bytes, gzip bytes and accuracy (converter + LiteRT, no tflite_export)."""
    from ai_edge_litert.interpreter import Interpreter

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.representative_dataset = lambda: ([train[0][i:i + 1]] for i in range(CALIBRATION_SAMPLES))
    buf = conv.convert()
    interp = Interpreter(model_content=buf)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], test[0].shape)
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], test[0])
    interp.invoke()
    acc = float(np.mean(interp.get_tensor(out["index"]).argmax(-1) == test[1]))
    return len(buf), len(gzip.compress(buf, 9)), acc


def _compile(model, lr):
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def run(train, test, quick: bool = False) -> list[dict]:
    from edgecompress import models
    from edgecompress import quantization as Q

    epochs = 2 if quick else 6
    rows = []
    tmp = tempfile.mkdtemp()
    keras.utils.set_random_seed(0)

    # ---- LeNet-5: float, tfmot tutorial clustering, ours + packed
    base = _compile(models.lenet5(), 1e-3)
    base.fit(*train, epochs=epochs, batch_size=64, verbose=0)
    f32 = 4 * base.count_params()
    acc = keras_accuracy(base, test)
    rows.append(dict(model="lenet5", name="float32", bytes=f32, ratio=1.0, accuracy=acc))
    b, g, a = _int8(base, train, test)
    rows.append(dict(model="lenet5", name="int8 PTQ (+gzip)", bytes=g, ratio=f32 / g, accuracy=a))

    import tensorflow_model_optimization as tfmot

    cl = tfmot.clustering.keras
    tut = cl.cluster_weights(Q.strip(base), number_of_clusters=16,
                             cluster_centroids_init=cl.CentroidInitialization.LINEAR)
    _compile(tut, 1e-5).fit(*train, epochs=1, batch_size=500, validation_split=0.1, verbose=0)
    tut = cl.strip_clustering(tut)
    b, g, a = _int8(tut, train, test)
    rows.append(dict(model="lenet5", name="tfmot tutorial: cluster 16 linear + int8 PTQ + gzip",
                     bytes=g, ratio=f32 / g, accuracy=a))
    for init in (Q.DEFAULT_INIT, "kmeans++"):
        ours = _compile(Q.cluster_weights(base, 16, init=init), 1e-4)
        ours.fit(*train, epochs=1, batch_size=64, verbose=0)
        ours = Q.strip(ours)
        n = Q.save_packed(ours, os.path.join(tmp, "l5.ecpk"))
        same = np.array_equal(Q.load_packed(os.path.join(tmp, "l5.ecpk")).predict(
            test[0][:256], verbose=0), ours.predict(test[0][:256], verbose=0))
        default = " (default)" if init == Q.DEFAULT_INIT else ""
        rows.append(dict(model="lenet5", name=f"cluster 16 {init}{default} -> packed (identical: {same})",
                         bytes=n, ratio=f32 / n, accuracy=keras_accuracy(ours, test)))
    # Deep Compression order: prune 50% (magnitude, one shot) then cluster with sparsity kept
    pruned = Q.strip(base)
    for layer in pruned.layers:
        if layer.get_weights():
            w = layer.get_weights()
            w[0][np.abs(w[0]) < np.quantile(np.abs(w[0]), 0.5)] = 0
            layer.set_weights(w)
    pc = _compile(Q.cluster_weights(pruned, 16, init="linear", preserve_sparsity=True), 1e-4)
    pc.fit(*train, epochs=1, batch_size=64, verbose=0)
    pc = Q.strip(pc)
    n = Q.save_packed(pc, os.path.join(tmp, "pc.ecpk"))
    rows.append(dict(model="lenet5", name="prune 50% + cluster 16 (sparsity kept) -> packed",
                     bytes=n, ratio=f32 / n, accuracy=keras_accuracy(pc, test)))

    # ---- QAT: tutorial recipe vs ours (calibrated ranges, low lr), both exported to int8
    calib = train[0][:CALIBRATION_SAMPLES]
    small = (train[0][:1000], train[1][:1000])
    tq = _compile(tfmot.quantization.keras.quantize_model(Q.strip(base)), 1e-3)
    tq.fit(*small, batch_size=500, epochs=1, validation_split=0.1, verbose=0)
    b, g, a = _int8(tq, train, test)
    rows.append(dict(model="lenet5", name="tfmot tutorial QAT (1 epoch, 1,000 images) -> int8",
                     bytes=b, ratio=f32 / b, accuracy=a))
    oq = _compile(Q.quantize_aware(base, calibration_data=calib), 1e-5)
    oq.fit(*small, batch_size=500, epochs=1, validation_split=0.1, verbose=0)
    b, g, a = _int8(oq, train, test)
    rows.append(dict(model="lenet5", name="quantize_aware (calibrated, lr 1e-5, same data) -> int8",
                     bytes=b, ratio=f32 / b, accuracy=a))

    # ---- LeNet-300-100: PQ of fc1+fc2 (fc3 has 10 outputs: stays float)
    mlp = _compile(models.lenet_300_100(), 1e-3)
    mlp.fit(*train, epochs=epochs, batch_size=64, verbose=0)
    fc_f32 = 4 * sum(int(np.prod(layer.kernel.shape)) + int(layer.bias.shape[0])
                     for layer in mlp.layers if isinstance(layer, keras.layers.Dense))
    rows.append(dict(model="lenet_300_100", name="float32 (FC weights)", bytes=fc_f32, ratio=1.0,
                     accuracy=keras_accuracy(mlp, test)))
    for d, k in ((4, 8), (4, 4)):
        pq = Q.product_quantize(mlp, d, k, layers=["fc1", "fc2"], calibration_data=train[0][:1000])
        before = keras_accuracy(pq, test)
        _compile(pq, 1e-3).fit(*train, epochs=2, batch_size=64, verbose=0)
        fc3 = mlp.get_layer("fc3")
        size = Q.pq_size(pq)["total"]["bytes"] + 4 * (int(np.prod(fc3.kernel.shape)) + 10)
        rows.append(dict(model="lenet_300_100",
                         name=f"PQ d={d} K={k} + Q-CNN (before fine-tune {before:.4f})",
                         bytes=size, ratio=fc_f32 / size, accuracy=keras_accuracy(pq, test)))
        b, g, a = _int8(Q.decode(pq), train, test)
        rows.append(dict(model="lenet_300_100", name=f"PQ d={d} K={k} -> decode -> int8 TFLite",
                         bytes=b, ratio=fc_f32 / b, accuracy=a))
    return rows


def to_markdown(rows) -> str:
    return markdown_table(["model", "method", "bytes", "ratio vs float32", "accuracy"],
                          ([r["model"], r["name"], f"{r['bytes']:,}", f"{r['ratio']:.1f}x",
                            f"{r['accuracy']:.4f}"] for r in rows), align="llrrr")
