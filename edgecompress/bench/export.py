"""Export benchmark: LeNet-5 float32 vs int8 (size, accuracy, latency) and a binary net through LCE.

Command (writes a Markdown table to stdout)::

    nice python -m edgecompress.bench.export [--mnist-dir ../shared/data/mnist] [--quick]

Float32 and int8 latencies are measured side by side: the two interpreters alternate in rounds
and each reports the median over all its runs, single thread, batch 1.
"""

from __future__ import annotations

if __name__ == "__main__":  # options (and --help) before TensorFlow loads
    import sys

    from edgecompress import bench

    sys.exit(bench.main(__spec__.name, description=__doc__))

import tempfile
from pathlib import Path

from edgecompress._keras import keras
from edgecompress._markdown import table as markdown_table
from edgecompress.bench.harness import compare_latency


def _train(model, train, epochs, seed=0):
    keras.utils.set_random_seed(seed)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*train, batch_size=64, epochs=epochs, verbose=0)
    return model


def small_bnn(input_shape=(28, 28, 1), classes=10):
    """A small larq binary conv net (Courbariaux-style: first layer real-valued input)."""
    import larq as lq

    kw = dict(kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)
    inp = keras.Input(input_shape)
    x = lq.layers.QuantConv2D(32, 3, padding="same", **kw)(inp)
    x = keras.layers.BatchNormalization(momentum=0.9, scale=False)(x)
    for filters in (64, 64):
        x = lq.layers.QuantConv2D(filters, 3, padding="same", input_quantizer="ste_sign", **kw)(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.BatchNormalization(momentum=0.9, scale=False)(x)
    x = lq.layers.QuantConv2D(128, 3, padding="same", input_quantizer="ste_sign", **kw)(x)
    x = keras.layers.BatchNormalization(momentum=0.9, scale=False)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inp, out, name="small_bnn")


def run(train, test, quick: bool = False) -> list[dict]:
    """Rows: LeNet-5 float32 / int8 and small BNN float32 / binary, with ratios to float32."""
    from edgecompress.models import lenet5
    from tflite_export import export

    epochs = 1 if quick else 3
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lenet = _train(lenet5(), train, epochs)
        f32 = export(lenet, tmp / "lenet_f32.tflite", "float32", verify_data=test)
        i8 = export(lenet, tmp / "lenet_int8.tflite", "int8", representative_data=train[0],
                    verify_data=test)
        lat = compare_latency({"float32": f32.path, "int8": i8.path},
                              rounds=3 if quick else 10, invokes=20 if quick else 50)
        for rep in (f32, i8):
            rows.append(_row("lenet5", rep, lat, f32))

        bnn = _train(small_bnn(train[0].shape[1:]), train, epochs)
        small_test = (test[0][: 200 if quick else 1000], test[1][: 200 if quick else 1000])
        bf = export(bnn, tmp / "bnn_f32.tflite", "float32", verify_data=small_test)
        bb = export(bnn, tmp / "bnn_lce.tflite", "binary", verify_data=small_test)
        lat = compare_latency({"float32": bf.path, "binary": bb.path},
                              rounds=3 if quick else 5, invokes=5 if quick else 20)
        for rep in (bf, bb):
            rows.append(_row("small_bnn", rep, lat, bf))
    return rows


def _row(name, rep, lat, base) -> dict:
    return {
        "name": name,
        "mode": rep.mode,
        "bytes": rep.bytes,
        "gzip_bytes": rep.gzip_bytes,
        "size_ratio": base.bytes / rep.bytes,
        "accuracy": rep.accuracy,
        "keras_accuracy": rep.keras_accuracy,
        "agreement": rep.agreement,
        "accuracy_delta_pp": 100 * (rep.accuracy - base.accuracy),
        "latency_us": lat.median(rep.mode),
        "latency_spread_us": lat.files[rep.mode].spread_us,
        "speedup": lat.ratio(rep.mode, base.mode),
        "load_average": lat.load_average,
        "latency_warning": lat.warning,
    }


def to_markdown(rows) -> str:
    text = markdown_table(
        ["model", "mode", "bytes", "size vs float32", "accuracy", "Keras acc.", "agreement",
         "Δ acc. vs float32 (pp)", "latency µs (median ± IQR, 1 thread)", "speed-up vs float32"],
        ([r["name"], r["mode"], f"{r['bytes']:,}", f"{r['size_ratio']:.2f}×",
          f"{100 * r['accuracy']:.2f} %", f"{100 * r['keras_accuracy']:.2f} %",
          f"{100 * r['agreement']:.2f} %", f"{r['accuracy_delta_pp']:+.2f}",
          f"{r['latency_us']:.0f} ± {r['latency_spread_us']:.0f}", f"{r['speedup']:.2f}×"]
         for r in rows))
    warnings = sorted({r["latency_warning"] for r in rows if r.get("latency_warning")})
    loads = [r["load_average"] for r in rows if r.get("load_average") is not None]
    note = f"\n\nLatency: load average up to {max(loads):.1f} while timing." if loads else ""
    return text + note + "".join(f" WARNING: {w}." for w in warnings)
