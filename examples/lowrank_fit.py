"""Low-rank approximation inside your own training script.

Train LeNet-300-100, replace its Dense layers by SVD factor pairs that keep a fifth of their
parameters, fine-tune with a plain `model.fit`, and export a verified int8 TFLite file.

    python examples/lowrank_fit.py          # about a minute
    python examples/lowrank_fit.py --fast   # a smoke run
"""

import sys

from edgecompress import datasets, keras, lowrank, measure, models
from tflite_export import export

FAST = "--fast" in sys.argv
(x_train, y_train), (x_test, y_test) = datasets.load("mnist5k")
if FAST:
    x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:200], y_test[:200]

model = models.lenet_300_100()
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=1 if FAST else 5, batch_size=64, verbose=0)

small, report = lowrank.factorize(model, target_ratio=0.2, return_report=True)
print(report.to_markdown())
small.compile(keras.optimizers.Adam(5e-4), "sparse_categorical_crossentropy", metrics=["accuracy"])
small.fit(x_train, y_train, epochs=1 if FAST else 3, batch_size=64, verbose=0)

before, after = measure(model, (x_test, y_test)), measure(small, (x_test, y_test))
print(f"params {before.params:,} -> {after.params:,} ({before.params / after.params:.1f}x fewer); "
      f"accuracy {before.accuracy:.2%} -> {after.accuracy:.2%}")
rep = export(small, "lowrank_int8.tflite", "int8", representative_data=x_train,
             verify_data=(x_test, y_test))
print(f"int8 file: {rep.bytes:,} bytes, agreement with Keras {rep.agreement:.2%}")
