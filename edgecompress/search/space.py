"""The per-layer actions the search chooses from, and how a plan of them becomes a model.

An action removes a fraction of a channel group's filters (:func:`edgecompress.pruning.prune_filters`),
factorizes a layer at a fraction of its full rank (:func:`edgecompress.lowrank.factorize`), or
quantizes a layer's kernel to ``b`` bits per channel (:func:`edgecompress.quantization.quantize_weights`)
so that TFLite Micro's LUT compression stores it as ``b``-bit indices
(:func:`tflite_export.micro.lut_compress`).
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

KINDS = ("prune", "rank", "lut")


@dataclass(frozen=True, order=True)
class Action:
    """One change to one layer: ``kind`` "prune" (``value`` = fraction of filters removed),
    "rank" (``value`` = fraction of the layer's full rank kept) or "lut" (``value`` = bits per
    weight in the device file)."""

    layer: str
    kind: str
    value: float

    def describe(self) -> str:
        if self.kind == "lut":
            return f"{self.layer}: LUT {int(self.value)} bits"
        return (f"{self.layer}: prune {self.value:.0%} of filters" if self.kind == "prune"
                else f"{self.layer}: rank {self.value:.0%}")

    def to_dict(self) -> dict:
        return asdict(self)


def layer_actions(model, ratios, rank_fractions, lut_bits=()) -> dict[str, list[Action]]:
    """Every action that applies to ``model``, by layer.

    Filter pruning is offered on the first producer of each prunable channel group (residual
    groups are pruned jointly); groups that reach the output or cannot be traced are left out, as
    :func:`~edgecompress.surgery.channel_groups` says. Ranks are offered on the layers
    :mod:`edgecompress.lowrank` can factorize, LUT bit widths on the layers
    :func:`~edgecompress.quantization.quantize_weights` takes.
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
    if lut_bits:
        from edgecompress.quantization.scalar import QUANTIZABLE
        from edgecompress.surgery import find_layers

        for layer in find_layers(model, None, QUANTIZABLE):
            out.setdefault(layer.name, []).extend(Action(layer.name, "lut", float(b)) for b in lut_bits)
    return out


def apply(model, plan, lut: bool = True) -> tuple[object, dict]:
    """Build the model of ``plan`` (an iterable of :class:`Action`) from ``model`` (not modified).

    Args:
        lut: also quantize the kernels of the plan's "lut" actions (:func:`apply_lut`); a
            candidate leaves that to after its fine-tune, which would undo it.

    Returns:
        ``(new_model, resolved)``, ``resolved`` being ``{"prune": {layer: ratio},
        "rank": {layer: int rank}, "lut": {layer: bits}}``: what was applied, as a recipe
        states it (a factorized layer's LUT applies to each of its factors).
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
    before = {layer.name for layer in model.layers}
    bits = {}
    for a in plan:
        if a.kind == "lut":
            factors = [layer.name for layer in new.layers
                       if layer.name not in before and layer.name.startswith(a.layer + "_")]
            for name in factors or [a.layer]:
                bits[name] = int(a.value)
    resolved = {"prune": ratios, "rank": ranks, "lut": bits}
    return (apply_lut(new, bits) if lut else new), resolved


def apply_lut(model, bits: dict):
    """``model`` with each named layer's kernel quantized to ``bits[name]`` bits per channel
    (at most ``2**bits`` values, what LUT compression needs); ``model`` itself if none."""
    from edgecompress import quantization

    for width in sorted(set(bits.values())):
        names = [n for n, b in bits.items() if b == width]
        model = quantization.quantize_weights(model, width, per_channel=True, layers=names)[0]
    return model


def decoded_bytes(model, resolved) -> int:
    """Bytes TFLite Micro's DECODE op expands LUT-compressed kernels into, in the arena."""
    return int(sum(model.get_layer(name).get_weights()[0].size for name in resolved.get("lut", {})))


def int8_bytes(model, resolved) -> int:
    """The int8 weight bytes of ``model`` once its LUT layers hold ``b``-bit indices (an
    estimate: tables and index padding left out)."""
    total = int(model.count_params())
    for name, b in resolved.get("lut", {}).items():
        kernel = model.get_layer(name).get_weights()[0]
        total -= int(kernel.size * (8 - b) / 8)
    return total


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
