"""The accuracy guard: every artifact of a run against the input model, on held-out data.

A classification or binary output may lose at most ``max_drop`` percentage points of accuracy
(default :data:`MAX_DROP_PP`); a regression output may gain at most ``max_drop`` percent of error
(default :data:`MAX_ERROR_INCREASE_PCT`). The per-step trace says which step lost the most.
"""

from __future__ import annotations

from edgecompress import tasks as tasks_lib
from edgecompress._errors import GoalMissedError

MAX_DROP_PP = 2.0
MAX_ERROR_INCREASE_PCT = 10.0
_TINY = 1e-12


class AccuracyGuardError(GoalMissedError):
    """An artifact lost more than ``max_drop``.

    Attributes:
        result: the run's :class:`edgecompress.recipe.run.RunResult` (its artifacts marked FAILED,
            and the trace), so the caller can still write the report.
    """

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


def limit(task, max_drop: float | None) -> float:
    """The allowed loss for ``task``'s output: pp of accuracy, or percent more error."""
    if max_drop is not None:
        return float(max_drop)
    return MAX_ERROR_INCREASE_PCT if task.kind == tasks_lib.REGRESSION else MAX_DROP_PP


def judge(artifact, tasks, baseline: dict, max_drop: float | None) -> list[str]:
    """Mark ``artifact`` FAILED (or ``ok``) against ``baseline`` scores; return the reasons."""
    reasons = []
    for task in tasks:
        score = artifact.scores.get(task.output)
        if score is None or task.output not in baseline:
            continue
        lost = task.drop(baseline[task.output], score["value"])
        if lost > limit(task, max_drop):
            reasons.append(f"output '{task.output}' {task.metric_name} {baseline[task.output]:.4g} -> "
                           f"{score['value']:.4g} ({_signed(task, lost)}, limit {limit(task, max_drop):g}{task.drop_unit})")
    artifact.status = "FAILED" if reasons else "ok"
    if reasons:
        artifact.note = "; ".join(filter(None, [artifact.note, *reasons]))
    return reasons


def worst_step(trace: list[dict], tasks, max_drop: float | None):
    """The trace entry whose step lost the most (relative to each output's limit), with a phrase.

    Export steps are measured against the Keras model they converted; other steps against the
    model before them.
    """
    worst, worst_ratio, phrase = None, 0.0, ""
    previous = trace[0] if trace else None
    for entry in trace[1:]:
        for task in tasks:
            before, after = previous["scores"].get(task.output), entry["scores"].get(task.output)
            if before is None or after is None:
                continue
            lost = task.drop(before, after)
            ratio = lost / max(limit(task, max_drop), _TINY)
            if ratio > worst_ratio:
                worst, worst_ratio = entry, ratio
                phrase = f"{task.metric_name} of '{task.output}' {before:.4g} -> {after:.4g} ({_signed(task, lost)})"
        if entry["kind"] != "export":
            previous = entry
    return worst, phrase


def _signed(task, lost: float) -> str:
    return f"{-lost:+.2f}{task.drop_unit}" if task.kind != tasks_lib.REGRESSION else f"{lost:+.1f}{task.drop_unit}"
