"""TOML recipes: an ordered list of compression steps run on a model.

A recipe is data, never code: it is read with the standard library's TOML reader and every step is
validated before any training starts. Example::

    name = "deep_compression"
    [[step]]
    kind = "prune_low_magnitude"
    target_sparsity = 0.9
    [[step]]
    kind = "fit"
    epochs = 3
    [[step]]
    kind = "strip"
    [[step]]
    kind = "export"
    mode = "int8"

Each step kind maps to one family function; :data:`STEPS` lists them with their keys.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

log = logging.getLogger("edgecompress.recipe")


class RecipeError(ValueError):
    """A recipe that cannot run: names the step, the key, what was expected and what was received."""


@dataclass(frozen=True)
class Param:
    """One key of a step: its accepted types, default (``REQUIRED`` if none) and range check."""

    types: tuple
    default: Any = None
    check: Callable[[Any], bool] | None = None
    expect: str = ""


REQUIRED = object()
_NUM = (int, float)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _unit(x):
    return 0 <= x < 1


def _unit_or_table(x):
    if isinstance(x, dict):
        return bool(x) and all(isinstance(v, _NUM) and not isinstance(v, bool) and _unit(v)
                               for v in x.values())
    return _unit(x)


def _pos(x):
    return x > 0


def _names(x):
    return all(isinstance(v, str) for v in x)


LAYERS = Param((list,), None, _names, "a list of layer names")

STEPS: dict[str, dict[str, Param]] = {
    "fit": {
        "epochs": Param((int,), 1, lambda x: 1 <= x <= 1000, "an int in [1, 1000]"),
        "learning_rate": Param(_NUM, 1e-3, _pos, "a number > 0"),
        "batch_size": Param((int,), 64, lambda x: 1 <= x <= 65536, "an int in [1, 65536]"),
        "shift": Param((int,), 0, lambda x: 0 <= x <= 16, "an int in [0, 16] (pixels)"),
    },
    "prune_low_magnitude": {
        "target_sparsity": Param(_NUM, 0.8, _unit, "a number in [0, 1)"),
        "initial_sparsity": Param(_NUM, 0.0, _unit, "a number in [0, 1)"),
        "schedule": Param((str,), "polynomial", lambda x: x in ("polynomial", "constant"),
                          "'polynomial' or 'constant'"),
        "m_by_n": Param((list,), None, lambda x: len(x) == 2 and all(isinstance(v, int) for v in x),
                        "[m, n] ints"),
        "block_size": Param((list,), None, lambda x: len(x) == 2 and all(isinstance(v, int) and v > 0 for v in x),
                            "[rows, cols] positive ints"),
        "layers": LAYERS,
    },
    "prune_filters": {
        "ratio": Param((*_NUM, dict), REQUIRED, _unit_or_table,
                       "a number in [0, 1) or a table {layer = ratio}"),
        "criterion": Param((str,), "l1", None, "a criterion name"),
    },
    "iterative_prune": {
        "rounds": Param((int,), 3, lambda x: 1 <= x <= 100, "an int in [1, 100]"),
        "target": Param(_NUM, 0.5, _unit, "a number in [0, 1)"),
        "finetune_epochs": Param((int,), 1, lambda x: 0 <= x <= 1000, "an int in [0, 1000]"),
        "criterion": Param((str,), "l1", None, "a criterion name"),
    },
    "cluster": {
        "clusters": Param((int,), 16, lambda x: 2 <= x <= 65536, "an int in [2, 65536]"),
        "init": Param((str,), "kmeans++", None, "an init name"),
        "per_channel": Param((bool,), False),
        "preserve_sparsity": Param((bool,), False),
        "layers": LAYERS,
    },
    "quantize_weights": {
        "bits": Param((int,), 8, lambda x: 2 <= x <= 8, "an int in [2, 8]"),
        "per_channel": Param((bool,), True),
        "symmetric": Param((bool,), True),
    },
    "product_quantize": {
        "subvector_size": Param((int,), 4, lambda x: x >= 1, "an int >= 1"),
        "codebook_size": Param((int,), 64, lambda x: x >= 2, "an int >= 2"),
        "calibrate": Param((bool,), True),
        "layers": LAYERS,
    },
    "quantize_aware": {
        "preserve": Param((str,), "none", None, "'none', 'sparsity', 'clusters' or 'both'"),
    },
    "binarize": {
        "scheme": Param((str,), "binarynet", None, "a scheme name"),
        "keep_first_last": Param((bool,), True),
        "layers": LAYERS,
    },
    "factorize": {
        "method": Param((str,), "auto", None, "a method name"),
        "energy": Param(_NUM, None, lambda x: 0 < x <= 1, "a number in (0, 1]"),
        "rank": Param((int,), None, _pos, "an int > 0"),
        "target_ratio": Param(_NUM, None, lambda x: 0 < x < 1, "a number in (0, 1)"),
        "target": Param((str,), "params", lambda x: x in ("params", "macs"), "'params' or 'macs'"),
        "layers": LAYERS,
    },
    "distill": {
        "teacher": Param((str,), "baseline", None, "'baseline' or a path to a .keras/.h5 model"),
        "temperature": Param(_NUM, None, _pos, "a number > 0"),
        "alpha": Param(_NUM, None, lambda x: 0 <= x <= 1, "a number in [0, 1]"),
        "mixup": Param(_NUM, 0.0, lambda x: x >= 0, "a number >= 0 (0: off)"),
        "epochs": Param((int,), 1, lambda x: 1 <= x <= 1000, "an int in [1, 1000]"),
        "learning_rate": Param(_NUM, 1e-3, _pos, "a number > 0"),
        "batch_size": Param((int,), 64, lambda x: 1 <= x <= 65536, "an int in [1, 65536]"),
    },
    "swap_backbone": {
        "backbone": Param((str,), REQUIRED, None, "a builder in edgecompress.models"),
        "width": Param(_NUM, None, _pos, "a width multiplier > 0 (alpha / scale)"),
        "filters": Param((list,), None, lambda x: all(isinstance(v, int) and v > 0 for v in x),
                         "a list of positive ints (small_cnn)"),
        "dense": Param((list,), None, lambda x: all(isinstance(v, int) and v > 0 for v in x),
                       "a list of positive ints (small_cnn)"),
    },
    "strip": {},  # removes pruning/clustering wrappers and decodes PQ layers
    "pack": {
        "name": Param((str,), None, lambda x: bool(_NAME.match(x)),
                      "a plain file name (letters, digits, _ . -; no path)"),
    },
    "export": {
        "mode": Param((str,), "int8", lambda x: x in ("float32", "dynamic", "float16", "int8",
                                                       "int16x8", "binary"),
                      "one of float32, dynamic, float16, int8, int16x8, binary"),
        "int8_io": Param((bool,), False),
        "c_array": Param((bool,), False),
        "min_agreement": Param(_NUM, None, lambda x: 0 <= x <= 1, "a number in [0, 1]"),
        "name": Param((str,), None, lambda x: bool(_NAME.match(x)),
                      "a plain file name (letters, digits, _ . -; no path)"),
    },
}


@dataclass
class Step:
    """One validated recipe step."""

    index: int
    kind: str
    params: dict

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items() if v is not None)
        return f"{self.kind}({shown})"


@dataclass
class Recipe:
    """A validated recipe: its name, steps and the hash of its text (for resuming)."""

    name: str
    steps: list[Step]
    description: str = ""
    digest: str = ""
    source: Path | None = field(default=None, repr=False)


def load(path) -> Recipe:
    """Read and validate a recipe file.

    Raises:
        RecipeError: for a missing file, bad TOML, or any invalid step (before anything runs).
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"`recipe` must be an existing TOML file. Received: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError(f"`recipe` could not be read ({err}). Received: {path}") from None
    recipe = parse(text, default_name=path.stem)
    recipe.source = path
    return recipe


