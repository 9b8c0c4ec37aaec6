"""Artifacts: one exported or packed model with its size and per-output scores.

This module sits below :mod:`edgecompress.recipe`, :mod:`edgecompress.pipeline` and
:mod:`edgecompress.report`, which all use it; it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecompress import tasks as tasks_lib
from edgecompress._io import atomic_path
from edgecompress.datasets import CALIBRATION_SAMPLES


@dataclass
class Artifact:
    """One point of the comparison: a model or file with its size and accuracy.

    ``deploy_bytes`` is what a phone downloads: the gzip of the verified ``.tflite`` (a packed
    ``.ecpk`` is a storage/transfer format no runtime reads, so it has none). The MCU target:
    ``flash_bytes`` (the file as the device stores it), ``arena_bytes`` (the exact TFLM arena) and
    ``tflm_agreement``, filled when the export ran TFLM (``micro``). ``scores`` holds each output's metric
    on the held-out data (``{"fc2": {"metric": "accuracy", "value": 0.97}}``); ``status`` is
    ``"FAILED"`` when the accuracy guard rejected the artifact.
    """

    name: str
    path: str = ""
    mode: str = ""
    params: int | None = None
    nonzero_params: int | None = None
    macs: int | None = None
    file_bytes: int | None = None
    gzip_bytes: int | None = None
    deploy_bytes: int | None = None
    accuracy: float | None = None
    keras_accuracy: float | None = None
    agreement: float | None = None
    latency_us: float | None = None
    flash_bytes: int | None = None
    arena_bytes: int | None = None
    tflm_agreement: float | None = None
    ops: str = ""
    note: str = ""
    scores: dict = field(default_factory=dict)
    status: str = ""


def save_model(model, path) -> Path:
    """Save ``model`` to a ``.keras`` file atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        keras_tmp = tmp.with_suffix(".keras")
        model.save(keras_tmp)
        keras_tmp.replace(tmp)
    return path


def scores_of(tasks, values) -> dict:
    """``{output: {"metric": name, "value": v}}`` for :func:`edgecompress.tasks.evaluate` values."""
    return {t.output: {"metric": t.metric_name, "value": v} for t, v in zip(tasks, values)}


def first_accuracy(tasks, values) -> float | None:
    """The first classification/binary output's accuracy (the report's accuracy column)."""
    return next((v for t, v in zip(tasks, values) if t.kind != tasks_lib.REGRESSION), None)


def tflite_predictions(path, x, output_names) -> list[np.ndarray]:
    """Outputs of the ``.tflite`` file at ``path`` (or its bytes) in LiteRT on ``x``, in the
    order of the Keras ``output_names``.

    TFLite orders several outputs differently from Keras; they are matched by name
    (:func:`tflite_export.verify.match_outputs`).
    """
    from tflite_export.runtime import Runner
    from tflite_export.verify import match_outputs

    runner = Runner(path)
    out = runner.predict(x)
    outs = [np.asarray(o) for o in out] if isinstance(out, list) else [np.asarray(out)]
    order = match_outputs(runner.output_names, list(output_names))
    return [outs[i] for i in order]


def export_artifact(model, path, mode, train, test, name=None, tasks=None, **kwargs) -> Artifact:
    """Export ``model`` with ``tflite_export.export``, verify it on ``test`` and score every output.

    Args:
        model: the tf_keras model.
        path: the ``.tflite`` path.
        mode: a ``tflite_export`` mode.
        train: ``(x, y)``; its first samples calibrate int8 modes.
        test: ``(x, y)`` held out: verification and scores.
        tasks: the model's :class:`edgecompress.tasks.Task` list (default: inferred from ``test``).
        **kwargs: passed to ``tflite_export.export``.
    """
    from edgecompress.measure import measure
    from tflite_export import export

    tasks = tasks or tasks_lib.infer_tasks(model, test[1])
    calibration = train[0][:CALIBRATION_SAMPLES] if mode in ("int8", "int16x8") else None
    rep = export(model, path, mode, representative_data=calibration, verify_data=test, **kwargs)
    labels = tasks_lib.split_labels(test[1], [t.output for t in tasks])
    values = [t.score(lab, pred) for t, lab, pred in
              zip(tasks, labels, tflite_predictions(path, test[0], model.output_names))]
    keras_values = tasks_lib.evaluate(model, test, tasks)
    m = measure(model)
    return Artifact(
        name=name or Path(path).stem, path=str(path), mode=mode, params=m.params,
        nonzero_params=m.nonzero_params, macs=m.macs, file_bytes=rep.bytes,
        gzip_bytes=rep.gzip_bytes, deploy_bytes=rep.gzip_bytes, accuracy=first_accuracy(tasks, values),
        keras_accuracy=first_accuracy(tasks, keras_values), agreement=rep.agreement,
        ops=",".join(sorted(set(rep.ops))), scores=scores_of(tasks, values),
        flash_bytes=rep.flash_bytes, arena_bytes=(rep.arena or {}).get("bytes"),
        tflm_agreement=rep.tflm_agreement,
    )
