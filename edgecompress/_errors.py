"""The two kinds of failure every command line maps to an exit code.

- :class:`CheckError` (exit 1): the input was fine but a check failed: verification, float ops in
  an int8 file, the accuracy guard (``max_drop``), a device budget.
- :class:`GoalMissedError`, a :class:`CheckError`: the accuracy guard or a device budget.
- :class:`UsageError` (exit 2): bad usage or input.

Both are importable by ``tflite_export`` and the families (this module imports nothing).
"""

from __future__ import annotations


class CheckError(Exception):
    """A check failed on valid input (the CLIs exit 1). Recipes re-raise it unchanged.

    The CLIs show TensorFlow's captured output with it: a converter's or a runtime's log explains
    a failed verification.
    """

    shows_tf_output = True


class GoalMissedError(CheckError):
    """A result missed what was asked of it (the accuracy guard, a device budget): exit 1, and
    TensorFlow's output is not shown, since it explains nothing of the miss."""

    shows_tf_output = False


class UsageError(ValueError):
    """Bad command-line usage or input (the CLIs exit 2)."""
