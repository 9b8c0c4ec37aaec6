"""``tflite-export``: convert a saved Keras model to a verified ``.tflite`` file.

Example:
    tflite-export model.keras -o model.tflite --mode int8 --calibration mnist5k \\
        --verify mnist5k --min-agreement 0.99 --c-array firmware/

Exit status (shared with ``edgecompress``, see :mod:`edgecompress._cli`): 0 on success, 1 when
the file fails a check (verification below ``--min-agreement``, or float ops left in an int8
file), 2 on usage or input errors, 70 on an internal error. Errors are one line on stderr.
Progress goes to stderr; the summary table (or, with ``--json``, one JSON object) to stdout.
TensorFlow's own output is hidden unless ``--tf-output`` (and shown when a check fails).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from edgecompress import _cli
from edgecompress._cli import UsageError, input_shape

PROG = "tflite-export"
MODES = ("float32", "dynamic", "float16", "int8", "int16x8", "binary")
log = logging.getLogger("tflite_export")


def build_parser() -> argparse.ArgumentParser:
    p = _cli.Parser(prog=PROG, description="Convert a Keras model to a verified TFLite file.")
    p.add_argument("model", help="a .keras or .h5 file, or a SavedModel folder")
    p.add_argument("-o", "--output", required=True, help="the .tflite file to write")
    p.add_argument("--mode", choices=MODES, default="float32", help="conversion mode (default float32)")
    p.add_argument("--calibration", nargs="+", metavar="DATA",
                   help="calibration inputs for int8/int16x8 (the DATA's calibration role: its "
                        "training set): mnist5k, digits, an .npz (x/y or x_train/...), "
                        "IMAGES.idx,LABELS.idx (or two paths), or an image folder")
    p.add_argument("--int8-io", action="store_true", help="int8 input and output (mode int8)")
    p.add_argument("--verify", nargs="+", metavar="DATA",
                   help="(x, y) to verify the file on, same forms as --calibration (the DATA's "
                        "test role: x_test/y_test, else its held-out validation split)")
    p.add_argument("--min-agreement", type=float, metavar="X",
                   help="fail (exit 1) if top-1 agreement with Keras is below X, in [0, 1]")
    p.add_argument("--optimize-sparsity", action="store_true",
                   help="store a pruned model's zeros sparsely (EXPERIMENTAL_SPARSITY)")
    p.add_argument("--max-rel-error", type=float, metavar="X",
                   help="fail (exit 1) if a non-classification output's relative L2 error exceeds X")
    p.add_argument("--micro", action="store_true",
                   help="also run the file in TFLite Micro: op check by TFLM, exact arena, and with "
                        "--verify a per-output comparison with Keras (exit 1 if TFLM cannot run it)")
    p.add_argument("--fc-per-tensor", action="store_true",
                   help="int8: one scale per FULLY_CONNECTED weight tensor instead of one per output "
                        "channel (12 bytes of flash each); check accuracy with --verify")
    p.add_argument("--micro-compress", choices=("lut",),
                   help="lut: LUT-compress int8 weights with few distinct values (clustered or "
                        "low-bit) into b-bit indices, TFLM's DECODE; implies --micro, needs --mode int8")
    p.add_argument("--c-array", metavar="DIR",
                   help="also write DIR/<name>.h and .cc for TFLite Micro (the header carries the "
                        "measured arena)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--version", action="version", version=_version())
    _cli.add_output_option(p)
    return p


def _version() -> str:
    from edgecompress import __version__

    return f"{PROG} {__version__}"


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (0, 1, 2, or 70 for an internal error)."""
    return _cli.run(PROG, build_parser().parse_args, _command, argv)


def _command(args) -> int:
    _check_args(args)
    return _run(args)


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
    if args.micro_compress and args.mode != "int8":
        raise UsageError("--micro-compress needs --mode int8")
    if args.min_agreement is not None:
        if not 0.0 <= args.min_agreement <= 1.0:
            raise UsageError(f"--min-agreement must be in [0, 1], got {args.min_agreement}")
        if not args.verify:
            raise UsageError("--min-agreement needs --verify DATA")
    if args.max_rel_error is not None and (args.max_rel_error < 0 or not args.verify):
        raise UsageError(f"--max-rel-error needs --verify DATA and X >= 0, got {args.max_rel_error}")
    for flag in ("calibration", "verify"):
        value = getattr(args, flag)
        if value is not None and len(value) > 2:
            raise UsageError(f"--{flag} takes one DATA or two IDX paths, got {len(value)}")
    if not Path(args.model).exists():
        raise UsageError(f"model {args.model} does not exist")


