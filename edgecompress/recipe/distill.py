"""Distillation steps: ``thin`` (a student derived from the model itself) and ``distill`` (train the
current model, the student, against a teacher with the Distiller). Defaults are the family's."""

from __future__ import annotations

from edgecompress import distillation
from edgecompress import tasks as tasks_lib
from edgecompress.recipe.schema import NUMBER, Param, choice, register
from edgecompress.recipe.state import TRAINING


def _thin_check(context, params):
    context.model = _thin(context.model, **params)
    context.refresh()


def _thin(model, width, init):
    given = {"width": width, "init": init}
    return distillation.thin(model, **{k: v for k, v in given.items() if v is not None})


@register("thin", {
    "width": Param(NUMBER, None, lambda x: 0 < x < 1, "a number in (0, 1)"),
    "init": choice(distillation.students.INITS),
}, check=_thin_check)
def thin(state, width, init):
    state.model = _thin(state.model, width, init)


def _outputs(model):
    return [tuple(t.shape[1:]) for t in model.outputs]


def _check(context, params):
    if params["teacher"] == "baseline" and _outputs(context.model) != _outputs(context.baseline):
        raise ValueError(f"`teacher` 'baseline' must have the student's outputs. Received: teacher "
                         f"outputs {_outputs(context.baseline)}, student outputs {_outputs(context.model)}")


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
    distiller = distillation.Distiller(teacher_model, state.model, tasks=state.tasks,
                                       **{k: v for k, v in given.items() if v is not None})
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), **tasks_lib.compile_kwargs(state.tasks))
    state.fit(distiller, epochs, learning_rate, batch_size, augment, patience, compiled=True,
              shape_of=state.model)
    state.model = distiller.student
