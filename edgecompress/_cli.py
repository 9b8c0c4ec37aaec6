"""What both command lines (``edgecompress`` and ``tflite-export``) share.

The exit-code contract:

- 0: success.
- 1: a check failed on valid input (:class:`CheckError`: verification, float ops left in an int8
  file, the accuracy guard ``max_drop``, a device budget).
- 2: bad usage or input (:class:`UsageError`, ``ValueError``, ``TypeError``, ``OSError``).
- 70 (``EX_SOFTWARE``): an internal error, a bug in edgecompress: any other exception, ``KeyError``
  included. It prints the one-line error, the traceback and TensorFlow's captured output.
- 130: interrupted (Ctrl-C).

Errors are one line on stderr, the last one, ``<prog>: error: <message>``. TensorFlow's and
absl's own output (C++ logs on fd 2, Python warnings and loggers, the converter's prints) is
captured while a command runs and shown, between two ``---`` lines before the error, only when a
check fails (1; not for a missed accuracy guard or budget, :class:`GoalMissedError`) or on an
internal error (70); ``--tf-output`` shows it live instead.

This module imports no family and no TensorFlow, so ``tflite_export`` can use it and ``--help``
stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import os
import sys
import tempfile
import traceback

from edgecompress._errors import CheckError, UsageError

__all__ = ["CheckError", "UsageError", "Parser", "run", "exit_code", "input_shape", "labeled",
           "labels_for_outputs", "EXIT_OK",
           "EXIT_CHECK", "EXIT_USAGE", "EXIT_INTERNAL", "EXIT_INTERRUPTED"]

EXIT_OK, EXIT_CHECK, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130
_INPUT_ERRORS = (UsageError, ValueError, TypeError, OSError)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`UsageError` (one line, exit 2)."""

    def error(self, message):
        raise UsageError(message)


def add_output_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--tf-output``: show TensorFlow's own output live instead of capturing it."""
    parser.add_argument("--tf-output", action="store_true",
                        help="show TensorFlow's own log output (hidden by default)")


def exit_code(err: BaseException) -> int:
    """The exit status for ``err`` under the contract above."""
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(err, CheckError):
        return EXIT_CHECK
    if isinstance(err, _INPUT_ERRORS) and not isinstance(err, KeyError):
        return EXIT_USAGE
    return EXIT_INTERNAL


def input_shape(model, argument: str) -> tuple:
    """The single input shape of ``model`` (no batch axis) that DATA must fit.

    Raises:
        UsageError: for a model with more than one input (a DATA spec holds one input array).
    """
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise UsageError(f"`{argument}` holds one input array, but the model takes {len(inputs)} "
                         f"inputs; use the Python API (tflite_export.export) for it")
    return tuple(inputs[0].shape[1:])


def labels_for_outputs(model, data):
    """Per-output labels (``y_train_<output>`` ... in the .npz) as a list in the model's output order.

    Raises:
        UsageError: labels missing for an output, named for no output, or not fitting its shape.
    """
    import numpy as np

    x, y = data
    names = list(model.output_names)
    if not isinstance(y, dict):
        if len(names) > 1:
            raise UsageError(f"`--data` must hold one label array per model output, keys y_train_<output> "
                             f"(y_val_/y_test_, or y_<output>) for outputs {names}. Received: one y")
        return data
    missing, unknown = [n for n in names if n not in y], sorted(set(y) - set(names))
    if missing or unknown:
        raise UsageError(f"`--data` must hold one label array per model output, keys y_train_<output> "
                         f"(y_val_/y_test_, or y_<output>) for outputs {names}. Received labels for "
                         f"{sorted(y)}" + (f"; none for {missing}" if missing else ""))
    ordered = []
    for name, out in zip(names, model.outputs):
        labels, size = y[name], int(np.prod(out.shape[1:]))
        per_sample = int(np.prod(labels.shape[1:]))
        if per_sample not in (1, size):
            raise UsageError(f"`--data` labels for output '{name}' must have 1 (a class id or a scalar) or "
                             f"{size} values a sample (output shape {tuple(out.shape[1:])}). Received: shape "
                             f"{labels.shape}")
        ordered.append(labels.reshape(len(labels), *out.shape[1:]) if per_sample == size > 1 else labels)
    return (x, ordered)


