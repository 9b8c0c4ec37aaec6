"""``binarize``: larq binary layers in place of Conv2D/Dense (first and last kept float by default)."""

from __future__ import annotations

from edgecompress import binary
from edgecompress.binary.transform import BINARIZABLE
from edgecompress.recipe.schema import LAYERS, Param, choice, register


def _check(context, params):
    """The family's own refusals (nothing to binarize, a named layer it cannot take), found on the
    model as it enters the recipe, without building or logging (the step logs when it runs)."""
    kwargs = {"keep_first_last": params["keep_first_last"]} if params["keep_first_last"] is not None else {}
    binary.binarizable_layers(context.model, layers=params["layers"], **kwargs)


@register("binarize", {
    "scheme": choice(binary.SCHEMES),
    "keep_first_last": Param((bool,), None),
    "layers": LAYERS,
}, layer_types=BINARIZABLE, check=_check)
def binarize(state, scheme, keep_first_last, layers):
    kwargs = {k: v for k, v in (("scheme", scheme), ("keep_first_last", keep_first_last)) if v is not None}
    state.model = binary.binarize(state.model, layers=layers, **kwargs)
