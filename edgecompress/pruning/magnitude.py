"""Magnitude pruning on tfmot, without its traps.

``prune_low_magnitude`` wraps a clone's layers in tfmot's ``PruneLowMagnitude`` and returns a
:class:`PrunedModel` (or :class:`PrunedSequential`) whose own ``fit``:

* needs no ``UpdatePruningStep`` callback (it is added when missing; the wrappers also start at
  step 0, so a custom loop prunes too);
* resolves schedules left open (``end_step``/``frequency`` None) from epochs x steps per epoch;
* warns when the schedule cannot reach its target within the steps of the run (tfmot's default
  ``frequency=100`` prunes nothing in a 64-step run, silently).

Beyond tfmot: the above, M:N divisibility checks with the layer named, the wrapper's
``sparsity_m_by_n`` kept in ``get_config``, ``strip`` that keeps layer names, and
``sparsity_report``.

References:
    Han et al., "Learning both weights and connections for efficient neural networks", NeurIPS 2015.
    Zhu & Gupta, "To prune, or not to prune", 2017.
    Mishra et al., "Accelerating Sparse Deep Neural Networks" (2:4 sparsity), 2021.
"""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry, pruning_wrapper

from edgecompress import surgery
from edgecompress._keras import check_graph_model, keras
from edgecompress.pruning import schedules as schedules_lib

_TfmotWrapper = pruning_wrapper.PruneLowMagnitude
PREFIX = "prune_low_magnitude_"


@keras.utils.register_keras_serializable(package="edgecompress")
class PruneLowMagnitude(_TfmotWrapper):
    """tfmot's pruning wrapper with a step that starts at 0 and a complete ``get_config``.

    Args:
        layer: the layer to prune (a tfmot-prunable layer: Conv2D, Dense, ...).
        pruning_schedule: a schedule from :mod:`edgecompress.pruning.schedules`.
        block_size: (rows, cols) blocks pruned together (2-D kernels, i.e. Dense only).
        block_pooling_type: "AVG" or "MAX" over a block.
        sparsity_m_by_n: (m, n): m zeros in every n consecutive input-channel weights.
    """

    def build(self, input_shape):
        super().build(input_shape)
        # tfmot starts at -1 and asserts >= 1 in training unless UpdatePruningStep set it to 0.
        self.pruning_step.assign(0)

    def get_config(self):
        config = super().get_config()
        config["pruning_schedule"] = keras.utils.serialize_keras_object(self.pruning_schedule)
        config["sparsity_m_by_n"] = self.sparsity_m_by_n
        config["block_size"] = list(self.block_size)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        schedule = keras.utils.deserialize_keras_object(config.pop("pruning_schedule"))
        layer = keras.layers.deserialize(config.pop("layer"))
        config.pop("name", None)
        return cls(layer, pruning_schedule=schedule, **config)

    def masked_weights(self) -> list[np.ndarray]:
        """The inner layer's weights with the current masks applied."""
        masked = {id(w): (w.numpy() * m.numpy()) for w, m, _ in self.pruning_vars}
        return [masked.get(id(w), w.numpy()) for w in self.layer.weights]


class _PruningFit:
    """``fit`` that resolves schedules, warns on unreachable targets and steps the wrappers."""

    def fit(self, *args, **kwargs):
        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        wrappers = pruning_wrappers(self)
        if wrappers:
            steps = _run_steps(a)
            start = max(0, int(wrappers[0].pruning_step.numpy()))
            self._prepare_schedules(wrappers, steps, start)
            callbacks = list(a["callbacks"] or [])
            if not any(isinstance(c, tfmot.sparsity.keras.UpdatePruningStep) for c in callbacks):
                callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
            a["callbacks"] = callbacks
        return super().fit(*bound.args[1:], **bound.kwargs)

    @staticmethod
    def _prepare_schedules(wrappers, steps, start):
        short = {}
        for wrapper in wrappers:
            schedule = wrapper.pruning_schedule
            if not isinstance(schedule, schedules_lib._Resolvable):
                continue
            if not schedule.resolved:
                if steps is None:
                    raise ValueError(
                        "The pruning schedule's end_step/frequency are set from the run length, "
                        "which is unknown for this data. Pass `steps_per_epoch` to fit, or give the "
                        "schedule explicit end_step and frequency."
                    )
                schedule.resolve(steps, start)
            if steps is None or wrapper.sparsity_m_by_n:
                continue
            reached = schedule.reached(start + 1, start + steps)
            if reached + 1e-6 < schedule.target():
                key = (schedule.target(), schedule.begin_step, schedule.end_step,
                       schedule.frequency, reached)
                short.setdefault(key, []).append(wrapper.layer.name)
        for (target, begin, end, frequency, reached), names in short.items():
            warnings.warn(
                f"Pruning schedule of layers {names} cannot reach its target sparsity "
                f"{target:.2f} in this run: steps {start + 1}..{start + steps} with "
                f"begin_step={begin}, end_step={end}, frequency={frequency} reach {reached:.2f}. "
                "Train longer or lower end_step/frequency (None fits them to the run).",
                stacklevel=3,
            )


