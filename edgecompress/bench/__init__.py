"""`edgecompress bench`: the families side by side, in one process, on the same data.

Each module here has ``run(train, test, quick=False) -> list[dict]``. The rows become one Markdown
table per family, ready for BENCHMARKS.md. Like the CLI, this package bridges the families and
``tflite_export``.
"""

from __future__ import annotations

import importlib
import logging
import os
import time

from edgecompress._markdown import table as markdown_table

FAMILIES = ("export", "lowrank", "pruning", "quantization", "binary", "distillation", "backbones",
            "deep_compression")

log = logging.getLogger("edgecompress.bench")


def load_data(test_images=None, test_labels=None, quick=False):
    """The benchmark data: ``mnist5k``'s training and test roles (:func:`datasets.resolve`), or
    the given IDX files whole as the test set (e.g. MNIST t10k)."""
    from edgecompress import datasets

    train = datasets.resolve("mnist5k", "train")
    test = (datasets.load_idx(test_images, test_labels) if test_images
            else datasets.resolve("mnist5k", "test"))
    if quick:
        train = (train[0][:1000], train[1][:1000])
        test = (test[0][:300], test[1][:300])
    return train, test


T10K_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def load_mnist_dir(mnist_dir=None, quick=False):
    """:func:`load_data` with the MNIST t10k IDX files of ``mnist_dir`` (if given) as the test set.

    Every benchmark entry point trains on the same 4,000 MNIST-5k digits, so figures agree."""
    files = [os.path.join(mnist_dir, name) for name in T10K_FILES] if mnist_dir else [None, None]
    return load_data(*files, quick=quick)


def data_arguments(parser):
    """Add the ``--mnist-dir`` and ``--quick`` options every benchmark module takes."""
    parser.add_argument("--mnist-dir", help="folder with the MNIST t10k IDX files, the test set "
                                            "(default: the 1,000 held-out MNIST-5k digits)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run on a subset")


def main(module, argv=None, add_arguments=None, report=None, description=None) -> int:
    """The entry point of every ``python -m edgecompress.bench.<family>``: the same options
    (``--mnist-dir``, ``--quick``, the module's own), the same data as ``edgecompress bench``
    (:func:`load_mnist_dir`), the exit-code contract of the CLIs, and the table on stdout.

    A module that imports TensorFlow calls this from the top of its file with its *name*, so that
    ``--help`` and bad usage are answered before TensorFlow loads; the module is imported only to
    run.

    Args:
        module: the benchmark module, or its dotted name (imported after the options are parsed).
            It has ``run``, and ``to_markdown`` or ``COLUMNS`` if any.
        argv: the arguments (default ``sys.argv[1:]``).
        add_arguments: ``add_arguments(parser)`` adds the module's own options.
        report: ``report(train, test, args) -> str | None``, or the name of that function in the
            module, replaces the default ``run(train, test, quick=...)`` rendered as a table
            (None: it printed its output).
        description: the ``--help`` text (default: the first line of the module's docstring).
    """
    from edgecompress import _cli

    if isinstance(module, str):
        name = module
    else:
        name = module.__spec__.name if module.__name__ == "__main__" else module.__name__
        description = description or module.__doc__
    prog = f"python -m {name}"
    parser = _cli.Parser(prog=prog, description=(description or "").strip().split("\n")[0])
    data_arguments(parser)
    _cli.add_output_option(parser)
    if add_arguments is not None:
        add_arguments(parser)

    def command(args) -> int:
        code = importlib.import_module(name) if isinstance(module, str) else module
        render = getattr(code, report) if isinstance(report, str) else report
        train, test = load_mnist_dir(args.mnist_dir, quick=args.quick)
        if render is not None:
            text = render(train, test, args)
            if text is not None:  # None: the report printed its sections as they came
                print(text)
            return 0
        rows = code.run(train, test, quick=args.quick)
        as_markdown = getattr(code, "to_markdown", None)
        print(as_markdown(rows) if as_markdown else table(rows, getattr(code, "COLUMNS", None)))
        return 0

    return _cli.run(prog, parser.parse_args, command, argv)


def run_bench(families="all", test_images=None, test_labels=None, quick=False) -> str:
    """Run the benchmark of each named family and return the Markdown tables."""
    names = FAMILIES if families in ("all", "", None) else tuple(f.strip() for f in families.split(","))
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"`--families` must be 'all' or a comma list of {list(FAMILIES)}. "
                         f"Received: {unknown}")
    train, test = load_data(test_images, test_labels, quick)
    sections = [f"Evaluated on {len(test[0])} images"
                f" ({'IDX ' + str(test_images) if test_images else 'MNIST-5k held-out'});"
                f" trained on {len(train[0])} MNIST-5k digits.{' QUICK MODE.' if quick else ''}\n"]
    for name in names:
        module = importlib.import_module(f"edgecompress.bench.{name}")
        start = time.time()
        rows = module.run(train, test, quick=quick)
        sections.append(f"## {name}\n\n{table(rows)}\n\n({time.time() - start:.0f} s)\n")
    return "\n".join(sections)


def table(rows: list[dict], columns=None) -> str:
    """A Markdown table of ``columns`` that some row has (default: the union of the rows' keys,
    in first-seen order)."""
    if not rows:
        return "(no rows)"
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    if columns is not None:
        keys = [c for c in columns if c in keys]
    return markdown_table(keys, ([_cell(row.get(k)) for k in keys] for row in rows))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
