"""``edgecompress compress MODEL --data DATA --target ... -o OUT``: the command-line side of the
search (argument checks before anything loads, outputs staged so a failure leaves none)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from edgecompress._errors import UsageError
from edgecompress.search.targets import parse_target

log = logging.getLogger("edgecompress.search")


def run_target_search(args, staged_output, check_data_fits) -> int:
    target = parse_target(args.target)
    if not math.isfinite(args.max_drop) or args.max_drop < 0:
        raise UsageError(f"`--max-drop` must be a number >= 0 (percentage points). "
                         f"Received: {args.max_drop}")
    for name in ("workers", "top_k"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"`--{name.replace('_', '-')}` must be >= 1. Received: {value}")
    if args.epochs < 0:
        raise UsageError(f"`--epochs` must be >= 0. Received: {args.epochs}")
    from edgecompress import search as search_mod

    ratios = _fractions(args.ratios, "--ratios", search_mod.PRUNE_RATIOS)
    ranks = _fractions(args.ranks, "--ranks", search_mod.RANK_FRACTIONS)
    from edgecompress import datasets
    from edgecompress.loading import load_model

    train, test = datasets.from_spec(args.data)
    model = load_model(args.model, argument="MODEL", unsafe=args.unsafe)
    check_data_fits(model, train[0])
    ray_address = args.ray_address
    result = search_mod.search(
        model, train, target, max_drop=args.max_drop, workers=args.workers,
        ray_address=ray_address, ratios=ratios, rank_fractions=ranks, epochs=args.epochs,
        top_k=args.top_k, distill=args.distill,
        strategy=None if args.strategy == "none" else args.strategy, seed=args.seed)
    winner = search_mod.require_winner(result)  # exit 1 before any output exists
    with staged_output(args.out, args.overwrite) as stage:
        search_mod.write_outputs(result, stage, f"budget search on {Path(args.model).name}")
    print(f"winner: {winner['name']} ({search_mod.core.describe(winner)}): flash "
          f"{winner['flash']:,} B, arena {winner['arena']:,} B, accuracy {winner['accuracy']:.4f} "
          f"(drop {winner['drop']:.2f} pp) of {len(result.candidates)} candidates")
    print(f"outputs: {Path(args.out)} (winner.tflite, winner.keras, winner.toml, search.json, "
          f"report.md, pareto.png)")
    return 0


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
