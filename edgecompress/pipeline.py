"""The jobs behind the command line: baselines, the demo, and measuring artifacts.

Like :mod:`edgecompress.recipe` and :mod:`edgecompress.report`, this module bridges the families and
``tflite_export``; the families themselves never import it. Artifacts live below it, in
:mod:`edgecompress.artifacts`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgecompress._keras import keras
from edgecompress.artifacts import (  # noqa: F401  (save_model, export_artifact: public here too)
    CALIBRATION_SAMPLES,
    Artifact,
    export_artifact,
    save_model,
)

log = logging.getLogger("edgecompress")


def baseline_artifacts(model, train, test, out_dir) -> list[Artifact]:
    """The float32 TFLite file and plain int8 post-training quantization of the input model."""
    out_dir = Path(out_dir)
    return [
        export_artifact(model, out_dir / "baseline_float32.tflite", "float32", train, test),
        export_artifact(model, out_dir / "baseline_int8_ptq.tflite", "int8", train, test),
    ]


def measure_artifact(path, test, unsafe: bool = False) -> Artifact:
    """Measure a ``.tflite`` file or a saved Keras model on ``test``."""
    from edgecompress.loading import load_model
    from edgecompress.measure import measure
    from edgecompress.registration import register_edgecompress_objects

    path = Path(path)
    if path.suffix == ".tflite":
        m = measure(path, test)
        return Artifact(name=path.stem, path=str(path), mode="tflite", params=m.params,
                        nonzero_params=m.nonzero_params, macs=m.macs, file_bytes=m.file_bytes,
                        gzip_bytes=m.gzip_bytes, deploy_bytes=m.gzip_bytes, accuracy=m.accuracy)
    register_edgecompress_objects()
    model = load_model(path, argument="artifacts", unsafe=unsafe)
    m = measure(model, test, file_sizes=True)
    return Artifact(name=path.stem, path=str(path), mode="keras", params=m.params,
                    nonzero_params=m.nonzero_params, macs=m.macs, file_bytes=m.file_bytes,
                    gzip_bytes=m.gzip_bytes, deploy_bytes=m.gzip_bytes, accuracy=m.accuracy)


def train_baseline(train, validation, epochs: int = 10, seed: int = 0, verbose: int = 2):
    """LeNet-5 trained on ``train``: Adam with cosine decay, random ±2-pixel shifts
    (``validation`` is only shown each epoch: nothing is selected on it).

    On MNIST-5k (4,000 digits) this reaches 98% on the 1,000 held-out digits; without the shifts
    it stalls near 97.6%.
    """
    from edgecompress import datasets, models

    keras.utils.set_random_seed(seed)
    x, y = train
    batch = 64
    model = models.lenet5(input_shape=x.shape[1:], num_classes=int(y.max()) + 1)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, epochs * (len(x) // batch))
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(datasets.shifted_batches(x, y, batch, pixels=2, seed=seed), epochs=epochs,
              validation_data=validation, verbose=verbose)
    return model


DEMO_RECIPES = ("lowrank", "pruning", "filter_pruning", "quantization", "qat", "binary",
                "distillation", "deep_compression")


def shipped_recipe(name: str) -> Path:
    return Path(__file__).parent / "recipes" / f"{name}.toml"


def demo(out_dir, epochs: int = 10, quick: bool = False, recipes=DEMO_RECIPES) -> list[Artifact]:
    """Train LeNet-5 on MNIST-5k, run one shipped recipe per family plus Deep Compression,
    export and verify everything, and write the report into ``out_dir``.

    ``quick`` trims data and epochs to a smoke test (the numbers then mean little).

    Early stopping sees a stratified validation split carved from the training digits (the
    baseline does not train on it); the held-out digits are the report's test set only.
    """
    from edgecompress import datasets
    from edgecompress import recipe as recipe_mod
    from edgecompress.report import write_report

    out_dir = Path(out_dir)
    train, test = datasets.load("mnist5k")
    if quick:
        train, test = (train[0][:800], train[1][:800]), (test[0][:200], test[1][:200])
        epochs = 1
    train, validation = recipe_mod.split_validation(train)
    log.info("training the LeNet-5 baseline on %d MNIST-5k digits (%d epochs)", len(train[0]), epochs)
    model = train_baseline(train, validation, epochs=epochs, verbose=2)
    save_model(model, out_dir / "baseline.keras")
    artifacts = baseline_artifacts(model, train, test, out_dir)
    for name in recipes:
        recipe = recipe_mod.load(shipped_recipe(name))
        if quick:
            recipe = quick_recipe(recipe)
        log.info("recipe %s: %s", recipe.name, " -> ".join(s.kind for s in recipe.steps))
        _, produced = recipe_mod.run(recipe, model, train, test, out_dir, verbose=1, enforce=False,
                                     validation=validation)
        artifacts += produced
    write_report(out_dir, artifacts, "edgecompress demo: LeNet-5 on MNIST-5k",
                 baseline="baseline_float32",
                 notes=f"Baseline: LeNet-5, {epochs} epochs on {len(train[0])} digits ({len(validation[0])} "
                       f"more for early stopping); accuracy on {len(test[0])} held-out digits, used for "
                       f"nothing else. deploy B = gzip of the verified file.")
    return artifacts


def quick_recipe(recipe):
    """The same recipe with every epoch count cut to 1 (for smoke tests)."""
    for step in recipe.steps:
        for key in ("epochs", "finetune_epochs"):
            if key in step.params:
                step.params[key] = min(step.params[key], 1)
        if "rounds" in step.params:
            step.params["rounds"] = min(step.params["rounds"], 2)
    return recipe
