"""Rebuild a Sequential or Functional model with some layers replaced, split, shrunk or dropped.

This is the one graph-rewriting core. Low-rank factorization, filter pruning, binarization and
product quantization all describe their change as a *rule* (layer -> what to put there) and let
:func:`rebuild` produce a new model. The input model is never modified: every layer of the result
is a fresh object, and the weights of kept layers are copied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from edgecompress._keras import KerasTensor, check_graph_model, keras, tf
from edgecompress.surgery.select import select


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
"""Rule result that removes a single-input layer: its output becomes its input."""


@dataclass
class Replacement:
    """What a rule puts in place of one layer.

    Args:
        layers: new, unbuilt layers, applied as a chain (the first takes the original inputs).
        weights: one entry per layer: a list of arrays for ``set_weights``, or None to keep the
            layer's fresh initialization.
        tensor_only: call the first layer on the original layer's one tensor input alone,
            without its other arguments (e.g. the constant of a TFOpLambda ``x + 3.0``).
    """

    layers: Sequence[keras.layers.Layer]
    weights: Sequence[Union[list, None]] = field(default=())
    tensor_only: bool = False

    def __post_init__(self):
        self.layers = list(self.layers)
        if not self.layers:
            raise ValueError("`Replacement.layers` must hold at least one layer. Received: []")
        self.weights = list(self.weights) or [None] * len(self.layers)
        if len(self.weights) != len(self.layers):
            raise ValueError(
                "`Replacement.weights` must have one entry per layer. "
                f"Received: {len(self.weights)} entries for {len(self.layers)} layers"
            )


RuleResult = Union[None, keras.layers.Layer, Replacement, _Drop]
Rule = Callable[[keras.layers.Layer], RuleResult]


def copy_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A fresh, unbuilt layer with the same class and config as ``layer``."""
    cls = type(layer)
    with keras.utils.custom_object_scope({cls.__name__: cls}):
        return cls.from_config(layer.get_config())


def clone(model: keras.Model) -> keras.Model:
    """An independent copy of ``model`` with identical weights (uncompiled)."""
    return rebuild(model, None)


def rebuild(model: keras.Model, rule: Rule | None = None, name: str | None = None) -> keras.Model:
    """Rebuild ``model`` layer by layer, asking ``rule`` what to put in place of each layer.

    Args:
        model: a built Sequential or Functional tf_keras model; nested models are rebuilt
            recursively with the same rule (unless the rule replaces the nested model itself).
        rule: called once per layer (input layers excluded). It returns ``None`` to keep a copy of
            the layer with its weights, a new layer, a :class:`Replacement` (a chain of layers and
            their weights), or :data:`DROP`. ``None`` as the rule keeps every layer.
        name: name of the new model; defaults to the input model's name.

    Returns:
        A new, uncompiled model of the same kind (Sequential stays Sequential). The input model is
        not modified.

    Raises:
        TypeError: for a subclassed or Keras 3 model.
        ValueError: if a rule drops a layer with several inputs.
    """
    check_graph_model(model)
    plan = _Plan(rule)
    if isinstance(model, keras.Sequential):
        new = _rebuild_sequential(model, plan, name)
    else:
        new = _rebuild_functional(model, plan, name)
    plan.load_weights()
    return new