def labeled(data):
    """Unlabeled data (an autoencoder's) is its own target."""
    x, y = data
    return (x, x if y is None else y)


def run(prog: str, parse, command, argv=None) -> int:
    """Parse ``argv`` and run ``command(args)`` under the exit-code contract.

    Args:
        prog: the program name that prefixes messages.
        parse: ``parse(argv) -> args`` (usually ``build_parser().parse_args``).
        command: ``command(args) -> int``, run with TensorFlow's output captured unless
            ``args.tf_output``.
        argv: the arguments (default ``sys.argv[1:]``).
    """
    try:
        args = parse(argv)
    except SystemExit as done:  # --help, --version from argparse
        return int(done.code or 0)
    except UsageError as err:
        return _report(prog, err, EXIT_USAGE, "")
    _configure_logging()
    captured = ""
    try:
        with _captured(enabled=not getattr(args, "tf_output", False)) as capture:
            try:
                return command(args)
            finally:
                captured = capture.text()
    except BaseException as err:  # noqa: BLE001 - the contract turns every failure into a code
        if isinstance(err, SystemExit):
            raise
        code = exit_code(err)
        return _report(prog, err, code, captured)


def _report(prog: str, err: BaseException, code: int, captured: str) -> int:
    shown = code == EXIT_INTERNAL or (code == EXIT_CHECK and getattr(err, "shows_tf_output", True))
    if shown and captured.strip():
        print("--- TensorFlow's output of this run ---", file=sys.stderr)
        print(captured.rstrip(), file=sys.stderr)
        print("--- end of TensorFlow's output ---", file=sys.stderr)
    if code == EXIT_INTERNAL:
        traceback.print_exception(err, file=sys.stderr)
    message = " ".join(str(err).split()) or type(err).__name__
    if code == EXIT_INTERRUPTED:
        message = "interrupted"
    kind = (f"internal error ({type(err).__name__}), please report it" if code == EXIT_INTERNAL
            else "error")
    print(f"{prog}: {kind}: {message}", file=sys.stderr)
    return code


def _configure_logging() -> None:
    """Our messages (loggers ``edgecompress`` and ``tflite_export``) at INFO on the real stderr;
    the root logger stays untouched."""
    for name in ("edgecompress", "tflite_export"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _TerminalHandler) for h in logger.handlers):
            handler = _TerminalHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def terminal() -> object:
    """The text stream of the terminal's stderr, also while TensorFlow's output is captured."""
    return _terminal_err or sys.stderr


_terminal_err = None


class _TerminalHandler(logging.StreamHandler):
    def emit(self, record):
        self.stream = terminal()
        super().emit(record)


class _Capture:
    def __init__(self, sink=None):
        self._sink = sink

    def text(self) -> str:
        if self._sink is None:
            return ""
        sys.stdout.flush()
        sys.stderr.flush()
        self._sink.seek(0)
        return self._sink.read().decode("utf-8", "replace")


@contextlib.contextmanager
def _captured(enabled: bool = True):
    """Send fd 1 and fd 2 into a temporary file: TensorFlow's C++ logs and prints, and (through
    ``sys.stderr``) absl's and TensorFlow's Python loggers and ``warnings``.

    ``sys.stdout`` stays on the terminal for the results; our logger and the error line use
    :func:`terminal`.
    """
    global _terminal_err
    if not enabled:
        yield _Capture()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    out = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8")
    real_out = sys.stdout
    with tempfile.TemporaryFile() as sink:
        for fd in (1, 2):
            os.dup2(sink.fileno(), fd)
        if _on_fd(real_out, 1):  # else (pytest's capsys) Python-level output is already apart
            sys.stdout = out
        if _on_fd(sys.stderr, 2):
            _terminal_err = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8")
            faulthandler.enable(_terminal_err)  # a crash in C++ still reaches the terminal
        try:
            yield _Capture(sink)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd in (1, 2):
                os.dup2(saved[fd], fd)
                os.close(saved[fd])
            sys.stdout = real_out
            out.close()
            if _terminal_err is not None:
                faulthandler.disable()
                _terminal_err.close()
            _terminal_err = None


def _on_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        return False
