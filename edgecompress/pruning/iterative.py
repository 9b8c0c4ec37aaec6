"""The survey's loop: rank filters, remove the weakest, fine-tune, repeat.

References:
    Han et al., "Learning both weights and connections for efficient neural networks", 2015.
    Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017.
"""

from __future__ import annotations

import logging

from edgecompress.measure import keras_accuracy, keras_macs
from edgecompress.pruning.filters import _check_ratio, prune_filters

log = logging.getLogger("edgecompress.pruning")


def iterative_prune(model, train_data, val_data, rounds=3, target=0.5, finetune_epochs=1,
                    criterion="l1", batch_size=64, compile_kwargs=None, verbose=0):
    """Prune ``target`` of the filters over ``rounds`` rounds, fine-tuning after each.

    Each round removes ``1 - (1 - target) ** (1 / rounds)`` of every prunable group's remaining
    filters, so that about ``target`` of them are gone at the end.

    Args:
        model: a built Sequential or Functional model (not modified).
        train_data: ``(x, y)`` for fine-tuning.
        val_data: ``(x, y)`` with integer labels, for the accuracy in the history.
        rounds: number of prune -> fine-tune rounds (>= 1).
        target: overall fraction of filters to remove, in [0, 1).
        finetune_epochs: epochs of fine-tuning per round (>= 0).
        criterion: "l1", "l2" or "bn_gamma" (see :func:`prune_filters`).
        batch_size: fine-tuning batch size.
        compile_kwargs: for ``compile`` each round; default Adam, sparse categorical
            cross-entropy, accuracy.
        verbose: passed to ``fit``.

    Returns:
        ``(model, history)``: the final fine-tuned model, and one dict per round (round 0 is the
        input) with ``round``, ``params``, ``macs`` and ``accuracy``.
    """
    target = _check_ratio(target, "target")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"`rounds` must be an int >= 1. Received: rounds={rounds!r}")
    if isinstance(finetune_epochs, bool) or not isinstance(finetune_epochs, int) or finetune_epochs < 0:
        raise ValueError(f"`finetune_epochs` must be an int >= 0. Received: finetune_epochs={finetune_epochs!r}")
    if criterion not in ("l1", "l2", "bn_gamma"):
        raise ValueError(f"`criterion` must be one of ('l1', 'l2', 'bn_gamma'). Received: criterion={criterion!r}")
    compile_kwargs = compile_kwargs or {"optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                                        "metrics": ["accuracy"]}
    per_round = 1.0 - (1.0 - target) ** (1.0 / rounds)

    def record(r, m):
        row = {"round": r, "params": int(m.count_params()), "macs": keras_macs(m),
               "accuracy": keras_accuracy(m, val_data)}
        log.info("pruning round %d/%d: params=%d macs=%d accuracy=%.4f", r, rounds, row["params"],
                 row["macs"], row["accuracy"])
        return row

    history = [record(0, model)]
    current = model
    for r in range(1, rounds + 1):
        current = prune_filters(current, per_round, criterion)
        current.compile(**compile_kwargs)
        if finetune_epochs:
            current.fit(*train_data, epochs=finetune_epochs, batch_size=batch_size, verbose=verbose)
        history.append(record(r, current))
    return current, history
