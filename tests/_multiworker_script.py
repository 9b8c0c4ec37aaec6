"""Run by test_distribute.py: one worker of a pruning fine-tune, alone or under
MultiWorkerMirroredStrategy (TF_CONFIG set by the test). Prints ``RESULT {json}``."""

import json
import sys

from edgecompress import datasets, distribute, pruning
from edgecompress._keras import keras  # the legacy-Keras guard runs before TensorFlow loads

strategy = sys.argv[1]  # "none" or "multiworker"
replicas = distribute.get_strategy(strategy).num_replicas_in_sync  # before any other TF op
keras.utils.set_random_seed(0)
(x, y), _ = datasets.load("digits")
x, y = x[:512], y[:512]
base = keras.Sequential([keras.Input((8, 8, 1)),
                         keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
                         keras.layers.Flatten(name="flatten"),
                         keras.layers.Dense(32, activation="relu", name="fc1"),
                         keras.layers.Dense(10, activation="softmax", name="fc2")])
model = pruning.prune_low_magnitude(base, schedule=pruning.ConstantSparsity(0.5))
data = datasets.shifted_batches(x, y, 32, pixels=0, seed=0)  # 32 = the global batch
history = distribute.fit(model, data, strategy, epochs=3, verbose=0,
                         compile=lambda: {"optimizer": keras.optimizers.Adam(1e-3),
                                          "loss": "sparse_categorical_crossentropy"})
kernel = pruning.strip(model).get_layer("fc1").get_weights()[0]
print("RESULT " + json.dumps({
    "replicas": replicas,
    "losses": [float(v) for v in history.history["loss"]],
    "sparsity": float((kernel == 0).mean())}), flush=True)
