"""Pruning steps: ``prune_low_magnitude`` (tfmot), ``prune_filters`` and ``iterative_prune``."""

from __future__ import annotations

from edgecompress import pruning
from edgecompress._keras import keras
from edgecompress.recipe.schema import LAYERS, REQUIRED, Param, choice, int_range, register, unit
from edgecompress.recipe.state import TRAINING

SCHEDULES = ("polynomial", "constant")


def _pair(positive: bool):
    def check(x):
        return len(x) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= positive for v in x)
    return check


@register("prune_low_magnitude", {
    "target_sparsity": unit(),
    "initial_sparsity": unit(),
    "schedule": choice(SCHEDULES),
    "m_by_n": Param((list,), None, _pair(False), "[m, n] ints"),
    "block_size": Param((list,), None, _pair(True), "[rows, cols] positive ints"),
    "layers": LAYERS,
}, check=lambda context, params: _check_prunable(context.model, params["layers"]),
   layer_types=(keras.layers.Layer,))
def prune_low_magnitude(state, target_sparsity, initial_sparsity, schedule, m_by_n, block_size, layers):
    kwargs = {"layers": layers}
    if schedule == "constant":
        given = {"target": target_sparsity} if target_sparsity is not None else {}
        kwargs["schedule"] = pruning.ConstantSparsity(**given)
    elif target_sparsity is not None or initial_sparsity is not None:
        given = {"target": target_sparsity, "initial": initial_sparsity}
        kwargs["schedule"] = pruning.PolynomialDecay(**{k: v for k, v in given.items() if v is not None})
    if m_by_n:
        kwargs["m_by_n"] = tuple(m_by_n)
    if block_size:
        kwargs["block_size"] = tuple(block_size)
    state.model = pruning.prune_low_magnitude(state.model, **kwargs)


def _check_prunable(model, layers):
    """A selection (names or a rule) must pick only layers tfmot prunes (it has no rule for a
    DepthwiseConv2D kernel, for one): found at validation, not when the step runs."""
    from edgecompress import surgery
    from edgecompress.pruning.magnitude import prunable

    if layers is None:
        return
    for layer in surgery.find_layers(model, layers, (keras.layers.Layer,), "layers"):
        if not prunable(layer):
            raise ValueError(f"`layers` selects a layer tfmot cannot prune. Received: '{layer.name}' of class "
                             f"{type(layer).__name__}; narrow the rule's `kinds` or name the layers")


@register("prune_filters", {
    "ratio": Param((int, float, dict), REQUIRED, lambda x: _ratios(x),
                   "a number in [0, 1) or a table {layer = ratio}"),
    "criterion": choice(pruning.FILTER_CRITERIA),
    "threshold": Param((int, float), None, lambda x: x >= 0, "a number >= 0 (criterion 'threshold')"),
}, parse_check=lambda p, _: _threshold_rule(p))
def prune_filters(state, ratio, criterion, threshold):
    kwargs = {k: v for k, v in (("criterion", criterion), ("threshold", threshold)) if v is not None}
    state.model = pruning.prune_filters(state.model, ratio, **kwargs)


def _ratios(x) -> bool:
    values = list(x.values()) if isinstance(x, dict) else [x]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1
                                for v in values)


def _threshold_rule(params):
    if (params["criterion"] == "threshold") != (params["threshold"] is not None):
        raise ValueError("`threshold` must be set exactly when criterion = 'threshold'. Received: "
                         f"criterion={params['criterion']!r}, threshold={params['threshold']!r}")


@register("iterative_prune", {
    "rounds": int_range(1, 100),
    "target": unit(),
    "finetune_epochs": int_range(0, 1000),
    "criterion": choice(pruning.ITERATIVE_CRITERIA),
    **{k: v for k, v in TRAINING.items() if k != "epochs"},
})
def iterative_prune(state, rounds, target, finetune_epochs, criterion, learning_rate, batch_size, augment,
                    patience):
    def finetune(model, epochs):
        state.fit(model, epochs, learning_rate, batch_size, augment, patience)

    kwargs = {k: v for k, v in (("rounds", rounds), ("target", target), ("finetune_epochs", finetune_epochs),
                                ("criterion", criterion)) if v is not None}
    state.model, _ = pruning.iterative_prune(state.model, state.train, state.validation, finetune=finetune,
                                             **kwargs)