def _run_steps(a) -> int | None:
    """Number of training steps of one ``fit`` call, or None if unknown."""
    epochs = max(0, int(a["epochs"]) - int(a["initial_epoch"] or 0))
    if a["steps_per_epoch"]:
        return epochs * int(a["steps_per_epoch"])
    x = a["x"]
    try:
        import tensorflow as tf

        if isinstance(x, tf.data.Dataset):
            n = int(x.cardinality().numpy())
            return epochs * n if n >= 0 else None
    except ImportError:  # pragma: no cover
        return None
    if isinstance(x, keras.utils.Sequence):
        return epochs * len(x)
    first = x[0] if isinstance(x, (list, tuple)) else next(iter(x.values())) if isinstance(x, dict) else x
    if not hasattr(first, "shape"):
        return None
    n = int(first.shape[0] * (1.0 - float(a["validation_split"] or 0.0)))
    return epochs * math.ceil(n / int(a["batch_size"] or 32))


@keras.utils.register_keras_serializable(package="edgecompress")
class PrunedModel(_PruningFit, keras.Model):
    """A Functional model with pruning wrappers whose ``fit`` handles the pruning step."""


@keras.utils.register_keras_serializable(package="edgecompress")
class PrunedSequential(_PruningFit, keras.Sequential):
    """A Sequential model with pruning wrappers whose ``fit`` handles the pruning step."""


def pruning_wrappers(model) -> list:
    """The tfmot pruning wrappers in ``model`` (nested models included)."""
    return [layer for layer in surgery.iter_layers(model) if isinstance(layer, _TfmotWrapper)]


def prunable(layer) -> bool:
    """Whether tfmot's prune registry has a rule for ``layer``'s weights (not for a
    DepthwiseConv2D kernel, for one)."""
    try:
        return prune_registry.PruneRegistry.supports(layer) and bool(
            prune_registry.PruneRegistry._weight_names(layer))
    except Exception:  # noqa: BLE001 - the registry's private API changed
        return isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))


def _check_pair(value, argument):
    if value is None:
        return None
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"`{argument}` must be a pair of positive ints. Received: {argument}={value!r}")
    return tuple(value)


