"""The recipe matrix's models and data (built here; no downloads), shared by the test and the
README table script."""

from __future__ import annotations

import re

import numpy as np

from edgecompress import models
from edgecompress._keras import keras

TRAIN, TEST = 48, 16


def _autoencoder():
    """The MLPerf Tiny anomaly-detection FC autoencoder shape (640 -> 8 -> 640), narrowed."""
    i = keras.Input((640,))
    x = i
    for units in (64, 64, 8, 64, 64):
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Dense(units)(x)))
    return keras.Model(i, keras.layers.Dense(640)(x), name="autoencoder")


def _conv1d(classes=4):
    i = keras.Input((64, 3))
    x = keras.layers.Conv1D(16, 5, activation="relu")(i)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(32, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(i, keras.layers.Dense(classes, activation="softmax")(x), name="conv1d")


def _two_heads():
    i = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu")(i)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(x))
    heads = [keras.layers.Dense(10, activation="softmax", name="digit")(x), keras.layers.Dense(1, name="size")(x)]
    return keras.Model(i, heads, name="two_heads")


def _mobilenet():
    return keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=4)


MODELS = {
    "lenet5": models.lenet5,
    "resnet8": models.resnet8,
    "ds_cnn": models.ds_cnn,
    "mobilenet_025": _mobilenet,
    "autoencoder": _autoencoder,
    "conv1d": _conv1d,
    "two_heads": _two_heads,
}


def data(name: str, model, mnist=None, seed: int = 0):
    """``(train, test)`` for ``model``: MNIST digits for LeNet-5, else seeded synthetic data."""
    rng = np.random.default_rng(seed)
    n = TRAIN + TEST
    if name == "lenet5" and mnist is not None:
        x, y = mnist[0][0][:n], mnist[0][1][:n]
    else:
        x = rng.normal(size=(n, *model.inputs[0].shape[1:])).astype("float32")
        if name == "autoencoder":
            y = x
        else:
            classes = int(model.outputs[0].shape[-1])
            y = np.arange(n) % classes
        if name == "two_heads":
            y = [y, x.reshape(n, -1).mean(1, keepdims=True)]
    def split(a):
        return a[:TRAIN], a[TRAIN:]

    if isinstance(y, list):
        (x_tr, x_te), parts = split(x), [split(v) for v in y]
        return (x_tr, [p[0] for p in parts]), (x_te, [p[1] for p in parts])
    (x_tr, x_te), (y_tr, y_te) = split(x), split(y)
    return (x_tr, y_tr), (x_te, y_te)


REFUSAL = re.compile(r"^step \d+ \([a-z_]+\): ")


def run_one(model_name: str, recipe_name: str, out_dir, mnist=None):
    """Run a shipped recipe (quick) on a matrix model: ``("verified" | "guard" | "refused", detail)``.

    Anything else (a crash, an error that names no step) propagates.
    """
    from pathlib import Path

    from edgecompress import recipe as recipes
    from edgecompress.pipeline import quick_recipe, shipped_recipe

    keras.utils.set_random_seed(0)
    model = MODELS[model_name]()
    train, test = data(model_name, model, mnist)
    recipe = quick_recipe(recipes.load(shipped_recipe(recipe_name)))
    try:
        result = recipes.run(recipe, model, train, test, out_dir, verbose=0)
        outcome = "verified"
    except recipes.AccuracyGuardError as err:
        result, outcome = err.result, "guard"
    except recipes.RecipeError as err:
        message = str(err)
        if not REFUSAL.match(message):
            raise
        return "refused", message
    exports = [s for s in recipe.steps if s.kind in ("export", "pack")]
    files = [Path(a.path) for a in result.artifacts]
    if len(files) != len(exports) or not all(f.is_file() and f.stat().st_size > 0 for f in files):
        raise AssertionError(f"{recipe_name} on {model_name}: expected {len(exports)} files, got {files}")
    return outcome, "; ".join(f"{a.name} {a.file_bytes} B {a.status}" for a in result.artifacts)


# --- the full-matrix runner behind the README table ------------------------------------------
#
#   python -m tests._recipe_matrix run [--models a,b] [--recipes x,y]   # appends to RESULTS
#   python -m tests._recipe_matrix table [--readme README.md]           # prints (or writes) the table
#
# Each pair runs in its own process, so a crash inside TensorFlow (a segfault) is recorded as a
# crash of that cell, not the end of the run. RESULTS keeps the last line per (recipe, model).

