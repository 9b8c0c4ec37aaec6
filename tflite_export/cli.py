"""``tflite-export``: convert a saved Keras model to a verified ``.tflite`` file.

Example:
    tflite-export model.keras -o model.tflite --mode int8 --calibration mnist5k \\
        --verify mnist5k --min-agreement 0.99 --c-array firmware/

Exit status: 0 on success, 1 when the file fails a check (verification below ``--min-agreement``,
or float ops left in an int8 file), 2 on usage or input errors. Errors are one line on stderr.
Progress goes to stderr; the summary table (or, with ``--json``, one JSON object) to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

PROG = "tflite-export"
MODES = ("float32", "dynamic", "float16", "int8", "int16x8", "binary")
SHIPPED = ("mnist5k", "digits")


class UsageError(Exception):
    """A bad command line or input (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Convert a Keras model to a verified TFLite file.")
    p.add_argument("model", help="a .keras or .h5 file, or a SavedModel folder")
    p.add_argument("-o", "--output", required=True, help="the .tflite file to write")
    p.add_argument("--mode", choices=MODES, default="float32", help="conversion mode (default float32)")
    p.add_argument("--calibration", nargs="+", metavar="DATA",
                   help="calibration inputs for int8/int16x8: an .npz (x[, y]), IMAGES.idx,LABELS.idx "
                        "(or two paths), or a shipped dataset (mnist5k, digits: its training split)")
    p.add_argument("--int8-io", action="store_true", help="int8 input and output (mode int8)")
    p.add_argument("--verify", nargs="+", metavar="DATA",
                   help="(x, y) to verify the file on, same forms as --calibration "
                        "(shipped datasets: their held-out split)")
    p.add_argument("--min-agreement", type=float, metavar="X",
                   help="fail (exit 1) if top-1 agreement with Keras is below X, in [0, 1]")
    p.add_argument("--optimize-sparsity", action="store_true",
                   help="store a pruned model's zeros sparsely (EXPERIMENTAL_SPARSITY)")
    p.add_argument("--c-array", metavar="DIR", help="also write DIR/<name>.h and .cc for TFLite Micro")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (0, 1 or 2)."""
    err = sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=err)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        _check_args(args)
        return _run(args, err)
    except UsageError as e:
        _fail(err, e)
        return 2
    except Exception as e:  # noqa: BLE001 - every failure is one line, never a traceback
        from tflite_export.convert import FloatOpsError
        from tflite_export.verify import VerificationError

        _fail(err, e)
        return 1 if isinstance(e, (VerificationError, FloatOpsError)) else 2


def _fail(err, e) -> None:
    message = " ".join(str(e).split()) or type(e).__name__
    print(f"{PROG}: error: {message}", file=err)


def _check_args(args) -> None:
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise UsageError(f"output {out} already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"the folder of output {out} does not exist")
    if args.mode in ("int8", "int16x8") and not args.calibration:
        raise UsageError(f"--mode {args.mode} needs --calibration DATA")
    if args.int8_io and args.mode != "int8":
        raise UsageError("--int8-io needs --mode int8")
    if args.min_agreement is not None:
        if not 0.0 <= args.min_agreement <= 1.0:
            raise UsageError(f"--min-agreement must be in [0, 1], got {args.min_agreement}")
        if not args.verify:
            raise UsageError("--min-agreement needs --verify DATA")
    for flag in ("calibration", "verify"):
        value = getattr(args, flag)
        if value is not None and len(value) > 2:
            raise UsageError(f"--{flag} takes one DATA or two IDX paths, got {len(value)}")
    if not Path(args.model).exists():
        raise UsageError(f"model {args.model} does not exist")


def load_data(spec: list, split: str):
    """``(x, y)`` from a DATA spec: shipped name, .npz, ``IMAGES,LABELS`` or two IDX paths.

    ``split`` picks the shipped dataset's ``"train"`` or ``"test"`` part.
    """
    from edgecompress import datasets

    parts = spec[0].split(",") if len(spec) == 1 else list(spec)
    if len(parts) == 1 and parts[0] in SHIPPED:
        train, test = datasets.load(parts[0])
        return train if split == "train" else test
    if len(parts) == 1 and parts[0].endswith(".npz"):
        return datasets.load_npz(parts[0])
    if len(parts) == 2:
        return datasets.load_idx(parts[0], parts[1])
    raise UsageError(
        f"DATA must be a shipped dataset ({', '.join(SHIPPED)}), an .npz file, or IDX images and "
        f"labels (IMAGES,LABELS or two paths). Received: {' '.join(spec)}"
    )


@contextlib.contextmanager
def _quiet():
    """Send TensorFlow's C++ and Python chatter (fd 1 and 2) to a temporary file.

    Yields a text stream on the original stderr for our own progress lines.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    progress = os.fdopen(os.dup(saved_err), "w", buffering=1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield progress
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            progress.close()


def _run(args, err) -> int:
    with _quiet() as progress:
        def say(message):
            print(f"[{PROG}] {message}", file=progress)

        say("loading TensorFlow")
        from tflite_export.convert import export, load_model

        say(f"loading {args.model}")
        model = load_model(args.model)
        from edgecompress.loading import translated_from

        source = translated_from(model)
        if source:
            say(f"{args.model} was saved by {source}: translated to tf_keras")
        calibration = verify_data = None
        if args.calibration:
            calibration = _match(load_data(args.calibration, "train"), model, "--calibration")[0]
        if args.verify:
            verify_data = _match(load_data(args.verify, "test"), model, "--verify")
        report = export(
            model, args.output, args.mode,
            representative_data=calibration,
            int8_io=args.int8_io,
            verify_data=verify_data,
            min_agreement=args.min_agreement,
            overwrite=args.overwrite,
            optimize_sparsity=args.optimize_sparsity,
            log=say,
        )
        micro = None
        if args.c_array:
            from tflite_export.micro import to_c_array

            Path(args.c_array).mkdir(parents=True, exist_ok=True)
            name = re.sub(r"\W", "_", Path(args.output).stem)
            name = name if re.match(r"[A-Za-z_]", name) else f"g_{name}"
            say(f"writing C array {name} to {args.c_array}")
            micro = to_c_array(args.output, args.c_array, name)
    if args.json:
        print(report.to_json())
    else:
        print(summary(report, micro, source))
    if micro is not None and args.json:
        print(f"[{PROG}] C array: {micro.source}, {micro.header}", file=err)
    return 0


def _match(data, model, flag):
    import numpy as np

    x, y = data
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(np.shape(x)[1:]) != expected:
        raise UsageError(
            f"{flag} images have shape {tuple(np.shape(x)[1:])} but the model takes {expected}"
        )
    return x, y


def summary(report, micro=None, source=None) -> str:
    """A readable two-column table of the export (and C array) report.

    ``source`` names the Keras a translated model came from (``"Keras 3.15.1"``).
    """

    def pct(v):
        return "-" if v is None else f"{100 * v:.2f} %"

    rows = [
        ("file", report.path),
        ("mode", report.mode),
        ("bytes", f"{report.bytes:,}"),
        ("gzip bytes", f"{report.gzip_bytes:,}"),
        ("ops", ", ".join(report.ops)),
        ("agreement", pct(report.agreement)),
        ("accuracy (tflite)", pct(report.accuracy)),
        ("accuracy (keras)", pct(report.keras_accuracy)),
        ("max |diff|", "-" if report.max_abs_diff is None else f"{report.max_abs_diff:.3g}"),
    ]
    if source:
        rows.insert(0, ("model", f"translated from {source}"))
    if micro is not None:
        rows += [
            ("C source", micro.source),
            ("flash bytes", f"{micro.flash_bytes:,}"),
            ("arena estimate", f"{micro.arena_bytes:,} bytes"),
            ("TFLM lacks", ", ".join(micro.unsupported_ops) or "none (all ops supported)"),
        ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


if __name__ == "__main__":
    sys.exit(main())
