"""Layer selection by name or by rule: the meaning of every ``layers=`` argument.

A selection is one of:

* ``None``: every layer the transform handles;
* a layer name, or a list of names;
* a rule (a dict) whose keys all must hold:

  - ``kinds``: layer kinds (:data:`KINDS`: ``"conv"``, ``"dense"``, ``"depthwise"``, ...) or Keras
    class names (``"Conv2D"``, matched on the class and its bases);
  - ``min_params``: at least this many parameters;
  - ``exclude``: ``"first_last"`` (the first layer with a kernel, and the last one before each
    output) or a list of names;
  - ``match``: a regular expression found in the layer name (``re.search``).

Example:
    >>> find_layers(model, {"kinds": ["conv", "dense"], "min_params": 1000, "exclude": "first_last"},
    ...             (keras.layers.Conv2D, keras.layers.Dense))

Layers are judged through tfmot wrappers (their inner layer's class and parameter count).
"""

from __future__ import annotations

import re

from edgecompress._keras import keras

_L = keras.layers
#: Layer kinds a rule may name, each a tuple of classes (``conv`` excludes depthwise, separable
#: and transposed convolutions, which have their own kinds).
KINDS = {
    "conv": (_L.Conv1D, _L.Conv2D, _L.Conv3D),
    "depthwise": (_L.DepthwiseConv1D, _L.DepthwiseConv2D),
    "separable": (_L.SeparableConv1D, _L.SeparableConv2D),
    "conv_transpose": (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose),
    "dense": (_L.Dense,),
    "batchnorm": (_L.BatchNormalization,),
    "embedding": (_L.Embedding,),
}
_NOT_PLAIN_CONV = KINDS["depthwise"] + KINDS["separable"] + KINDS["conv_transpose"]
RULE_KEYS = ("kinds", "min_params", "exclude", "match")
FIRST_LAST = "first_last"


def check_selection(layers, argument: str = "layers") -> None:
    """Check the form of a selection without a model.

    Raises:
        ValueError: naming ``argument``, what is expected and what was received.
    """
    if layers is None or isinstance(layers, str):
        return
    if isinstance(layers, (list, tuple)):
        if not all(isinstance(n, str) for n in layers):
            raise ValueError(f"`{argument}` must be a layer name, a list of names or a rule table. "
                             f"Received: {argument}={layers!r}")
        return
    if not isinstance(layers, dict):
        raise ValueError(f"`{argument}` must be a layer name, a list of names or a rule table "
                         f"with keys {list(RULE_KEYS)}. Received: {type(layers).__name__}")
    unknown = sorted(set(layers) - set(RULE_KEYS))
    if unknown or not layers:
        raise ValueError(f"`{argument}` rule keys must be some of {list(RULE_KEYS)}. "
                         f"Received: {sorted(layers) or 'an empty table'}")
    kinds = layers.get("kinds")
    if kinds is not None:
        if isinstance(kinds, str):
            kinds = [kinds]
        if not isinstance(kinds, (list, tuple)) or not kinds or not all(isinstance(k, str) for k in kinds):
            raise ValueError(f"`{argument}.kinds` must be a non-empty list of kinds {sorted(KINDS)} or "
                             f"Keras class names. Received: kinds={layers['kinds']!r}")
        bad = [k for k in kinds if k not in KINDS and not hasattr(keras.layers, k)]
        if bad:
            raise ValueError(f"`{argument}.kinds` must hold kinds {sorted(KINDS)} or Keras layer class "
                             f"names. Received: {bad}")
    min_params = layers.get("min_params")
    if min_params is not None and (isinstance(min_params, bool) or not isinstance(min_params, int)
                                   or min_params < 0):
        raise ValueError(f"`{argument}.min_params` must be an int >= 0. Received: min_params={min_params!r}")
    exclude = layers.get("exclude")
    if exclude is not None and exclude != FIRST_LAST and not (
            isinstance(exclude, (list, tuple)) and all(isinstance(n, str) for n in exclude)):
        raise ValueError(f"`{argument}.exclude` must be '{FIRST_LAST}' or a list of layer names. "
                         f"Received: exclude={exclude!r}")
    match = layers.get("match")
    if match is not None:
        if not isinstance(match, str):
            raise ValueError(f"`{argument}.match` must be a regular expression string. Received: {match!r}")
        try:
            re.compile(match)
        except re.error as err:
            raise ValueError(f"`{argument}.match` is not a valid regular expression ({err}). "
                             f"Received: match={match!r}") from None


