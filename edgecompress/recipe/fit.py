"""``fit``: train the current model on the run's data (loss and metric per output from
:mod:`edgecompress.tasks`, augmentation by input kind, early stopping with the best weights)."""

from __future__ import annotations

from edgecompress.recipe.schema import register
from edgecompress.recipe.state import TRAINING


@register("fit", dict(TRAINING))
def fit(state, epochs, learning_rate, batch_size, augment, patience):
    state.fit(state.model, epochs, learning_rate, batch_size, augment, patience)
