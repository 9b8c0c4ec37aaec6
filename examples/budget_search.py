"""Fit a trained model into a device budget: the search picks per-layer filter pruning and
low-rank ranks, fine-tunes the best plans, runs each file in TensorFlow Lite Micro, and returns
the most accurate file that fits, with the recipe that rebuilds it.

The same from the command line:

    edgecompress compress model.keras --data mnist5k --target flash=64KB,arena=20KB \
        --max-drop 1.0 -o budget-out

    python examples/budget_search.py          # LeNet-5 into 64 KB flash / 20 KB arena, a few minutes
    python examples/budget_search.py --fast   # a smoke run on a tiny model
"""

import sys

from edgecompress import datasets, models, search
from edgecompress._keras import keras

FAST = "--fast" in sys.argv
(x, y), _ = datasets.load("digits" if FAST else "mnist5k")
if FAST:
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(16, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(name="flatten"),
                              keras.layers.Dense(64, activation="relu", name="fc1"),
                              keras.layers.Dense(10, activation="softmax", name="fc2")])
    target, options = "flash=16KB", dict(ratios=(0.5,), rank_fractions=(0.25,), epochs=1, top_k=1,
                                         workers=1, max_drop=10.0)
else:
    model = models.lenet5()
    target, options = "flash=64KB,arena=20KB", dict(max_drop=1.0)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=3 if FAST else 8, batch_size=64, verbose=0)

result = search.search(model, (x, y), target, **options)
for cand in result.pareto():
    print(f"pareto: {cand['name']:>14}: {cand['flash']:>8,} B flash, {cand['arena']:>7,} B arena, "
          f"accuracy {cand['accuracy']:.2%} ({-cand['drop']:+.2f} pp)")
winner = search.require_winner(result)  # CheckError naming the closest candidate if none fits
search.write_outputs(result, ".")
print(f"winner {winner['name']}: {winner['flash']:,} B; winner.tflite, winner.toml, report.md written")
