"""Deployment truth per target for every demo artifact, measured on the real runtimes.

    python -m edgecompress.bench.targets --mnist-dir ../shared/data/mnist [--from DEMO_DIR]

For each ``.tflite`` artifact of a demo run (``edgecompress demo -o DEMO_DIR``, or a fresh demo
in a temporary folder without ``--from``):

- phone (LiteRT, or LCE for binary files): file bytes, gzip bytes (the download), accuracy and
  latency, every file timed side by side through :mod:`edgecompress.bench.harness`;
- MCU (TFLite Micro): flash bytes, the exact arena (head + tail) and TFLM accuracy, or why TFLM
  refuses the file.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np

from edgecompress._markdown import table as markdown_table
from edgecompress.bench.harness import compare_latency, latency_note

TFLM_SAMPLES = 500


def target_rows(paths, test, quick: bool = False) -> tuple[list[dict], str]:
    """Rows (one per file) and the latency footnote."""
    from tflite_export.runtime import MicroOpsError, Runner, TFLMRunner, inspect, measure_arena

    x, y = test
    files = {Path(p).stem: Path(p) for p in sorted(paths)}
    # LUT-compressed files (TFLM's DECODE op) run on the MCU only.
    phone = {n: p for n, p in files.items() if not any(op.endswith("DECODE") for op in inspect(p).ops)}
    lat = compare_latency(phone, rounds=3 if quick else 10, invokes=10 if quick else 100) if phone else None
    rows = []
    for name, path in files.items():
        data = path.read_bytes()
        row = {"artifact": name, "bytes": len(data), "gzip bytes": len(gzip.compress(data, 9, mtime=0))}
        if name in phone:
            runner = Runner(data)
            phone_top1 = runner.predict(x).argmax(-1)
            row.update({"runtime": runner.backend, "accuracy": float(np.mean(phone_top1 == y)),
                        "latency µs": f"{lat.median(name):.1f}", "IQR µs": f"{lat.files[name].spread_us:.1f}"})
        try:
            arena = measure_arena(data)
        except MicroOpsError as err:
            row.update({"flash bytes": None, "arena bytes": None, "TFLM": str(err).split(" (TFLM")[0]})
        else:
            n = min(len(x), 100 if quick else TFLM_SAMPLES)
            tflm = TFLMRunner(data, arena_bytes=arena.bytes).predict(x[:n])
            row.update({"flash bytes": len(data), "arena bytes": arena.bytes,
                        "arena head/tail": f"{arena.head}/{arena.tail}",
                        "TFLM accuracy": float(np.mean(tflm.argmax(-1) == y[:n])), "TFLM": "runs"})
            if name in phone:
                row["TFLM = phone top-1"] = float(np.mean(tflm.argmax(-1) == phone_top1[:n]))
        rows.append(row)
    return rows, latency_note(lat) if lat else "no phone file"


def report(train, test, args) -> str:
    if args.from_dir:
        paths = list(Path(args.from_dir).glob("*.tflite"))
        if not paths:
            from edgecompress._errors import UsageError

            raise UsageError(f"`--from` must be a folder with .tflite files. Received: {args.from_dir}")
        rows, note = target_rows(paths, test, args.quick)
    else:
        from edgecompress.pipeline import demo

        with tempfile.TemporaryDirectory() as tmp:
            demo(tmp, quick=args.quick)
            rows, note = target_rows(list(Path(tmp).glob("*.tflite")), test, args.quick)
    columns = ["artifact", "runtime", "bytes", "gzip bytes", "accuracy", "latency µs", "IQR µs",
               "flash bytes", "arena bytes", "arena head/tail", "TFLM accuracy", "TFLM = phone top-1", "TFLM"]
    n = min(len(test[0]), 100 if args.quick else TFLM_SAMPLES)
    return (markdown_table(columns, ([_cell(r.get(c)) for c in columns] for r in rows))
            + f"\n\nAccuracy: LiteRT/LCE on all {len(test[0]):,} test samples; TFLM on the first {n:,}."
            + f"\n\nLatency: {note}.")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{100 * value:.2f} %" if value <= 1 else f"{value:.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _arguments(parser):
    parser.add_argument("--from", dest="from_dir", metavar="DEMO_DIR",
                        help="the .tflite files of a demo run (default: run the demo first)")


if __name__ == "__main__":
    import sys

    from edgecompress import bench

    sys.exit(bench.main(sys.modules[__name__], add_arguments=_arguments, report=report))