RESULTS = "tests/recipe_matrix.jsonl"
TITLES = {
    "lenet5": "LeNet-5 (MNIST)",
    "resnet8": "ResNet-8 32×32×3",
    "ds_cnn": "DS-CNN 49×10×1",
    "mobilenet_025": "MobileNet α0.25 96×96×3",
    "autoencoder": "FC autoencoder 640 (MSE)",
    "conv1d": "Conv1D classifier",
    "two_heads": "two outputs (10-class + regression)",
}


def _one_cell(model_name: str, recipe_name: str) -> dict:
    import tempfile
    import time

    from edgecompress import datasets

    mnist = datasets.load("mnist5k") if model_name == "lenet5" else None
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        outcome, detail = run_one(model_name, recipe_name, out, mnist)
    return {"recipe": recipe_name, "model": model_name, "outcome": outcome, "detail": detail,
            "seconds": round(time.monotonic() - start)}


def _run_cells(models_: list, recipes_: list, results: str) -> None:
    import json
    import subprocess
    import sys

    for model_name in models_:
        for recipe_name in recipes_:
            proc = subprocess.run([sys.executable, "-m", "tests._recipe_matrix", "cell", model_name,
                                   recipe_name], capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode == 0 and lines:
                cell = json.loads(lines[-1])
            else:
                tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                cell = {"recipe": recipe_name, "model": model_name, "outcome": "crash",
                        "detail": f"exit {proc.returncode}: {tail[:300]}"}
            with open(results, "a") as f:
                f.write(json.dumps(cell) + "\n")
            print(json.dumps(cell), flush=True)


def _cell_text(cell: dict) -> str:
    outcome = cell["outcome"]
    if outcome == "verified":
        return "verified"
    if outcome == "guard":
        return "verified, guard FAILED"
    if outcome == "refused":
        step = re.match(r"^step (\d+) \(([a-z_]+)\)", cell["detail"])
        return f"refused at step {step.group(1)} ({step.group(2)})" if step else "refused"
    return f"crash: {cell['detail']}"


def table(results: str = RESULTS) -> str:
    """The README's "which shipped recipe ran on which model" table from ``results``."""
    import json
    from pathlib import Path

    cells = {}
    for line in Path(results).read_text().splitlines():
        if line.strip():
            cell = json.loads(line)
            cells[cell["recipe"], cell["model"]] = cell
    recipe_names = sorted({r for r, _ in cells})
    rows = ["| recipe | " + " | ".join(TITLES[m] for m in MODELS) + " |",
            "|---|" + "---|" * len(MODELS)]
    for r in recipe_names:
        row = [_cell_text(cells[r, m]) if (r, m) in cells else "not run" for m in MODELS]
        rows.append(f"| {r} | " + " | ".join(row) + " |")
    return "\n".join(rows)


def _main(argv=None) -> None:
    import argparse
    import json

    from edgecompress.pipeline import shipped_recipe

    shipped = sorted(p.stem for p in shipped_recipe("x").parent.glob("*.toml"))
    parser = argparse.ArgumentParser(prog="python -m tests._recipe_matrix")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run pairs, each in its own process; append to --results")
    run_p.add_argument("--models", default=",".join(MODELS))
    run_p.add_argument("--recipes", default=",".join(shipped))
    run_p.add_argument("--results", default=RESULTS)
    cell_p = sub.add_parser("cell", help="run one pair in this process; print its JSON line")
    cell_p.add_argument("model", choices=sorted(MODELS))
    cell_p.add_argument("recipe", choices=shipped)
    table_p = sub.add_parser("table", help="print the README table from --results")
    table_p.add_argument("--results", default=RESULTS)
    table_p.add_argument("--readme", help="replace the table in this README instead of printing it")
    args = parser.parse_args(argv)
    if args.command == "cell":
        print(json.dumps(_one_cell(args.model, args.recipe)), flush=True)
    elif args.command == "run":
        _run_cells(args.models.split(","), args.recipes.split(","), args.results)
    elif args.readme:
        write_readme(args.readme, table(args.results))
    else:
        print(table(args.results))


def write_readme(path: str, text: str) -> None:
    """Replace the matrix table (the lines from its header row to the next blank line) in ``path``."""
    from pathlib import Path

    lines = Path(path).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| recipe | LeNet-5"))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    Path(path).write_text("\n".join([*lines[:start], text, *lines[end:]]) + "\n")


if __name__ == "__main__":
    _main()
