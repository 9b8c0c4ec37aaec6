"""Run a ``.tflite`` file beside its Keras model and compare them, output by output.

Beyond a top-1 check: every output of the model is compared, matched to the file's outputs by
name (the file's signature names; the file's output order is not Keras's), non-finite values in
either fail, classification heads are compared by top-1 agreement and every other head (regression,
one-unit binary) by max-abs and relative-L2 error against a threshold. The file runs in LiteRT,
LCE's interpreter or TFLite Micro (:mod:`tflite_export.runtime`).
"""

from __future__ import annotations

import numpy as np

from edgecompress._errors import CheckError
from edgecompress.datasets import labels
from tflite_export.runtime import Runner

RUNTIMES = ("auto", "litert", "lce", "tflm")
#: Largest relative-L2 error ``||file - keras|| / ||keras||`` of a non-classification output that
#: passes when a check is asked for (``min_agreement`` given) without ``max_rel_error``.
MAX_REL_ERROR = 0.1


class VerificationError(CheckError, ValueError):
    """The exported file disagrees with the Keras model more than allowed, or gives non-finite values.

    Attributes:
        report: the measured figures (the export report, or :func:`verify`'s dict).
    """

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


def verify(tflite, model, data, batch_size: int = 64, runtime: str = "auto",
           min_agreement: float | None = None, max_rel_error: float | None = None) -> dict:
    """Compare a ``.tflite`` file (path or bytes) with ``model`` on ``data``, every output.

    Args:
        tflite: the file, as a path or bytes.
        model: the tf_keras model it was converted from.
        data: ``(x, y)`` or ``x`` alone. ``y``: labels of a one-output model (class ids or one-hot),
            or a list (output order) or dict (output names) of them.
        batch_size: batch size for both runs.
        runtime: ``"auto"`` (LiteRT, or LCE for binary files), ``"litert"``, ``"lce"`` or
            ``"tflm"`` (TensorFlow Lite Micro's interpreter).
        min_agreement: least top-1 agreement of each classification output, in [0, 1].
        max_rel_error: largest relative-L2 error of each other output; with ``min_agreement``
            and no ``max_rel_error``, :data:`MAX_REL_ERROR`.

    Returns:
        A dict: ``runtime`` (the backend that ran), ``outputs`` (per Keras output, in Keras order:
        ``name``, ``compare`` ("top1" or "error"), ``agreement``, ``max_abs_diff``, ``rel_l2``,
        ``accuracy``, ``keras_accuracy``) and the summary ``agreement`` (the lowest of the
        classification outputs, None without one), ``accuracy`` and ``keras_accuracy`` (of the
        first classification output with labels), ``max_abs_diff`` and ``rel_l2`` (the largest).

    Raises:
        VerificationError: a non-finite output (always), or a threshold not met.
        ValueError: bad arguments, or outputs that cannot be matched by name.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"`runtime` must be one of {list(RUNTIMES)}. Received: runtime={runtime!r}")
    for name, value in (("min_agreement", min_agreement), ("max_rel_error", max_rel_error)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value < 0 or (name == "min_agreement" and value > 1)):
            raise ValueError(f"`{name}` must be a number in [0, {1 if name == 'min_agreement' else 'inf'}). "
                             f"Received: {name}={value!r}")
    if max_rel_error is None and min_agreement is not None:
        max_rel_error = MAX_REL_ERROR
    x, y = _split(data)
    names = list(model.output_names)
    labels = _labels(y, names)
    modes = compare_modes(model, y)
    runner = Runner(tflite, backend=runtime)
    tfl = _as_list(runner.predict(x, batch_size=batch_size))
    ref = _as_list(model.predict(x, batch_size=batch_size, verbose=0))
    order = match_outputs(runner.output_names, names)
    heads, failures = [], []
    for k, name in enumerate(names):
        a = np.asarray(ref[k], dtype=np.float32)
        b = np.asarray(tfl[order[k]], dtype=np.float32).reshape(a.shape)
        for side, values in (("the Keras model", a), (f"the file ({runner.backend})", b)):
            if not np.isfinite(values).all():
                failures.append(f"output {name!r}: {side} gives non-finite values "
                                f"({int(np.size(values) - np.isfinite(values).sum())} of {np.size(values)})")
        head = _compare(name, modes[k], a, b, labels[k])
        heads.append(head)
        if head["compare"] == "top1" and min_agreement is not None and head["agreement"] < min_agreement:
            failures.append(f"output {name!r}: top-1 agreement {head['agreement']:.4f} < "
                            f"min_agreement={min_agreement} (max_abs_diff {head['max_abs_diff']:.4g})")
        if head["compare"] == "error" and max_rel_error is not None and not head["rel_l2"] <= max_rel_error:
            failures.append(f"output {name!r}: relative L2 error {head['rel_l2']:.4g} > "
                            f"max_rel_error={max_rel_error} (max_abs_diff {head['max_abs_diff']:.4g})")
    top1 = [h for h in heads if h["compare"] == "top1"]
    labelled = [h for h in top1 if h["accuracy"] is not None]
    result = {
        "runtime": runner.backend,
        "outputs": heads,
        "agreement": min(h["agreement"] for h in top1) if top1 else None,
        "accuracy": labelled[0]["accuracy"] if labelled else None,
        "keras_accuracy": labelled[0]["keras_accuracy"] if labelled else None,
        "max_abs_diff": max(h["max_abs_diff"] for h in heads),
        "rel_l2": max(h["rel_l2"] for h in heads),
        "failures": failures,
    }
    if failures:
        raise VerificationError("Verification failed: " + "; ".join(failures) + ".", report=result)
    return result


def match_outputs(file_names, keras_names) -> list:
    """For each Keras output, the index of the file output with the same name.

    A one-output model needs no names. Raises ValueError when the names do not pair up one to one.
    """
    file_names, keras_names = list(file_names), list(keras_names)
    if len(file_names) != len(keras_names):
        raise ValueError(f"The file has {len(file_names)} outputs {file_names} but the model has "
                         f"{len(keras_names)} {keras_names}.")
    if len(keras_names) == 1:
        return [0]
    if sorted(file_names) != sorted(keras_names) or len(set(keras_names)) != len(keras_names):
        raise ValueError(
            f"Cannot match the file's outputs {file_names} to the model's {keras_names} by name "
            "(convert the model with tflite_export.export, which keeps the Keras output names)."
        )
    return [file_names.index(n) for n in keras_names]


def compare_modes(model, y=None) -> list:
    """Per output, ``"top1"`` (classification) or ``"error"`` (anything else), by the shared task
    rule :func:`edgecompress.tasks.infer_tasks` (labels settle linear outputs)."""
    from edgecompress.tasks import infer_tasks

    per_output = _labels(y, list(model.output_names))
    known = None if any(v is None for v in per_output) else per_output
    return [t.compare for t in infer_tasks(model, known)]


def _compare(name, mode, ref, tfl, y) -> dict:
    diff = np.abs(tfl.astype(np.float64) - ref)
    norm = float(np.linalg.norm(ref.astype(np.float64)))
    head = {
        "name": name,
        "compare": mode,
        "agreement": None,
        "max_abs_diff": float(np.max(diff)) if diff.size else 0.0,
        "rel_l2": float(np.linalg.norm(diff) / norm) if norm > 0 else float(np.linalg.norm(diff)),
        "accuracy": None,
        "keras_accuracy": None,
    }
    if mode == "top1":
        top_tfl, top_ref = tfl.argmax(axis=-1), ref.argmax(axis=-1)
        head["agreement"] = float(np.mean(top_tfl == top_ref))
        y = labels(y, len(ref), "verify_data")
        if y is not None and y.dtype == np.int64 and y.ndim == 1 and top_ref.ndim == 1:
            head["accuracy"] = float(np.mean(top_tfl == y))
            head["keras_accuracy"] = float(np.mean(top_ref == y))
    return head


def _labels(y, names) -> list:
    if y is None:
        return [None] * len(names)
    if isinstance(y, dict):
        return [y.get(n) for n in names]
    if isinstance(y, (list, tuple)) and len(names) > 1:
        if len(y) != len(names):
            raise ValueError(f"`verify_data` labels must hold one array per output ({len(names)}). "
                             f"Received: {len(y)}")
        return list(y)
    return [y] + [None] * (len(names) - 1)


def _split(data):
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    else:
        x, y = data, None
    x = [np.asarray(a, dtype=np.float32) for a in x] if isinstance(x, (list, tuple)) else np.asarray(x, dtype=np.float32)
    n = len(x[0]) if isinstance(x, list) else len(x)
    if n == 0:
        raise ValueError("`verify_data` must hold at least one sample. Received: 0")
    if isinstance(y, (list, tuple)) and not all(isinstance(v, np.ndarray) for v in y):
        y = np.asarray(y)
    for label in (list(y.values()) if isinstance(y, dict) else y if isinstance(y, (list, tuple)) else [y]):
        if label is not None and len(label) != n:
            raise ValueError(f"`verify_data` must have one label per sample. Received: {len(label)} "
                             f"labels for {n} samples")
    return x, y


def _as_list(outputs):
    if isinstance(outputs, dict):
        return list(outputs.values())
    return list(outputs) if isinstance(outputs, list) else [outputs]
