"""Fit a model into a device budget: sensitivity scans, greedy allocation, fine-tuned and verified
candidates, the Pareto front, and the winner.

Beyond the anchors (AMC and NetAdapt are papers with PyTorch code; NetsPresso and Edge Impulse EON
are hosted), every candidate here is a real file measured on the real runtimes: flash and arena in
TensorFlow Lite Micro, latency in LiteRT.

References:
    He et al., "AMC: AutoML for Model Compression and Acceleration on Mobile Devices", ECCV 2018.
    Yang et al., "NetAdapt: Platform-Aware Neural Network Adaptation for Mobile Applications",
    ECCV 2018 (layer-wise proposals ranked by measured accuracy loss per resource saved).
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass, field

import numpy as np

from edgecompress._errors import CheckError
from edgecompress._keras import check_graph_model
from edgecompress.search import space, tasks
from edgecompress.search.jobs import Executor, model_to_bytes
from edgecompress.search.space import Action
from edgecompress.search.targets import Target, parse_target

log = logging.getLogger("edgecompress.search")

PRUNE_RATIOS = (0.25, 0.5, 0.75, 0.9)
RANK_FRACTIONS = (0.5, 0.25, 0.1)
LUT_BITS = (4, 2)
MARGINS = (1.0, 0.85, 0.7, 0.55)  # a plan is kept when its estimate is under margin x budget
MIN_TFLM_AGREEMENT = 0.95


@dataclass
class SearchResult:
    """Everything a search found.

    Attributes:
        target: the budget.
        max_drop: the accuracy drop allowed, in percentage points of the float model.
        baseline_accuracy: the float Keras model's accuracy on the validation data.
        sensitivities: one row per scanned action (drop in pp, parameters, activation peak).
        candidates: one row per measured candidate (with its ``tflite`` and ``keras`` bytes).
        winner: the best candidate meeting the budget and ``max_drop`` (None if none does).
        closest: the candidate nearest to meeting them when none does.
        settings: the fine-tune settings (for the recipe that reproduces the winner).
    """

    target: Target
    max_drop: float
    baseline_accuracy: float
    sensitivities: list = field(default_factory=list)
    candidates: list = field(default_factory=list)
    winner: dict | None = None
    closest: dict | None = None
    settings: dict = field(default_factory=dict)
    executor: str = ""

    def pareto(self) -> list[dict]:
        """Candidates no other beats on both flash and accuracy, smallest first."""
        front, best = [], -1.0
        for cand in sorted(self.candidates, key=lambda c: (c["flash"], -c["accuracy"])):
            if cand["accuracy"] > best:
                front.append(cand)
                best = cand["accuracy"]
        return front


def search(model, train, target, max_drop: float = 1.0, validation=None, *, workers=None,
           ray_address=None, ratios=PRUNE_RATIOS, rank_fractions=RANK_FRACTIONS,
           lut_bits=LUT_BITS, epochs: int = 5,
           patience: int = 1, learning_rate: float = 1e-3, batch_size: int = 64,
           distill: bool = False, strategy=None, scan_samples: int = 1000, top_k: int = 4,
           try_float: bool = True, rounds: int = 2, seed: int = 0) -> SearchResult:
    """Search per-layer filter pruning, low-rank ranks and LUT bit widths (int8, or float32 where
    int8 hurts) for the most accurate model that fits ``target`` within ``max_drop``.

    1. Scan: each action alone on the original model, its validation accuracy (no training).
    2. Allocate: greedily take the action with the least measured drop per unit of the budget it
       frees (flash via parameters, arena via the activation peak, latency via MACs) until the
       estimate fits; the plans crossing each of :data:`MARGINS` become candidates.
    3. Measure: fine-tune each candidate with early stopping (``distill``: from the original),
       export it, run it in TensorFlow Lite Micro, measure flash, arena and latency.
    4. If none fits, repeat 2-3 with the budget tightened by how far the estimates were off.

    Args:
        model: a trained Sequential or Functional tf_keras model (not modified).
        train: ``(x, y)`` training data; a validation split is taken from it unless given.
        target: a :class:`Target` or a ``"flash=64KB,arena=20KB"`` string.
        max_drop: accuracy drop allowed against the float model, in percentage points.
        validation: ``(x, y)`` for scans, early stopping and the accuracy of candidates.
        workers: local worker processes (default: the usable cores; 1 runs in this process).
        ray_address: run the jobs on a Ray cluster (an address, ``"auto"``, or ``"local"`` for a
            Ray the caller initialized).
        ratios: filter-pruning fractions to scan.
        rank_fractions: fractions of each layer's full rank to scan.
        lut_bits: bit widths of TFLite Micro LUT compression to scan per layer (int8 files only).
        epochs: most fine-tune epochs per candidate (0: no fine-tuning).
        patience: early-stopping patience on the validation loss.
        distill: fine-tune by distilling from ``model``.
        strategy: ``"mirrored"`` or ``"multiworker"`` data-parallel fine-tunes (see
            :mod:`edgecompress.distribute`).
        scan_samples: validation samples per scan.
        top_k: candidates to fine-tune per round (at most ``len(MARGINS)``).
        try_float: also measure float32 files of candidates that could fit as float, when int8
            costs more than half of ``max_drop``.
        rounds: allocation rounds; when no candidate fits, the next round aims lower by the
            ratio of measured to estimated cost.
        seed: the seed of every job.

    Returns:
        A :class:`SearchResult`; its ``winner`` is None when nothing fits (see ``closest``).
    """
    check_graph_model(model)
    target = parse_target(target) if isinstance(target, str) else target
    if not isinstance(target, Target) or target == Target():
        raise ValueError(f"`target` must set at least one of flash, arena, latency. Received: {target!r}")
    _check_number("max_drop", max_drop, 0)
    for name, value, low in (("epochs", epochs, 0), ("patience", patience, 0), ("top_k", top_k, 1),
                             ("batch_size", batch_size, 1), ("scan_samples", scan_samples, 1),
                             ("rounds", rounds, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")
    fit, val = _split(train, validation, seed)
    from edgecompress.measure import keras_accuracy, keras_macs

    base_acc = keras_accuracy(model, val)
    scan_data = (val[0][:scan_samples], val[1][:scan_samples])
    scan_acc = keras_accuracy(model, scan_data)
    settings = {"epochs": int(epochs), "patience": int(patience), "learning_rate": float(learning_rate),
                "batch_size": int(batch_size), "distill": bool(distill), "strategy": strategy,
                "latency": target.latency_ms is not None, "tflm_samples": 32, "seed": int(seed)}
    shared = {"model": model_to_bytes(model), "fit": fit, "val": val, "scan": scan_data,
              "settings": settings}
    executor = Executor(workers, ray_address)
    result = SearchResult(target=target, max_drop=float(max_drop), baseline_accuracy=base_acc,
                          settings=settings, executor=executor.description)
    actions = space.layer_actions(model, ratios, rank_fractions, lut_bits)
    log.info("search: %d actions on %d layers, %s", sum(map(len, actions.values())), len(actions),
             executor.description)
    with executor.start(shared):
        jobs = [{"task": "candidate", "actions": [], "mode": "int8", "seed": seed, "name": "int8_ptq"}]
        jobs += [{"task": "scan", "action": a.to_dict()} for acts in actions.values() for a in acts]
        first = executor.map(tasks.run, jobs)
        baseline, scans = first[0], first[1:]
        for row in scans:
            row["drop"] = 100 * (scan_acc - row["accuracy"])
        result.sensitivities = scans
        reference = {"params": int(model.count_params()), "bytes": int(model.count_params()),
                     "decoded": 0, "peak": space.activation_peak(model),
                     "macs": int(keras_macs(model)), "flash": baseline["flash"],
                     "arena": baseline["arena"], "latency_ms": baseline["latency_ms"]}
        result.candidates = [baseline]
        int8_hurts = 100 * (base_acc - baseline["accuracy"]) > max_drop / 2
        budget, tried = target, set()
        for round_ in range(rounds):
            plans = [p for p in allocate(model, scans, budget, reference)
                     if _key(p["actions"]) not in tried][:top_k]
            if not plans:
                break
            jobs = []
            for plan in plans:
                tried.add(_key(plan["actions"]))
                payload = [a.to_dict() for a in plan["actions"]]
                stem = f"cand{len(tried) - 1}"
                plan_jobs = [("int8", f"{stem}_int8")]
                if try_float and int8_hurts and (target.flash is None or 4 * plan["params"] < target.flash):
                    plan_jobs.append(("float32", f"{stem}_float32"))
                jobs += [{"task": "candidate", "actions": payload, "mode": mode, "seed": seed,
                          "name": name, "estimate": plan["estimate"]} for mode, name in plan_jobs]
            measured = executor.map(tasks.run, jobs)
            result.candidates += measured
            _judge(result)
            if result.winner is not None:
                break
            budget = _corrected(target, measured)  # NetAdapt-style: aim lower by what was missed
            log.info("search round %d: nothing fits; next round aims at %s", round_ + 1,
                     budget.describe())
    return result


def _key(actions) -> tuple:
    return tuple(sorted((a.layer, a.kind, a.value) for a in actions))


def _corrected(target: Target, measured: list[dict]) -> Target:
    """``target`` tightened by the worst ratio of measured to estimated cost seen so far."""
    def ratio(key, column):
        values = [c[column] / c["estimate"][key] for c in measured
                  if c.get("estimate") and c["estimate"].get(key) and c[column] is not None]
        return max(values + [1.0])

    return Target(
        flash=None if target.flash is None else int(target.flash / ratio("flash", "flash")),
        arena=None if target.arena is None else int(target.arena / ratio("arena", "arena")),
        latency_ms=None if target.latency_ms is None
        else target.latency_ms / ratio("latency_ms", "latency_ms"))


def allocate(model, scans, target: Target, reference: dict) -> list[dict]:
    """Greedy allocation over measured sensitivities (NetAdapt's rule): repeatedly take the
    per-layer step with the least accuracy drop per unit of over-budget resource it frees. A layer
    may take one pruning ratio and one rank (its filters are pruned, then it is factorized).

    The flash estimate moves with the int8 weight bytes (LUT layers at their bit width), the arena
    with the activation peak plus the LUT kernels TFLM decodes into it, the latency with MACs, each
    scaled from the measured int8 baseline. Each move is checked by building the plan's model.

    Returns:
        Plans ``{"actions", "params", "estimate", "margin"}``, one per margin crossed, then the
        most compressed plan if none was reached.
    """
    by_layer: dict[tuple, list[dict]] = {}  # one choice per layer and kind: prune, then factorize
    for row in scans:
        by_layer.setdefault((row["action"]["layer"], row["action"]["kind"]), []).append(row)
    chosen: dict[tuple, dict] = {}
    margins, plans, seen = list(MARGINS), [], set()
    estimate = _estimate(reference, reference)
    while margins:
        over = {k: limit for k, limit in _limits(target).items()
                if estimate[k] is not None and estimate[k] > margins[-1] * limit}
        if not over:
            break
        best, best_score = None, None
        for slot, rows in by_layer.items():
            current = chosen.get(slot)
            for row in rows:
                if row is current:
                    continue
                gain = sum(_gain(reference, current, row, key) / over[key] for key in over)
                if gain <= 0 or any(  # a move may not push a resource that fits over its budget
                        estimate[key] - _gain(reference, current, row, key) > limit
                        for key, limit in _limits(target).items()
                        if key not in over and estimate[key] is not None):
                    continue
                worse = row["drop"] - (current["drop"] if current else 0.0)
                score = (max(worse, 0.0) + 1e-3) / gain
                if best_score is None or score < best_score:
                    best, best_score = row, score
        if best is None:
            break
        chosen[best["action"]["layer"], best["action"]["kind"]] = best
        new, resolved = space.apply(model, [Action(**r["action"]) for r in chosen.values()])
        measured = {"params": int(new.count_params()), "bytes": space.int8_bytes(new, resolved),
                    "decoded": space.decoded_bytes(new, resolved), "peak": space.activation_peak(new),
                    "macs": _macs(new)}
        estimate = _estimate(reference, measured)
        for margin in list(margins):
            limits = _limits(target)
            if all(estimate[k] is None or estimate[k] <= margin * limit for k, limit in limits.items()):
                margins.remove(margin)
                key = tuple(sorted(tuple(r["action"].values()) for r in chosen.values()))
                if key not in seen:
                    seen.add(key)
                    plans.append(_plan(chosen, measured, estimate, margin))
    if not plans and chosen:
        plans.append(_plan(chosen, measured, estimate, None))
    return plans


def _plan(chosen, measured, estimate, margin):
    return {"actions": sorted(Action(**r["action"]) for r in chosen.values()),
            "params": measured["params"], "estimate": dict(estimate), "margin": margin}


def _limits(target: Target) -> dict:
    return {k: v for k, v in (("flash", target.flash), ("arena", target.arena),
                              ("latency_ms", target.latency_ms)) if v is not None}


def _estimate(reference, measured) -> dict:
    latency = reference["latency_ms"]
    return {"flash": reference["flash"] + (measured["bytes"] - reference["bytes"]),
            "arena": reference["arena"] * measured["peak"] / max(reference["peak"], 1) + measured["decoded"],
            "latency_ms": None if latency is None else latency * measured["macs"] / max(reference["macs"], 1)}


def _gain(reference, current, row, key) -> float:
    """How much ``row`` frees of resource ``key`` beyond the layer's current choice."""
    column = {"flash": "bytes", "arena": "peak", "latency_ms": "macs"}[key]
    scale = {"flash": 1.0, "arena": reference["arena"] / max(reference["peak"], 1),
             "latency_ms": (reference["latency_ms"] or 0.0) / max(reference["macs"], 1)}[key]
    before = current if current else reference
    gain = (before[column] - row[column]) * scale
    if key == "arena":  # LUT kernels are decoded into the arena
        gain -= row["decoded"] - before["decoded"]
    return gain


def _macs(model) -> int:
    from edgecompress.measure import keras_macs

    return int(keras_macs(model))


def _judge(result: SearchResult) -> None:
    for cand in result.candidates:
        cand["drop"] = 100 * (result.baseline_accuracy - cand["accuracy"])
        misses = result.target.misses(cand["flash"], cand["arena"], cand["latency_ms"])
        if cand["drop"] > result.max_drop:
            misses.append(f"accuracy drop {cand['drop']:.2f} pp > {result.max_drop:g} pp")
        if cand["tflm_agreement"] < MIN_TFLM_AGREEMENT:
            misses.append(f"TFLM agrees with LiteRT on {cand['tflm_agreement']:.0%} only")
        cand["misses"] = misses
        cand["fits"] = not misses
    fitting = [c for c in result.candidates if c["fits"]]
    if fitting:
        result.winner = max(fitting, key=lambda c: (c["accuracy"], -c["flash"]))
    else:
        result.closest = min(result.candidates, key=lambda c: (
            result.target.excess(c["flash"], c["arena"], c["latency_ms"])
            + max(0.0, c["drop"] - result.max_drop) / 100, c["flash"]))


def require_winner(result: SearchResult) -> dict:
    """The winner, or :class:`CheckError` naming the closest candidate and what it misses."""
    if result.winner is not None:
        return result.winner
    c = result.closest
    raise CheckError(f"no candidate meets {result.target.describe()} within "
                     f"{result.max_drop:g} pp ({len(result.candidates)} tried); closest: "
                     f"{c['name']} ({describe(c)}) misses {'; '.join(c['misses'])}")


def describe(cand: dict) -> str:
    acts = ", ".join(Action(**a).describe() for a in cand["actions"]) or "no structural change"
    return f"{cand['mode']}, {acts}"


def _split(train, validation, seed):
    x, y = train
    if validation is not None:
        return (x, y), validation
    n_val = max(50, len(x) // 10)
    if len(x) < 2 * n_val:
        raise ValueError(f"`train` must hold at least {2 * n_val} samples to carve a validation "
                         f"split from it (or pass `validation`). Received: {len(x)}")
    order = np.random.default_rng(seed).permutation(len(x))
    return (x[order[n_val:]], y[order[n_val:]]), (x[order[:n_val]], y[order[:n_val]])


def _check_number(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < low:
        raise ValueError(f"`{name}` must be a number >= {low}. Received: {name}={value!r}")
