"""The moves the search makes on a model, what each costs, and the smallest move that frees a
resource step (NetAdapt's per-layer proposal).

A move shrinks one layer of the *current* model:

* "prune": keep ``value`` of a channel group's filters or units
  (:func:`edgecompress.pruning.prune_filters`, by L1 norm; residual groups are pruned jointly);
* "rank": factorize the layer at rank ``value`` (:func:`edgecompress.lowrank.factorize`). Its
  factors are plain layers, so a later "prune" of the first factor lowers the rank further;
* "prune_peak": keep the fraction ``value`` of the filters of every channel group live at the
  arena peak at once (``layer`` names their first producers, joined by "+"). The peak is a sum
  over live tensors (a residual block's input stays live for its shortcut; a pointwise conv
  and the depthwise conv after it hold one group twice), so no single-group move lowers it when
  several groups hold it, or when two blocks peak alike;
* "lut": quantize the layer's kernel to ``value`` bits per channel
  (:func:`edgecompress.quantization.quantize_weights`) so that TFLite Micro's LUT compression
  stores it as ``value``-bit indices (:func:`tflite_export.micro.lut_compress`). LUT widths are
  a label of the model, applied after each fine-tune (which would undo them).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np

from edgecompress import lowrank, pruning
from edgecompress.lowrank.factorize import select as lowrank_candidates
from edgecompress.surgery.channels import channel_groups

log = logging.getLogger("edgecompress.search")

KINDS = ("prune", "prune_peak", "rank", "lut")
PEAK_FRACTIONS = (0.9, 0.8, 0.7, 0.6, 0.5)  # filters a "prune_peak" move may keep
NEAR_PEAK = 0.9  # ops within this fraction of the peak count as the peak
# Layers the TFLite converter folds into the op before them: their output is its tensor.
FOLDED = ("BatchNormalization", "ReLU", "Activation", "Dropout", "LeakyReLU", "SpatialDropout2D")
MAX_LAYER_SHRINK = 0.5  # one move removes at most this fraction of a layer's filters or weights
# The names lowrank.factorize gives factors: their rank moves on by pruning, not by factorizing again.
FACTOR_SUFFIXES = ("_u", "_v", "_kx1", "_1xk", "_reduce", "_core", "_expand")
# Bytes of an int8 file beyond its weights (fitted on LeNet-5 files): per output channel of a
# convolution, the per-channel scale (float32) and zero point (int64) of its kernel and bias; per
# output unit of a Dense layer (per-tensor kernel), 8; per bias, the 3 bytes of an int32 over the
# one the weights count; per weighted layer, its op, tensors and names. In TFLM's arena, each
# output channel holds a per-channel multiplier and shift (int32 each).
FLASH_PER_CONV_CHANNEL = 24
FLASH_PER_DENSE_UNIT = 8
FLASH_PER_BIAS = 3
FLASH_PER_LAYER = 350
ARENA_PER_CHANNEL = 8


@dataclass(frozen=True, order=True)
class Action:
    """One move on one layer of the current model: ``kind`` "prune" (``value`` = filters or
    units kept), "rank" (``value`` = the rank of the factorization) or "lut" (``value`` = bits
    per weight in the device file)."""

    layer: str
    kind: str
    value: float

    def describe(self) -> str:
        if self.kind == "prune_peak":
            return f"{self.layer}: {self.value:.0%} of filters"
        if self.kind == "lut":
            return f"{self.layer}: LUT {int(self.value)} bits"
        if self.kind == "rank":
            return f"{self.layer}: rank {int(self.value)}"
        return f"{self.layer}: {int(self.value)} filters"

    def to_dict(self) -> dict:
        return asdict(self)


def options(model, lut: dict, kinds=KINDS, lut_bits=()) -> list[tuple[str, str]]:
    """The ``(layer, kind)`` pairs a move can shrink in ``model``, whose LUT widths are ``lut``.

    Filter pruning is offered on the first producer of each prunable channel group with more
    than one channel (groups that reach the output or cannot be traced are left out, as
    :func:`~edgecompress.surgery.channel_groups` says); a rank on the layers
    :mod:`edgecompress.lowrank` can factorize (not on LUT layers, nor on factors, whose
    rank a "prune" of the first factor lowers); a LUT width on the layers
    :func:`~edgecompress.quantization.quantize_weights` takes, while a narrower width is left.
    """
    out = []
    if "prune" in kinds:
        for group in channel_groups(model).groups:
            if group.prunable and group.channels > 1:
                out.append((group.producers[0], "prune"))
    if "prune_peak" in kinds:
        producers = peak_groups(model)
        if len(producers) > 1:
            out.append(("+".join(producers), "prune_peak"))
    if "rank" in kinds:
        for cand in lowrank_candidates(model)[0]:
            if (cand.layer.name not in lut and not cand.layer.name.endswith(FACTOR_SUFFIXES)
                    and len(cand.options("params")) > 1):
                out.append((cand.layer.name, "rank"))
    if "lut" in kinds and lut_bits:
        from edgecompress.quantization.scalar import QUANTIZABLE
        from edgecompress.surgery import find_layers

        for layer in find_layers(model, None, QUANTIZABLE):
            if min(lut_bits) < lut.get(layer.name, 8):
                out.append((layer.name, "lut"))
    return out


def sizes(model, layer: str, kind: str, lut: dict, ratios=None, rank_fractions=None,
          lut_bits=()) -> list[int]:
    """The values a move of ``kind`` on ``layer`` may take, from the least shrink to the most.

    ``ratios`` (fractions of the current filters removed) and ``rank_fractions`` (fractions of
    the full rank kept) restrict them to a grid; None allows every whole number down to
    removing :data:`MAX_LAYER_SHRINK` of the filters, or of the weights for a rank (a grid goes
    as far as it says).
    """
    if kind == "prune_peak":
        fractions = PEAK_FRACTIONS if ratios is None else sorted({1 - r for r in ratios}, reverse=True)
        counts = [_channels(model, name) for name in layer.split("+")]
        return [f for f in fractions if any(_kept(n, f) < n for n in counts)]
    if kind == "prune":
        n = _channels(model, layer)
        kept = range(n - 1, max(1, math.ceil(n * (1 - MAX_LAYER_SHRINK))) - 1, -1) if ratios is None \
            else sorted({n - math.floor(r * n) for r in ratios} - {n}, reverse=True)
        return [k for k in kept if 1 <= k < n]
    if kind == "rank":
        cand = lowrank_candidates(model, layers=[layer])[0][0]
        full = max(cand.full_rank) if isinstance(cand.full_rank, tuple) else cand.full_rank
        saving = [r for r in range(full, 0, -1) if _rank_params(cand, r) < cand.params_before]
        if rank_fractions is not None:
            grid = {max(1, round(f * full)) for f in rank_fractions}
            return [r for r in saving if r in grid]
        return [r for r in saving if _rank_params(cand, r) >= (1 - MAX_LAYER_SHRINK) * cand.params_before]
    current = lut.get(layer, 8)
    return sorted((int(b) for b in lut_bits if b < current), reverse=True)


def move(model, action: Action, lut: dict) -> tuple[object, dict, dict]:
    """Apply ``action`` to ``model`` (not modified).

    Returns:
        ``(new_model, new_lut, step)``; ``step`` is the move as a recipe step states it (None
        for a LUT width, which the recipe applies after its last fine-tune).
    """
    if action.kind == "lut":
        from edgecompress import surgery

        return surgery.clone(model), {**lut, action.layer: int(action.value)}, None
    if action.kind == "prune_peak":
        ratio = {}
        for name in action.layer.split("+"):
            n = _channels(model, name)
            if _kept(n, action.value) < n:
                ratio[name] = (n - _kept(n, action.value) + 0.5) / n
        new = pruning.prune_filters(model, ratio)
        return new, dict(lut), {"kind": "prune_filters", "ratio": ratio}
    if action.kind == "prune":
        n = _channels(model, action.layer)
        removed = n - int(action.value)
        ratio = (removed + 0.5) / n  # prune_filters removes floor(ratio * n) = removed
        new = pruning.prune_filters(model, {action.layer: ratio})
        return new, dict(lut), {"kind": "prune_filters", "ratio": {action.layer: ratio}}
    rank = int(action.value)
    new = lowrank.factorize(model, rank={action.layer: rank})
    return new, dict(lut), {"kind": "factorize", "rank": rank, "layers": [action.layer]}


def apply_lut(model, bits: dict):
    """``model`` with each named layer's kernel quantized to ``bits[name]`` bits per channel
    (at most ``2**bits`` values, what LUT compression needs); ``model`` itself if none."""
    from edgecompress import quantization

    for width in sorted(set(bits.values())):
        names = [n for n, b in bits.items() if b == width]
        model = quantization.quantize_weights(model, width, per_channel=True, layers=names)[0]
    return model


def stats(model, lut: dict) -> dict:
    """What the resource estimates move with: int8 weight bytes (LUT layers at their width),
    the per-channel quantization data in flash, the output channels (TFLM keeps per-channel
    data for each in the arena), the bytes TFLM decodes LUT kernels into in the arena, the
    activation peak and the MACs."""
    from edgecompress.measure import keras_macs

    total, decoded = int(model.count_params()), 0
    for name, b in lut.items():
        kernel = model.get_layer(name).get_weights()[0]
        total -= int(kernel.size * (8 - b) / 8)
        decoded += int(kernel.size)
    from edgecompress._keras import keras

    channels = quantization = 0
    for layer in model.layers:
        if getattr(layer, "kernel", None) is not None and layer.inbound_nodes:
            n = int(_flat(layer.inbound_nodes[0].outputs)[0].shape[-1])
            channels += n
            per = FLASH_PER_DENSE_UNIT if isinstance(layer, keras.layers.Dense) else FLASH_PER_CONV_CHANNEL
            quantization += FLASH_PER_LAYER + n * (per + FLASH_PER_BIAS * bool(getattr(layer, "use_bias", False)))
    return {"params": int(model.count_params()), "bytes": total + quantization, "decoded": decoded,
            "channels": channels, "peak": activation_peak(model), "macs": int(keras_macs(model))}


def estimate(reference: dict, ref_stats: dict, new_stats: dict) -> dict:
    """Flash, arena and latency of a model from a measured ``reference`` model one move away:
    flash moves with the int8 weight and quantization bytes, the arena with the activation peak,
    the output channels and the decoded LUT kernels, the latency with the MACs."""
    latency = reference.get("latency_ms")

    def delta(key):
        return new_stats[key] - ref_stats[key]

    return {"flash": reference["flash"] + delta("bytes"),
            "arena": reference["arena"] + delta("peak") + ARENA_PER_CHANNEL * delta("channels")
            + delta("decoded"),
            "latency_ms": None if latency is None
            else latency * new_stats["macs"] / max(ref_stats["macs"], 1)}


def excess(limits: dict, costs: dict) -> float:
    """How far ``costs`` are over ``limits``: the sum over resources of ``max(0, ln(cost /
    limit))``, 0 when everything fits. A move that frees a fraction of it frees a fraction of
    the remaining gap in every budget that is missed, measured in the ratio still to go."""
    return float(sum(max(0.0, math.log(max(costs[k], 1e-12) / v)) for k, v in limits.items()
                     if costs.get(k) is not None))


def activation_peak(model) -> int:
    """The most activation elements live at once while ``model`` runs (one byte each in int8):
    the quantity TFLM's arena planner packs, used to rank moves before anything is exported.
    See :func:`live_tensors`."""
    return max(map(_elements, live_tensors(model)), default=0)


def live_tensors(model) -> list[dict]:
    """Per op of ``model`` in run order, ``{buffer: (elements, layer)}`` of the tensors live
    while it runs: its inputs and outputs and every tensor a later op (or the output) still
    needs; ``layer`` made the tensor's channels. The outputs of :data:`FOLDED` layers share
    their input's buffer, as the converter folds them into the op before."""
    from edgecompress.surgery.graph import last_uses, nodes_in_order

    if not getattr(model, "_is_graph_network", False):
        return []
    nodes = nodes_in_order(model)
    buffer, size, owner, ops = {}, {}, {}, []
    for node in nodes:
        outs = _flat(node.outputs)
        ins = [buffer.get(id(t), id(t)) for t in node.keras_inputs]
        if type(node.layer).__name__ in FOLDED and len(ins) == 1 and len(outs) == 1:
            buffer[id(outs[0])] = ins[0]
            continue
        first = node.keras_inputs[0] if node.keras_inputs else None
        for t in outs:
            buffer[id(t)] = id(t)
            size[id(t)] = int(np.prod([d or 1 for d in t.shape[1:]]))
            # a layer without weights that keeps its input's channels (Add, pooling, padding)
            # passes on the channels of the layer that made them
            passes = (first is not None and not node.layer.weights and buffer.get(id(first)) in owner
                      and t.shape[-1] == first.shape[-1])
            owner[id(t)] = owner[buffer[id(first)]] if passes else node.layer.name
        ops.append((ins, [id(t) for t in outs]))
    last = last_uses([ins for ins, _ in ops], [buffer.get(id(t), id(t)) for t in _flat(model.outputs)])
    born, out = {}, []
    for i, (_, outs) in enumerate(ops):
        for b in outs:
            born[b] = i
        out.append({b: (size[b], owner[b]) for b, start in born.items()
                    if start <= i and last.get(b, start) >= i and b in size})
    return out


def peak_groups(model) -> list[str]:
    """The first producers of the prunable channel groups whose tensors are live at the ops
    within :data:`NEAR_PEAK` of the activation peak (model order)."""
    live = live_tensors(model)
    peak = max(map(_elements, live), default=0)
    owners = {name for ops in live if _elements(ops) >= NEAR_PEAK * peak for _, name in ops.values()}
    found = []
    for group in channel_groups(model).groups:
        if group.prunable and group.channels > 1 and owners & set(group.producers + group.followers):
            found.append(group.producers[0])
    return found


def _elements(live: dict) -> int:
    """Activation elements of one op's live tensors (an entry of :func:`live_tensors`)."""
    return sum(size for size, _ in live.values())


def _kept(channels: int, fraction: float) -> int:
    return max(1, int(round(channels * fraction)))


def _channels(model, layer: str) -> int:
    for group in channel_groups(model).groups:
        if layer in group.producers:
            return int(group.channels)
    raise ValueError(f"`layer` must produce a prunable channel group. Received: layer={layer!r}")


def _rank_params(cand, rank: int) -> int:
    if cand.method == "tucker2":
        return cand.costs(tuple(min(rank, f) for f in cand.full_rank))[0]
    return cand.costs(rank)[0]


def _flat(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]
