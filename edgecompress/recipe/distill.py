"""``distill``: train the current model (the student) against a teacher with the Distiller
(temperature and alpha default to the Distiller's own)."""

from __future__ import annotations

from edgecompress import distillation
from edgecompress import tasks as tasks_lib
from edgecompress.recipe.schema import NUMBER, Param, register
from edgecompress.recipe.state import TRAINING


def _check(context, params):
    if len(context.tasks) != 1 or context.tasks[0].kind != tasks_lib.CLASSIFICATION:
        kinds = [t.kind for t in context.tasks]
        raise ValueError(f"`distill` needs a model with one classification output (soft targets). "
                         f"Received: outputs of kind {kinds}")


@register("distill", {
    "teacher": Param((str,), "baseline", None, "'baseline' or a path to a .keras/.h5 model"),
    "temperature": Param(NUMBER, None, lambda x: x > 0, "a number > 0"),
    "alpha": Param(NUMBER, None, lambda x: 0 <= x <= 1, "a number in [0, 1]"),
    "mixup": Param(NUMBER, None, lambda x: x >= 0, "a number >= 0 (0: off)"),
    **TRAINING,
}, check=_check)
def distill(state, teacher, temperature, alpha, mixup, epochs, learning_rate, batch_size, augment, patience):
    from edgecompress._keras import keras

    if teacher == "baseline":
        teacher_model = state.baseline
    else:
        from edgecompress.loading import load_model
        from edgecompress.registration import register_edgecompress_objects

        register_edgecompress_objects()
        teacher_model = load_model(teacher, argument="teacher")
    given = {"temperature": temperature, "alpha": alpha, "mixup": mixup}
    distiller = distillation.Distiller(teacher_model, state.model,
                                       **{k: v for k, v in given.items() if v is not None})
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=state.tasks[0].loss(),
                      metrics=[state.tasks[0].metric()])
    state.fit(distiller, epochs, learning_rate, batch_size, augment, patience, compiled=True,
              shape_of=state.model)
    state.model = distiller.student
