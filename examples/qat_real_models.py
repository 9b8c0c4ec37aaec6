"""QAT to a verified full-int8 file on models nobody here wrote: keras.applications
MobileNetV3Small (hard-swish TFOpLambda arithmetic, squeeze-excite Multiply, Rescaling),
EfficientNetB0 (Rescaling + Normalization, swish, squeeze-excite) and DenseNet121 (batch norms
after Concatenate / pooling). weights=None at 32x32, a few QAT steps on random images.

    python examples/qat_real_models.py          # the three models (many minutes on 2 cores)
    python examples/qat_real_models.py --fast   # a small model with the same patterns
"""

import sys
from collections import Counter

import numpy as np

from edgecompress import keras
from edgecompress import quantization as Q
from tflite_export import export


def small_model():
    """Hard-swish, a squeeze-excite block and a BN after a Concatenate, in a few layers."""
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Multiply()([x, keras.layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)])
    se = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    se = keras.layers.Conv2D(8, 1, activation="sigmoid")(se)
    x = keras.layers.Multiply()([x, se])
    x = keras.layers.Concatenate()([x, keras.layers.DepthwiseConv2D(3, padding="same")(x)])
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x), name="small")


FAST = "--fast" in sys.argv
if FAST:
    builders = {"small": small_model}
else:
    builders = {name: (lambda name=name: getattr(keras.applications, name)(
        input_shape=(32, 32, 3), weights=None, classes=10))
        for name in ("MobileNetV3Small", "EfficientNetB0", "DenseNet121")}

rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (64, 32, 32, 3)).astype("float32")
y = rng.integers(0, 10, 64)
for name, build in builders.items():
    keras.utils.set_random_seed(0)
    model = build()
    qat = Q.quantize_aware(model, calibration_data=x)
    report = qat.transform_report
    qat.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy")
    qat.fit(x, y, epochs=1, batch_size=32, verbose=0)
    rep = export(qat, f"{name}_qat_int8.tflite", "int8", verify_data=x[:32])
    rewrites = Counter("folded" if what.startswith("folded") else "affine" for what in report.rewritten.values())
    print(f"{name}: {len(report.transformed)} layers quantized, {rewrites['folded']} BN folded, "
          f"{rewrites['affine']} affine ops as 1x1 depthwise, {len(report.skipped)} left float "
          f"{dict(report.skipped) or ''}; int8 file {rep.bytes:,} B, ops {rep.ops}, "
          f"agreement {rep.agreement:.3f}, max |diff| {rep.max_abs_diff:.4g}")
