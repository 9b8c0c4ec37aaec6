"""The full pipeline (survey §2.1, Han et al.): prune -> cluster with sparsity kept -> packed,
entropy-coded format -> quantization-aware training keeping both -> verified int8 file.

The same chain as `examples/recipes/deep_compression.toml`, written as a user's own script.

    python examples/deep_compression.py          # a few minutes
    python examples/deep_compression.py --fast   # a smoke run
"""

import sys

from edgecompress import datasets, keras, measure, models, pruning
from edgecompress import quantization as Q
from tflite_export import export

FAST = "--fast" in sys.argv
(x_train, y_train), (x_test, y_test) = datasets.load("mnist5k")
if FAST:
    x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:200], y_test[:200]
epochs = 1 if FAST else 6


def fit(model, learning_rate, n=epochs):
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x_train, y_train, epochs=n, batch_size=64, verbose=0)
    return model


model = fit(models.lenet5(), 1e-3)
baseline = export(model, "float32.tflite", "float32", verify_data=(x_test, y_test))

sparse = pruning.prune_low_magnitude(model, schedule=pruning.PolynomialDecay(target=0.94),
                                     layers=["conv2", "fc1", "fc2"])
sparse = pruning.strip(fit(sparse, 5e-4))
clustered = Q.strip(fit(Q.cluster_weights(sparse, clusters=16, init="linear",
                                          preserve_sparsity=True), 2e-4, n=1))
packed = Q.save_packed(clustered, "lenet5.ecpk")
qat = fit(Q.quantize_aware(clustered, preserve="both", calibration_data=x_train[:512]), 1e-5, n=1)
final = export(qat, "lenet5_dc_int8.tflite", "int8", representative_data=x_train,
               verify_data=(x_test, y_test))

m = measure(clustered, (x_test, y_test))
print(f"float32 TFLite {baseline.bytes:,} B, accuracy {baseline.accuracy:.2%}")
print(f"packed {packed:,} B ({baseline.bytes / packed:.1f}x), accuracy {m.accuracy:.2%}, "
      f"sparsity {m.sparsity:.1%}")
print(f"int8 gzip {final.gzip_bytes:,} B ({baseline.bytes / final.gzip_bytes:.1f}x), "
      f"accuracy {final.accuracy:.2%}")
