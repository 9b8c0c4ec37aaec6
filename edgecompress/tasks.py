"""What each output of a model predicts, and so how it is trained, scored and compared.

One rule, used by the recipe runner, the Distiller, iterative pruning and verification:

* ``classification``: a softmax output (probabilities), or a linear output of more than one unit
  whose labels are class ids or one-hot rows (logits). Labels may be sparse or one-hot.
* ``binary``: one sigmoid unit (probabilities; a one-channel sigmoid map only with 0/1 labels or
  none), or one linear unit with 0/1 labels (logits).
* ``regression``: everything else (linear, relu, tanh, a multi-unit sigmoid or a one-channel
  sigmoid map with labels that are not 0/1, such as an autoencoder's reconstruction, or labels
  that are not class ids).

The output's activation is read through tfmot wrappers (pruning, clustering, QAT), larq layers,
nested models, ``Activation``/``Softmax`` layers and shape-only layers after them. A linear output
with no labels given is taken as classification logits if it has more than one unit (the Keras
convention) and as regression if it has one. Labels settle the rest.

Keras itself resolves ``"accuracy"`` from the loss at ``compile`` time, but it never picks the loss,
and it thresholds binary logits at 0.5. This module goes beyond it there.

Example:
    >>> tasks = infer_tasks(model, y_train)
    >>> model.compile("adam", **compile_kwargs(tasks))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecompress._keras import keras
from edgecompress.surgery import unwrap

CLASSIFICATION = "classification"
BINARY = "binary"
REGRESSION = "regression"
KINDS = (CLASSIFICATION, BINARY, REGRESSION)

#: Loss names a recipe or caller may give instead of a kind, and the kind each implies.
LOSSES = {
    "sparse_categorical_crossentropy": CLASSIFICATION,
    "categorical_crossentropy": CLASSIFICATION,
    "binary_crossentropy": BINARY,
    "mse": REGRESSION,
    "mean_squared_error": REGRESSION,
    "mae": REGRESSION,
    "mean_absolute_error": REGRESSION,
    "huber": REGRESSION,
}

_PASS_THROUGH = ("Reshape", "Flatten", "Dropout", "ActivityRegularization", "GaussianNoise",
                 "QuantizeLayer", "Permute")


@dataclass(frozen=True)
class Task:
    """The task of one model output.

    Attributes:
        kind: ``"classification"``, ``"binary"`` or ``"regression"``.
        from_logits: whether the output is pre-activation (classification and binary only).
        sparse: classification labels are class ids rather than one-hot rows.
        loss_name: the regression loss (``"mse"``, ``"mae"`` or ``"huber"``); ignored otherwise.
        output: the output's name, when the model has one.
    """

    kind: str
    from_logits: bool = False
    sparse: bool = True
    loss_name: str = "mse"
    output: str = ""

    @property
    def compare(self) -> str:
        """How a converted file is compared with Keras: ``"top1"`` agreement or ``"error"``."""
        return "top1" if self.kind == CLASSIFICATION else "error"

    @property
    def metric_name(self) -> str:
        """``"accuracy"`` for classification and binary outputs, the loss name for regression."""
        return "accuracy" if self.kind != REGRESSION else self.loss_name

    @property
    def higher_is_better(self) -> bool:
        return self.kind != REGRESSION

    def loss(self):
        """A fresh Keras loss for this output."""
        if self.kind == CLASSIFICATION:
            cls = (keras.losses.SparseCategoricalCrossentropy if self.sparse
                   else keras.losses.CategoricalCrossentropy)
            return cls(from_logits=self.from_logits)
        if self.kind == BINARY:
            return keras.losses.BinaryCrossentropy(from_logits=self.from_logits)
        return {"mae": keras.losses.MeanAbsoluteError, "mean_absolute_error": keras.losses.MeanAbsoluteError,
                "huber": keras.losses.Huber}.get(self.loss_name, keras.losses.MeanSquaredError)()

    def metric(self):
        """A fresh Keras metric named :attr:`metric_name`."""
        name = self.metric_name
        if self.kind == CLASSIFICATION:
            cls = keras.metrics.SparseCategoricalAccuracy if self.sparse else keras.metrics.CategoricalAccuracy
            return cls(name=name)
        if self.kind == BINARY:
            return keras.metrics.BinaryAccuracy(name=name, threshold=0.0 if self.from_logits else 0.5)
        if self.loss_name in ("mae", "mean_absolute_error"):
            return keras.metrics.MeanAbsoluteError(name=name)
        return keras.metrics.MeanSquaredError(name=name)

    def drop(self, reference: float, value: float) -> float:
        """How much worse ``value`` is than ``reference``, in :attr:`drop_unit`: percentage
        points of accuracy, or percent more error for regression."""
        if self.kind == REGRESSION:
            return 100.0 * (value - reference) / max(abs(reference), 1e-12)
        return 100.0 * (reference - value)

    @property
    def drop_unit(self) -> str:
        return "% error" if self.kind == REGRESSION else " pp"

    def score(self, y_true, y_pred) -> float:
        """The metric on numpy arrays: accuracy in [0, 1], or the mean error (MAE for ``mae``,
        else MSE)."""
        y_true = np.asarray(y_true)
        y_pred = np.asarray(y_pred, dtype=np.float64)
        if self.kind == CLASSIFICATION:
            labels = y_true.reshape(y_pred.shape[:-1]) if self.sparse else y_true.argmax(-1)
            return float(np.mean(y_pred.argmax(-1) == labels))
        if self.kind == BINARY:
            threshold = 0.0 if self.from_logits else 0.5
            return float(np.mean((y_pred > threshold) == (y_true.reshape(y_pred.shape) > 0.5)))
        diff = y_pred - y_true.reshape(y_pred.shape).astype(np.float64)
        if self.loss_name in ("mae", "mean_absolute_error"):
            return float(np.mean(np.abs(diff)))
        return float(np.mean(diff ** 2))


def infer_tasks(model, y=None, override=None) -> list[Task]:
    """The task of every output of ``model``, in output order.

    Args:
        model: a tf_keras model. Sequential and Functional graphs are read; a subclassed model's
            outputs are taken as logits (or settled by ``y``).
        y: optional labels: an array for a one-output model, or a list (output order) or dict
            (output names) of arrays. Settles linear outputs and sparse vs one-hot labels.
        override: optional kind or loss name (see :data:`KINDS`, :data:`LOSSES`) for every
            output, or a list/dict of them per output (``None`` entries are inferred).

    Returns:
        One :class:`Task` per output.

    Raises:
        ValueError: for an unknown kind or loss, or labels that do not match the outputs.
    """
    names = list(getattr(model, "output_names", None) or [])
    heads = _output_heads(model)
    count = len(heads)
    if len(names) != count:
        names = [f"output_{i}" for i in range(count)]
    labels = split_labels(y, names) if y is not None else [None] * count
    wanted = _per_output(override, names, "override")
    return [_infer_one(act, units, labels[i], wanted[i], names[i])
            for i, (act, units) in enumerate(heads)]


def compile_kwargs(tasks: list[Task]) -> dict:
    """``loss`` and ``metrics`` for ``model.compile``: one entry per output (bare for one)."""
    losses = [t.loss() for t in tasks]
    metrics = [[t.metric()] for t in tasks]
    if len(tasks) == 1:
        return {"loss": losses[0], "metrics": metrics[0]}
    return {"loss": losses, "metrics": metrics}


class _LatestBest(keras.callbacks.EarlyStopping):
    """EarlyStopping for which an epoch tying the best is progress, so the latest of equal epochs
    is kept. On a few hundred validation samples the accuracy moves in steps of one sample and
    plateaus: strict improvement (Keras's rule) restored the first epoch of the plateau, 1-3 of
    30 in the LeNet-5 searches, whose test accuracy was 0.3-0.5 pp lower (BENCHMARKS.md)."""

    def _is_improvement(self, monitor_value, reference_value):
        return monitor_value == reference_value or super()._is_improvement(monitor_value, reference_value)


def early_stopping(tasks: list[Task], patience: int) -> keras.callbacks.EarlyStopping:
    """Early stopping on the validation metric of a one-output model (the loss of several), best
    weights restored, ties kept as progress (:class:`_LatestBest`)."""
    if len(tasks) == 1:
        monitor, mode = f"val_{tasks[0].metric_name}", "max" if tasks[0].higher_is_better else "min"
    else:
        monitor, mode = "val_loss", "min"
    return _LatestBest(monitor, mode=mode, patience=patience, restore_best_weights=True)


def split_labels(y, names: list[str]) -> list:
    """Labels as one array per output, in output order.

    Raises:
        ValueError: when their count or names do not match the outputs.
    """
    if isinstance(y, dict):
        missing = [n for n in names if n not in y]
        if missing:
            raise ValueError(f"`y` must have a key per model output {names}. Received keys: {sorted(y)}")
        return [np.asarray(y[n]) for n in names]
    if isinstance(y, (list, tuple)):
        if len(y) != len(names):
            raise ValueError(f"`y` must hold one array per model output ({len(names)}: {names}). "
                             f"Received: {len(y)} arrays")
        return [np.asarray(v) for v in y]
    if len(names) != 1:
        raise ValueError(f"`y` must be a list or dict of arrays for a model with {len(names)} outputs "
                         f"{names}. Received: one array")
    return [np.asarray(y)]


def predictions(model, x, batch_size: int = 256) -> list[np.ndarray]:
    """``model.predict(x)`` as a list of arrays, one per output."""
    out = model.predict(x, batch_size=batch_size, verbose=0)
    if isinstance(out, dict):
        out = [out[n] for n in model.output_names]
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]


def evaluate(model, data, tasks: list[Task] | None = None, batch_size: int = 256) -> list[float]:
    """:meth:`Task.score` of every output of ``model`` on ``data = (x, y)``."""
    x, y = data
    tasks = tasks or infer_tasks(model, y)
    labels = split_labels(y, [t.output for t in tasks])
    return [t.score(lab, pred) for t, lab, pred in zip(tasks, labels, predictions(model, x, batch_size))]


# ------------------------------------------------------------------------------------- internals


def _per_output(value, names, argument):
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"`{argument}` names outputs that do not exist: {unknown}. "
                             f"Expected some of {names}")
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"`{argument}` must have one entry per output ({len(names)}: {names}). "
                             f"Received: {len(value)}")
        return list(value)
    return [value] * len(names)


def resolve_kind(value, argument: str = "task") -> tuple[str, str]:
    """``(kind, regression loss name)`` for a kind or loss name.

    Raises:
        ValueError: when ``value`` is neither.
    """
    if value in KINDS:
        return value, "mse"
    if value in LOSSES:
        return LOSSES[value], value if LOSSES[value] == REGRESSION else "mse"
    raise ValueError(f"`{argument}` must be one of {list(KINDS)} or a loss in {sorted(LOSSES)}. "
                     f"Received: {argument}={value!r}")


def _infer_one(activation, units, y, wanted, name) -> Task:
    sparse = _sparse(y, units)
    if wanted is not None:
        kind, loss_name = resolve_kind(wanted)
        logits = activation not in ("softmax", "sigmoid")
        return Task(kind, from_logits=logits and kind != REGRESSION, sparse=sparse,
                    loss_name=loss_name, output=name)
    if activation == "softmax":
        return Task(CLASSIFICATION, sparse=sparse, output=name)
    if activation == "sigmoid" and units == 1 and (y is None or _binary_labels(y) or _size(y) == 1):
        return Task(BINARY, sparse=True, output=name)  # a map of one-channel sigmoids with
        # labels that are not 0/1 (an autoencoder's 28x28x1 reconstruction) is a regression
    if activation == "sigmoid" and y is not None and _binary_labels(y):
        return Task(BINARY, sparse=True, output=name)  # multi-label 0/1 targets
    if activation in ("linear", None):
        if y is None:
            if units and units > 1:
                return Task(CLASSIFICATION, from_logits=True, output=name)
        elif units == 1 and _binary_labels(y):
            return Task(BINARY, from_logits=True, output=name)
        elif units and units > 1 and _class_labels(y, units):
            return Task(CLASSIFICATION, from_logits=True, sparse=sparse, output=name)
    return Task(REGRESSION, output=name)


def _size(y) -> int:
    """Values a sample."""
    return int(np.prod(np.asarray(y).shape[1:]))


def _sparse(y, units) -> bool:
    if y is None:
        return True
    y = np.asarray(y)
    return not (units and units > 1 and y.ndim >= 2 and y.shape[-1] == units)


def _binary_labels(y) -> bool:
    y = np.asarray(y)
    return y.size > 0 and bool(np.isin(y, (0, 1)).all())


def _class_labels(y, units) -> bool:
    y = np.asarray(y)
    if y.size == 0 or not np.isfinite(y).all():
        return False
    if y.ndim >= 2 and y.shape[-1] == units:  # one-hot rows
        return bool(np.isin(y, (0, 1)).all() and np.allclose(y.sum(-1), 1))
    integral = np.array_equal(y, np.round(y))
    return bool(integral and y.min() >= 0 and y.max() < units)


def _output_heads(model) -> list[tuple[str | None, int | None]]:
    """``(activation, units)`` of each output; activation None when out of sight (subclassed)."""
    outputs = getattr(model, "outputs", None)
    if not outputs:
        shape = getattr(model, "output_shape", None)
        shapes = shape if isinstance(shape, list) else [shape]
        return [(None, _units(s)) for s in shapes]
    return [(_activation_of(t), _units(tuple(t.shape))) for t in outputs]


def _units(shape) -> int | None:
    if not shape:
        return None
    last = shape[-1]
    return int(last) if last is not None else None


def _activation_of(tensor) -> str | None:
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    layer, node_index, tensor_index = history.layer, history.node_index, history.tensor_index
    for _ in range(64):  # a bound on pass-through layers
        if isinstance(layer, keras.Model) and getattr(layer, "outputs", None):
            return _activation_of(layer.outputs[tensor_index])
        base = unwrap(layer)
        if isinstance(base, keras.layers.Softmax):
            return "softmax"
        symbol = getattr(base, "symbol", None) or getattr(getattr(base, "function", None), "__name__", "")
        for name in ("softmax", "sigmoid"):
            if name in str(symbol):
                return name
        act = getattr(base, "activation", None)
        if act is not None:
            return _name(act)
        if type(base).__name__ in _PASS_THROUGH:
            inbound = layer.inbound_nodes[node_index]
            parent = inbound.keras_inputs[0] if inbound.keras_inputs else None
            parent_history = getattr(parent, "_keras_history", None)
            if parent_history is None:
                return "linear"
            layer, node_index, tensor_index = (parent_history.layer, parent_history.node_index,
                                               parent_history.tensor_index)
            continue
        return "linear"
    return "linear"


def _name(activation) -> str:
    while hasattr(activation, "activation"):  # tfmot QuantizeAwareActivation
        activation = activation.activation
    if isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", "") or getattr(activation, "name", "") or "linear"
