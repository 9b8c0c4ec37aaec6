"""Data-parallel training with TensorFlow's own strategies, for the recipe ``fit`` step and the
search's fine-tunes.

* ``"mirrored"``: :class:`tf.distribute.MirroredStrategy` over this machine's devices.
* ``"multiworker"``: :class:`tf.distribute.MultiWorkerMirroredStrategy`; every worker process runs
  the same script with its own ``TF_CONFIG`` (cluster addresses and its task index).

A model built outside the strategy is copied into its scope (same layers, same weights, tfmot
and larq wrappers included) before it is compiled, which tf_keras requires.
"""

from __future__ import annotations

import json
import os

from edgecompress._keras import keras, tf

STRATEGIES = ("none", "mirrored", "multiworker")

_CACHE: dict = {}


def get_strategy(name: str | None):
    """The strategy called ``name`` (``None`` or ``"none"``: TensorFlow's default strategy).

    A multi-worker strategy is created once per process, and TensorFlow requires that to happen
    at program start, before any other TensorFlow op: call this first in a worker script.

    Raises:
        ValueError: an unknown name, or ``"multiworker"`` without a valid ``TF_CONFIG``.
    """
    if name in (None, "none"):
        return tf.distribute.get_strategy()
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {list(STRATEGIES)}. Received: strategy={name!r}")
    if name not in _CACHE:
        if name == "multiworker":
            _check_tf_config()
            _CACHE[name] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            _CACHE[name] = tf.distribute.MirroredStrategy()
    return _CACHE[name]


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG", "")
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        index = int(config["task"]["index"])
        if not 0 <= index < len(workers):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ValueError("`strategy='multiworker'` needs TF_CONFIG with cluster.worker addresses and "
                         f"task.index of this worker. Received: TF_CONFIG={raw!r}") from None


def replicate(model, strategy):
    """``model`` rebuilt inside ``strategy.scope()`` with the same weights (returned as is for
    the default strategy)."""
    if strategy is _default():
        return model
    import tensorflow_model_optimization as tfmot

    with strategy.scope(), tfmot.sparsity.keras.prune_scope(), \
            tfmot.quantization.keras.quantize_scope():
        copy = type(model).from_config(model.get_config())  # keeps PrunedModel's own fit
        copy.set_weights(model.get_weights())
    return copy


def _default():
    return tf.distribute.get_strategy()


def fit(model, data, strategy=None, **fit_kwargs):
    """Compile and fit ``model`` under ``strategy``.

    Args:
        model: a tf_keras Sequential or Functional model (tfmot/larq/edgecompress layers allowed).
        data: a ``tf.data.Dataset`` of global batches (each worker gets its share of each batch).
        strategy: a strategy name (see :data:`STRATEGIES`) or a ``tf.distribute.Strategy``.
        **fit_kwargs: ``compile`` (a dict for ``model.compile``; its ``optimizer`` may be a
            factory, called inside the scope) and everything ``model.fit`` takes.

    Returns:
        ``(model, history)``: the trained model (a copy when the strategy is not the default).
    """
    strategy = get_strategy(strategy) if strategy is None or isinstance(strategy, str) else strategy
    compile_kwargs = dict(fit_kwargs.pop("compile", {}))
    model = replicate(model, strategy)
    with strategy.scope():
        optimizer = compile_kwargs.pop("optimizer", None)
        if callable(optimizer) and not isinstance(optimizer, keras.optimizers.Optimizer):
            optimizer = optimizer()  # a factory: the optimizer's variables belong to the strategy
        model.compile(optimizer=optimizer or "adam", **compile_kwargs)
    if strategy is not _default() and isinstance(data, tf.data.Dataset):
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        data = data.with_options(options)
    history = model.fit(data, **fit_kwargs)
    return model, history
