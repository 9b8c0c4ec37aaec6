"""Reading a recipe: TOML text to validated :class:`Recipe` steps, before anything runs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from edgecompress import tasks as tasks_lib
from edgecompress.recipe.schema import NAME, NUMBER, REQUIRED, STEPS, RecipeError

TOP_LEVEL = ("name", "description", "task", "max_drop", "step")
#: ``max_drop`` bounds: percentage points of accuracy, or percent more error for regression.
MAX_DROP_RANGE = (0.0, 100.0)
_HINTS = {"shift": " (augmentation is now `augment = {shift = N}`, or 'auto' by input kind)"}


@dataclass
class Step:
    """One validated recipe step."""

    index: int
    kind: str
    params: dict

    @property
    def where(self) -> str:
        return f"step {self.index} ({self.kind})"

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items() if v is not None)
        return f"{self.kind}({shown})"


@dataclass
class Recipe:
    """A validated recipe: its name, steps, task override, accuracy limit and text hash."""

    name: str
    steps: list[Step]
    description: str = ""
    digest: str = ""
    task: object = None
    max_drop: float | None = None
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
    """Validate recipe TOML text. See :func:`load`.

    Top-level keys: ``name``, ``description``, ``task`` (a kind or loss name from
    :mod:`edgecompress.tasks`, or a table of them by output name), ``max_drop`` (see
    :mod:`edgecompress.recipe.guard`) and the ``[[step]]`` tables.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"`recipe` is not valid TOML: {err}") from None
    unknown = set(data) - set(TOP_LEVEL)
    if unknown:
        raise RecipeError(f"`recipe` has unknown top-level keys {sorted(unknown)}; expected some of "
                          f"{list(TOP_LEVEL)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not NAME.match(name):
        raise RecipeError(f"`name` must be a plain name (letters, digits, _ . -). Received: {name!r}")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise RecipeError("`recipe` must hold at least one [[step]] table. Received: none")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(f"`description` must be a string. Received: {type(description).__name__}")
    task = data.get("task")
    for value in (task.values() if isinstance(task, dict) else [task]):
        if value is not None:
            try:
                tasks_lib.resolve_kind(value, "task")
            except ValueError as err:
                raise RecipeError(str(err)) from None
    max_drop = data.get("max_drop")
    if max_drop is not None:
        max_drop = check_max_drop(max_drop, "max_drop", RecipeError)
    steps = [_validate_step(i, raw) for i, raw in enumerate(raw_steps, start=1)]
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Recipe(name=name, steps=steps, description=description, digest=digest, task=task,
                  max_drop=max_drop)


def check_max_drop(value, argument: str, error=ValueError) -> float:
    """``value`` as a float in :data:`MAX_DROP_RANGE`, or ``error`` naming ``argument``."""
    low, high = MAX_DROP_RANGE
    if isinstance(value, bool) or not isinstance(value, NUMBER) or not low <= value <= high:
        raise error(f"`{argument}` must be a number in [{low:g}, {high:g}] (percentage points of accuracy, "
                    f"or percent more error for regression). Received: {argument}={value!r}")
    return float(value)


def _validate_step(index: int, raw) -> Step:
    where = f"step {index}"
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: must be a table. Received: {type(raw).__name__}")
    kind = raw.get("kind")
    if kind is None:
        raise RecipeError(f"{where}: missing key `kind`; expected one of {sorted(STEPS)}")
    if kind not in STEPS:
        raise RecipeError(f"{where}: `kind` must be one of {sorted(STEPS)}. Received: kind={kind!r}")
    spec = STEPS[kind]
    where = f"step {index} ({kind})"
    extra = {k: v for k, v in raw.items() if k != "kind" and k not in spec.params}
    if extra and not spec.open_keys:
        key = sorted(extra)[0]
        raise RecipeError(f"{where}: unknown key `{key}`; expected one of {sorted(spec.params) or 'no keys'}"
                          f"{_HINTS.get(key, '')}")
    params = {}
    for key, param in spec.params.items():
        if key not in raw:
            if param.default is REQUIRED:
                raise RecipeError(f"{where}: missing key `{key}`; expected {param.expect}")
            params[key] = param.default
            continue
        value = raw[key]
        ok = isinstance(value, param.types) and not (isinstance(value, bool) and bool not in param.types)
        if ok and param.check is not None:
            try:
                ok = bool(param.check(value))
            except TypeError:
                ok = False
            except ValueError as err:
                raise RecipeError(f"{where}: {err}") from None
        if not ok:
            expected = param.expect or " or ".join(t.__name__ for t in param.types)
            raise RecipeError(f"{where}: `{key}` must be {expected}. Received: {key}={value!r}")
        params[key] = value
    if spec.parse_check is not None:
        try:
            options = spec.parse_check(params, extra)
        except ValueError as err:
            raise RecipeError(f"{where}: {err}") from None
        if spec.open_keys:
            params["options"] = options or {}
    return Step(index=index, kind=kind, params=params)
