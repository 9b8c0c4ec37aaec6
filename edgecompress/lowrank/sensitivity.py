"""Rank sensitivity: accuracy against rank, layer by layer, and ranks picked for an accuracy budget.

The survey's complaint about low-rank methods is that the ranks are hyperparameters whose search
space explodes with depth. Scanning each layer alone (L x a few ranks evaluations instead of a
joint search) and then spending an accuracy budget greedily where it buys the most parameters,
assuming the drops add up, turns that search into two function calls. This goes beyond AIMET's
per-layer "greedy compression ratio selection" by allocating one global budget.

References:
    Zhang et al., "Accelerating Very Deep Convolutional Networks for Classification and
    Detection", TPAMI 2016 (per-layer rank selection under a global budget).
    AIMET, "Greedy compression ratio selection" (per-layer eval scores).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecompress._ahead import run_ahead
from edgecompress._progress import Progress
from edgecompress.datasets import class_labels
from edgecompress.lowrank.factorize import TARGETS, Candidate, _check_choice, allocate, eligible
from edgecompress.surgery.cuts import LayerScan

DEFAULT_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5)
LOOKAHEAD = 2
"""Layers whose decompositions are made ahead of the passes (each holds its low-rank kernels)."""


@dataclass
class SensitivityPoint:
    """Accuracy of the model with one layer factorized at ``rank``."""

    rank: int | tuple
    accuracy: float
    drop: float
    params: int
    macs: int


@dataclass
class Sensitivity:
    """What :func:`rank_sensitivity` returns.

    Attributes:
        baseline: accuracy of the unchanged model.
        method: the ``method`` that was scanned (pass it again to ``factorize``).
        curves: layer name -> points, largest rank first.
        before: layer name -> (params, MACs) of the unchanged layer.
    """

    baseline: float
    method: str
    curves: dict = field(default_factory=dict)
    before: dict = field(default_factory=dict)

    def to_markdown(self) -> str:
        from edgecompress._markdown import table

        return table(["layer", "rank", "accuracy", "drop (pp)", "params", "MACs"],
                     ([name, p.rank, f"{p.accuracy:.4f}", f"{100 * p.drop:.2f}", f"{p.params:,}",
                       f"{p.macs:,}"] for name, points in self.curves.items() for p in points))


def rank_sensitivity(model, data, ranks=None, method: str = "auto", layers=None,
                     iterations: int = 2, batch_size: int = 256) -> Sensitivity:
    """Accuracy on ``data`` with each layer factorized alone, at several ranks.

    Each (layer, rank) point loads the layer's rank-``r`` kernel into the model (what the
    factorized chain computes; the original kernel is put back, also on an error or interrupt)
    and reruns only the network after the last cut before that layer (:class:`~edgecompress.surgery.cuts.LayerScan`), so the cost is one
    decomposition per layer plus ``layers x ranks`` partial passes over ``data``.

    Args:
        model: a built Sequential or Functional tf_keras model (left as it was).
        data: ``(x, y)`` with integer labels, ideally held-out data.
        ranks: None (fractions :data:`DEFAULT_FRACTIONS` of each layer's full rank), a list of
            ints (ranks, capped per layer) and/or floats in (0, 1) (fractions of the full rank), or
            a dict layer name -> such a list. Ranks that save no parameters are not scanned.
        method, layers, iterations: as in :func:`~edgecompress.lowrank.factorize`.
        batch_size: for the accuracy passes.

    Returns:
        A :class:`Sensitivity`; feed it to :func:`ranks_for_accuracy`.

    References:
        Zhang et al., TPAMI 2016.
    """
    chosen, _ = eligible(model, method, layers)
    x, y = data

    def prepare(layer, resolved):  # numpy (LAPACK), off the thread that runs the TF passes
        cand = Candidate(layer, resolved)
        grid = ranks.get(layer.name, DEFAULT_FRACTIONS) if isinstance(ranks, dict) else ranks
        grid = _rank_grid(cand, DEFAULT_FRACTIONS if grid is None else grid)
        dtype = layer.kernel.dtype.as_numpy_dtype
        return cand, [(r, cand.low_rank_kernel(r, iterations).astype(dtype)) for r in grid]

    # Each point loads the layer's low-rank kernel into the model itself (the chain at that rank
    # computes exactly this kernel), measures from the last cut before the layer, and puts the
    # original kernel back (in ``finally``): no copy of the model (2 s on ResNet50), no graph
    # rebuild, no ``predict`` (0.2 s per call on ResNet50). The decompositions run on one worker
    # thread, LOOKAHEAD layers ahead, while the passes run: on ResNet50 at 64x64 this hid their
    # 3 s (the trace and the passes leave a core idle).
    with run_ahead(lambda pair: prepare(*pair), chosen, LOOKAHEAD, "rank_sensitivity") as prepared:
        scan = LayerScan(model, (x, class_labels(y, "data")), [layer for layer, _ in chosen], batch_size)
        result = Sensitivity(baseline=scan.baseline, method=method)
        progress = Progress("rank_sensitivity", len(chosen))
        for (layer, _), future in zip(chosen, prepared):
            cand, kernels = future.result()
            progress.step(layer.name)
            points = []
            try:
                for r, kernel in kernels:
                    layer.kernel.assign(kernel)
                    acc = scan.accuracy(layer)
                    params, macs = cand.costs(r)
                    points.append(SensitivityPoint(r, acc, result.baseline - acc, params, macs))
            finally:
                layer.kernel.assign(cand.kernel)
            result.curves[layer.name] = points
            result.before[layer.name] = (cand.params_before, cand.macs_before)
        progress.close()
    return result


def ranks_for_accuracy(sensitivity: Sensitivity, max_drop: float, target: str = "params") -> dict:
    """Per-layer ranks that save the most ``target`` cost for an accuracy drop of ``max_drop``.

    The drops measured layer by layer are taken as additive (made monotone in rank), and the
    budget is spent greedily on the cuts with the best cost saved per accuracy lost. Layers whose
    cheapest scanned rank costs too much accuracy are left out of the dict (left alone).

    Args:
        sensitivity: from :func:`rank_sensitivity`.
        max_drop: accuracy drop allowed, as a fraction (0.01 = 1 percentage point), >= 0.
        target: ``"params"`` or ``"macs"``.

    Returns:
        ``{layer_name: rank}`` for ``factorize(model, rank=..., method=sensitivity.method)``.
    """
    if not (isinstance(max_drop, (int, float)) and not isinstance(max_drop, bool) and max_drop >= 0):
        raise ValueError(f"`max_drop` must be a number >= 0. Received: max_drop={max_drop!r}")
    names, options = _options(sensitivity, target)
    picks = allocate(options, loss_budget=max_drop)
    return _chosen(names, options, picks)


def ranks_for_target(sensitivity: Sensitivity, target_ratio: float, target: str = "params") -> dict:
    """Per-layer ranks that keep ``target_ratio`` of the scanned layers' cost for the least accuracy drop.

    The data-driven counterpart of ``factorize(..., target_ratio=...)``: the same greedy allocator,
    but each cut is charged the accuracy drop measured by :func:`rank_sensitivity` (additive,
    monotone in rank) instead of the singular-value energy it discards. Relative energy is not
    comparable across layers (on LeNet-300-100 it spends a whole budget on the largest layer);
    measured drops are. Only the scanned ranks are available, so the cost reached can be below
    the target (a warning is raised if it cannot be reached).

    Args:
        sensitivity: from :func:`rank_sensitivity`.
        target_ratio: fraction of the scanned layers' ``target`` cost to keep, in (0, 1).
        target: ``"params"`` or ``"macs"``.

    Returns:
        ``{layer_name: rank}`` for ``factorize(model, rank=..., method=sensitivity.method)``.

    References:
        Zhang et al., TPAMI 2016 (rank selection under a global budget).
    """
    if not (isinstance(target_ratio, (int, float)) and not isinstance(target_ratio, bool)
            and 0 < target_ratio < 1):
        raise ValueError(f"`target_ratio` must be in (0, 1). Received: target_ratio={target_ratio!r}")
    names, options = _options(sensitivity, target)
    budget = target_ratio * sum(opts[0][1] for opts in options)
    return _chosen(names, options, allocate(options, cost_budget=budget))


def _options(sensitivity: Sensitivity, target: str):
    """Per scanned layer, ``(rank, cost, drop)`` choices for :func:`allocate`, unchanged first."""
    target = _check_choice(target, TARGETS, "target")
    col = 0 if target == "params" else 1
    names, options = [], []
    for name, points in sensitivity.curves.items():
        before = sensitivity.before[name][col]
        drop, opts = 0.0, [(None, before, 0.0)]
        for p in sorted(points, key=lambda p: -(p.params if col == 0 else p.macs)):
            drop = max(drop, p.drop)  # a smaller rank is never credited with a smaller drop
            cost = p.params if col == 0 else p.macs
            if cost < before:
                opts.append((p.rank, cost, drop))
        names.append(name)
        options.append(opts)
    return names, options


def _chosen(names, options, picks) -> dict:
    chosen = zip(names, options, picks, strict=True)
    return {n: opts[j][0] for n, opts, j in chosen if opts[j][0] is not None}


def _rank_grid(cand, values) -> list:
    out = []
    for v in values:
        if isinstance(v, float) and 0 < v < 1:
            full = np.atleast_1d(cand.full_rank)
            r = tuple(int(max(1, round(v * f))) for f in full)
            r = r if cand.method == "tucker2" else r[0]
        else:
            r = cand.rank_from_int(int(v), strict=False)
        if cand.costs(r)[0] < cand.params_before and r not in out:
            out.append(r)
    return sorted(out, key=lambda r: -np.prod(r))
