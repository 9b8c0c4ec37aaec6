"""Fit a model into a device budget, NetAdapt-style: shrink one layer a step at a time, each step
chosen among per-layer proposals by the accuracy they keep after a short fine-tune, then give the
model that fits a long final fine-tune, and measure every candidate on the real runtimes.

Beyond the anchors (AMC and NetAdapt are papers with PyTorch code; NetsPresso and Edge Impulse EON
are hosted): several budgets at once (flash, arena, latency) through one excess measure, moves
across families (filter pruning, low-rank, TFLM LUT widths), and every candidate a real file
measured on the real runtimes: flash and arena in TensorFlow Lite Micro, latency in LiteRT.

References:
    Yang et al., "NetAdapt: Platform-Aware Neural Network Adaptation for Mobile Applications",
    ECCV 2018 (per-layer proposals that free a resource step, short-term fine-tunes, the
    proposal keeping the most accuracy taken, a decaying resource schedule, a long fine-tune).
    He et al., "AMC: AutoML for Model Compression and Acceleration on Mobile Devices", ECCV 2018.
    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015 (the final
    fine-tune).
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from edgecompress._errors import GoalMissedError
from edgecompress._keras import check_graph_model
from edgecompress.artifacts import first_accuracy
from edgecompress.search import space, tasks
from edgecompress.search.jobs import Executor, model_to_bytes
from edgecompress.search.space import Action
from edgecompress.search.targets import Target, parse_target

log = logging.getLogger("edgecompress.search")

PRUNE_RATIOS = None  # a move may keep any whole number of filters
RANK_FRACTIONS = None  # and take any rank
LUT_BITS = (4, 2)
STEP = 0.5  # an iteration frees this fraction of the remaining excess (in log ratio to the budget)
LAST_STEP = math.log(1.25)  # within 25% of every budget, the next move goes straight to it
MAX_STEP = math.log(2)  # and no move more than halves the cost (early moves that large ruin accuracy)
SHORT_EPOCHS = 1
FINAL_EPOCHS = 30
PATIENCE = 8
MAX_ITERATIONS = 40
TOP_K = 2  # fitting proposals given the final fine-tune
MIN_TFLM_AGREEMENT = 0.95
LOSS_EPSILON = 2e-3  # a move keeping all of the validation loss still costs this much per excess freed
MIN_SPLIT_SAMPLES = 20  # the least training data a validation split is carved from
MIN_SPLIT_VALIDATION = 50  # a split's validation samples below which one sample weighs > 2 pp
RETRIES = 4  # halvings of the step when no layer can free it


@dataclass
class SearchResult:
    """Everything a search found.

    Attributes:
        target: the budget.
        max_drop: the drop allowed against the float model: percentage points of accuracy, or
            percent more error for a regression output (each output's, :meth:`Task.drop`).
        tasks: the model's :class:`edgecompress.tasks.Task` per output.
        baseline: the float Keras model's score per output on the validation data.
        sensitivities: one row per proposal (iteration, move, estimate, excess, validation
            scores after the short fine-tune, score, whether it was taken).
        candidates: one row per measured candidate (with its ``tflite`` and ``keras`` bytes):
            the int8 baseline, the model after each accepted move, the final fine-tunes.
        winner: the best candidate meeting the budget and ``max_drop`` (None if none does).
        closest: the candidate nearest to meeting them when none does.
        settings: the fine-tune settings (for the recipe that reproduces the winner).
        iterations: one row per accepted move (the schedule: excess before, aim, move, scores).

    Every candidate has ``scores`` (LiteRT's, per output, on the validation data), ``drop`` (the
    largest over its outputs) and ``accuracy`` (the first classification output's, else None).
    """

    target: Target
    max_drop: float
    tasks: list
    baseline: dict
    sensitivities: list = field(default_factory=list)
    candidates: list = field(default_factory=list)
    winner: dict | None = None
    closest: dict | None = None
    settings: dict = field(default_factory=dict)
    executor: str = ""
    iterations: list = field(default_factory=list)

    @property
    def baseline_accuracy(self) -> float | None:
        """The first classification output's baseline accuracy (None for regression only)."""
        return first_accuracy(self.tasks, [self.baseline[t.output] for t in self.tasks])

    def drops(self, scores: dict) -> dict:
        """``{output: drop}`` of ``scores`` against the baseline (:meth:`Task.drop`)."""
        return {t.output: t.drop(self.baseline[t.output], scores[t.output]) for t in self.tasks}

    def drop(self, scores: dict) -> float:
        """The largest drop of ``scores`` over the outputs."""
        return max(self.drops(scores).values())

    def describe_scores(self, scores: dict) -> str:
        """``"accuracy 0.9712"``; with several outputs ``"cls accuracy 0.9712, box mse 0.0123"``."""
        def one(t):
            value = f"{scores[t.output]:.4f}" if t.higher_is_better else f"{scores[t.output]:.4g}"
            return f"{t.metric_name} {value}" if len(self.tasks) == 1 else f"{t.output} {t.metric_name} {value}"

        return ", ".join(one(t) for t in self.tasks)

    def pareto(self) -> list[dict]:
        """Candidates no other beats on both flash and drop, smallest first."""
        front, best = [], math.inf
        ranked = sorted(((c["flash"], self.drop(c["scores"]), i) for i, c in enumerate(self.candidates)))
        for _, drop, i in ranked:
            if drop < best:
                front.append(self.candidates[i])
                best = drop
        return front


def search(model, train, target, max_drop: float = 1.0, validation=None, *, workers=None,
           ray_address=None, ratios=PRUNE_RATIOS, rank_fractions=RANK_FRACTIONS,
           lut_bits=LUT_BITS, epochs: int = FINAL_EPOCHS, patience: int = PATIENCE,
           learning_rate: float = 1e-3, batch_size: int = 64, distill: bool = True, strategy=None,
           scan_samples: int = 1000, top_k: int = TOP_K, try_float: bool = True, rounds: int = 2,
           seed: int = 0, short_epochs: int = SHORT_EPOCHS, step: float = STEP,
           max_iterations: int = MAX_ITERATIONS, int8_io: bool | None = None) -> SearchResult:
    """Search filter counts, ranks and LUT bit widths per layer (int8, or float32 where int8
    hurts) for the most accurate model that fits ``target`` within ``max_drop``.

    Any graph model with labeled data: each output is scored by its task
    (:mod:`edgecompress.tasks`: accuracy, or the error of a regression output such as an
    autoencoder's), and a candidate's drop is the worst of its outputs'.

    1. Measure the int8 file of ``model`` on the runtimes.
    2. Iterate (NetAdapt): the excess over the budget is ``sum(max(0, ln(cost / budget)))`` over
       flash, arena and latency. Each iteration aims to remove ``step`` of it, at most
       :data:`MAX_STEP` (scaled by ``step`` / :data:`STEP`; ``step=1`` goes straight to the
       budget), and all of it once under
       :data:`LAST_STEP`: the schedule decays and the last moves are small. For every
       layer and kind of move, a job finds the least shrink whose estimate reaches the aim,
       fine-tunes it for ``short_epochs`` and measures its validation accuracy and loss; the
       proposal adding the least validation loss per excess freed is taken (the loss rather than
       the accuracy, which moves in steps of one sample on a few hundred). Estimates are taken from the
       current model's measured file; the model after each move is itself exported and measured
       (a candidate), so errors do not add up.
    3. The ``top_k`` proposals that fit get the final fine-tune (:func:`tasks.final_finetune`:
       distilled from ``model``, augmented inputs, early stopping), are exported, run in
       TensorFlow Lite Micro and measured; if none fits the budget, the search goes on from the
       closest (``rounds`` times at most).

    Args:
        model: a trained Sequential or Functional tf_keras model (not modified).
        train: ``(x, y)`` training data (``y``: one array per output, as a list or a dict by
            output name, for several); a validation split is taken from it unless given.
        target: a :class:`Target` or a ``"flash=64KB,arena=20KB"`` string.
        max_drop: drop allowed against the float model: percentage points of accuracy, or
            percent more error for a regression output.
        validation: ``(x, y)`` for proposals, early stopping and the accuracy of candidates.
        workers: local worker processes (default: the usable cores; 1 runs in this process).
        ray_address: run the jobs on a Ray cluster (an address, ``"auto"``, or ``"local"`` for a
            Ray the caller initialized).
        ratios: fractions of a layer's current filters one move may remove (a grid; None: any
            whole number of filters).
        rank_fractions: fractions of a layer's full rank a factorization may keep (None: any).
        lut_bits: bit widths of TFLite Micro LUT compression a move may give a layer (int8
            files only; empty: none).
        epochs: most epochs of the final fine-tune (0: none).
        patience: early-stopping patience of the final fine-tune.
        learning_rate: Adam's learning rate (the final fine-tune's second phase takes a tenth).
        batch_size: fine-tune batch size.
        distill: distil the final fine-tune from ``model`` (one classification output).
        strategy: ``"mirrored"`` or ``"multiworker"`` data-parallel fine-tunes (see
            :mod:`edgecompress.distribute`; distillation runs without it).
        scan_samples: validation samples a proposal's accuracy is measured on.
        top_k: proposals that fit given the final fine-tune.
        try_float: also measure float32 files of those that could fit as float, when int8 costs
            more than half of ``max_drop``.
        rounds: final stages; after one whose files all miss the budget, the search goes on.
        seed: the seed of every job.
        short_epochs: epochs of each proposal's fine-tune (0: none).
        step: fraction of the excess an iteration removes, in (0, 1] (1: straight to the budget).
        max_iterations: most accepted moves.
        int8_io: int8 files take int8 inputs and give int8 outputs (the device quantizes with the
            input tensor's scale and zero point, as MLPerf Tiny's files do). None (default): when
            ``target`` sets an arena, whose float input and output buffers and their int8 copies
            this saves (12 KB of ResNet-8's 32x32x3 input); float32 files keep float IO.

    Returns:
        A :class:`SearchResult`; its ``winner`` is None when nothing fits (see ``closest``).
    """
    check_graph_model(model)
    target = parse_target(target) if isinstance(target, str) else target
    if not isinstance(target, Target) or target == Target():
        raise ValueError(f"`target` must set at least one of flash, arena, latency. Received: {target!r}")
    _check_number("max_drop", max_drop, 0)
    if int8_io is not None and not isinstance(int8_io, bool):
        raise ValueError(f"`int8_io` must be True, False or None. Received: int8_io={int8_io!r}")
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not 0 < step <= 1:
        raise ValueError(f"`step` must be a number in (0, 1]. Received: step={step!r}")
    for name, value, low in (("epochs", epochs, 0), ("patience", patience, 0), ("top_k", top_k, 1),
                             ("batch_size", batch_size, 1), ("scan_samples", scan_samples, 1),
                             ("rounds", rounds, 1), ("short_epochs", short_epochs, 0),
                             ("max_iterations", max_iterations, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")
    from edgecompress import tasks as tasks_lib
    from edgecompress.datasets import take

    train = (train[0], _labels(model, train, "train"))
    task_list = tasks_lib.infer_tasks(model, train[1])
    if validation is not None:
        validation = (validation[0], _labels(model, validation, "validation"))
    fit, val = _split(train, validation, seed)
    baseline = tasks.keras_scores(model, val, task_list)
    scan_data = (take(val[0], slice(scan_samples)), take(val[1], slice(scan_samples)))
    settings = {"epochs": int(epochs), "patience": int(patience), "learning_rate": float(learning_rate),
                "batch_size": int(batch_size), "distill": bool(distill), "strategy": strategy,
                "short_epochs": int(short_epochs), "step": float(step),
                "ratios": None if ratios is None else tuple(float(r) for r in ratios),
                "rank_fractions": None if rank_fractions is None else tuple(float(f) for f in rank_fractions),
                "lut_bits": tuple(int(b) for b in lut_bits),
                "latency": target.latency_ms is not None, "tflm_samples": 32, "seed": int(seed),
                "int8_io": target.arena is not None if int8_io is None else int8_io}
    limits = _limits(target)
    original = model_to_bytes(model)
    shared = {"model": original, "fit": fit, "val": val, "scan": scan_data, "settings": settings,
              "limits": limits, "tasks": task_list}
    executor = Executor(workers, ray_address)
    result = SearchResult(target=target, max_drop=float(max_drop), tasks=task_list, baseline=baseline,
                          settings=settings, executor=executor.description)
    from edgecompress import surgery

    state = {"model": original, "lut": {}, "moves": [],
             "scores": tasks.keras_scores(model, scan_data, task_list),
             "loss": tasks.validation_loss(surgery.clone(model), scan_data, task_list),
             "stats": space.stats(model, {}), "estimate": None, "measured": None}
    log.info("search: %s on %s", target.describe(), executor.description)
    with executor.start(shared):
        search_ = _Search(executor, result, limits, settings, seed, max_iterations)
        search_.measure(state, "int8_ptq")
        int8_hurts = result.drop(state["measured"]["scores"]) > max_drop / 2
        for _ in range(rounds):
            finalists = search_.adapt(state, top_k)
            if not finalists:
                break
            jobs, owners = [], []
            for fin in finalists:
                modes = ["int8"]
                if try_float and int8_hurts and (target.flash is None
                                                 or 4 * fin["stats"]["params"] < target.flash):
                    modes.append("float32")
                for mode in modes:
                    name = f"final{sum(c['final'] for c in result.candidates) + len(jobs)}_{mode}"
                    jobs.append(_candidate_job(fin, mode, name, seed, final=True))
                    owners.append(fin)
            for cand, fin in zip(executor.map(tasks.run, jobs), owners, strict=True):
                search_.record(cand, fin)
            _judge(result)
            if result.winner is not None:
                break
            over = [(target.excess(c["flash"], c["arena"], c["latency_ms"]), i)
                    for i, c in enumerate(result.candidates[-len(jobs):]) if c["mode"] == "int8"]
            if not over or min(over)[0] == 0:
                break  # what misses is accuracy: a smaller model will not help
            state = {**owners[min(over)[1]], "measured": result.candidates[-len(jobs) + min(over)[1]]}
    _judge(result)
    return result


class _Search:
    """The NetAdapt loop over the executor's jobs, and the candidates it records."""

    def __init__(self, executor, result, limits, settings, seed, max_iterations):
        self.executor, self.result, self.limits = executor, result, limits
        self.settings, self.seed, self.max_iterations = settings, seed, max_iterations

    def footprint(self, state) -> dict:
        return state["measured"] if state["measured"] is not None else state["estimate"]

    def measure(self, state, name=None) -> None:
        name = name or f"step{len(self.result.iterations)}_int8"
        cand = self.executor.map(tasks.run, [_candidate_job(state, "int8", name, self.seed)])[0]
        self.record(cand, state)
        state["measured"] = cand

    def record(self, cand: dict, state: dict) -> None:
        cand.update(actions=[m["action"] for m in state["moves"]], moves=list(state["moves"]),
                    estimate=state["estimate"])
        self.result.candidates.append(cand)
        log.info("search: %s flash %s B, arena %s B, %s%s", cand["name"], f"{cand['flash']:,}",
                 f"{cand['arena']:,}", self.result.describe_scores(cand["scores"]),
                 "".join(f", {p['kind']} {p['epochs']} epochs" for p in cand["phases"]))

    def adapt(self, state: dict, top_k: int) -> list[dict]:
        """Accept moves until the model fits; the ``top_k`` fitting proposals of the last
        iteration (or the current model, if it fits as measured). Empty when stuck or when the
        input model fits as it is."""
        while True:
            if state["measured"] is None and space.excess(self.limits, state["estimate"]) == 0:
                self.measure(state)
            current = space.excess(self.limits, self.footprint(state))
            if current == 0:  # an unchanged model needs no fine-tune: its int8 file is measured
                return [state] if state["moves"] else []
            if len(self.result.iterations) >= self.max_iterations:
                break
            proposals, current, aim = self._propose(state, current)
            if proposals is None:
                return [state]  # measured with the proposals, it fits
            if not proposals:
                break
            fitting = [p for p in proposals if p["excess"] == 0]
            if aim == 0 and fitting:  # the last move: the best few that fit go to the final stage
                return [self._accept(state, p, current, i == 0) for i, p in enumerate(fitting[:top_k])]
            state = self._accept(state, proposals[0], current)
        if state["measured"] is None:
            self.measure(state)
        log.warning("search: no move frees more of %s; the closest is reported", self.result.target.describe())
        return []

    def _propose(self, state, current):
        """The proposals of one iteration, best first (None: the current model, measured in
        the same batch, fits)."""
        from edgecompress.search.jobs import model_from_bytes

        model = model_from_bytes(state["model"])
        pairs = space.options(model, state["lut"], lut_bits=self.settings["lut_bits"])
        step = self.settings["step"]
        aim = 0.0 if current <= LAST_STEP or step == 1 else max(
            current * (1 - step), current - MAX_STEP * step / STEP)
        iteration = len(self.result.iterations)
        for _ in range(RETRIES):
            jobs = [{"task": "propose", "model": state["model"], "lut": state["lut"], "layer": layer,
                     "kind": kind, "aim": aim, "reference": self.footprint(state), "seed": self.seed}
                    for layer, kind in pairs]
            measuring = state["measured"] is None
            if measuring:
                jobs.append(_candidate_job(state, "int8", f"step{iteration}_int8", self.seed))
            out = self.executor.map(tasks.run, jobs)
            if measuring:
                self.record(out[-1], state)
                state["measured"] = out.pop()
                current = space.excess(self.limits, state["measured"])
                if current == 0:
                    return None, current, aim
            reached = [p for p in out if p["reached"] and math.isfinite(p["loss"])]
            for p in out:
                row = {k: v for k, v in p.items() if k not in ("model", "lut")}
                row.update(iteration=iteration, aim=aim, taken=False)
                if p["reached"]:
                    p["estimate"] = space.estimate(self.footprint(state), state["stats"], p["stats"])
                    p["excess"] = space.excess(self.limits, p["estimate"])
                    freed = max(current - p["excess"], 1e-9)
                    worse = max(0.0, p["loss"] - state["loss"])
                    p["score"] = (worse + LOSS_EPSILON) / freed
                    row.update(estimate=p["estimate"], excess=p["excess"], score=p["score"])
                p["row"] = row
                self.result.sensitivities.append(row)
            if reached:
                return sorted(reached, key=lambda p: (p["score"], p["action"]["layer"],
                                                      p["action"]["kind"])), current, aim
            aim = (aim + current) / 2  # no layer frees that much: a smaller step
            log.info("search: no layer frees the step; aiming at excess %.3f", aim)
        return [], current, aim

    def _accept(self, state, proposal, current, taken=True) -> dict:
        """The state after ``proposal``; ``taken``: it is the iteration's move (not a runner-up
        sent to the final stage)."""
        move = {"action": proposal["action"], "step": proposal["step"],
                "short_epochs": self.settings["short_epochs"] if proposal["step"] else 0}
        new = {"model": proposal["model"], "lut": proposal["lut"], "moves": state["moves"] + [move],
               "scores": proposal["scores"], "loss": proposal["loss"], "stats": proposal["stats"],
               "estimate": proposal["estimate"], "measured": None}
        if not taken:
            return new
        proposal["row"]["taken"] = True
        self.result.iterations.append({"excess": current, "move": Action(**proposal["action"]).describe(),
                                       "scores": proposal["scores"], "estimate": proposal["estimate"]})
        log.info("search: iteration %d takes %s (%s, excess %.3f -> %.3f)",
                 len(self.result.iterations), Action(**proposal["action"]).describe(),
                 self.result.describe_scores(proposal["scores"]), current, proposal["excess"])
        return new


def _candidate_job(state, mode, name, seed, final=False) -> dict:
    return {"task": "candidate", "model": state["model"], "lut": state["lut"], "mode": mode,
            "name": name, "seed": seed, "final": final}


def _limits(target: Target) -> dict:
    return {k: v for k, v in (("flash", target.flash), ("arena", target.arena),
                              ("latency_ms", target.latency_ms)) if v is not None}


def _judge(result: SearchResult) -> None:
    for cand in result.candidates:
        drops = result.drops(cand["scores"])
        cand["drop"] = max(drops.values())
        misses = result.target.misses(cand["flash"], cand["arena"], cand["latency_ms"])
        for t in result.tasks:
            lost = drops[t.output]
            if lost > result.max_drop:
                misses.append(f"{t.output} {t.metric_name} drop {lost:.2f}{t.drop_unit} > "
                              f"{result.max_drop:g}{t.drop_unit}")
        if cand["tflm_agreement"] < MIN_TFLM_AGREEMENT:
            misses.append(f"TFLM agrees with LiteRT on {cand['tflm_agreement']:.0%} only")
        cand["misses"] = misses
        cand["fits"] = not misses
    fitting = [c for c in result.candidates if c["fits"]]
    if fitting:
        result.winner = min(fitting, key=lambda c: (c["drop"], c["flash"]))
    else:
        result.closest = min(result.candidates, key=lambda c: (
            result.target.excess(c["flash"], c["arena"], c["latency_ms"])
            + max(0.0, c["drop"] - result.max_drop) / 100, c["flash"]))


def require_winner(result: SearchResult) -> dict:
    """The winner, or :class:`GoalMissedError` naming the closest candidate and what it misses."""
    if result.winner is not None:
        return result.winner
    c = result.closest
    raise GoalMissedError(f"no candidate meets {result.target.describe()} within a drop of "
                          f"{result.max_drop:g} ({len(result.candidates)} tried); closest: "
                          f"{c['name']} ({describe(c)}) misses {'; '.join(c['misses'])}")


def describe(cand: dict) -> str:
    """The candidate's mode and, per layer and kind, where its moves left it."""
    last = {}
    for a in cand["actions"]:
        if a["kind"] != "lut" or cand["mode"] == "int8":
            last[a["layer"], a["kind"]] = Action(**a).describe()
    mode = cand["mode"] + (" with int8 input/output" if cand.get("int8_io") else "")
    return ", ".join([mode, *last.values()]) if last else f"{mode}, no structural change"


def _labels(model, data, argument: str):
    """``data``'s labels: the array of a one-output model, else a list in output order."""
    from edgecompress import tasks as tasks_lib

    y = data[1]
    if y is None:
        raise ValueError(f"`{argument}` must hold labels or targets y (an autoencoder's are its "
                         f"inputs: pass (x, x)). Received: no y")
    names = list(model.output_names)
    labels = tasks_lib.split_labels(y, names)
    return labels[0] if len(names) == 1 else labels


def _split(train, validation, seed):
    """``(fit, validation)``: ``validation`` if given, else a seeded tenth of ``train`` (at least
    a third of it up to 50 samples, so small data still leaves most of it to train on)."""
    from edgecompress.datasets import take

    x, y = train
    if validation is not None:
        return (x, y), validation
    n_val = max(len(x) // 10, min(MIN_SPLIT_VALIDATION, len(x) // 3))
    if len(x) < MIN_SPLIT_SAMPLES:
        raise ValueError(f"`train` must hold at least {MIN_SPLIT_SAMPLES} samples to carve a validation "
                         f"split from it (or pass `validation`). Received: {len(x)}")
    if n_val < MIN_SPLIT_VALIDATION:
        log.warning("search: validation holds %d samples (one is %.1f pp of accuracy)", n_val, 100 / n_val)
    order = np.random.default_rng(seed).permutation(len(x))
    return (x[order[n_val:]], take(y, order[n_val:])), (x[order[:n_val]], take(y, order[:n_val]))


def _check_number(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < low:
        raise ValueError(f"`{name}` must be a number >= {low}. Received: {name}={value!r}")