def prune_low_magnitude(model, schedule=None, block_size=(1, 1), m_by_n=None, layers=None,
                        block_pooling_type="AVG"):
    """A clone of ``model`` whose prunable layers are magnitude-pruned during ``fit``.

    Args:
        model: a built Sequential or Functional tf_keras model (not modified).
        schedule: :class:`PolynomialDecay`, :class:`ConstantSparsity` (ours or tfmot's), a float
            (constant target), or None for ``PolynomialDecay(target=0.8)`` fitted to the run.
        block_size: (rows, cols) blocks of a Dense kernel pruned together. Only Dense layers are
            selected by default when it is not (1, 1).
        m_by_n: e.g. (2, 4) for 2:4 sparsity (m zeros in every n consecutive input-channel
            weights, set at the first step). Layers whose input channels n does not divide are
            skipped with a warning (or refused when named in ``layers``).
        layers: names of the layers to prune; None prunes every tfmot-prunable layer
            (Conv2D, Dense, SeparableConv2D pointwise kernels...).
        block_pooling_type: "AVG" or "MAX".

    Returns:
        A :class:`PrunedModel` or :class:`PrunedSequential`, uncompiled, ready for ``compile``
        and ``fit`` (no callback needed). Export it after :func:`strip`.

    Raises:
        ValueError: bad block size / M:N, a named layer that cannot be pruned.
        TypeError: subclassed or Keras 3 models.

    Example:
        >>> pruned = prune_low_magnitude(model, PolynomialDecay(target=0.8))
        >>> pruned.compile("adam", "sparse_categorical_crossentropy")
        >>> pruned.fit(x, y, epochs=2)
        >>> small = strip(pruned)
    """
    check_graph_model(model)
    block_size = _check_pair(block_size, "block_size")
    m_by_n = _check_pair(m_by_n, "m_by_n")
    if m_by_n is not None and m_by_n[0] >= m_by_n[1]:
        raise ValueError(f"`m_by_n` must be (m, n) with m < n. Received: m_by_n={m_by_n}")
    if m_by_n is not None and block_size != (1, 1):
        raise ValueError(f"`m_by_n` and `block_size` cannot be combined. Received: "
                         f"m_by_n={m_by_n}, block_size={block_size}")
    if block_pooling_type not in ("AVG", "MAX"):
        raise ValueError(f"`block_pooling_type` must be 'AVG' or 'MAX'. Received: {block_pooling_type!r}")
    if pruning_wrappers(model):
        raise ValueError("`model` already has pruning wrappers. Call `strip(model)` first.")
    schedule = schedules_lib.get(schedule)
    explicit = layers is not None
    selected = surgery.find_layers(model, layers, (keras.layers.Layer,), "layers")
    chosen = []
    for layer in selected:
        if not prunable(layer):
            if explicit:
                raise ValueError(f"`layers` names a layer tfmot cannot prune. Received: "
                                 f"'{layer.name}' of class {type(layer).__name__}")
            continue
        kernel = layer.get_weights()[0]
        if block_size != (1, 1) and kernel.ndim != 2:
            if explicit:
                raise ValueError(f"`block_size` needs 2-D kernels (Dense). Received: layer "
                                 f"'{layer.name}' ({type(layer).__name__}) with block_size={block_size}")
            continue
        if block_size != (1, 1) and min(-(-d // b) for d, b in zip(kernel.shape, block_size)) < 2:
            # tfmot squeezes a pooled mask with a singleton axis and fails in training
            message = (f"`block_size` must leave at least 2 blocks along each kernel axis of layer "
                       f"'{layer.name}' (kernel {kernel.shape})")
            if explicit:
                raise ValueError(message + f". Received: block_size={block_size}")
            warnings.warn(message + "; it is left dense.", stacklevel=2)
            continue
        if m_by_n is not None and kernel.shape[-2] % m_by_n[1]:
            message = (f"`m_by_n` needs n={m_by_n[1]} to divide the input channels of layer "
                       f"'{layer.name}' ({type(layer).__name__}, {kernel.shape[-2]} inputs)")
            if explicit:
                raise ValueError(message + f". Received: m_by_n={m_by_n}")
            warnings.warn(message + "; it is left dense.", stacklevel=2)
            continue
        chosen.append(layer.name)
    if not chosen:
        raise ValueError("`model` has no layer to prune with these arguments. Received: "
                         f"layers={layers!r}, block_size={block_size}, m_by_n={m_by_n}")
    names = set(chosen)

    def rule(layer):
        if layer.name not in names or isinstance(layer, keras.Model):
            return None
        wrapper = PruneLowMagnitude(
            surgery.copy_layer(layer), pruning_schedule=schedules_lib.get(schedule),
            block_size=block_size, block_pooling_type=block_pooling_type, sparsity_m_by_n=m_by_n)
        wrapper._edgecompress_init = layer.get_weights()
        return wrapper

    plain = surgery.rebuild(model, rule)
    for wrapper in pruning_wrappers(plain):
        wrapper.layer.set_weights(wrapper._edgecompress_init)
        del wrapper._edgecompress_init
    return _as_pruned(plain)


def _as_pruned(plain):
    """The same graph as a PrunedModel / PrunedSequential (new layers, same weights)."""
    cls = PrunedSequential if isinstance(plain, keras.Sequential) else PrunedModel
    new = cls.from_config(plain.get_config())
    new.set_weights(plain.get_weights())
    return new


def strip(model):
    """``model`` without pruning wrappers: plain layers with their own names and masked weights.

    Args:
        model: a model returned by :func:`prune_low_magnitude` (possibly trained or reloaded).

    Returns:
        A new plain Sequential or Functional model; the input is not modified.
    """
    check_graph_model(model)

    def rule(layer):
        if not isinstance(layer, _TfmotWrapper):
            return None
        inner = surgery.copy_layer(layer.layer)
        weights = (layer.masked_weights() if isinstance(layer, PruneLowMagnitude)
                   else [w.numpy() * m.numpy() for w, m, _ in layer.pruning_vars] + [
                       w.numpy() for w in layer.layer.weights[len(layer.pruning_vars):]])
        return surgery.Replacement([inner], [weights])

    return surgery.rebuild(model, rule)


def sparsity_report(model) -> list[dict]:
    """Per layer with a kernel: name, class, kernel size, zeros and sparsity (masks applied).

    Works on wrapped (``prune_low_magnitude``) and stripped models alike.
    """
    rows = []
    for layer in surgery.iter_layers(model):
        if isinstance(layer, _TfmotWrapper):
            core = layer.layer
            kernel = layer.pruning_vars[0][0].numpy() * layer.pruning_vars[0][1].numpy()
        else:
            core = layer
            kernels = [w for w in layer.weights if w.name.split("/")[-1].split(":")[0]
                       in ("kernel", "depthwise_kernel", "pointwise_kernel")]
            if not kernels:
                continue
            kernel = kernels[-1].numpy()
        zeros = int(kernel.size - np.count_nonzero(kernel))
        rows.append({"layer": core.name, "class": type(core).__name__, "weights": int(kernel.size),
                     "zeros": zeros, "sparsity": zeros / kernel.size if kernel.size else 0.0})
    return rows
