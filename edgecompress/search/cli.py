"""``edgecompress compress MODEL --data DATA --target ... -o OUT``: the command-line side of the
search (options, checks before anything loads, outputs staged so a failure leaves none)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from edgecompress._errors import UsageError
from edgecompress.distribute import STRATEGIES
from edgecompress.search.targets import parse_target

DEFAULT_MAX_DROP = 1.0
# The search's own defaults, restated here so the parser starts no TensorFlow (checked by a test).
FINAL_EPOCHS = 30
TOP_K = 2
MAX_ITERATIONS = 40


def add_arguments(comp) -> None:
    """The ``compress`` options of the search and of data-parallel training."""
    comp.add_argument("--target", help="device budget instead of a recipe, e.g. "
                                       "flash=64KB,arena=20KB,latency=5ms")
    comp.add_argument("--workers", type=int, help="--target: local worker processes "
                                                  "(default: the usable cores)")
    comp.add_argument("--ray-address", help="--target: run the jobs on a Ray cluster (ADDRESS or auto)")
    comp.add_argument("--strategy", choices=STRATEGIES, default="none",
                      help="data-parallel training: mirrored (local devices) or multiworker (TF_CONFIG)")
    comp.add_argument("--distill", action=argparse.BooleanOptionalAction, default=True,
                      help="--target: distil the final fine-tune from the input model (default: on)")
    comp.add_argument("--epochs", type=int, default=FINAL_EPOCHS,
                      help="--target: most epochs of the final fine-tune (early stopping)")
    comp.add_argument("--top-k", type=int, default=TOP_K,
                      help="--target: fitting proposals given the final fine-tune")
    comp.add_argument("--iterations", type=int, default=MAX_ITERATIONS,
                      help="--target: most moves of the search (NetAdapt iterations)")
    comp.add_argument("--ratios", help="--target: fractions of a layer's filters a move may remove "
                                       "(comma list; default: any whole number)")
    comp.add_argument("--ranks", help="--target: fractions of full rank a factorization may keep "
                                      "(comma list; default: any rank)")
    comp.add_argument("--lut-bits", help="--target: TFLM LUT bit widths a move may give a layer "
                                         "(comma list of 2-7; 'none' to skip)")
    comp.add_argument("--int8-io", choices=("auto", "on", "off"), default="auto",
                      help="--target: int8 files take int8 inputs and outputs (auto: when the "
                           "target sets an arena)")
    comp.add_argument("--seed", type=int, default=0, help="--target: the seed of every job")


def start_strategy(name: str) -> None:
    """Create the strategy now: a multi-worker one must exist before any other TensorFlow op."""
    if name != "none":
        from edgecompress import distribute

        distribute.get_strategy(name)


def run_target_search(args, staged_output) -> int:
    """Check the options, search, and write the outputs; exit 1 (CheckError) before writing
    anything when no candidate fits."""
    target = parse_target(args.target)
    max_drop = DEFAULT_MAX_DROP if args.max_drop is None else args.max_drop
    if not math.isfinite(max_drop) or max_drop < 0:
        raise UsageError(f"`--max-drop` must be a number >= 0 (percentage points). Received: {max_drop}")
    for name in ("workers", "top_k"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"`--{name.replace('_', '-')}` must be >= 1. Received: {value}")
    for name in ("epochs", "iterations"):
        if getattr(args, name) < 0:
            raise UsageError(f"`--{name}` must be >= 0. Received: {getattr(args, name)}")
    from edgecompress import search as search_mod

    ratios = _fractions(args.ratios, "--ratios", search_mod.PRUNE_RATIOS)
    ranks = _fractions(args.ranks, "--ranks", search_mod.RANK_FRACTIONS)
    lut_bits = _bits(args.lut_bits, search_mod.LUT_BITS)
    from edgecompress import datasets
    from edgecompress._cli import input_shape, labeled, labels_for_outputs
    from edgecompress.loading import load_model
    from edgecompress.registration import register_edgecompress_objects

    register_edgecompress_objects()
    model = load_model(args.model, argument="MODEL", unsafe=args.unsafe)
    shape = input_shape(model, "--data")
    train, test = (labels_for_outputs(model, labeled(datasets.resolve(args.data, role, input_shape=shape)))
                   for role in ("train", "test"))
    validation = _own_validation(args.data, shape)
    if validation is not None:
        validation = labels_for_outputs(model, labeled(validation))
    result = search_mod.search(
        model, train, target, max_drop=max_drop, validation=validation,
        workers=args.workers, ray_address=args.ray_address,
        ratios=ratios, rank_fractions=ranks, lut_bits=lut_bits, epochs=args.epochs, top_k=args.top_k,
        distill=args.distill, strategy=None if args.strategy == "none" else args.strategy,
        max_iterations=args.iterations, seed=args.seed,
        int8_io={"auto": None, "on": True, "off": False}[args.int8_io])
    winner = search_mod.require_winner(result)
    from edgecompress.search.core import describe
    from edgecompress.search.measure import tflite_scores

    test_scores = tflite_scores(winner["litert_tflite"], test, result.tasks)
    with staged_output(args.out, args.overwrite) as stage:
        search_mod.write_outputs(result, stage, f"budget search on {Path(args.model).name}")
    print(f"winner: {winner['name']} ({describe(winner)}): flash {winner['flash']:,} B, "
          f"arena {winner['arena']:,} B, validation {result.describe_scores(winner['scores'])} (drop "
          f"{_drops(result, winner)}), test {result.describe_scores(test_scores)}; "
          f"{len(result.candidates)} candidates")
    print(f"outputs: {Path(args.out)} (winner.tflite, winner.keras, winner.toml, search.json, report.md, "
          f"pareto.png)")
    return 0


def _drops(result, cand) -> str:
    drops = result.drops(cand["scores"])
    if len(result.tasks) == 1:
        return f"{drops[result.tasks[0].output]:.2f}{result.tasks[0].drop_unit}"
    return ", ".join(f"{t.output} {drops[t.output]:.2f}{t.drop_unit}" for t in result.tasks)


def _own_validation(spec, shape):
    """``--data``'s own validation set (an .npz ``x_val`` beside ``x_test``), or None: the search
    then holds out part of the training data. Says which, since the drops depend on it."""
    from edgecompress import datasets

    roles = datasets.parts(spec, "--data")
    if roles["validation"].x is None or roles["validation"].x is roles["test"].x:
        print(f"validation: part of the training data ({roles['train'].source}), held out by the "
              "search; if MODEL was trained on it, the drops come out larger than they are (give "
              "the .npz x_val/y_val beside x_test to use your own)")
        return None
    print(f"validation: {roles['validation'].source}")
    return datasets.resolve(spec, "validation", input_shape=shape)


def _fractions(text, argument, default):
    if text is None:
        return default
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(0 < v < 1 for v in values):
        raise UsageError(f"`{argument}` must be a comma list of numbers in (0, 1). Received: {text!r}")
    return values


def _bits(text, default):
    if text is None:
        return default
    if text.strip().lower() == "none":
        return ()
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(2 <= v <= 7 for v in values):
        raise UsageError(f"`--lut-bits` must be 'none' or a comma list of ints in [2, 7]. Received: {text!r}")
    return values
