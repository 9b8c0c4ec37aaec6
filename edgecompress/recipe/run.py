"""Running a recipe: validation against the model, the step loop, the trace and the guard.

This module, :mod:`edgecompress.pipeline` and the CLI are the bridges between the families and
``tflite_export`` (see DESIGN.md, "Walls").
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from edgecompress import augment as augment_lib
from edgecompress import tasks as tasks_lib
from edgecompress._errors import CheckError
from edgecompress.datasets import take
from edgecompress.recipe import guard
from edgecompress.recipe.schema import STEPS, RecipeError
from edgecompress.recipe.state import RunState

log = logging.getLogger("edgecompress.recipe")

#: At most this fraction of the training data is held out for validation when none is given.
VALIDATION_FRACTION = 0.2


class RunResult(tuple):
    """``(final_model, artifacts)``, with the per-step ``trace``, the ``baseline`` scores and the
    guard's ``failures`` ({artifact name: reasons}) as attributes."""

    def __new__(cls, model, artifacts, trace, baseline, failures, worst=None):
        self = super().__new__(cls, (model, artifacts))
        self.model, self.artifacts, self.trace = model, artifacts, trace
        self.baseline, self.failures, self.worst = baseline, failures, worst
        return self


@dataclasses.dataclass
class Context:
    """What validation knows of the model a step will see."""

    model: object
    labels: object = None
    override: object = None
    tasks: list = dataclasses.field(default_factory=list)
    baseline: object = None  # the input model (the teacher of ``distill``'s "baseline")
    steps_before: list = dataclasses.field(default_factory=list)  # the steps validated so far

    def refresh(self):
        self.tasks = tasks_lib.infer_tasks(self.model, self.labels, self.override)


def validate(recipe, model, labels=None) -> list:
    """Check every step of ``recipe`` against ``model`` before anything trains.

    Selectors must resolve, augmentation must fit the input, the model's tasks must suit the
    step, ``swap_backbone`` and ``thin`` must build (later steps are then checked against the new
    model), and ``quantize_aware`` must annotate a clone of the model (unless an earlier step
    rewrites the model in a way validation does not replay; see :mod:`edgecompress.recipe.quantization`).

    Returns:
        The model's tasks.

    Raises:
        RecipeError: naming the step, the key and the reason.
    """
    from edgecompress import surgery

    context = Context(model, labels, recipe.task, baseline=model)
    try:
        context.refresh()
    except ValueError as err:
        raise RecipeError(f"`task`: {_first_line(err)}") from None
    tasks = context.tasks
    for index, step in enumerate(recipe.steps):
        kind = STEPS[step.kind]
        context.steps_before = recipe.steps[:index]
        try:
            if kind.layer_types and step.params.get("layers") is not None:
                surgery.find_layers(context.model, step.params["layers"], kind.layer_types, "layers")
            if "augment" in step.params:
                augment_lib.resolve(step.params["augment"], _input_shapes(context.model), "augment")
            if kind.check is not None:
                kind.check(context, step.params)
        except (ValueError, TypeError) as err:
            raise RecipeError(f"{step.where}: {_first_line(err)}") from None
    return tasks


def split_validation(train, seed: int = 0):
    """``(train, validation)``: a stratified split of at most :data:`VALIDATION_FRACTION` (plain
    when a class has too few samples to stratify), logged with the counts."""
    from sklearn.model_selection import train_test_split

    x, y = train
    n = len(x)
    labels = y if not isinstance(y, (list, tuple)) else y[0]
    labels = np.asarray(labels)
    size = max(1, int(VALIDATION_FRACTION * n))
    if n < 5:
        raise RecipeError(f"`train` must hold at least 5 samples to hold out validation data. Received: {n}")
    ids = strata = None
    if labels.ndim == 2 and labels.shape[1] > 1 and np.isin(labels, (0, 1)).all():
        ids = labels.argmax(-1)  # one-hot rows
    elif labels.size == n and np.isfinite(labels).all() and np.array_equal(labels, np.round(labels)):
        ids = labels.reshape(-1).astype(int)  # class ids
    if ids is not None:
        counts = np.unique(ids, return_counts=True)[1]
        if counts.min() >= 2 and size >= counts.size and counts.size < n // 2:
            strata = ids
    index = np.arange(n)
    tr, va = train_test_split(index, test_size=size, random_state=seed, stratify=strata)
    (x_tr, x_va), (y_tr, y_va) = (take(x, tr), take(x, va)), (take(y, tr), take(y, va))
    log.info("no validation data given: held out %d of %d training samples (%s split, %.0f%%) for early "
             "stopping", len(va), n, "stratified" if strata is not None else "random", 100 * len(va) / n)
    return (x_tr, y_tr), (x_va, y_va)


