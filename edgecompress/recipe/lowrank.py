"""``factorize``: low-rank SVD / spatial SVD / Tucker-2 with ranks by energy, rank or a global target."""

from __future__ import annotations

from edgecompress import lowrank
from edgecompress._keras import keras
from edgecompress.recipe.schema import LAYERS, NUMBER, Param, choice, register

TARGETS = ("params", "macs")


def _one_budget(params, _extra):
    given = [k for k in ("energy", "rank", "target_ratio") if params[k] is not None]
    if len(given) != 1:
        raise ValueError(f"exactly one of `energy`, `rank`, `target_ratio` must be set. Received: {given or 'none'}")


@register("factorize", {
    "method": choice(lowrank.METHODS),
    "energy": Param(NUMBER, None, lambda x: 0 < x <= 1, "a number in (0, 1]"),
    "rank": Param((int,), None, lambda x: x > 0, "an int > 0"),
    "target_ratio": Param(NUMBER, None, lambda x: 0 < x < 1, "a number in (0, 1)"),
    "target": choice(TARGETS),
    "layers": LAYERS,
}, layer_types=(keras.layers.Dense, keras.layers.Conv2D), parse_check=_one_budget)
def factorize(state, method, energy, rank, target_ratio, target, layers):
    given = {"method": method, "energy": energy, "rank": rank, "target_ratio": target_ratio, "target": target}
    state.model = lowrank.factorize(state.model, layers=layers, **{k: v for k, v in given.items() if v is not None})
