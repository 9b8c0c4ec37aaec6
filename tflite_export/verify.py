"""Run a ``.tflite`` file beside its Keras model and compare them.

The file runs in LiteRT, or in Larq Compute Engine's interpreter when it holds LCE ops, with
quantize/dequantize of int8 inputs and outputs handled by :class:`edgecompress.litert.Runner`.
"""

from __future__ import annotations

import numpy as np

from edgecompress import litert
from edgecompress._errors import CheckError
from edgecompress.datasets import labels


class VerificationError(CheckError, ValueError):
    """The exported file disagrees with the Keras model more than allowed.

    Attributes:
        report: the export report with the measured figures (the file was not written).
    """

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


def verify(tflite, model, data, batch_size: int = 64) -> dict:
    """Compare a ``.tflite`` file (path or bytes) with ``model`` on ``data``.

    Args:
        tflite: the file, as a path or bytes.
        model: the tf_keras model it was converted from.
        data: ``(x, y)`` with integer (or one-hot) labels, or ``x`` alone.
        batch_size: batch size for both runs.

    Returns:
        A dict with ``agreement`` (fraction of samples where both give the same top-1 class),
        ``accuracy`` and ``keras_accuracy`` (None without labels) and ``max_abs_diff`` (largest
        absolute difference of the outputs, the file's dequantized to float).
    """
    x, y = _split(data)
    tfl = _first(litert.Runner(tflite).predict(x, batch_size=batch_size))
    ref = _first(model.predict(x, batch_size=batch_size, verbose=0))
    ref = np.asarray(ref, dtype=np.float32).reshape(tfl.shape)
    top_tfl, top_ref = tfl.argmax(axis=-1), ref.argmax(axis=-1)
    result = {
        "agreement": float(np.mean(top_tfl == top_ref)),
        "accuracy": None,
        "keras_accuracy": None,
        "max_abs_diff": float(np.max(np.abs(tfl - ref))),
    }
    if y is not None:
        result["accuracy"] = float(np.mean(top_tfl == y))
        result["keras_accuracy"] = float(np.mean(top_ref == y))
    return result


def _split(data):
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        y = labels(y, len(x if not isinstance(x, (list, tuple)) else x[0]), "verify_data")
        if y is not None and (y.dtype != np.int64 or y.ndim != 1):
            y = None  # regression targets: agreement and error only, no accuracy
    else:
        x, y = data, None
    x = [np.asarray(a, dtype=np.float32) for a in x] if isinstance(x, (list, tuple)) else np.asarray(x, dtype=np.float32)
    n = len(x[0]) if isinstance(x, list) else len(x)
    if n == 0:
        raise ValueError("`verify_data` must hold at least one sample. Received: 0")
    return x, y


def _first(outputs):
    return outputs[0] if isinstance(outputs, list) else outputs