def _run(args) -> int:
    def say(message):
        log.info("[%s] %s", PROG, message)

    say("loading TensorFlow")
    from edgecompress.datasets import describe, resolve
    from edgecompress.loading import translated_from
    from edgecompress.registration import register_edgecompress_objects
    from tflite_export.convert import export, load_model

    # The command is a bridge (DESIGN.md, "Walls"); the library's export() registers nothing.
    register_edgecompress_objects()
    say(f"loading {args.model}")
    model = load_model(args.model)
    source = translated_from(model)
    if source:
        say(f"{args.model} was saved by {source}: translated to tf_keras")
    calibration = verify_data = None
    if args.calibration:
        calibration = resolve(args.calibration, "calibration", "--calibration",
                              input_shape=input_shape(model, "--calibration"))[0]
        say(f"--calibration: {describe(args.calibration, 'calibration', '--calibration')}")
    if args.verify:
        verify_data = resolve(args.verify, "test", "--verify",
                              input_shape=input_shape(model, "--verify"))
        say(f"--verify: {describe(args.verify, 'test', '--verify')}")
    report = export(
        model, args.output, args.mode,
        representative_data=calibration,
        int8_io=args.int8_io,
        verify_data=verify_data,
        min_agreement=args.min_agreement,
        overwrite=args.overwrite,
        optimize_sparsity=args.optimize_sparsity,
        log=say,
        max_rel_error=args.max_rel_error,
        micro=args.micro,
        micro_compress=args.micro_compress,
        fc_per_tensor=args.fc_per_tensor,
    )
    micro = None
    if args.c_array:
        from tflite_export.micro import to_c_array

        Path(args.c_array).mkdir(parents=True, exist_ok=True)
        name = re.sub(r"\W", "_", Path(args.output).stem)
        name = name if re.match(r"[A-Za-z_]", name) else f"g_{name}"
        say(f"writing C array {name} to {args.c_array}")
        arena = None
        if report.arena is not None:
            from tflite_export.runtime import Arena

            arena = Arena(**report.arena)
        micro = to_c_array(args.output, args.c_array, name, arena=arena)
    if args.json:
        print(report.to_json())
    else:
        print(summary(report, micro, source))
    if micro is not None and args.json:
        say(f"C array: {micro.source}, {micro.header}")
    return 0


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
    for head in report.outputs if len(report.outputs) > 1 else []:
        figure = (f"agreement {pct(head['agreement'])}" if head["compare"] == "top1"
                  else f"rel. L2 {head['rel_l2']:.3g}")
        rows.append((f"output {head['name']}", f"{figure}, max |diff| {head['max_abs_diff']:.3g}"))
    if report.arena is not None:
        rows += [
            ("flash bytes (TFLM)", f"{report.flash_bytes:,}"),
            ("arena (TFLM)", f"{report.arena['bytes']:,} bytes (head {report.arena['head']:,}, "
                             f"tail {report.arena['tail']:,})"),
            ("agreement (TFLM)", pct(report.tflm_agreement)),
        ]
    if report.micro_compression is not None:
        lut = report.micro_compression
        rows += [
            ("LUT tensors", ", ".join(f"{t['name']} ({t['bits']} bit)" for t in lut["tensors"]) or "none"),
            ("bytes before LUT", f"{lut['bytes_before']:,}"),
            ("DECODE arena cost", f"{lut.get('decode_arena_bytes', 0):,} bytes"),
        ]
    if micro is not None:
        rows += [
            ("C source", micro.source),
            ("flash bytes", f"{micro.flash_bytes:,}"),
            ("arena (TFLM)", f"{micro.arena_bytes:,} bytes" if micro.micro_ready else "-"),
            ("TFLM", "runs the file" if micro.micro_ready else micro.refusal),
        ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


if __name__ == "__main__":
    sys.exit(main())
