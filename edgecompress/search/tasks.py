"""The two kinds of job the search runs, each independent and seeded from its arguments:

* ``propose``: on the current model, the smallest move of one layer that brings the estimated
  excess over the budget down to the iteration's aim, a short fine-tune, and its validation
  scores (NetAdapt's per-layer proposal);
* ``candidate``: a model, optionally given the long final fine-tune (distilled from the original
  model, with input augmentation, early stopping), exported, verified in TensorFlow Lite Micro,
  and measured on the runtimes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgecompress._onednn import even_batches
from edgecompress.datasets import CALIBRATION_SAMPLES
from edgecompress.search import measure, space
from edgecompress.search.space import Action

_ORIGINAL: dict = {}


def run(shared: dict, task: str, **kwargs):
    """Run one job against ``shared`` (the original model's bytes, data, settings)."""
    return {"propose": propose, "candidate": candidate}[task](shared, **kwargs)


def original(shared):
    """The original model (the teacher), loaded once per worker."""
    key = id(shared["model"])
    if key not in _ORIGINAL:
        from edgecompress.search.jobs import model_from_bytes

        _ORIGINAL.clear()
        _ORIGINAL[key] = model_from_bytes(shared["model"])
    return _ORIGINAL[key]


def propose(shared, model: bytes, lut: dict, layer: str, kind: str, aim: float, reference: dict,
            seed: int) -> dict:
    """The least shrink of ``layer`` by ``kind`` whose estimated excess over the budget is at
    most ``aim`` (bisection over :func:`space.sizes`), fine-tuned for the short epochs.

    Returns:
        ``{"action", "reached", "stats", "scores", "loss", "model", ...}``; when even the
        largest shrink misses ``aim``, ``reached`` is False and nothing is trained.
    """
    from edgecompress.search.jobs import model_from_bytes, model_to_bytes

    settings = shared["settings"]
    current = model_from_bytes(model)
    ref_stats = space.stats(current, lut)
    values = space.sizes(current, layer, kind, lut, settings["ratios"], settings["rank_fractions"],
                         settings["lut_bits"])

    def build(value):
        new, new_lut, step = space.move(current, Action(layer, kind, float(value)), lut)
        new_stats = space.stats(new, new_lut)
        cost = space.excess(shared["limits"], space.estimate(reference, ref_stats, new_stats))
        return new, new_lut, step, new_stats, cost

    row = {"action": Action(layer, kind, 0.0).to_dict(), "reached": False, "scores": None,
           "model": None, "stats": None, "step": None}
    if not values:
        return row
    last = build(values[-1])
    if last[-1] > aim + 1e-9:
        row["action"]["value"] = float(values[-1])
        row["stats"] = last[3]
        return row
    lo, hi, best = 0, len(values) - 1, (values[-1], last)
    while lo < hi:  # the least shrink that reaches the aim: values[hi] reaches it
        mid = (lo + hi) // 2
        built = build(values[mid])
        if built[-1] <= aim + 1e-9:
            hi, best = mid, (values[mid], built)
        else:
            lo = mid + 1
    value, (new, new_lut, step, new_stats, _) = best
    from edgecompress._keras import keras, tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    if kind != "lut" and settings["short_epochs"]:
        train(new, shared, settings["short_epochs"], settings["learning_rate"], seed)
    scored = space.apply_lut(new, new_lut)
    return {"action": Action(layer, kind, float(value)).to_dict(), "reached": True,
            "scores": keras_scores(scored, shared["scan"], shared["tasks"]),
            "loss": validation_loss(scored, shared["scan"], shared["tasks"]), "model": model_to_bytes(new), "lut": new_lut,
            "stats": new_stats, "step": step}


def keras_scores(model, data, task_list) -> dict:
    """``{output: score}`` of ``model`` on ``data`` (:func:`edgecompress.tasks.evaluate`)."""
    from edgecompress import tasks as tasks_lib

    return dict(zip([t.output for t in task_list], tasks_lib.evaluate(model, data, task_list)))


def validation_loss(model, data, task_list) -> float:
    """The loss of ``model`` on ``data`` (summed over the outputs' :mod:`edgecompress.tasks`
    losses): a smoother score than the accuracy, which moves in steps of one sample."""
    from edgecompress import tasks as tasks_lib

    model.compile(**tasks_lib.compile_kwargs(task_list))
    out = model.evaluate(*data, batch_size=256, verbose=0)
    return float(out[0] if isinstance(out, list) else out)


def candidate(shared, model: bytes, lut: dict, mode: str, name: str, seed: int,
              final: bool = False) -> dict:
    """Export ``model`` (after the final fine-tune when ``final``), LUT widths applied, and
    measure it: flash and exact arena in TFLM, LiteRT latency, LiteRT's scores per output on the
    validation data, TFLM agreement."""
    from edgecompress._keras import keras, tf
    from edgecompress.artifacts import first_accuracy
    from edgecompress.search.jobs import model_from_bytes, model_to_bytes
    from tflite_export import export

    settings = shared["settings"]
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    new = model_from_bytes(model)
    phases = final_finetune(new, shared, seed) if final and settings["epochs"] else []
    lut = lut if mode == "int8" else {}
    if lut:  # after the fine-tune, which would undo it
        new = space.apply_lut(new, lut)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.tflite"
        calibration = shared["fit"][0][:CALIBRATION_SAMPLES] if mode == "int8" else None
        int8_io = mode == "int8" and settings["int8_io"]
        rep = export(new, path, mode, representative_data=calibration, verify_data=shared["val"],
                     int8_io=int8_io)
        plain = path.read_bytes()
    task_list = shared["tasks"]
    scores = measure.tflite_scores(plain, shared["val"], task_list)
    tflite = measure.lut_compress(plain) if lut else plain  # LiteRT verified the plain file
    foot = measure.footprint(tflite, latency=settings["latency"], latency_file=plain)
    return {
        "name": name, "mode": mode, "int8_io": int8_io, "lut": dict(lut), "final": bool(final), "phases": phases,
        "params": int(new.count_params()), "stats": space.stats(new, lut),
        "flash": foot.flash, "arena": foot.arena, "latency_ms": foot.latency_ms,
        "scores": scores, "accuracy": first_accuracy(task_list, list(scores.values())),
        "keras_accuracy": rep.keras_accuracy,
        "agreement": rep.agreement,
        "tflm_agreement": measure.tflm_agreement(tflite, shared["val"][0][:settings["tflm_samples"]],
                                                 {t.output: t.compare for t in task_list},
                                                 reference=plain),
        "tflite": tflite, "keras": model_to_bytes(new),
        "litert_tflite": plain,  # what LiteRT runs: the file before LUT compression (TFLM-lossless)
    }


def final_finetune(model, shared, seed: int) -> list[dict]:
    """The long fine-tune of the model that fits, in place: up to ``epochs`` at the learning
    rate, then up to a third as many at a tenth of it, each with early stopping on the validation
    metric (best weights restored); distilled from the original model when
    ``settings["distill"]``, on inputs augmented by :mod:`edgecompress.augment` ("auto").

    Returns:
        One ``{"kind", "epochs", "learning_rate", "augment"}`` per phase, ``epochs`` being the
        epochs whose weights were kept (what a recipe ``fit``/``distill`` step repeats).
    """
    settings = shared["settings"]
    phases = []
    for epochs, learning_rate in ((settings["epochs"], settings["learning_rate"]),
                                  (max(1, settings["epochs"] // 3), settings["learning_rate"] / 10)):
        kept, kind = train(model, shared, epochs, learning_rate, seed, augment="auto",
                           patience=settings["patience"], teacher=settings["distill"])
        phases.append({"kind": kind, "epochs": kept, "learning_rate": learning_rate,
                       "augment": "auto"})
    return phases


def train(model, shared, epochs: int, learning_rate: float, seed: int, augment: str = "none",
          patience: int = 0, teacher: bool = False) -> tuple[int, str]:
    """Fine-tune ``model`` in place on ``shared["fit"]`` (Adam); with ``patience``, early
    stopping on the validation metric (:func:`edgecompress.tasks.early_stopping`) restores
    the best weights. ``teacher``: distil from the original model (one classification output
    only; otherwise a plain fit).

    Returns:
        ``(epochs kept, "distill" or "fit")``.
    """
    from edgecompress import augment as augment_lib
    from edgecompress import distribute
    from edgecompress import tasks as tasks_lib
    from edgecompress._keras import keras

    settings = shared["settings"]
    task_list = shared["tasks"]
    spec = augment_lib.resolve(augment, tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1
                               else [tuple(t.shape[1:]) for t in model.inputs], tasks=task_list)
    x, y, batch_size = even_batches(model, *shared["fit"], settings["batch_size"], "search")
    data = augment_lib.batches(x, y, spec, batch_size, seed=seed)
    callbacks = []
    if patience:
        callbacks.append(stop := tasks_lib.early_stopping(task_list, patience))
    distill = teacher and len(task_list) == 1 and task_list[0].kind == tasks_lib.CLASSIFICATION
    fit_kwargs = dict(epochs=epochs, validation_data=shared["val"] if patience else None,
                      callbacks=callbacks, verbose=0)
    if distill:
        from edgecompress import distillation

        trainer = distillation.Distiller(original(shared), model)
        trainer.compile(keras.optimizers.Adam(learning_rate), loss=task_list[0].loss(),
                        metrics=[task_list[0].metric()])
        trainer.fit(data, **fit_kwargs)
    else:
        distribute.fit(model, data, settings["strategy"], **fit_kwargs,
                       compile=lambda: {"optimizer": keras.optimizers.Adam(learning_rate),
                                        **tasks_lib.compile_kwargs(task_list)})
    kept = int(stop.best_epoch) + 1 if patience and stop.best_epoch is not None else epochs
    return kept, "distill" if distill else "fit"
