"""The ``edgecompress`` command: demo, compress, report and bench.

Exit codes (shared with ``tflite-export``, see :mod:`edgecompress._cli`): 0 success; 1 a check
failed (verification, float ops, the accuracy guard, a budget); 2 usage or input errors; 70 an
internal error (a bug: the traceback is printed). Errors are one line on stderr, and a failed run
leaves no partial output behind. TensorFlow's own output is hidden unless ``--tf-output``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from edgecompress import _cli
from edgecompress._cli import UsageError, input_shape, labeled, labels_for_outputs

PROG = "edgecompress"
DATA_HELP = ("mnist5k, digits, an .npz (x/y, or x_train/y_train, x_val/y_val, x_test/y_test), "
             "IMAGES,LABELS IDX paths, or an image folder")


def build_parser() -> argparse.ArgumentParser:
    parser = _cli.Parser(prog=PROG,
                         description="Compress a Keras CNN and export verified TFLite files.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    common = argparse.ArgumentParser(add_help=False)
    _cli.add_output_option(common)
    sub = parser.add_subparsers(dest="command", parser_class=_cli.Parser)

    def add(name, help):
        return sub.add_parser(name, help=help, parents=[common])

    demo = add("demo", help="train LeNet-5 on shipped MNIST digits and run every family")
    demo.add_argument("-o", "--out", default="edgecompress-report", help="report folder")
    demo.add_argument("--epochs", type=int, default=10, help="baseline training epochs")
    demo.add_argument("--quick", action="store_true", help="tiny settings (for smoke tests)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing report")

    comp = add("compress", help="run a TOML recipe on a model, or search for one that fits a "
                                "device budget (--target)")
    comp.add_argument("model", help=".keras / .h5 / SavedModel path")
    comp.add_argument("--recipe", help="recipe TOML file (or a shipped recipe name)")
    comp.add_argument("--data", required=True, help=DATA_HELP)
    comp.add_argument("-o", "--out", required=True, help="output folder")
    comp.add_argument("--overwrite", action="store_true")
    comp.add_argument("--unsafe", action="store_true", help="allow Lambda layers (runs file code)")
    comp.add_argument("--keras3-out", action="store_true",
                      help="also write the result as a Keras 3 .keras file (<recipe>_keras3.keras); "
                           "plain layers only (strip pruning/clustering, decode PQ)")
    comp.add_argument("--quiet", action="store_true")
    comp.add_argument("--max-drop", type=float, default=None,
                      help="accuracy guard: most pp of accuracy an artifact may lose (percent more error "
                           "for regression outputs); default the recipe's max_drop, else 2 pp / 10%%; "
                           "with --target 1 pp")
    from edgecompress.search.cli import add_arguments as add_search_arguments

    add_search_arguments(comp)

    rep = add("report", help="measure models / .tflite files side by side")
    rep.add_argument("artifacts", nargs="+", help=".keras/.h5/.tflite paths (first = baseline)")
    rep.add_argument("--data", required=True, help=DATA_HELP + " (its test role is used)")
    rep.add_argument("-o", "--out", required=True)
    rep.add_argument("--overwrite", action="store_true")
    rep.add_argument("--unsafe", action="store_true")

    bench = add("bench", help="side-by-side benchmark of the families")
    bench.add_argument("--families", default="all", help="comma list or 'all'")
    bench.add_argument("--test-images", help="IDX images for evaluation (e.g. MNIST t10k)")
    bench.add_argument("--test-labels", help="IDX labels for evaluation")
    bench.add_argument("--quick", action="store_true")
    bench.add_argument("-o", "--out", default=None, help="write the Markdown tables here")
    bench.add_argument("--overwrite", action="store_true")
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    return _cli.run(PROG, build_parser().parse_args, _dispatch, argv)


def _dispatch(args) -> int:
    if args.version:
        from edgecompress import __version__

        print(__version__)
        return 0
    if args.command is None:
        raise UsageError("a command is required: demo, compress, report or bench")
    return _COMMANDS[args.command](args)


@contextlib.contextmanager
def staged_output(out: str, overwrite: bool):
    """Yield a staging folder; on success move its files into ``out``, on failure remove it.

    A run killed half-way leaves only a hidden ``.staging-*`` folder, which the next run removes.
    """
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"`--out` must be a folder. Received: {out_dir} (a file)")
    if out_dir.exists() and any(p for p in out_dir.iterdir() if not p.name.startswith(".staging-")) \
            and not overwrite:
        raise FileExistsError(f"`--out` is not empty; pass --overwrite to replace its files. "
                              f"Received: {out_dir}")
    parent = out_dir.resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"`--out` must be in an existing folder. Received: {out_dir}")
    out_dir.mkdir(exist_ok=True)
    for stale in out_dir.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        yield staging
        for item in sorted(staging.rglob("*")):
            target = out_dir / item.relative_to(staging)
            if item.is_dir():
                target.mkdir(exist_ok=True)
            else:
                item.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            out_dir.rmdir()  # only if it stayed empty


def _cmd_compress(args) -> int:
    if args.target is not None or args.strategy != "none":
        from edgecompress.search.cli import run_target_search, start_strategy

        start_strategy(args.strategy)  # MultiWorkerMirroredStrategy must come before other TF ops
        if args.target is not None:
            if args.recipe:
                raise UsageError("give `--recipe` or `--target`, not both")
            return run_target_search(args, staged_output)
    if not args.recipe:
        raise UsageError("`compress` needs `--recipe` (a TOML file or shipped name) or `--target` "
                         "(a device budget such as flash=64KB,arena=20KB)")
    from edgecompress import datasets
    from edgecompress import recipe as recipes
    from edgecompress.keras3_save import save_keras3
    from edgecompress.loading import load_model, translated_from
    from edgecompress.pipeline import baseline_artifacts, save_model
    from edgecompress.registration import register_edgecompress_objects
    from edgecompress.report import write_report

    register_edgecompress_objects()
    recipe = recipes.load(_recipe_path(args.recipe))
    model = load_model(args.model, argument="MODEL", unsafe=args.unsafe)
    source = translated_from(model)
    notes = f"The input model was translated from {source} to tf_keras." if source else ""
    shape = input_shape(model, "--data")
    train, validation, test = (labels_for_outputs(model, labeled(datasets.resolve(args.data, role, input_shape=shape)))
                               for role in ("train", "validation", "test"))
    max_drop = recipes.check_max_drop(args.max_drop, "--max-drop") if args.max_drop is not None else None
    tasks = recipes.validate(recipe, model, train[1])  # before anything is written or trained
    if not args.quiet:
        print(f"data: {len(train[0])} train, {len(validation[0])} validation, {len(test[0])} test samples\n"
              f"{datasets.describe(args.data)}", file=sys.stderr)
    failed = None
    with staged_output(args.out, args.overwrite) as stage:
        artifacts = baseline_artifacts(model, train, test, stage)
        try:
            result = recipes.run(recipe, model, train, test, stage, verbose=not args.quiet, max_drop=max_drop,
                                 validation=validation,
                                 strategy=None if args.strategy == "none" else args.strategy, tasks=tasks)
        except recipes.AccuracyGuardError as err:
            failed, result = err, err.result
        save_model(result.model, stage / f"{recipe.name}.keras")
        if args.keras3_out:
            save_keras3(result.model, stage / f"{recipe.name}_keras3.keras")
        artifacts += result.artifacts
        write_report(stage, artifacts, f"{recipe.name} on {Path(args.model).name}",
                     baseline="baseline_float32", notes=notes, trace=result.trace,
                     guard={"max_drop": max_drop if max_drop is not None else recipe.max_drop,
                            "failures": result.failures, "worst": result.worst})
    if notes:
        print(notes)
    _print_summary(artifacts, Path(args.out))
    if failed is not None:
        raise failed
    return 0


def _cmd_report(args) -> int:
    from edgecompress import datasets
    from edgecompress.pipeline import measure_artifact
    from edgecompress.report import write_report

    test = datasets.resolve(args.data, "test")
    artifacts = [measure_artifact(p, test, unsafe=args.unsafe) for p in args.artifacts]
    from edgecompress.bench.harness import time_artifacts

    time_artifacts(artifacts)  # .tflite files side by side: latency_us
    with staged_output(args.out, args.overwrite) as stage:
        write_report(stage, artifacts, "edgecompress report", baseline=artifacts[0].name)
    _print_summary(artifacts, Path(args.out))
    return 0


def _cmd_demo(args) -> int:
    from edgecompress.pipeline import demo

    if args.epochs < 1:
        raise UsageError(f"`--epochs` must be >= 1. Received: {args.epochs}")
    start = time.time()
    with staged_output(args.out, args.overwrite) as stage:
        artifacts = demo(stage, epochs=args.epochs, quick=args.quick)
    _print_summary(artifacts, Path(args.out))
    print(f"demo finished in {time.time() - start:.0f} s; report: {Path(args.out) / 'report.md'}")
    return 0


def _cmd_bench(args) -> int:
    from edgecompress.bench import run_bench

    if bool(args.test_images) != bool(args.test_labels):
        raise UsageError("`--test-images` and `--test-labels` must be given together")
    text = run_bench(args.families, args.test_images, args.test_labels, quick=args.quick)
    if args.out:
        from edgecompress._io import atomic_write

        atomic_write(args.out, text, overwrite=args.overwrite, argument="--out")
    print(text)
    return 0


def _recipe_path(name: str) -> Path:
    path = Path(name)
    if path.exists() or path.suffix:
        return path
    shipped = Path(__file__).parent / "recipes" / f"{name}.toml"
    if shipped.exists():
        return shipped
    available = sorted(p.stem for p in (Path(__file__).parent / "recipes").glob("*.toml"))
    raise UsageError(f"`--recipe` must be a TOML file or a shipped recipe {available}. "
                     f"Received: {name}")


def _print_summary(artifacts, out_dir: Path) -> None:
    from edgecompress.report import markdown_table, rows_with_ratios

    print(markdown_table(rows_with_ratios(artifacts)))
    print(f"\nreport: {out_dir / 'report.md'}  (also report.json, pareto.png)")


_COMMANDS = {"demo": _cmd_demo, "compress": _cmd_compress, "report": _cmd_report,
             "bench": _cmd_bench}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
