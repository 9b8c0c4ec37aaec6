"""The survey's loop: rank filters, remove the weakest, fine-tune, repeat.

References:
    Han et al., "Learning both weights and connections for efficient neural networks", 2015.
    Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017.
"""

from __future__ import annotations

import logging

from edgecompress.measure import keras_macs
from edgecompress.pruning.filters import _check_ratio, prune_filters
from edgecompress.tasks import compile_kwargs as task_compile_kwargs
from edgecompress.tasks import evaluate, infer_tasks

log = logging.getLogger("edgecompress.pruning")

#: The filter criteria the loop accepts (``"threshold"`` needs a per-run threshold, so it is not one).
CRITERIA = ("l1", "l2", "bn_gamma")


def iterative_prune(model, train_data, val_data, rounds=3, target=0.5, finetune_epochs=1,
                    criterion="l1", batch_size=64, compile_kwargs=None, verbose=0, finetune=None):
    """Prune ``target`` of the filters over ``rounds`` rounds, fine-tuning after each.

    Each round removes ``1 - (1 - target) ** (1 / rounds)`` of every prunable group's remaining
    filters, so that about ``target`` of them are gone at the end.

    Args:
        model: a built Sequential or Functional model (not modified).
        train_data: ``(x, y)`` for fine-tuning.
        val_data: ``(x, y)``, for the metric in the history.
        rounds: number of prune -> fine-tune rounds (>= 1).
        target: overall fraction of filters to remove, in [0, 1).
        finetune_epochs: epochs of fine-tuning per round (>= 0).
        criterion: "l1", "l2" or "bn_gamma" (see :func:`prune_filters`).
        batch_size: fine-tuning batch size.
        compile_kwargs: for ``compile`` each round; default Adam with the loss and metric of
            each output inferred by :func:`edgecompress.tasks.infer_tasks` from the model and
            ``train_data``'s labels.
        verbose: passed to ``fit``.
        finetune: optional ``finetune(model, epochs)`` that compiles and trains a round's model in
            place (augmentation, early stopping); it replaces the default compile + fit.

    Returns:
        ``(model, history)``: the final fine-tuned model, and one dict per round (round 0 is the
        input) with ``round``, ``params``, ``macs`` and the first output's metric (``accuracy``
        for a classifier, ``mse`` for a regressor).
    """
    target = _check_ratio(target, "target")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"`rounds` must be an int >= 1. Received: rounds={rounds!r}")
    if isinstance(finetune_epochs, bool) or not isinstance(finetune_epochs, int) or finetune_epochs < 0:
        raise ValueError(f"`finetune_epochs` must be an int >= 0. Received: finetune_epochs={finetune_epochs!r}")
    if criterion not in CRITERIA:
        raise ValueError(f"`criterion` must be one of {CRITERIA}. Received: criterion={criterion!r}")
    tasks = infer_tasks(model, train_data[1])
    per_round = 1.0 - (1.0 - target) ** (1.0 / rounds)

    def record(r, m):
        row = {"round": r, "params": int(m.count_params()), "macs": keras_macs(m),
               tasks[0].metric_name: evaluate(m, val_data, tasks)[0]}
        log.info("pruning round %d/%d: params=%d macs=%d %s=%.4f", r, rounds, row["params"],
                 row["macs"], tasks[0].metric_name, row[tasks[0].metric_name])
        return row

    history = [record(0, model)]
    current = model
    for r in range(1, rounds + 1):
        current = prune_filters(current, per_round, criterion)
        if finetune is not None:
            if finetune_epochs:
                finetune(current, finetune_epochs)
            history.append(record(r, current))
            continue
        current.compile(**(compile_kwargs or {"optimizer": "adam", **task_compile_kwargs(tasks)}))
        if finetune_epochs:
            current.fit(*train_data, epochs=finetune_epochs, batch_size=batch_size, verbose=verbose)
        history.append(record(r, current))
    return current, history
