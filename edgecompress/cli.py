"""The ``edgecompress`` command: demo, compress, report and bench.

Exit codes: 0 success, 1 a verification failed, 2 usage or input errors. Errors are one line on
stderr, never a traceback, and a failed run leaves no partial output behind.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROG = "edgecompress"


class UsageError(ValueError):
    """Bad command-line input (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Compress a Keras CNN and export verified TFLite files.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = sub.add_parser("demo", help="train LeNet-5 on shipped MNIST digits and run every family")
    demo.add_argument("-o", "--out", default="edgecompress-report", help="report folder")
    demo.add_argument("--epochs", type=int, default=10, help="baseline training epochs")
    demo.add_argument("--quick", action="store_true", help="tiny settings (for smoke tests)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing report")

    comp = sub.add_parser("compress", help="run a TOML recipe on a model, or search for one that "
                                           "fits a device budget (--target)")
    comp.add_argument("model", help=".keras / .h5 / SavedModel path")
    comp.add_argument("--recipe", help="recipe TOML file (or a shipped recipe name)")
    _search_arguments(comp)
    comp.add_argument("--data", required=True,
                      help="mnist5k, digits, an .npz, or IMAGES,LABELS IDX paths")
    comp.add_argument("-o", "--out", required=True, help="output folder")
    comp.add_argument("--overwrite", action="store_true")
    comp.add_argument("--unsafe", action="store_true", help="allow Lambda layers (runs file code)")
    comp.add_argument("--quiet", action="store_true")

    rep = sub.add_parser("report", help="measure models / .tflite files side by side")
    rep.add_argument("artifacts", nargs="+", help=".keras/.h5/.tflite paths (first = baseline)")
    rep.add_argument("--data", required=True)
    rep.add_argument("-o", "--out", required=True)
    rep.add_argument("--overwrite", action="store_true")
    rep.add_argument("--unsafe", action="store_true")

    bench = sub.add_parser("bench", help="side-by-side benchmark of the families")
    bench.add_argument("--families", default="all", help="comma list or 'all'")
    bench.add_argument("--test-images", help="IDX images for evaluation (e.g. MNIST t10k)")
    bench.add_argument("--test-labels", help="IDX labels for evaluation")
    bench.add_argument("--quick", action="store_true")
    bench.add_argument("-o", "--out", default=None, help="write the Markdown tables here")
    bench.add_argument("--overwrite", action="store_true")
    return parser


def _search_arguments(comp) -> None:
    from edgecompress.distribute import STRATEGIES

    comp.add_argument("--target", help="device budget instead of a recipe, e.g. "
                                       "flash=64KB,arena=20KB,latency=5ms")
    comp.add_argument("--max-drop", type=float, default=1.0,
                      help="accuracy drop allowed with --target, in percentage points (default 1)")
    comp.add_argument("--workers", type=int, help="local worker processes for --target "
                                                  "(default: the usable cores)")
    comp.add_argument("--ray-address", help="run the --target search on a Ray cluster "
                                            "(ADDRESS or auto)")
    comp.add_argument("--strategy", choices=STRATEGIES, default="none",
                      help="data-parallel fits: mirrored (local devices) or multiworker (TF_CONFIG)")
    comp.add_argument("--distill", action="store_true", help="--target: fine-tune by distilling "
                                                             "from the input model")
    comp.add_argument("--epochs", type=int, default=5,
                      help="--target: most fine-tune epochs per candidate (early stopping)")
    comp.add_argument("--top-k", type=int, default=4, help="--target: candidates to fine-tune")
    comp.add_argument("--ratios", help="--target: filter-pruning ratios to scan (comma list)")
    comp.add_argument("--ranks", help="--target: fractions of full rank to scan (comma list)")
    comp.add_argument("--seed", type=int, default=0)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        args = build_parser().parse_args(argv)
        if args.version:
            from edgecompress import __version__

            print(__version__)
            return 0
        if args.command is None:
            raise UsageError("a command is required: demo, compress, report or bench")
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI turns every failure into one line
        return _fail(err)


def _fail(err: BaseException) -> int:
    try:
        from tflite_export.verify import VerificationError
    except ImportError:  # pragma: no cover
        VerificationError = ()  # noqa: N806
    message = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if VerificationError and isinstance(err, VerificationError):
        print(f"{PROG}: verification failed: {message}", file=sys.stderr)
        return 1
    from edgecompress._errors import CheckError

    if isinstance(err, CheckError):
        print(f"{PROG}: check failed: {message}", file=sys.stderr)
        return 1
    expected = (ValueError, TypeError, OSError, KeyError, UsageError)
    if isinstance(err, expected):
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    print(f"{PROG}: internal error ({type(err).__name__}): {message}", file=sys.stderr)
    return 3


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
    if args.strategy == "multiworker":
        from edgecompress import distribute

        distribute.get_strategy("multiworker")  # TensorFlow wants it before any other op
    if args.target is not None:
        if args.recipe:
            raise UsageError("give `--recipe` or `--target`, not both")
        from edgecompress.search.cli import run_target_search

        return run_target_search(args, staged_output, _check_data_fits)
    if not args.recipe:
        raise UsageError("`compress` needs `--recipe` (a TOML file or shipped name) or `--target` "
                         "(a device budget such as flash=64KB,arena=20KB)")
    from edgecompress import datasets
    from edgecompress import recipe as recipes
    from edgecompress.loading import load_model
    from edgecompress.pipeline import baseline_artifacts, save_model
    from edgecompress.report import write_report

    recipe = recipes.load(_recipe_path(args.recipe))
    train, test = datasets.from_spec(args.data)
    model = load_model(args.model, argument="MODEL", unsafe=args.unsafe)
    _check_data_fits(model, train[0])
    with staged_output(args.out, args.overwrite) as stage:
        artifacts = baseline_artifacts(model, train, test, stage)
        final, produced = recipes.run(recipe, model, train, test, stage, verbose=not args.quiet,
                                      strategy=args.strategy)
        save_model(final, stage / f"{recipe.name}.keras")
        artifacts += produced
        write_report(stage, artifacts, f"{recipe.name} on {Path(args.model).name}",
                     baseline="baseline_float32")
    _print_summary(artifacts, Path(args.out))
    return 0


def _cmd_report(args) -> int:
    from edgecompress import datasets
    from edgecompress.pipeline import measure_artifact
    from edgecompress.report import write_report

    _, test = datasets.from_spec(args.data)
    artifacts = [measure_artifact(p, test, unsafe=args.unsafe) for p in args.artifacts]
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


def _check_data_fits(model, x) -> None:
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise ValueError(f"`--data` images must have shape {expected} to fit the model. "
                         f"Received: {tuple(x.shape[1:])}")


def _print_summary(artifacts, out_dir: Path) -> None:
    from edgecompress.report import markdown_table, rows_with_ratios

    print(markdown_table(rows_with_ratios(artifacts)))
    print(f"\nreport: {out_dir / 'report.md'}  (also report.json, pareto.png)")


_COMMANDS = {"demo": _cmd_demo, "compress": _cmd_compress, "report": _cmd_report,
             "bench": _cmd_bench}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