def parse(text: str, default_name: str = "recipe") -> Recipe:
    """Validate recipe TOML text. See :func:`load`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"`recipe` is not valid TOML: {err}") from None
    unknown = set(data) - {"name", "description", "step"}
    if unknown:
        raise RecipeError(
            f"`recipe` has unknown top-level keys {sorted(unknown)}; expected name, description "
            "and [[step]] tables"
        )
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name):
        raise RecipeError(f"`name` must be a plain name (letters, digits, _ . -). Received: {name!r}")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise RecipeError("`recipe` must hold at least one [[step]] table. Received: none")
    steps = [_validate_step(i, raw) for i, raw in enumerate(raw_steps, start=1)]
    description = data.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(f"`description` must be a string. Received: {type(description).__name__}")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Recipe(name=name, steps=steps, description=description, digest=digest)


def _validate_step(index: int, raw) -> Step:
    where = f"step {index}"
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: must be a table. Received: {type(raw).__name__}")
    kind = raw.get("kind")
    if kind is None:
        raise RecipeError(f"{where}: missing key `kind`; expected one of {sorted(STEPS)}")
    if kind not in STEPS:
        raise RecipeError(f"{where}: `kind` must be one of {sorted(STEPS)}. Received: kind={kind!r}")
    schema = STEPS[kind]
    where = f"step {index} ({kind})"
    params = {}
    for key in raw:
        if key != "kind" and key not in schema:
            raise RecipeError(
                f"{where}: unknown key `{key}`; expected one of {sorted(schema) or 'no keys'}"
            )
    for key, spec in schema.items():
        if key not in raw:
            if spec.default is REQUIRED:
                raise RecipeError(f"{where}: missing key `{key}`; expected {spec.expect}")
            params[key] = spec.default
            continue
        value = raw[key]
        if isinstance(value, bool) and bool not in spec.types:
            ok = False
        else:
            ok = isinstance(value, spec.types)
        if ok and spec.check is not None:
            try:
                ok = bool(spec.check(value))
            except TypeError:
                ok = False
        if not ok:
            expected = spec.expect or " or ".join(t.__name__ for t in spec.types)
            raise RecipeError(f"{where}: `{key}` must be {expected}. Received: {key}={value!r}")
        params[key] = value
    if kind == "factorize":
        given = [k for k in ("energy", "rank", "target_ratio") if params[k] is not None]
        if len(given) != 1:
            raise RecipeError(
                f"{where}: exactly one of `energy`, `rank`, `target_ratio` must be set. "
                f"Received: {given or 'none'}"
            )
    return Step(index=index, kind=kind, params=params)


# ----------------------------------------------------------------------------------------------
# Running a recipe. This module and the CLI are the only bridges between the families and
# tflite_export (see DESIGN.md, "Walls").


@dataclass
class RunState:
    """What the steps of one recipe run share."""

    model: Any
    train: tuple
    test: tuple
    out_dir: Path
    baseline: Any
    recipe: Recipe
    artifacts: list = field(default_factory=list)
    verbose: int = 1
    seed: int = 0
    strategy: str | None = None


def run(recipe: Recipe, model, train, test, out_dir, baseline=None, verbose: int = 1, seed: int = 0,
        strategy: str | None = None):
    """Run every step of ``recipe`` on a clone of ``model``; write artifacts into ``out_dir``.

    Args:
        recipe: a validated :class:`Recipe`.
        model: the trained tf_keras model (left untouched).
        train: ``(x, y)`` for fine-tuning and calibration.
        test: ``(x, y)`` held out for verification and accuracy.
        out_dir: an existing folder for the outputs.
        baseline: the teacher for ``distill`` steps with ``teacher = "baseline"`` (default: model).

    Returns:
        ``(final_model, artifacts)``, artifacts being :class:`edgecompress.report.Artifact` rows.
    """
    from edgecompress import surgery

    state = RunState(model=surgery.clone(model), train=train, test=test, out_dir=Path(out_dir),
                     baseline=baseline if baseline is not None else model, recipe=recipe,
                     verbose=verbose, seed=seed, strategy=strategy)
    for step in recipe.steps:
        log.info("[%s] step %d/%d: %s", recipe.name, step.index, len(recipe.steps), step.describe())
        try:
            _RUNNERS[step.kind](state, **step.params)
        except RecipeError:
            raise
        except (ValueError, TypeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise RecipeError(f"step {step.index} ({step.kind}): {first}") from err
    return state.model, state.artifacts


def _loss_for(model):
    """Sparse cross-entropy, from logits unless the model ends in a softmax (seen through
    tfmot wrappers, whose QAT activation wraps the original one)."""
    from edgecompress._keras import keras

    last = model.layers[-1]
    while hasattr(last, "layer"):
        last = last.layer
    activation = getattr(last, "activation", None)
    while hasattr(activation, "activation"):
        activation = activation.activation
    name = getattr(activation, "__name__", "") or getattr(activation, "name", "")
    softmax = name == "softmax" or type(last).__name__ == "Softmax"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax)


def _fit(state: RunState, epochs, learning_rate, batch_size, shift):
    from edgecompress import datasets
    from edgecompress._keras import keras

    from edgecompress import distribute

    # A pruned model from edgecompress.pruning adds tfmot's UpdatePruningStep by itself.
    data = datasets.shifted_batches(*state.train, batch_size, pixels=shift, seed=state.seed)
    state.model, _ = distribute.fit(
        state.model, data, state.strategy, epochs=epochs, validation_data=state.test,
        verbose=2 if state.verbose else 0,
        compile={"optimizer": lambda: keras.optimizers.Adam(learning_rate),
                 "loss": _loss_for(state.model), "metrics": ["accuracy"]})


def _has_pruning_wrappers(model) -> bool:
    from edgecompress import surgery

    return any(type(layer).__name__ == "PruneLowMagnitude" for layer in surgery.iter_layers(model))


def _strip(state: RunState):
    from edgecompress import pruning, quantization

    state.model = quantization.decode(quantization.strip(pruning.strip(state.model)))


def _prune_low_magnitude(state, target_sparsity, initial_sparsity, schedule, m_by_n, block_size,
                         layers):
    from edgecompress import pruning

    if schedule == "constant":
        sched = pruning.ConstantSparsity(target_sparsity)
    else:
        sched = pruning.PolynomialDecay(target=target_sparsity, initial=initial_sparsity)
    kwargs = {"schedule": sched, "layers": layers}
    if m_by_n:
        kwargs["m_by_n"] = tuple(m_by_n)
    if block_size:
        kwargs["block_size"] = tuple(block_size)
    state.model = pruning.prune_low_magnitude(state.model, **kwargs)


def _prune_filters(state, ratio, criterion):
    from edgecompress import pruning

    state.model = pruning.prune_filters(state.model, ratio, criterion=criterion)


def _iterative_prune(state, rounds, target, finetune_epochs, criterion):
    from edgecompress import pruning

    state.model, _ = pruning.iterative_prune(state.model, state.train, state.test, rounds=rounds,
                                             target=target, finetune_epochs=finetune_epochs,
                                             criterion=criterion)


def _cluster(state, clusters, init, per_channel, preserve_sparsity, layers):
    from edgecompress import quantization

    state.model = quantization.cluster_weights(state.model, clusters=clusters, init=init,
                                               per_channel=per_channel,
                                               preserve_sparsity=preserve_sparsity, layers=layers)


def _quantize_weights(state, bits, per_channel, symmetric):
    from edgecompress import quantization

    result = quantization.quantize_weights(state.model, bits, per_channel=per_channel,
                                           symmetric=symmetric)
    state.model = result[0] if isinstance(result, tuple) else result


def _product_quantize(state, subvector_size, codebook_size, calibrate, layers):
    from edgecompress import quantization

    calibration = state.train[0][:512] if calibrate else None
    state.model = quantization.product_quantize(state.model, subvector_size, codebook_size,
                                                layers=layers, calibration_data=calibration)


def _quantize_aware(state, preserve):
    from edgecompress import quantization

    state.model = quantization.quantize_aware(state.model, preserve=preserve,
                                              calibration_data=state.train[0][:512])


def _binarize(state, scheme, keep_first_last, layers):
    from edgecompress import binary

    state.model = binary.binarize(state.model, scheme, keep_first_last=keep_first_last,
                                  layers=layers)


def _factorize(state, method, energy, rank, target_ratio, target, layers):
    from edgecompress import lowrank

    state.model = lowrank.factorize(state.model, method=method, energy=energy, rank=rank,
                                    target_ratio=target_ratio, target=target, layers=layers)


def _distill(state, teacher, temperature, alpha, mixup, epochs, learning_rate, batch_size):
    from edgecompress import distillation
    from edgecompress._keras import keras

    if teacher == "baseline":
        teacher_model = state.baseline
    else:
        from edgecompress.loading import load_model

        teacher_model = load_model(teacher, argument="teacher")
    kwargs = {k: v for k, v in (("temperature", temperature), ("alpha", alpha)) if v is not None}
    distiller = distillation.Distiller(teacher_model, state.model, mixup=mixup, **kwargs)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"])
    callbacks = []
    if _has_pruning_wrappers(state.model):
        import tensorflow_model_optimization as tfmot

        callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
    distiller.fit(*state.train, epochs=epochs, batch_size=batch_size, callbacks=callbacks,
                  verbose=2 if state.verbose else 0)
    state.model = distiller.student


def _export(state, mode, int8_io, c_array, min_agreement, name):
    from edgecompress.pipeline import export_artifact
    from tflite_export.micro import to_c_array

    name = name or f"{state.recipe.name}_{mode}"
    path = state.out_dir / f"{name}.tflite"
    if mode == "binary":  # LCE leaves Dense float; as 1x1 binary convs they are bit-packed
        from edgecompress import binary

        state.model = binary.dense_as_conv(state.model)
    state.artifacts.append(export_artifact(state.model, path, mode, state.train, state.test,
                                           int8_io=int8_io, min_agreement=min_agreement))
    if c_array:
        micro = state.out_dir / "micro"
        micro.mkdir(exist_ok=True)
        to_c_array(path, micro, re.sub(r"\W", "_", name))


def _swap_backbone(state, backbone, width, filters, dense):
    from edgecompress import models

    builder = getattr(models, backbone, None)
    if backbone.startswith("_") or not callable(builder):
        raise RecipeError(f"`backbone` must be one of {sorted(models.__all__)}. "
                          f"Received: backbone={backbone!r}")
    kwargs = {k: tuple(v) for k, v in (("filters", filters), ("dense", dense)) if v is not None}
    if width is not None:
        kwargs[{"mobilenet_v2": "alpha", "shufflenet_v2": "scale"}.get(backbone, "width")] = width
    shape = tuple(state.model.inputs[0].shape[1:])
    classes = int(state.model.outputs[0].shape[-1])
    state.model = builder(input_shape=shape, num_classes=classes, **kwargs)


def _pack(state, name):
    from edgecompress.measure import measure
    from edgecompress.quantization import save_packed
    from edgecompress.report import Artifact

    name = name or f"{state.recipe.name}_packed"
    path = state.out_dir / f"{name}.ecpk"
    save_packed(state.model, path)
    m = measure(state.model, state.test)
    size = path.stat().st_size
    state.artifacts.append(Artifact(
        name=name, path=str(path), mode="packed", params=m.params, nonzero_params=m.nonzero_params,
        macs=m.macs, file_bytes=size, gzip_bytes=size, deploy_bytes=size, accuracy=m.accuracy,
        keras_accuracy=m.accuracy))


_RUNNERS: dict[str, Callable] = {
    "swap_backbone": _swap_backbone, "pack": _pack,
    "fit": _fit, "strip": _strip, "prune_low_magnitude": _prune_low_magnitude,
    "prune_filters": _prune_filters, "iterative_prune": _iterative_prune, "cluster": _cluster,
    "quantize_weights": _quantize_weights, "product_quantize": _product_quantize,
    "quantize_aware": _quantize_aware, "binarize": _binarize, "factorize": _factorize,
    "distill": _distill, "export": _export,
}
