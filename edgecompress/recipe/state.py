"""What the steps of one run share, and the one training loop every training step uses."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress import augment as augment_lib
from edgecompress import tasks as tasks_lib
from edgecompress._onednn import even_batches
from edgecompress.datasets import take
from edgecompress.recipe.schema import Param, int_range, positive

log = logging.getLogger("edgecompress.recipe")

#: Fewer training samples a class than this draws a warning before a fine-tune.
MIN_SAMPLES_PER_CLASS = 20


def _augment_form(value) -> bool:
    if value in (augment_lib.AUTO, augment_lib.NONE):
        return True
    if isinstance(value, dict):
        augment_lib.resolve(value, (32, 32, 3), "augment")  # keys and ranges; the model is checked later
        return True
    return False


#: The keys of every step that trains: ``fit``, ``distill`` and the fine-tunes inside steps.
TRAINING = {
    "epochs": int_range(1, 1000, 1),
    "learning_rate": positive(1e-3),
    "batch_size": int_range(1, 65536, 64),
    "augment": Param((str, dict), augment_lib.AUTO, _augment_form,
                     "'auto', 'none' or a table with some of shift, flip, rotation, zoom"),
    "patience": Param((int,), 3, lambda x: 0 <= x <= 1000,
                      "an int in [0, 1000] (epochs without improvement; 0: no early stopping)"),
}


@dataclass
class RunState:
    """What the steps of one recipe run share."""

    model: Any
    train: tuple
    validation: tuple
    test: tuple
    out_dir: Path
    baseline: Any
    recipe: Any
    tasks: list
    artifacts: list = field(default_factory=list)
    verbose: int = 1
    seed: int = 0
    where: str = ""
    strategy: str | None = None

    def compile(self, model, learning_rate: float, optimizer=None):
        from edgecompress._keras import keras

        model.compile(optimizer or keras.optimizers.Adam(learning_rate), **tasks_lib.compile_kwargs(self.tasks))

    def fit(self, model, epochs, learning_rate, batch_size, augment, patience, compiled=False,
            shape_of=None):
        """Train ``model`` in place on the run's training data, with early stopping on the
        validation metric (best weights restored), and return the Keras history.

        ``shape_of`` is the graph model whose input decides the augmentation (default ``model``;
        a Distiller passes its student)."""
        from edgecompress import distribute

        if self.strategy and not compiled:  # data-parallel: a copy in the strategy's scope
            with distribute.replica_of(model, self.strategy) as replica:  # weights come back after
                self.compile(replica, learning_rate)
                return self.fit(replica, epochs, learning_rate, batch_size, augment, patience,
                                compiled=True, shape_of=shape_of if shape_of is not None else model)
        if not compiled:
            self.compile(model, learning_rate)
        self.warn_if_small(epochs)
        graph = shape_of if shape_of is not None else model
        spec = augment_lib.resolve(augment, _input_shapes(graph), "augment", self.tasks)
        x, y = self.train
        x, y, batch_size = even_batches(graph, x, y, batch_size, self.where)
        data = augment_lib.batches(x, y, spec, batch_size, seed=self.seed)
        callbacks = []
        pruning = _has_pruning_wrappers(graph)
        if pruning:  # edgecompress's pruned models add UpdatePruningStep in fit; a Distiller does not
            import tensorflow_model_optimization as tfmot

            callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
        calibrate = _batchnorm_calibration(graph, x)
        if calibrate is not None:
            callbacks.append(calibrate)
        if patience and not pruning:
            callbacks.append(tasks_lib.early_stopping(self.tasks, patience))
        elif patience and epochs > 1:
            log.info("%s: no early stopping while the pruning schedule raises sparsity "
                     "(an earlier epoch is always less sparse)", self.where)
        log.info("%s: %d training / %d validation samples, augment: %s", self.where, len(x),
                 len(self.validation[0]), augment_lib.describe(spec))
        return model.fit(data, epochs=epochs, validation_data=self.validation,
                         callbacks=callbacks, verbose=2 if self.verbose else 0)

    def warn_if_small(self, epochs: int) -> None:
        labels = tasks_lib.split_labels(self.train[1], [t.output for t in self.tasks])
        for task, y in zip(self.tasks, labels):
            if task.kind == tasks_lib.REGRESSION:
                continue
            y = np.asarray(y)
            ids = y.argmax(-1) if not task.sparse else y.reshape(len(y), -1)[:, 0]
            counts = np.bincount(ids.astype(int).reshape(-1))
            counts = counts[counts > 0]
            if counts.size and counts.min() < MIN_SAMPLES_PER_CLASS:
                log.warning("%s: only %d training samples for the rarest class of output '%s' "
                            "(fewer than %d a class): fine-tuning may overfit; the accuracy guard "
                            "will tell", self.where, int(counts.min()), task.output, MIN_SAMPLES_PER_CLASS)


def _input_shapes(model):
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    return shapes[0] if len(shapes) == 1 else shapes


def _batchnorm_calibration(graph, x):
    """A callback that sets the BatchNormalization moving statistics of ``graph`` from the
    training inputs before each validation (AdaBN), or None when there is nothing to calibrate.

    A short fine-tune leaves them far behind the batch statistics at momentum 0.99 (new BN layers
    that ``binarize`` adds start at 0 / 1; a swapped backbone starts from scratch), so validation,
    early stopping and the exported file would see a model that training never saw. tfmot-wrapped
    models are left alone: a training-mode pass also moves their pruning masks and QAT ranges.
    """
    from edgecompress import binary, surgery
    from edgecompress._keras import keras

    layers = list(surgery.iter_layers(graph))
    if not any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers) or any(
            type(layer).__module__.startswith("tensorflow_model_optimization") for layer in layers):
        return None
    sample = take(x, slice(256))

    class CalibrateBatchNorm(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            binary.calibrate_batchnorm(graph, sample)

    return CalibrateBatchNorm()


def _has_pruning_wrappers(model) -> bool:
    from edgecompress import surgery

    return any(type(layer).__name__ == "PruneLowMagnitude" for layer in surgery.iter_layers(model))
