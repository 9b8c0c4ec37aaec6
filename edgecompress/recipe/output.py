"""Steps that finish a model: ``strip`` (wrappers off, PQ decoded), ``pack`` (the entropy-coded
format) and ``export`` (a verified TFLite file, optionally a C array)."""

from __future__ import annotations

import re

from edgecompress import quantization
from edgecompress import tasks as tasks_lib
from edgecompress.artifacts import Artifact, export_artifact, first_accuracy, scores_of
from edgecompress.recipe.schema import FILE_NAME, Param, choice, register
from tflite_export.convert import MICRO_COMPRESSIONS, MODES


@register("strip", {})
def strip(state):
    from edgecompress import pruning

    state.model = quantization.decode(quantization.strip(pruning.strip(state.model)))


@register("pack", {"name": FILE_NAME})
def pack(state, name):
    from edgecompress.measure import measure

    name = name or f"{state.recipe.name}_packed"
    path = state.out_dir / f"{name}.ecpk"
    quantization.save_packed(state.model, path)
    m = measure(state.model)
    values = tasks_lib.evaluate(state.model, state.test, state.tasks)
    size = path.stat().st_size
    state.artifacts.append(Artifact(
        name=name, path=str(path), mode="packed", params=m.params, nonzero_params=m.nonzero_params,
        macs=m.macs, file_bytes=size, gzip_bytes=size,
        accuracy=first_accuracy(state.tasks, values), keras_accuracy=first_accuracy(state.tasks, values),
        scores=scores_of(state.tasks, values),
        note="storage/transfer format: no runtime reads it, not deployable"))


@register("export", {
    "mode": choice(MODES),
    "int8_io": Param((bool,), False),
    "c_array": Param((bool,), False),
    "min_agreement": Param((int, float), None, lambda x: 0 <= x <= 1, "a number in [0, 1]"),
    "micro": Param((bool,), False),
    "micro_compress": choice(MICRO_COMPRESSIONS),
    "name": FILE_NAME,
})
def export(state, mode, int8_io, c_array, min_agreement, micro, micro_compress, name):
    from tflite_export.micro import to_c_array

    mode = mode or "int8"
    name = name or f"{state.recipe.name}_{mode}"
    path = state.out_dir / f"{name}.tflite"
    state.artifacts.append(export_artifact(state.model, path, mode, state.train, state.test, tasks=state.tasks,
                                           int8_io=int8_io, min_agreement=min_agreement,
                                           micro=micro, micro_compress=micro_compress))
    if c_array:
        micro_dir = state.out_dir / "micro"
        micro_dir.mkdir(exist_ok=True)
        to_c_array(path, micro_dir, re.sub(r"\W", "_", name))
