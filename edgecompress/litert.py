"""Moved to :mod:`tflite_export.runtime` (the reader and one runner per backend); kept as an alias."""

from tflite_export.runtime.base import Runner, benchmark  # noqa: F401
from tflite_export.runtime.reader import CONV_OPS, ModelInfo, inspect  # noqa: F401