class _Plan:
    """Decides each original layer's replacement once, and remembers the weights to load."""

    def __init__(self, rule: Rule | None, flat: bool = False):
        self.rule = rule
        self.flat = flat  # inline nested models (see flatten)
        self.prefix: list[str] = []  # the nested models being inlined
        self.names: set[str] = set()
        self.by_layer: dict[int, RuleResult | keras.Model] = {}
        self.pending: list[tuple[keras.layers.Layer, list]] = []
        self.copies: list[tuple[keras.layers.Layer, list]] = []

    def resolve(self, layer: keras.layers.Layer):
        key = id(layer)
        if key in self.by_layer:
            return self.by_layer[key]
        result = self.rule(layer) if self.rule is not None else None
        if result is None:
            if isinstance(layer, keras.Model):
                result = rebuild(layer, self.rule)  # weights already loaded by the inner call
            else:
                new = copy_layer(layer)
                # every variable, not get_weights(): tfmot's cluster wrapper hides its state there
                self.copies.append((new, [w.numpy() for w in layer.weights]))
                result = Replacement([new], [None])
        elif isinstance(result, keras.layers.Layer):
            result = Replacement([result], [None])
        elif isinstance(result, Replacement):
            for new, weights in zip(result.layers, result.weights):
                if weights is not None:
                    self.pending.append((new, list(weights)))
        elif result is not DROP:
            raise TypeError(
                f"A surgery rule must return None, a Layer, a Replacement or DROP. "
                f"Received: {type(result).__name__} for layer '{layer.name}'"
            )
        if self.flat and isinstance(result, Replacement):
            for new in result.layers:
                if new.name in self.names:
                    base = f"{self.prefix[-1]}_{new.name}" if self.prefix else new.name
                    unique, count = base, 1
                    while unique in self.names:
                        unique, count = f"{base}_{count}", count + 1
                    new._name = unique
                self.names.add(new.name)
        self.by_layer[key] = result
        return result

    def apply(self, layer, args, kwargs):
        result = self.resolve(layer)
        if result is DROP or (isinstance(result, Replacement) and result.tensor_only):
            flat = [t for t in tf.nest.flatten((args, kwargs)) if _is_keras_tensor(t)]
            if len(flat) != 1:
                what = "dropped" if result is DROP else "replaced with tensor_only=True"
                raise ValueError(
                    f"Only a single-input layer can be {what}. Received: layer '{layer.name}' "
                    f"({type(layer).__name__}) with {len(flat)} inputs"
                )
            if result is DROP:
                return flat[0]
            args, kwargs = (flat[0],), {}
        if isinstance(result, keras.Model):
            return result(*args, **kwargs)
        out = result.layers[0](*args, **kwargs)
        for new in result.layers[1:]:
            out = new(out)
        return out

    def load_weights(self):
        for new, values in self.copies:
            if len(new.weights) != len(values) or any(
                tuple(v.shape) != tuple(a.shape) for v, a in zip(new.weights, values)
            ):
                self.pending.append((new, values))  # let set_weights explain the mismatch
                continue
            for variable, value in zip(new.weights, values):
                variable.assign(value)
        for new, weights in self.pending:
            try:
                new.set_weights(weights)
            except ValueError as err:
                raise ValueError(
                    f"Weights do not fit the rebuilt layer '{new.name}' "
                    f"({type(new).__name__}): {str(err).splitlines()[0]}"
                ) from None


def _rebuild_sequential(model, plan: _Plan, name):
    inp = model.inputs[0]
    new = keras.Sequential(name=name or model.name)
    new.add(keras.Input(batch_shape=inp.shape, dtype=inp.dtype))
    for layer in model.layers:
        result = plan.resolve(layer)
        if result is DROP:
            continue
        if isinstance(result, keras.Model):
            new.add(result)
            continue
        for new_layer in result.layers:
            new.add(new_layer)
    return new


def flatten(model: keras.Model, rule: Rule | None = None, name: str | None = None) -> keras.Model:
    """A Functional copy of ``model`` with every nested model inlined into one graph.

    Tools that cannot see inside a model-in-a-model (tfmot QAT among them) get the same
    computation as one flat graph. A shared nested model stays shared (its layers are created
    once). An inner layer whose name is already taken in the flat graph is renamed
    ``<nested model>_<layer>``.

    Args:
        model: a built Sequential or Functional tf_keras model.
        rule: an optional surgery rule applied to every (inner or outer) layer, as in
            :func:`rebuild`; it is never asked about the nested models themselves.
        name: name of the new model; defaults to the input model's name.

    Returns:
        A new, uncompiled Functional model (the input is not modified).
    """
    check_graph_model(model)
    plan = _Plan(rule, flat=True)
    new = _rebuild_functional(model, plan, name)
    plan.load_weights()
    return new


