"""``factorize``: replace Dense and Conv2D layers by chains of smaller plain Keras layers.

Built on :func:`edgecompress.surgery.rebuild`: the result holds only built-in Dense / Conv2D
layers, so it trains with ``fit``, saves as ``.keras`` and converts to TFLite with no custom op.

References:
    Denton et al., NeurIPS 2014 (SVD of fully connected layers).
    Jaderberg et al., BMVC 2014 (spatial k x 1 / 1 x k factorization).
    Kim et al., ICLR 2016 (Tucker-2 of convolutions).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from edgecompress._keras import check_graph_model, keras
from edgecompress._progress import Progress
from edgecompress.lowrank import decompose as dec
from edgecompress.measure import layer_macs, node_shapes
from edgecompress.surgery import (
    Replacement,
    TransformReport,
    attach,
    find_layers,
    iter_layers,
    layer_weights,
    rebuild,
)

METHODS = ("auto", "svd", "spatial_svd", "tucker2")
TARGETS = ("params", "macs")
TUCKER_MIN_CHANNELS = 8
"""``method="auto"`` uses Tucker-2 for a k x k Conv2D (k > 1) with at least this many input and
output channels, spatial SVD for any other Conv2D (1x1 convs and thin convs such as a first layer
on a grayscale image), and SVD for Dense."""

_TYPES = {
    "auto": (keras.layers.Dense, keras.layers.Conv2D),
    "svd": (keras.layers.Dense,),
    "spatial_svd": (keras.layers.Conv2D,),
    "tucker2": (keras.layers.Conv2D,),
}


@dataclass
class LayerFactorization:
    """One row of a :class:`FactorizationReport`.

    Attributes:
        layer: the original layer's name.
        method: ``svd``, ``spatial_svd`` or ``tucker2`` (None for a layer that was not eligible).
        rank: the rank used (``(rank_in, rank_out)`` for Tucker-2), or None.
        full_rank: the rank at which the factorization is exact.
        params_before / params_after: parameters of the layer and of its replacement.
        macs_before / macs_after: multiply-accumulates of one inference.
        retained_energy: the kept fraction of squared singular values (for Tucker-2, the HOSVD
            lower bound ``1 - dropped_in - dropped_out``).
        factorized: whether the layer was replaced.
        reason: why a layer was left alone.
    """

    layer: str
    method: str | None
    rank: int | tuple | None
    full_rank: int | tuple | None
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    retained_energy: float
    factorized: bool
    reason: str = ""


class FactorizationReport(list):
    """The list of :class:`LayerFactorization` rows that ``factorize(..., return_report=True)`` returns."""

    @property
    def factorized(self) -> list[LayerFactorization]:
        return [row for row in self if row.factorized]

    @property
    def skipped(self) -> list[LayerFactorization]:
        return [row for row in self if not row.factorized]

    def totals(self) -> dict:
        """Summed params / MACs before and after, over the factorized layers."""
        keys = ("params_before", "params_after", "macs_before", "macs_after")
        return {k: int(sum(getattr(row, k) for row in self.factorized)) for k in keys}

    def to_dicts(self) -> list[dict]:
        return [asdict(row) for row in self]

    def to_markdown(self) -> str:
        from edgecompress._markdown import table

        return table(
            ["layer", "method", "rank", "params", "MACs", "energy kept", "note"],
            ([r.layer, r.method or "-", r.rank if r.factorized else "-",
              f"{r.params_before:,} -> {r.params_after:,}", f"{r.macs_before:,} -> {r.macs_after:,}",
              f"{r.retained_energy:.4f}", r.reason] for r in self))


def factorize(
    model: keras.Model,
    method: str = "auto",
    energy: float | None = None,
    rank=None,
    target_ratio: float | None = None,
    target: str = "params",
    layers=None,
    force: bool = False,
    iterations: int = 2,
    data=None,
    return_report: bool = False,
):
    """Replace Dense / Conv2D layers of a clone of ``model`` by low-rank chains of plain layers.

    * Dense, ``svd``: ``W ~= (U sqrt(S)) (sqrt(S) V^T)``: ``Dense(rank, use_bias=False)`` then
      ``Dense(units)`` with the bias and activation (Denton et al.).
    * Conv2D, ``spatial_svd``: the kernel reshaped to ``(kh*cin, kw*cout)`` and truncated by SVD:
      ``Conv2D(rank, (kh, 1))`` then ``Conv2D(filters, (1, kw))`` (Jaderberg et al., as in AIMET).
    * Conv2D, ``tucker2``: HOSVD of the channel unfoldings refined by ``iterations`` HOOI sweeps:
      1x1 reduce to ``rank_in``, k x k core ``rank_in -> rank_out``, 1x1 expand (Kim et al.);
      a mode kept at its full channel count needs no 1x1 layer, which is then left out.

    Strides, padding and dilation are split over the chain so shapes and (at full rank) outputs
    are those of the original; bias and activation go on the last layer. Grouped or
    channels-first convolutions and subclasses (quantized layers, Conv2DTranspose) are left alone.
    A layer is only replaced when its factorized form costs less (in ``target``) than the layer,
    unless ``force=True``. ``method="auto"`` follows :data:`TUCKER_MIN_CHANNELS`.

    Give exactly one way to choose ranks:

    * ``energy``: per layer, the smallest rank keeping this fraction of the squared singular
      values (for Tucker-2, per channel mode).
    * ``rank``: an int for every layer (capped at each layer's full rank), or a dict
      ``{layer_name: rank}`` that also selects the layers; a Tucker-2 rank may be an int or a
      ``(rank_in, rank_out)`` pair. :func:`ranks_for_accuracy` builds such a dict.
    * ``target_ratio``: keep this fraction of the selected layers' ``target`` cost (parameters or
      MACs). Ranks are distributed greedily: each step takes the rank cut with the smallest loss
      of singular-value energy per unit of cost saved.

    Args:
        model: a built Sequential or Functional tf_keras model. It is not modified.
        method: ``"auto"``, ``"svd"`` (Dense), ``"spatial_svd"`` or ``"tucker2"`` (Conv2D).
        energy: in (0, 1].
        rank: int >= 1, or dict of layer name -> int / (int, int).
        target_ratio: in (0, 1).
        target: ``"params"`` or ``"macs"``: the cost that ``target_ratio`` counts and that a
            replacement must reduce.
        layers: names of the layers to consider (default: every layer the method handles).
        force: replace the chosen layers even when it costs more (e.g. to check full rank).
        iterations: HOOI sweeps for Tucker-2 (0 = plain HOSVD).
        data: optional model inputs (an array, e.g. a few hundred training images) to weight the
            energy of Dense (``svd``) layers by their input activations, for ``energy`` and
            ``target_ratio``. Conv layers keep the plain spectrum energy.
        return_report: also return a :class:`FactorizationReport`.

    Returns:
        The new, uncompiled model, or ``(model, report)`` when ``return_report``. The model
        carries a :class:`~edgecompress.surgery.TransformReport` as ``transform_report``; a call
        that factorizes no layer logs a warning. Runs longer than a few seconds show per-layer
        progress (see ``edgecompress._progress``).

    Raises:
        ValueError: for none or several of ``energy`` / ``rank`` / ``target_ratio``, values out of
            range, an unknown method or target, and layer names that are not in the model or are
            not Dense / Conv2D (or not handled by ``method``).

    Example:
        >>> small, report = factorize(model, energy=0.9, return_report=True)
        >>> print(report.to_markdown())

    References:
        Denton et al., NeurIPS 2014; Jaderberg et al., BMVC 2014; Kim et al., ICLR 2016;
        Zhang et al., TPAMI 2016 (response-based, data-driven low-rank approximation).
    """
    check_graph_model(model)
    method = _check_choice(method, METHODS, "method")
    target = _check_choice(target, TARGETS, "target")
    given = [name for name, v in (("energy", energy), ("rank", rank), ("target_ratio", target_ratio))
             if v is not None]
    if len(given) != 1:
        raise ValueError(
            "Exactly one of `energy`, `rank` or `target_ratio` must be given. "
            f"Received: {', '.join(given) if given else 'none'}"
        )
    if energy is not None and not (_is_number(energy) and 0 < energy <= 1):
        raise ValueError(f"`energy` must be in (0, 1]. Received: energy={energy!r}")
    if target_ratio is not None and not (_is_number(target_ratio) and 0 < target_ratio < 1):
        raise ValueError(f"`target_ratio` must be in (0, 1). Received: target_ratio={target_ratio!r}")
    if not (isinstance(iterations, numbers.Integral) and iterations >= 0):
        raise ValueError(f"`iterations` must be an int >= 0. Received: iterations={iterations!r}")
    if rank is not None and not isinstance(rank, dict):
        _check_int_rank(rank, "rank")
    if isinstance(rank, dict):
        if layers is not None:
            outside = sorted(set(rank) - set([layers] if isinstance(layers, str) else layers))
            if outside:
                raise ValueError(f"`rank` names layers that are not in `layers`. Received: {outside}")
        layers = list(rank)

    candidates, report = select(model, method, layers)
    if data is not None:
        _weight_by_inputs(model, [c for c in candidates if c.method == "svd"], data)
    ranks = _choose_ranks(candidates, energy, rank, target_ratio, target)
    rules = {}
    progress = Progress("factorize (factors)", len(candidates))
    for cand in candidates:
        progress.step(cand.layer.name)
        r = ranks.get(cand.layer.name)
        if r is None:
            report.append(cand.row(None, reason="left at full size by the target allocation"))
            continue
        params, macs = cand.costs(r)
        before, after = ((cand.params_before, params) if target == "params"
                         else (cand.macs_before, macs))
        if after >= before and not force:
            report.append(cand.row(None, reason=f"no {target} saved at rank {r} ({after:,} >= {before:,})"))
            continue
        rules[id(cand.layer)] = cand.replacement(r, iterations)
        report.append(cand.row(r))
    progress.close()
    order = {layer.name: i for i, layer in enumerate(iter_layers(model))}
    with Progress("factorize (rebuild)", len(order)) as progress:
        new = rebuild(model, progress.rule(lambda layer: rules.get(id(layer))))
    report.sort(key=lambda row: order.get(row.layer, 0))
    outcome = TransformReport("factorize", transformed=[r.layer for r in report.factorized],
                              skipped={r.layer: r.reason for r in report.skipped})
    attach(new, outcome)
    outcome.warn_if_noop()
    return (new, report) if return_report else new


class Candidate:
    """A layer chosen for factorization with its method, spectrum and cost formulas."""

    def __init__(self, layer, method: str):
        self.layer = layer
        self.method = method
        self.kernel = layer_weights(layer)["kernel"]
        self.shapes = node_shapes(layer)
        self.params_before = int(layer.count_params())
        self.macs_before = int(sum(layer_macs(layer, i, o) for i, o in self.shapes))
        self.bias = int(self.kernel.shape[-1]) if layer.use_bias else 0
        # one decomposition per layer: the spectra choose the rank, the vectors build the factors
        if method == "tucker2":
            self.basis = (dec.mode_basis(self.kernel, 2), dec.mode_basis(self.kernel, 3))
            self.spectrum = tuple(values for values, _ in self.basis)
        else:
            matrix = self.kernel if method == "svd" else dec.spatial_matrix(self.kernel)
            self.basis = dec.basis(matrix)
            self.spectrum = self.basis.values
        if method == "tucker2":
            self.full_rank = tuple(len(s) for s in self.spectrum)
            self.dropped = tuple(dec.discarded_energy(s) for s in self.spectrum)
        else:
            self.full_rank = len(self.spectrum)
            self.dropped = dec.discarded_energy(self.spectrum)

    # ---- ranks -------------------------------------------------------------------------------
    def rank_from_int(self, value: int, strict: bool):
        """An int rank for this layer: capped at the full rank, or an error when ``strict``."""
        top = max(self.full_rank) if self.method == "tucker2" else self.full_rank
        if strict and value > top:
            raise ValueError(
                f"`rank` for layer '{self.layer.name}' must be <= its full rank {self.full_rank} "
                f"({self.method}). Received: rank={value}"
            )
        if self.method == "tucker2":
            return tuple(min(value, f) for f in self.full_rank)
        return min(value, self.full_rank)

    def rank_from_value(self, value):
        if self.method == "tucker2" and isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise ValueError(f"A Tucker-2 `rank` must be an int or a (rank_in, rank_out) pair. "
                                 f"Received: rank={value!r} for layer '{self.layer.name}'")
            pair = tuple(_check_int_rank(v, "rank") for v in value)
            if any(v > f for v, f in zip(pair, self.full_rank, strict=False)):
                raise ValueError(
                    f"`rank` for layer '{self.layer.name}' must be <= its full rank "
                    f"{self.full_rank} (tucker2). Received: rank={value!r}")
            return pair
        return self.rank_from_int(_check_int_rank(value, "rank"), strict=True)

    def weight_by_inputs(self, inputs: np.ndarray) -> None:
        """SVD only: count direction ``i`` as ``s_i^2 ||X u_i||^2`` (its output response on ``X``)."""
        u, s, _ = np.linalg.svd(self.kernel, full_matrices=False)
        x = np.asarray(inputs, np.float64).reshape(-1, self.kernel.shape[0])
        response = s.astype(np.float64) ** 2 * np.sum((x @ u) ** 2, axis=0)
        self.spectrum = np.sqrt(response)  # pseudo singular values, so energy = response share
        self.dropped = dec.discarded_energy(self.spectrum)

    def rank_for_energy(self, energy: float):
        if self.method == "tucker2":
            return tuple(dec.rank_for_energy(s, energy) for s in self.spectrum)
        return dec.rank_for_energy(self.spectrum, energy)

    def loss(self, rank) -> float:
        """Dropped fraction of squared singular values (HOSVD bound for Tucker-2)."""
        if self.method == "tucker2":
            return float(self.dropped[0][rank[0]] + self.dropped[1][rank[1]])
        return float(self.dropped[rank])

    # ---- costs -------------------------------------------------------------------------------
    def costs(self, rank) -> tuple[int, int]:
        """(params, MACs) of the factorized layer at ``rank``."""
        k = self.kernel
        if self.method == "svd":
            n_in, n_out = k.shape
            params = n_in * rank + rank * n_out
            macs = sum(_positions(o[1:-1]) * params for _, o in self.shapes)
        elif self.method == "spatial_svd":
            kh, kw, cin, cout = k.shape
            params = kh * cin * rank + kw * rank * cout
            macs = sum(_positions([o[1], i[2]]) * kh * cin * rank
                       + _positions(o[1:3]) * kw * rank * cout for i, o in self.shapes)
        else:
            kh, kw, cin, cout = k.shape
            r_in, r_out = rank
            has_in, has_out = r_in < cin, r_out < cout  # a full mode needs no 1x1 layer
            params = has_in * cin * r_in + kh * kw * r_in * r_out + has_out * r_out * cout
            macs = sum(_positions(i[1:3]) * cin * r_in * has_in
                       + _positions(o[1:3]) * (kh * kw * r_in * r_out + has_out * r_out * cout)
                       for i, o in self.shapes)
        return int(params + self.bias), int(macs)

    def options(self, target: str) -> list[tuple]:
        """``(rank, cost, loss)`` choices, the unchanged layer first, then every saving rank."""
        col = 0 if target == "params" else 1
        before = self.params_before if target == "params" else self.macs_before
        if self.method == "tucker2":
            ranks = self._tucker_path(col)
        else:
            ranks = range(self.full_rank, 0, -1)
        out = [(None, before, 0.0)]
        for r in ranks:
            cost = self.costs(r)[col]
            if cost < before:
                out.append((r, cost, self.loss(r)))
        return out

    def _tucker_path(self, col: int) -> list[tuple]:
        """(rank_in, rank_out) from full to (1, 1), each step cutting the cheaper mode."""
        r = list(self.full_rank)
        path = [tuple(r)]
        while r != [1, 1]:
            best = None
            for mode in (0, 1):
                if r[mode] == 1:
                    continue
                nxt = list(r)
                nxt[mode] -= 1
                saved = self.costs(tuple(r))[col] - self.costs(tuple(nxt))[col]
                lost = self.loss(tuple(nxt)) - self.loss(tuple(r))
                score = lost / max(saved, 1e-12)
                if best is None or score < best[0]:
                    best = (score, nxt)
            r = best[1]
            path.append(tuple(r))
        return path

    # ---- layers ------------------------------------------------------------------------------
    def replacement(self, rank, iterations: int) -> Replacement:
        layer, cfg = self.layer, self.layer.get_config()
        name, common = layer.name, {"dtype": cfg.get("dtype"), "trainable": layer.trainable}
        weights_last = [layer_weights(layer)["bias"]] if layer.use_bias else []
        if self.method == "svd":
            first, second = dec.svd_factors(self.kernel, rank, self.basis)
            return Replacement(
                [keras.layers.Dense(rank, use_bias=False, name=f"{name}_u", **common),
                 keras.layers.Dense(layer.units, activation=layer.activation,
                                    use_bias=layer.use_bias, name=f"{name}_v", **common)],
                [[first], [second, *weights_last]])
        (sh, sw), (dh, dw), pad = layer.strides, layer.dilation_rate, layer.padding
        kh, kw = layer.kernel_size
        conv = keras.layers.Conv2D
        if self.method == "spatial_svd":
            vertical, horizontal = dec.spatial_svd_factors(self.kernel, rank, self.basis)
            return Replacement(
                [conv(rank, (kh, 1), strides=(sh, 1), padding=pad, dilation_rate=(dh, 1),
                      use_bias=False, name=f"{name}_kx1", **common),
                 conv(layer.filters, (1, kw), strides=(1, sw), padding=pad, dilation_rate=(1, dw),
                      activation=layer.activation, use_bias=layer.use_bias, name=f"{name}_1xk",
                      **common)],
                [[vertical], [horizontal, *weights_last]])
        reduce, core, expand = dec.tucker2_factors(self.kernel, *rank, iterations=iterations,
                                                   hosvd=self.basis)
        cin, cout = self.kernel.shape[2:]
        chain, weights = [], []
        if rank[0] < cin:
            chain.append(conv(rank[0], 1, use_bias=False, name=f"{name}_reduce", **common))
            weights.append([reduce])
        last = rank[1] == cout
        chain.append(conv(rank[1], (kh, kw), strides=(sh, sw), padding=pad,
                          dilation_rate=(dh, dw), name=f"{name}_core",
                          activation=layer.activation if last else None,
                          use_bias=layer.use_bias and last, **common))
        weights.append([core, *weights_last] if last else [core])
        if not last:
            chain.append(conv(layer.filters, 1, activation=layer.activation,
                              use_bias=layer.use_bias, name=f"{name}_expand", **common))
            weights.append([expand, *weights_last])
        return Replacement(chain, weights)

    def low_rank_kernel(self, rank, iterations: int) -> np.ndarray:
        """The layer's kernel as its factorized chain at ``rank`` computes it (one Conv2D / Dense).

        The chain is linear up to its last layer's bias and activation, and strides, padding and
        dilation are split over it so that it equals the original layer holding this kernel.
        """
        if self.method == "svd":
            first, second = dec.svd_factors(self.kernel, rank, self.basis)
            return first @ second
        if self.method == "spatial_svd":
            vertical, horizontal = dec.spatial_svd_factors(self.kernel, rank, self.basis)
            return np.einsum("air,bro->abio", vertical[:, 0], horizontal[0], optimize=True)
        reduce, core, expand = dec.tucker2_factors(self.kernel, *rank, iterations=iterations,
                                                   hosvd=self.basis)
        return np.einsum("ir,abrs,so->abio", reduce[0, 0], core, expand[0, 0], optimize=True)

    def row(self, rank, reason: str = "") -> LayerFactorization:
        params, macs = self.costs(rank) if rank is not None else (self.params_before, self.macs_before)
        return LayerFactorization(
            layer=self.layer.name, method=self.method, rank=rank, full_rank=self.full_rank,
            params_before=self.params_before, params_after=params,
            macs_before=self.macs_before, macs_after=macs,
            retained_energy=max(0.0, 1.0 - (self.loss(rank) if rank is not None else 0.0)),
            factorized=rank is not None and not reason, reason=reason)


def eligible(model, method: str = "auto", layers=None) -> tuple[list, FactorizationReport]:
    """``[(layer, method)]`` that ``method`` will factorize (``"auto"`` resolved per layer), and
    report rows for the eligible-looking layers it skips; no decomposition is made."""
    check_graph_model(model)
    method = _check_choice(method, METHODS, "method")
    explicit = layers is not None
    chosen, report = [], FactorizationReport()
    for layer in find_layers(model, layers, _TYPES[method], "layers"):
        problem = _unsupported(layer)
        if problem and explicit:
            raise ValueError(f"`layers` names a layer that cannot be factorized: '{layer.name}' "
                             f"({type(layer).__name__}): {problem}")
        if problem:
            if type(layer) in (keras.layers.Dense, keras.layers.Conv2D):  # noqa: E721
                warnings.warn(f"lowrank: layer '{layer.name}' left alone: {problem}", stacklevel=4)
            params = int(layer.count_params())
            macs = int(sum(layer_macs(layer, i, o) for i, o in node_shapes(layer)))
            report.append(LayerFactorization(layer.name, None, None, None, params, params, macs, macs,
                                             1.0, False, problem))
            continue
        chosen.append((layer, _resolve_method(layer, method)))
    return chosen, report


def select(model, method: str = "auto", layers=None) -> tuple[list[Candidate], FactorizationReport]:
    """The layers ``method`` will factorize as :class:`Candidate` (one decomposition each), and
    report rows for the eligible-looking ones it skips."""
    chosen, report = eligible(model, method, layers)
    candidates = []
    with Progress("lowrank (spectra)", len(chosen)) as progress:
        for layer, resolved in chosen:
            progress.step(layer.name)
            candidates.append(Candidate(layer, resolved))
    return candidates, report


def _unsupported(layer) -> str:
    if type(layer) not in (keras.layers.Dense, keras.layers.Conv2D):
        return f"only plain Dense and Conv2D are factorized, not {type(layer).__name__}"
    if isinstance(layer, keras.layers.Conv2D):
        if getattr(layer, "groups", 1) != 1:
            return f"grouped convolution (groups={layer.groups}) is not supported"
        if layer.data_format != "channels_last":
            return "only channels_last convolutions are supported"
    return ""


def _resolve_method(layer, method: str) -> str:
    if method != "auto":
        return method
    if isinstance(layer, keras.layers.Dense):
        return "svd"
    kh, kw = layer.kernel_size
    cin, cout = layer_weights(layer)["kernel"].shape[2:]
    if kh * kw > 1 and min(cin, cout) >= TUCKER_MIN_CHANNELS:
        return "tucker2"
    return "spatial_svd"


def _choose_ranks(candidates, energy, rank, target_ratio, target) -> dict:
    if energy is not None:
        return {c.layer.name: c.rank_for_energy(energy) for c in candidates}
    if isinstance(rank, dict):
        by_name = {c.layer.name: c for c in candidates}
        return {name: by_name[name].rank_from_value(value) for name, value in rank.items()
                if name in by_name}
    if rank is not None:
        tops = [max(c.full_rank) if c.method == "tucker2" else c.full_rank for c in candidates]
        if tops and rank > max(tops):
            raise ValueError(f"`rank` must be <= the largest full rank of the selected layers "
                             f"({max(tops)}). Received: rank={rank}")
        return {c.layer.name: c.rank_from_int(rank, strict=False) for c in candidates}
    options = [c.options(target) for c in candidates]
    budget = target_ratio * sum(opts[0][1] for opts in options)
    picks = allocate(options, cost_budget=budget)
    return {c.layer.name: opts[j][0] for c, opts, j in zip(candidates, options, picks, strict=True)
            if opts[j][0] is not None}


def allocate(options, cost_budget=None, loss_budget=None) -> list[int]:
    """Greedy rank allocation over layers.

    Each layer offers ``(rank, cost, loss)`` options, the first being the unchanged layer. From
    there, every step moves one layer to a cheaper option, the one with the least loss added per
    unit of cost saved, until the total cost is within ``cost_budget`` (the last step takes the
    least-loss move that reaches it) or, with ``loss_budget``, while the summed loss stays within
    it. Returns the chosen option index per layer.
    """
    state = [0] * len(options)
    arrays = [(np.array([o[1] for o in opts], float), np.array([o[2] for o in opts], float))
              for opts in options]
    total_cost = sum(c[0] for c, _ in arrays)
    total_loss = 0.0
    while cost_budget is None or total_cost > cost_budget:
        moves = []  # (efficiency, -saved, added loss, layer, option)
        for i, (cost, loss) in enumerate(arrays):
            c0, l0 = cost[state[i]], loss[state[i]]
            for j in np.flatnonzero(cost < c0):
                saved, added = c0 - cost[j], loss[j] - l0
                if loss_budget is not None and total_loss + added > loss_budget + 1e-12:
                    continue
                moves.append((added / saved, -saved, added, i, int(j)))
        if not moves:
            if cost_budget is not None:
                warnings.warn(f"lowrank: the cost target cannot be reached; reached "
                              f"{total_cost:,.0f} for a target of {cost_budget:,.0f}", stacklevel=3)
            break
        best = min(moves)
        if cost_budget is not None and total_cost + best[1] <= cost_budget:
            best = min((m for m in moves if total_cost + m[1] <= cost_budget),
                       key=lambda m: (m[2], m[1]))
        _, neg_saved, added, i, j = best
        state[i] = j
        total_cost += neg_saved
        total_loss += added
    return state


def _weight_by_inputs(model, candidates, data) -> None:
    """Feed ``data`` through ``model`` and weight each SVD candidate's energy by its inputs."""
    if not candidates:
        return
    try:
        probe = keras.Model(model.inputs, [c.layer.input for c in candidates])
    except Exception as err:  # nested models / shared layers: no single input tensor
        raise ValueError("`data` needs every Dense layer to be called once in the top-level model. "
                         f"Received: {type(err).__name__}: {err}") from None
    inputs = probe.predict(data, batch_size=256, verbose=0)
    inputs = inputs if isinstance(inputs, list) else [inputs]
    for cand, x in zip(candidates, inputs, strict=True):
        cand.weight_by_inputs(x)


def _positions(dims) -> int:
    if any(d is None for d in dims):
        return 0
    return int(np.prod(dims)) if len(dims) else 1


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_int_rank(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{argument}` must be an int >= 1 (or a dict of them per layer). "
                         f"Received: {argument}={value!r}")
    return int(value)


def _check_choice(value, choices, argument: str) -> str:
    if value not in choices:
        raise ValueError(f"`{argument}` must be one of {list(choices)}. Received: {argument}={value!r}")
    return value
