"""Cost at scale: wall time and peak memory of each family transform as the model grows.

Every cell (transform x model x input size) runs in a fresh process, so its peak resident memory
is its own: the child builds the model (weights=None), records its resident peak, runs the
transform once and reports the wall time, its own CPU time (all threads; far less sensitive to
other processes' load than wall time) and the peak growth. Per transform, the cost exponent is
the least-squares slope of log(time) against log(params) over the models (per input size).
The quantization family's transforms are included when they import.

Command (on a quiet machine; a loaded one gives meaningless times)::

    python -m edgecompress.bench.scale                # 5 models x {224, 64} x every transform
    python -m edgecompress.bench.scale --quick        # LeNet-5 at 64 only: proves the harness
    python -m edgecompress.bench.scale --models resnet50 --sizes 64 --transforms factorize
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time

import numpy as np

MODELS = ("lenet5", "mobilenet_v2", "resnet50", "densenet121", "efficientnet_b0")
SIZES = (224, 64)
TIMEOUT = 900.0


def _model(name: str, size: int):
    from edgecompress import models
    from edgecompress._keras import keras

    apps = {"mobilenet_v2": keras.applications.MobileNetV2, "resnet50": keras.applications.ResNet50,
            "densenet121": keras.applications.DenseNet121,
            "efficientnet_b0": keras.applications.EfficientNetB0}
    if name == "lenet5":
        return models.lenet5(input_shape=(size, size, 1))
    return apps[name](input_shape=(size, size, 3), weights=None, classes=10)


def _data(model, n=32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *model.inputs[0].shape[1:])).astype("float32")
    return x, rng.integers(0, 10, n)


def transforms() -> dict:
    """name -> callable(model) for every transform that imports (quantization's if present)."""
    from edgecompress import binary, lowrank, pruning

    table = {
        "factorize": lambda m: lowrank.factorize(m, energy=0.9),
        "factorize_svd": lambda m: lowrank.factorize(m, method="svd", energy=0.9),
        "factorize_spatial_svd": lambda m: lowrank.factorize(m, method="spatial_svd", energy=0.9),
        "factorize_tucker2": lambda m: lowrank.factorize(m, method="tucker2", energy=0.9),
        "rank_sensitivity": lambda m: lowrank.rank_sensitivity(m, _data(m), ranks=[0.5]),
        "prune_filters": lambda m: pruning.prune_filters(m, 0.5),
        "binarize": lambda m: binary.binarize(m, "binarynet"),
    }
    try:
        from edgecompress import quantization as q
    except ImportError:  # pragma: no cover - the quantization family is part of the package
        return table
    table.update({
        "cluster_weights": lambda m: q.cluster_weights(m),
        "product_quantize": lambda m: q.product_quantize(m, calibration_data=_data(m)[0]),
        "quantize_aware": lambda m: q.quantize_aware(m),
    })
    return table


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cell(model_name, size, transform, queue):
    """Child process: build, transform once, put the figures on ``queue``."""
    import logging

    logging.getLogger("edgecompress").setLevel(logging.ERROR)
    try:
        model = _model(model_name, size)
        fn = transforms()[transform]
        base = _peak_mib()
        start, cpu = time.perf_counter(), time.process_time()
        fn(model)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        queue.put({"seconds": seconds, "cpu_seconds": cpu, "peak_mib": _peak_mib(),
                   "growth_mib": _peak_mib() - base,
                   "params": int(model.count_params()), "load": round(os.getloadavg()[0], 2)})
    except Exception as err:  # the row says what failed; the bench goes on
        queue.put({"error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"})


def run_cell(model_name: str, size: int, transform: str, timeout: float = TIMEOUT) -> dict:
    """One measurement in a fresh process; ``{"error": ...}`` on failure or timeout."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_cell, args=(model_name, size, transform, queue), daemon=True)
    child.start()
    try:
        row = queue.get(timeout=timeout)
    except Exception:  # queue.Empty: the cell ran out of time
        row = {"error": f"timed out after {timeout:.0f} s"}
    child.join(5)
    if child.is_alive():
        child.kill()
    return {"model": model_name, "size": size, "transform": transform, **row}


def exponents(rows, measure: str = "seconds") -> dict:
    """(transform, size) -> slope of log(``measure``) vs log(params), with >= 2 models measured."""
    out = {}
    for key in sorted({(r["transform"], r["size"]) for r in rows}):
        ok = [r for r in rows if (r["transform"], r["size"]) == key and measure in r]
        if len({r["params"] for r in ok}) >= 2:
            slope = np.polyfit(np.log([r["params"] for r in ok]),
                               np.log([max(r[measure], 1e-6) for r in ok]), 1)[0]
            out[key] = float(slope)
    return out


def markdown(rows, slopes) -> str:
    from edgecompress._markdown import table

    cpu = exponents(rows, "cpu_seconds")

    def figure(row, key, fmt):
        return format(row[key], fmt) if key in row else "-"

    cells = [[r["transform"], r["model"], r["size"], "", r["error"], "", "", "", ""] if "error" in r else
             [r["transform"], r["model"], r["size"], f"{r['params']:,}", f"{r['seconds']:.2f}",
              figure(r, "cpu_seconds", ".1f"), f"{r['peak_mib']:.0f}", f"{r['growth_mib']:.0f}",
              figure(r, "load", ".1f")] for r in rows]
    return "\n\n".join([
        table(["transform", "model", "input", "params", "wall time (s)", "CPU time (s)",
               "peak RSS (MiB)", "growth (MiB)", "load (1 min)"], cells),
        table(["transform", "input", "cost exponent, wall time (time ~ params^k)",
               "cost exponent, CPU time"],
              ([t, size, f"{k:.2f}", f"{cpu[(t, size)]:.2f}" if (t, size) in cpu else "-"]
               for (t, size), k in slopes.items()))])


def _write(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".scale-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _merge(paths, out) -> int:
    cells = {}
    for path in paths:
        try:
            with open(path) as handle:
                rows = json.load(handle)["rows"]
        except (OSError, ValueError, KeyError) as err:
            print(f"error: `--merge` needs JSON files written by --json. Received: {path} ({err})",
                  file=sys.stderr)
            return 2
        cells.update({(r["model"], r["size"], r["transform"]): r for r in rows})
    order = {m: i for i, m in enumerate(MODELS)}
    rows = sorted(cells.values(), key=lambda r: (r["transform"], -r["size"], order.get(r["model"], 99)))
    _report(rows, out)
    return 0


def _report(rows, out) -> dict:
    slopes = exponents(rows)
    print(markdown(rows, slopes))
    if out:
        _write(out, json.dumps({"rows": rows, "exponents": {
            f"{t}@{s}": k for (t, s), k in slopes.items()}, "cpu_exponents": {
            f"{t}@{s}": k for (t, s), k in exponents(rows, "cpu_seconds").items()}}, indent=2))
    return slopes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgecompress.bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma list of {list(MODELS)}")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma list of input sizes")
    parser.add_argument("--transforms", default="all", help="comma list, or 'all'")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per cell")
    parser.add_argument("--json", help="also write the rows and exponents to this JSON file")
    parser.add_argument("--quick", action="store_true", help="LeNet-5 at 64x64 only (a smoke run)")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="measure nothing: print the table of these --json files (a later "
                             "file's cell replaces an earlier one's) and write --json if given")
    args = parser.parse_args(argv)
    if args.merge:
        return _merge(args.merge, args.json)
    names = list(MODELS[:1]) if args.quick else [m.strip() for m in args.models.split(",")]
    try:
        sizes = [64] if args.quick else [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.exit(2, f"error: `--sizes` must be a comma list of ints. Received: {args.sizes!r}\n")
    table = list(transforms())
    chosen = table if args.transforms == "all" else [t.strip() for t in args.transforms.split(",")]
    bad = [t for t in chosen if t not in table] + [m for m in names if m not in MODELS]
    if bad or any(s < 32 for s in sizes):
        parser.exit(2, f"error: unknown or invalid choice {bad or sizes}. Models: {list(MODELS)}; "
                       f"transforms: {table}; sizes >= 32\n")
    rows = []
    for size in sizes:
        for name in names:
            for transform in chosen:
                row = run_cell(name, size, transform, args.timeout)
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    _report(rows, args.json)
    return 1 if any("error" in r and "timed out" in r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