def _rebuild_functional(model, plan: _Plan, name):
    new_inputs = []
    for tensor in model.inputs:
        input_layer = tensor._keras_history.layer
        new_inputs.append(keras.Input(
            batch_shape=tensor.shape, dtype=tensor.dtype, name=input_layer.name,
            sparse=getattr(input_layer, "sparse", False), ragged=getattr(input_layer, "ragged", False),
        ))
    outputs = _call_graph(model, plan, new_inputs)
    return keras.Model(inputs=new_inputs, outputs=outputs, name=name or model.name)


def _call_graph(model, plan: _Plan, inputs):
    """Apply ``plan`` to ``model``'s graph on ``inputs``; nested models are inlined when flat."""
    tensor_map: dict[int, object] = {id(t): new for t, new in zip(model.inputs, inputs)}

    def lookup(x):
        return tensor_map.get(id(x), x) if _is_keras_tensor(x) else x

    for node in nodes_in_order(model):
        if node.is_input:
            continue
        args = tf.nest.map_structure(lookup, node.call_args)
        kwargs = tf.nest.map_structure(lookup, node.call_kwargs)
        if plan.flat and isinstance(node.layer, keras.Model):
            inner = [t for t in tf.nest.flatten((args, kwargs)) if _is_keras_tensor(t)]
            plan.prefix.append(node.layer.name)
            outputs = _call_graph(node.layer, plan, inner)
            plan.prefix.pop()
        else:
            outputs = plan.apply(node.layer, args, kwargs)
        old_flat = tf.nest.flatten(node.outputs)
        new_flat = tf.nest.flatten(outputs)
        if len(old_flat) != len(new_flat):
            raise ValueError(
                f"The replacement of layer '{node.layer.name}' returns {len(new_flat)} "
                f"outputs; the original returns {len(old_flat)}"
            )
        for old, new in zip(old_flat, new_flat):
            tensor_map[id(old)] = new

    return tf.nest.map_structure(lambda t: tensor_map[id(t)], model._nested_outputs)


def nodes_in_order(model) -> list:
    """A graph network's nodes (input nodes included) in an order that runs each after its inputs."""
    return [node for depth in sorted(model._nodes_by_depth, reverse=True)
            for node in model._nodes_by_depth[depth]]


def last_uses(reads: list, outputs) -> dict:
    """``{key: index of the last step reading it}`` from the keys each step reads, in run order;
    the keys of ``outputs`` (the model's) are read after the last step (``len(reads)``)."""
    last = dict.fromkeys(outputs, len(reads))
    for i, keys in enumerate(reads):
        for key in keys:
            last[key] = max(last.get(key, -1), i)
    return last


def _is_keras_tensor(x) -> bool:
    return isinstance(x, KerasTensor)


def find_layers(
    model: keras.Model,
    layers,
    types: tuple[type, ...],
    argument: str = "layers",
) -> list[keras.layers.Layer]:
    """The layers a transform should act on, with clear errors for bad selections.

    Args:
        model: the model to search (nested models are searched too).
        layers: None for every layer of one of ``types``, a layer name or list of names, or a rule
            table such as ``{"kinds": ["conv", "dense"], "min_params": 1000,
            "exclude": "first_last", "match": "block[0-9]+_"}`` (see
            :mod:`edgecompress.surgery.select`).
        types: the layer classes the transform handles.
        argument: the argument name used in error messages.

    Returns:
        The selected layers, in model order.

    Raises:
        ValueError: for a bad selection, a name that is not in the model, a named layer of another
            type, or a rule that selects nothing (the message lists the model's layers).
    """
    return select(list(iter_layers(model)), getattr(model, "outputs", None), layers, types, argument)


def iter_layers(model: keras.Model):
    """Every layer of ``model``, descending into nested models (the models themselves excluded)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def layer_weights(layer) -> Mapping[str, np.ndarray]:
    """A layer's weights by short name (``kernel``, ``bias``, ...)."""
    return {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in layer.weights}
