"""The two kinds of job the search runs, each independent and seeded from its arguments:

* ``scan``: one action on the original model, its accuracy on validation data, no training.
* ``candidate``: a plan of actions, fine-tuned with early stopping (optionally distilled from the
  original), exported, verified in TensorFlow Lite Micro, and measured on the runtimes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgecompress.datasets import CALIBRATION_SAMPLES
from edgecompress.search import measure, space
from edgecompress.search.space import Action

_MODELS: dict = {}


def run(shared: dict, task: str, **kwargs):
    """Run one job against ``shared`` (model bytes, data, settings)."""
    return {"scan": scan, "candidate": candidate}[task](shared, **kwargs)


def _model(shared):
    key = id(shared["model"])
    if key not in _MODELS:
        from edgecompress.search.jobs import model_from_bytes

        _MODELS.clear()
        _MODELS[key] = model_from_bytes(shared["model"])
    return _MODELS[key]


def scan(shared, action: dict) -> dict:
    from edgecompress.measure import keras_accuracy, keras_macs

    new, resolved = space.apply(_model(shared), [Action(**action)])
    return {"action": action, "resolved": resolved,
            "accuracy": keras_accuracy(new, shared["scan"]), "params": int(new.count_params()),
            "bytes": space.int8_bytes(new, resolved), "decoded": space.decoded_bytes(new, resolved),
            "peak": space.activation_peak(new), "macs": int(keras_macs(new))}


def candidate(shared, actions: list, mode: str, seed: int, name: str, estimate=None) -> dict:
    from edgecompress._keras import keras, tf
    from tflite_export import export

    settings = shared["settings"]
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    base = _model(shared)
    new, resolved = space.apply(base, [Action(**a) for a in actions], lut=False)
    epochs = finetune(new, shared, seed) if actions and settings["epochs"] else 0
    lut = bool(resolved["lut"]) and mode == "int8"
    if lut:  # after the fine-tune, which would undo it
        new = space.apply_lut(new, resolved["lut"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.tflite"
        calibration = shared["fit"][0][:CALIBRATION_SAMPLES] if mode == "int8" else None
        rep = export(new, path, mode, representative_data=calibration, verify_data=shared["val"])
        plain = path.read_bytes()
    tflite = measure.lut_compress(plain) if lut else plain  # LiteRT verified the plain file
    foot = measure.footprint(tflite, latency=settings["latency"], latency_file=plain)
    from edgecompress.search.jobs import model_to_bytes

    return {
        "name": name, "actions": actions, "resolved": resolved, "mode": mode, "epochs": epochs,
        "estimate": estimate,
        "params": int(new.count_params()), "flash": foot.flash, "arena": foot.arena,
        "latency_ms": foot.latency_ms,
        "accuracy": rep.accuracy, "keras_accuracy": rep.keras_accuracy, "agreement": rep.agreement,
        "tflm_agreement": measure.tflm_agreement(tflite, shared["val"][0][:settings["tflm_samples"]],
                                                 reference=plain),
        "tflite": tflite, "keras": model_to_bytes(new),
    }


def finetune(model, shared, seed: int) -> int:
    """Fine-tune ``model`` in place on ``shared["fit"]`` with early stopping on the validation
    loss (best weights restored); distil from the original when ``settings["distill"]``.

    Returns:
        The number of epochs whose weights were kept (what a recipe ``fit`` step repeats).
    """
    from edgecompress import datasets, distribute
    from edgecompress import tasks as tasks_lib
    from edgecompress._keras import keras

    settings = shared["settings"]
    stop = keras.callbacks.EarlyStopping("val_loss", patience=settings["patience"],
                                         restore_best_weights=True)
    data = datasets.shifted_batches(*shared["fit"], settings["batch_size"], pixels=0, seed=seed)
    learning_rate = settings["learning_rate"]
    task_list = tasks_lib.infer_tasks(model, shared["fit"][1])
    if settings["distill"]:
        from edgecompress import distillation

        trainer = distillation.Distiller(_model(shared), model)
        trainer.compile(keras.optimizers.Adam(learning_rate), metrics=["accuracy"])
        trainer.fit(data, epochs=settings["epochs"], validation_data=shared["val"],
                              callbacks=[stop], verbose=0)
    else:
        distribute.fit(model, data, settings["strategy"], epochs=settings["epochs"],
                       validation_data=shared["val"], callbacks=[stop], verbose=0,
                       compile=lambda: {"optimizer": keras.optimizers.Adam(learning_rate),
                                        **tasks_lib.compile_kwargs(task_list)})
    return int(stop.best_epoch) + 1

