"""The per-layer actions the search chooses from, and how a plan of them becomes a model.

An action removes a fraction of a channel group's filters (:func:`edgecompress.pruning.prune_filters`)
or factorizes a layer at a fraction of its full rank (:func:`edgecompress.lowrank.factorize`).
A plan holds at most one action of each kind per layer; filter pruning runs first, then
factorization (at a fraction of the pruned layer's full rank).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from edgecompress import lowrank, pruning
from edgecompress.lowrank.factorize import select as lowrank_candidates
from edgecompress.surgery.channels import channel_groups

log = logging.getLogger("edgecompress.search")

KINDS = ("prune", "rank")


@dataclass(frozen=True, order=True)
class Action:
    """One change to one layer: ``kind`` "prune" (``value`` = fraction of filters removed) or
    "rank" (``value`` = fraction of the layer's full rank kept)."""

    layer: str
    kind: str
    value: float

    def describe(self) -> str:
        return (f"{self.layer}: prune {self.value:.0%} of filters" if self.kind == "prune"
                else f"{self.layer}: rank {self.value:.0%}")

    def to_dict(self) -> dict:
        return asdict(self)


def layer_actions(model, ratios, rank_fractions) -> dict[str, list[Action]]:
    """Every action that applies to ``model``, by layer.

    Filter pruning is offered on the first producer of each prunable channel group (residual
    groups are pruned jointly); groups that reach the output or cannot be traced are left out, as
    :func:`~edgecompress.surgery.channel_groups` says. Ranks are offered on the layers
    :mod:`edgecompress.lowrank` can factorize.
    """
    out: dict[str, list[Action]] = {}
    for group in channel_groups(model).groups:
        if group.prunable and group.channels > 1:
            name = group.producers[0]
            out.setdefault(name, []).extend(Action(name, "prune", float(r)) for r in ratios)
    candidates, _ = lowrank_candidates(model)
    for cand in candidates:
        name = cand.layer.name
        out.setdefault(name, []).extend(Action(name, "rank", float(f)) for f in rank_fractions)
    return out


def apply(model, plan) -> tuple[object, dict]:
    """Build the model of ``plan`` (an iterable of :class:`Action`) from ``model`` (not modified).

    Returns:
        ``(new_model, resolved)``, ``resolved`` being ``{"prune": {layer: ratio},
        "rank": {layer: int rank}}``: what was applied, as a recipe states it.
    """
    plan = sorted(plan)
    ratios = {a.layer: a.value for a in plan if a.kind == "prune"}
    new = pruning.prune_filters(model, ratios) if ratios else model
    ranks = {}
    wanted = {a.layer: a.value for a in plan if a.kind == "rank"}
    if wanted:
        for cand in lowrank_candidates(new, layers=list(wanted))[0]:
            full = max(cand.full_rank) if isinstance(cand.full_rank, tuple) else cand.full_rank
            ranks[cand.layer.name] = max(1, int(round(wanted[cand.layer.name] * full)))
        new = lowrank.factorize(new, rank=ranks)
    if new is model:
        from edgecompress import surgery

        new = surgery.clone(model)
    return new, {"prune": ratios, "rank": ranks}


def activation_peak(model) -> int:
    """Largest count of input plus output elements of any one layer: a cheap proxy of the
    arena (one byte per element in int8) used to rank actions before anything is exported."""
    peak = 0
    for layer in model.layers:
        if not layer.inbound_nodes:
            continue
        node = layer.inbound_nodes[0]
        shapes = [t.shape for t in _flat(node.input_tensors)] + [t.shape for t in _flat(node.outputs)]
        peak = max(peak, sum(int(np.prod([d or 1 for d in s[1:]])) for s in shapes))
    return peak


def _flat(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]
