"""Quantization inside your own training script: k-means weight sharing with codebook
fine-tuning, the entropy-coded packed format, and quantization-aware training.

    python examples/quantization_fit.py          # about a minute
    python examples/quantization_fit.py --fast   # a smoke run
"""

import sys

from edgecompress import datasets, keras, measure, models
from edgecompress import quantization as Q
from edgecompress.datasets import CALIBRATION_SAMPLES
from tflite_export import export

FAST = "--fast" in sys.argv
(x_train, y_train), (x_test, y_test) = datasets.load("mnist5k")
if FAST:
    x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:200], y_test[:200]
epochs = 1 if FAST else 4

model = models.lenet5()
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)

# 16 shared values per kernel; the codebook is fine-tuned by a plain fit.
clustered = Q.cluster_weights(model, clusters=16, init="linear")
clustered.compile(keras.optimizers.Adam(2e-4), "sparse_categorical_crossentropy", ["accuracy"])
clustered.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
clustered = Q.strip(clustered)
size = Q.save_packed(clustered, "lenet5.ecpk")  # what goes over the wire
print(f"packed: {size:,} bytes ({measure(model).float32_bytes / size:.1f}x smaller than float32)")

# QAT: activation ranges calibrated first, then a short fine-tune at a low learning rate.
qat = Q.quantize_aware(model, calibration_data=x_train[:CALIBRATION_SAMPLES])
qat.compile(keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy", ["accuracy"])
qat.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
rep = export(qat, "lenet5_qat_int8.tflite", "int8", representative_data=x_train,
             verify_data=(x_test, y_test))
print(f"QAT int8: {rep.bytes:,} bytes, accuracy {rep.accuracy:.2%} "
      f"(float {measure(model, (x_test, y_test)).accuracy:.2%})")
