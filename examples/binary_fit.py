"""Binarized networks inside your own training script: binarize a trained float net with
larq, fine-tune it, check the design rules, and export a bit-packed file through LCE.

    python examples/binary_fit.py          # a few minutes
    python examples/binary_fit.py --fast   # a smoke run
"""

import sys

from edgecompress import binary, datasets, keras, models
from tflite_export import export

FAST = "--fast" in sys.argv
(x_train, y_train), (x_test, y_test) = datasets.load("mnist5k")
if FAST:
    x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:200], y_test[:200]

model = models.small_cnn(filters=(32, 64), dense=(128,))
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=1 if FAST else 4, batch_size=64, verbose=0)

bnn = binary.binarize(model, "binarynet")  # first and last layers stay float
bnn.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
bnn.fit(x_train, y_train, epochs=1 if FAST else 10, batch_size=64, verbose=0)
for warning in binary.lint(bnn):
    print("lint:", warning)

float_file = export(model, "float.tflite", "float32")
bnn_file = export(bnn, "bnn.tflite", "binary", verify_data=(x_test, y_test))
print(f"binary LCE file {bnn_file.bytes:,} B vs float {float_file.bytes:,} B "
      f"({float_file.bytes / bnn_file.bytes:.1f}x smaller); accuracy {bnn_file.accuracy:.2%}, "
      f"agreement with Keras {bnn_file.agreement:.2%}")