def run(recipe, model, train, test, out_dir, baseline=None, verbose: int = 1, seed: int = 0,
        validation=None, max_drop=None, enforce: bool = True, strategy=None,
        tasks=None) -> RunResult:
    """Run every step of ``recipe`` on a clone of ``model``; write artifacts into ``out_dir``.

    Args:
        recipe: a validated :class:`edgecompress.recipe.Recipe`.
        model: the trained tf_keras model (left untouched).
        train: ``(x, y)`` for fine-tuning and calibration (``y`` a list for several outputs).
        test: ``(x, y)`` held out: verification, the trace and the accuracy guard.
        out_dir: an existing folder for the outputs.
        baseline: the teacher for ``distill`` steps with ``teacher = "baseline"`` (default: model).
        validation: ``(x, y)`` for early stopping; default a split of ``train`` (logged).
        max_drop: overrides the recipe's ``max_drop`` (see :mod:`edgecompress.recipe.guard`).
        enforce: raise when the guard fails (False: only mark the artifacts FAILED and log it, as
            the demo and benchmarks do).
        strategy: ``"mirrored"`` or ``"multiworker"``: data-parallel training steps (see
            :mod:`edgecompress.distribute`).
        tasks: what :func:`validate` returned for this recipe, model and labels, when the caller
            has validated already (default: validate here).

    Returns:
        A :class:`RunResult`: ``(final_model, artifacts)`` with ``trace`` and ``failures``.

    Raises:
        RecipeError: for a step that cannot run on this model (before training where possible).
        CheckError: unchanged from export verification; :class:`guard.AccuracyGuardError` when an
            artifact lost more than ``max_drop`` (its ``result`` holds the marked artifacts).
    """
    from edgecompress import surgery

    tasks = validate(recipe, model, train[1]) if tasks is None else tasks
    names = [t.output for t in tasks]
    max_drop = recipe.max_drop if max_drop is None else max_drop
    if validation is None:
        train, validation = split_validation(train, seed)
    state = RunState(model=surgery.clone(model), train=train, validation=validation, test=test,
                     out_dir=Path(out_dir), baseline=baseline if baseline is not None else model,
                     recipe=recipe, tasks=tasks, verbose=verbose, seed=seed, strategy=strategy)
    base_values = tasks_lib.evaluate(model, test, tasks)
    trace = [{"step": 0, "kind": "input", "scores": dict(zip(names, base_values))}]
    log.info("[%s] input model on %d held-out samples: %s", recipe.name, len(test[0]), _show(trace[0]))
    for step in recipe.steps:
        state.where = f"[{recipe.name}] {step.where}"
        log.info("%s of %d: %s", state.where, len(recipe.steps), step.describe())
        produced = len(state.artifacts)
        try:
            STEPS[step.kind].run(state, **step.params)
        except (RecipeError, CheckError):
            raise
        except (ValueError, TypeError) as err:
            raise RecipeError(f"{step.where}: {_first_line(err)}") from err
        state.tasks = _renamed(tasks_lib.infer_tasks(state.model, train[1], recipe.task), names)
        if step.kind == "export" and len(state.artifacts) > produced:
            scores = {k: v["value"] for k, v in state.artifacts[-1].scores.items()}
        else:
            scores = dict(zip(names, tasks_lib.evaluate(state.model, test, state.tasks)))
        trace.append({"step": step.index, "kind": step.kind, "scores": scores})
        log.info("%s: %s", state.where, _show(trace[-1]))
    failures = {}
    for artifact in state.artifacts:
        reasons = guard.judge(artifact, tasks, trace[0]["scores"], max_drop)
        if reasons:
            failures[artifact.name] = reasons
    worst, phrase = guard.worst_step(trace, tasks, max_drop)
    result = RunResult(state.model, state.artifacts, trace, trace[0]["scores"], failures,
                       worst and {**worst, "phrase": phrase})
    if failures:
        first = next(iter(failures))
        where = f"step {worst['step']} ({worst['kind']}) lost the most: {phrase}" if worst else ""
        message = (f"accuracy guard: {len(failures)} artifact(s) FAILED, first {first}: "
                   f"{failures[first][0]}; {where}")
        if enforce:
            raise guard.AccuracyGuardError(message, result)
        log.warning("[%s] %s", recipe.name, message)
    return result


def _renamed(found, names):
    if len(found) != len(names):
        return found
    return [dataclasses.replace(t, output=n) for t, n in zip(found, names)]


def _show(entry) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in entry["scores"].items())


def _input_shapes(model):
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    return shapes[0] if len(shapes) == 1 else shapes


def _first_line(err) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