def select(every: list, outputs, layers, types: tuple, argument: str = "layers") -> list:
    """The layers of ``every`` (a model's layers in order) that ``layers`` selects.

    Args:
        every: the model's layers, in model order (nested models flattened).
        outputs: the model's output tensors (for ``exclude = "first_last"``).
        layers: the selection (see the module docstring).
        types: the classes the transform handles.
        argument: the argument name used in errors.

    Raises:
        ValueError: for a bad selection, a name not in the model, a named layer of another class,
            or a rule that selects nothing; the message lists the model's layers.
    """
    check_selection(layers, argument)
    if layers is None:
        return [layer for layer in every if isinstance(layer, types)]
    by_name = {layer.name: layer for layer in every}
    if isinstance(layers, (str, list, tuple)):
        wanted = [layers] if isinstance(layers, str) else list(layers)
        type_names = "/".join(t.__name__ for t in types)
        for name in wanted:
            if name not in by_name:
                raise ValueError(f"`{argument}` names a layer that is not in the model. Received: "
                                 f"'{name}'. Layers: {_listing(every)}")
            if not isinstance(by_name[name], types):
                raise ValueError(f"`{argument}` must name {type_names} layers. Received: '{name}' "
                                 f"of class {type(by_name[name]).__name__}")
        return [layer for layer in every if layer.name in set(wanted)]
    excluded = layers.get("exclude") or []
    if excluded == FIRST_LAST:
        excluded = _first_last(every, outputs)
    else:
        missing = [n for n in excluded if n not in by_name]
        if missing:
            raise ValueError(f"`{argument}.exclude` names layers that are not in the model: {missing}. "
                             f"Layers: {_listing(every)}")
    kinds = layers.get("kinds")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    pattern = re.compile(layers["match"]) if layers.get("match") is not None else None
    min_params = layers.get("min_params") or 0
    chosen = []
    for layer in every:
        inner = unwrap(layer)
        if not (isinstance(layer, types) or isinstance(inner, types)):
            continue
        if kinds is not None and not any(_is_kind(inner, k) for k in kinds):
            continue
        if inner.count_params() < min_params or layer.name in excluded:
            continue
        if pattern is not None and not pattern.search(layer.name):
            continue
        chosen.append(layer)
    if not chosen:
        handled = "/".join(t.__name__ for t in types)
        raise ValueError(f"`{argument}` rule {layers!r} selects no layer this step handles ({handled}). "
                         f"Layers: {_listing(every)}")
    return chosen


def unwrap(layer):
    """The layer inside any wrappers (tfmot pruning, clustering, QAT), or the layer itself."""
    while isinstance(getattr(layer, "layer", None), keras.layers.Layer):
        layer = layer.layer
    return layer


def _is_kind(layer, kind: str) -> bool:
    if kind in KINDS:
        if kind == "conv" and isinstance(layer, _NOT_PLAIN_CONV):
            return False
        return isinstance(layer, KINDS[kind])
    return any(cls.__name__ == kind for cls in type(layer).__mro__)


def _has_kernel(layer) -> bool:
    inner = unwrap(layer)
    return any(hasattr(inner, a) for a in ("kernel", "depthwise_kernel", "embeddings"))


def _first_last(every, outputs) -> set[str]:
    """The first layer with a kernel, and the last layer with a kernel before each output."""
    names = {layer.name for layer in every}
    kernels = [layer for layer in every if _has_kernel(layer)]
    found = {kernels[0].name} if kernels else set()
    for tensor in outputs or []:
        last = _last_kernel_before(tensor, names)
        if last is not None:
            found.add(last)
    if not found and kernels:
        found.add(kernels[-1].name)
    return found


def _last_kernel_before(tensor, names, depth: int = 0):
    history = getattr(tensor, "_keras_history", None)
    if history is None or depth > 512:
        return None
    layer = history.layer
    if isinstance(layer, keras.Model) and getattr(layer, "outputs", None):
        return _last_kernel_before(layer.outputs[history.tensor_index], names, depth + 1)
    if layer.name in names and _has_kernel(layer):
        return layer.name
    node = layer.inbound_nodes[history.node_index]
    for parent in node.keras_inputs:
        found = _last_kernel_before(parent, names, depth + 1)
        if found is not None:
            return found
    return None


def _listing(every) -> str:
    """The layers with weights, as ``name (Class, params)``; the rest are only counted."""
    shown = [f"{layer.name} ({type(unwrap(layer)).__name__}, {unwrap(layer).count_params()})"
             for layer in every if layer.weights]
    rest = len(every) - len(shown)
    return ", ".join(shown) + (f" and {rest} layers without weights" if rest else "")
