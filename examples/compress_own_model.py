"""A model and data of your own, compressed by `edgecompress compress`: a regression MLP on
scikit-learn's diabetes data (442 real patients, 10 features; shipped with scikit-learn).

    python examples/compress_own_model.py work/
    edgecompress compress work/diabetes.keras --recipe pruning --data work/diabetes.npz -o work/pruned

The .npz holds x_train/y_train, x_val/y_val and x_test/y_test: `compress` early-stops on the
validation pair and guards the test error (at most 10% more MSE by default; `--max-drop`).
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

from edgecompress import keras


def main(out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    x, y = load_diabetes(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    y = ((y - y.mean()) / y.std()).astype("float32").reshape(-1, 1)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=0.2, random_state=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(128, activation="relu"), keras.layers.Dense(1)],
                             name="diabetes")
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=60, verbose=0,
              callbacks=[keras.callbacks.EarlyStopping(patience=8, restore_best_weights=True)])
    print(f"test MSE {model.evaluate(x_test, y_test, verbose=0):.4f} (targets standardized)")
    model.save(out_dir / "diabetes.keras")
    np.savez(out_dir / "diabetes.npz", x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
             x_test=x_test, y_test=y_test)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "work")
