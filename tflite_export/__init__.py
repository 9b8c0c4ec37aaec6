"""tflite_export: convert a tf_keras model to a verified TFLite / TFLite Micro artifact.

Works on any tf_keras model and imports no compression family (see DESIGN.md, "Walls").
Names load lazily, so ``tflite-export --help`` answers without importing TensorFlow.
"""

import importlib

_NAMES = {
    "MODES": "tflite_export.convert",
    "ExportReport": "tflite_export.convert",
    "FloatOpsError": "tflite_export.convert",
    "export": "tflite_export.convert",
    "load_model": "tflite_export.convert",
    "VerificationError": "tflite_export.verify",
    "verify": "tflite_export.verify",
    "MicroReport": "tflite_export.micro",
    "to_c_array": "tflite_export.micro",
    "lut_compress": "tflite_export.micro",
    "LutReport": "tflite_export.micro",
    "benchmark": "tflite_export.runtime.base",
    "Runner": "tflite_export.runtime.base",
    "TFLMRunner": "tflite_export.runtime.tflm",
    "measure_arena": "tflite_export.runtime.tflm",
    "Arena": "tflite_export.runtime.tflm",
    "MicroOpsError": "tflite_export.runtime.tflm",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'tflite_export' has no attribute {name!r}")
