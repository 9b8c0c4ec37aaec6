"""Pruning inside your own training script: magnitude pruning, then filter pruning.

1. `prune_low_magnitude` returns a model whose own `fit` drives tfmot's pruning step (no callback
   to forget) with a schedule fitted to the run; `strip` leaves plain layers.
2. `prune_filters` removes half of the convolution filters: a smaller *dense* model.

    python examples/pruning_fit.py          # about a minute
    python examples/pruning_fit.py --fast   # a smoke run
"""

import sys

from edgecompress import datasets, measure, models, pruning
from tflite_export import export

FAST = "--fast" in sys.argv
(x_train, y_train), (x_test, y_test) = datasets.load("mnist5k")
if FAST:
    x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:200], y_test[:200]
epochs = 1 if FAST else 3

model = models.lenet5()
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)

# Unstructured: 85% of the weights go to zero during a plain fit.
sparse = pruning.prune_low_magnitude(model, schedule=pruning.PolynomialDecay(target=0.85))
sparse.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
sparse.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
sparse = pruning.strip(sparse)
print(pruning.sparsity_report(sparse))

# Structured: half the filters are removed, and the layers after them shrink to match.
thin = pruning.prune_filters(model, ratio=0.5, criterion="l1")
thin.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
thin.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)

for name, m in (("float", model), ("85% sparse", sparse), ("half the filters", thin)):
    r = measure(m, (x_test, y_test), file_sizes=True)
    print(f"{name:>16}: {r.params:>7,} params, {r.nonzero_params:>7,} non-zero, "
          f"{r.macs:>9,} MACs, gzip {r.gzip_bytes:>9,} B, accuracy {r.accuracy:.2%}")
rep = export(sparse, "pruned_int8.tflite", "int8", representative_data=x_train,
             verify_data=(x_test, y_test))
print(f"sparse int8: {rep.gzip_bytes:,} gzip bytes, agreement {rep.agreement:.2%}")
