"""Data-parallel training with TensorFlow's own strategies, for the recipe's training steps and
the search's fine-tunes.

* ``"mirrored"``: :class:`tf.distribute.MirroredStrategy` over this machine's devices.
* ``"multiworker"``: :class:`tf.distribute.MultiWorkerMirroredStrategy`; every worker process runs
  the same script with its own ``TF_CONFIG`` (cluster addresses and its task index).

tf_keras needs a model's variables created in the strategy's scope, so a model built outside it
is trained as a copy made in the scope (same layers and weights; tfmot, larq and edgecompress
layers included), whose weights are copied back afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os

STRATEGIES = ("none", "mirrored", "multiworker")

_CACHE: dict = {}


def get_strategy(name: str | None):
    """The strategy called ``name`` (``None`` or ``"none"``: TensorFlow's default strategy).

    A strategy is created once per process. TensorFlow requires a multi-worker strategy to be
    created at program start, before any other TensorFlow op: call this first in a worker script.

    Raises:
        ValueError: an unknown name, or ``"multiworker"`` without a valid ``TF_CONFIG``.
    """
    from edgecompress._keras import tf

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


@contextlib.contextmanager
def replica_of(model, strategy):
    """Inside ``strategy.scope()``, yield a copy of ``model`` (same class, config and weights) to
    compile and train; on a normal exit its weights are copied back into ``model``.

    With the default strategy, ``model`` itself is yielded.
    """
    from edgecompress._keras import tf

    strategy = get_strategy(strategy) if strategy is None or isinstance(strategy, str) else strategy
    if strategy is tf.distribute.get_strategy():
        yield model
        return
    import tensorflow_model_optimization as tfmot

    with strategy.scope():
        with tfmot.sparsity.keras.prune_scope(), tfmot.quantization.keras.quantize_scope():
            copy = type(model).from_config(model.get_config())  # keeps PrunedModel's own fit
        copy.set_weights(model.get_weights())
        yield copy
    model.set_weights(copy.get_weights())


def fit(model, data, strategy=None, **fit_kwargs):
    """Compile and fit ``model`` in place under ``strategy``.

    Args:
        model: a tf_keras Sequential or Functional model (tfmot/larq/edgecompress layers allowed).
        data: a ``tf.data.Dataset`` of global batches (each worker gets its share of each batch).
        strategy: a strategy name (see :data:`STRATEGIES`) or a ``tf.distribute.Strategy``.
        **fit_kwargs: ``compile``, a function returning the keyword arguments of
            ``model.compile`` (called inside the strategy's scope, where the optimizer, losses
            and metrics must be created), and everything ``model.fit`` takes.

    Returns:
        The Keras history.
    """
    from edgecompress._keras import tf

    make = fit_kwargs.pop("compile", dict)
    with replica_of(model, strategy) as replica:
        # Called in the scope: optimizer, loss and metric variables must belong to the strategy.
        replica.compile(**(make() if callable(make) else dict(make)))
        if replica is not model and isinstance(data, tf.data.Dataset):
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            data = data.with_options(options)
        return replica.fit(data, **fit_kwargs)
