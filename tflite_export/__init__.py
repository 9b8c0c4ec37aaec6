"""tflite_export: convert a tf_keras model to a verified TFLite / TFLite Micro artifact.

Works on any tf_keras model and imports no compression family (see DESIGN.md, "Walls").
"""

from edgecompress.litert import benchmark  # noqa: F401
from tflite_export.convert import MODES, ExportReport, FloatOpsError, export, load_model  # noqa: F401
from tflite_export.verify import VerificationError, verify  # noqa: F401

__all__ = [
    "MODES", "ExportReport", "FloatOpsError", "VerificationError", "benchmark", "export",
    "load_model", "verify",
]
