"""The ``.tflite`` reader and one runner per runtime: LiteRT, Larq Compute Engine, TFLite Micro.

``Runner(path_or_bytes)`` picks the runtime that fits the file (LCE for files with LCE ops, else
LiteRT); ``Runner(..., backend="tflm")`` or :class:`TFLMRunner` runs it in TFLite Micro. Every runner
takes float inputs and gives float outputs, in the file's output order, with ``output_names`` to
match them to a Keras model's outputs. Names load lazily: the TFLM arena probe imports this package
in a child process without TensorFlow.
"""

import importlib

_NAMES = {
    "ModelInfo": "tflite_export.runtime.reader",
    "inspect": "tflite_export.runtime.reader",
    "read_bytes": "tflite_export.runtime.reader",
    "stored_constants": "tflite_export.runtime.reader",
    "CONV_OPS": "tflite_export.runtime.reader",
    "Runner": "tflite_export.runtime.base",
    "BACKENDS": "tflite_export.runtime.base",
    "benchmark": "tflite_export.runtime.base",
    "LiteRTRunner": "tflite_export.runtime.litert",
    "LCERunner": "tflite_export.runtime.lce",
    "TFLMRunner": "tflite_export.runtime.tflm",
    "Arena": "tflite_export.runtime.tflm",
    "measure_arena": "tflite_export.runtime.tflm",
    "allocates": "tflite_export.runtime.tflm",
    "MicroOpsError": "tflite_export.runtime.tflm",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'tflite_export.runtime' has no attribute {name!r}")
