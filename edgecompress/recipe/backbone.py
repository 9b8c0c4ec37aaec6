"""``swap_backbone``: replace the model by a fresh lightweight builder from
:mod:`edgecompress.models` for the same input and classes (to be trained by ``fit``/``distill``).

Keys beyond ``backbone`` are the builder's own arguments, checked against its signature.
"""

from __future__ import annotations

import inspect

from edgecompress import models
from edgecompress import tasks as tasks_lib
from edgecompress.recipe.schema import REQUIRED, Param, register

_FIXED = ("input_shape", "num_classes", "name")


def _options(params, extra) -> dict:
    builder = getattr(models, params["backbone"])
    accepted = [p for p in inspect.signature(builder).parameters if p not in _FIXED]
    unknown = sorted(set(extra) - set(accepted))
    if unknown:
        raise ValueError(f"`{unknown[0]}` is not an argument of {params['backbone']}(); expected some of "
                         f"{accepted}. Received: {sorted(extra)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in extra.items()}


def build(model, backbone, options, tasks=None):
    """The backbone for ``model``'s input and classes (``tasks``: the model's, default inferred).

    Raises:
        ValueError: for a model that is not a single-input classifier, or a builder that refuses
            the input (its message says why).
    """
    found = tasks or tasks_lib.infer_tasks(model)
    if len(model.inputs) != 1 or len(found) != 1 or found[0].kind != tasks_lib.CLASSIFICATION:
        raise ValueError(f"`backbone` builds a single-input classifier; the model has {len(model.inputs)} "
                         f"input(s) and outputs of kind {[t.kind for t in found]}")
    shape = tuple(model.inputs[0].shape[1:])
    classes = int(model.outputs[0].shape[-1])
    return getattr(models, backbone)(input_shape=shape, num_classes=classes, **options)


def _check(context, params):
    context.model = build(context.model, params["backbone"], params["options"], context.tasks)
    context.refresh()


@register("swap_backbone", {
    "backbone": Param((str,), REQUIRED, lambda x: x in models.BACKBONES, f"one of {list(models.BACKBONES)}"),
}, check=_check, parse_check=_options, open_keys=True)
def swap_backbone(state, backbone, options):
    state.model = build(state.model, backbone, options, state.tasks)
