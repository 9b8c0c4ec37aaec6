"""The step registry: each step kind's keys (with their checks) and its runner, side by side.

A step module declares its kind with :func:`register`; choices come from the family's public
constants and a key whose default is ``None`` is left out of the family call, so the family's own
default applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgecompress.surgery.select import check_selection


class RecipeError(ValueError):
    """A recipe that cannot run: names the step, the key, what was expected and what was received."""


REQUIRED = object()
NUMBER = (int, float)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Param:
    """One key of a step: its accepted types, default (``REQUIRED`` if none) and range check.

    ``check`` returns True for a good value, or raises ValueError with its own message.
    """

    types: tuple
    default: Any = None
    check: Callable[[Any], bool] | None = None
    expect: str = ""


@dataclass(frozen=True)
class StepKind:
    """A step kind and what the run loop needs to know of it.

    Attributes:
        name: the ``kind`` of the step.
        params: its keys.
        run: ``run(state, **params)``.
        check: optional ``check(context, params)`` against the model, run before any step trains;
            it may replace ``context.model`` (as ``swap_backbone`` does).
        layer_types: the classes its ``layers`` key selects from (checked against the model).
        parse_check: optional ``parse_check(params, extra) -> dict | None``, run when the recipe is
            read: rules across keys, and (for ``open_keys`` kinds) the extra keys, checked against a
            callee's signature; what it returns reaches ``run`` as ``options``.
        open_keys: whether keys beyond ``params`` are allowed (and handed to ``parse_check``).
    """

    name: str
    params: dict[str, Param]
    run: Callable
    check: Callable | None = None
    layer_types: tuple = ()
    parse_check: Callable | None = None
    open_keys: bool = False


STEPS: dict[str, StepKind] = {}


def register(name: str, params: dict[str, Param], check=None, layer_types=(), parse_check=None,
             open_keys=False):
    """Decorator: register ``run`` as the runner of step kind ``name``."""

    def wrap(run):
        STEPS[name] = StepKind(name, params, run, check, tuple(layer_types), parse_check, open_keys)
        return run

    return wrap


def choice(options, what: str = "") -> Param:
    """A string key that must be one of ``options`` (a family's constant), family default."""
    options = tuple(options)
    return Param((str,), None, lambda x: x in options, f"one of {list(options)}{what}")


def int_range(low, high, default=None) -> Param:
    return Param((int,), default, lambda x: low <= x <= high, f"an int in [{low}, {high}]")


def unit(default=None) -> Param:
    return Param(NUMBER, default, lambda x: 0 <= x < 1, "a number in [0, 1)")


def positive(default=None) -> Param:
    return Param(NUMBER, default, lambda x: x > 0, "a number > 0")


def _selection(value) -> bool:
    check_selection(value)
    return True


LAYERS = Param((str, list, dict), None, _selection,
               "a layer name, a list of names, or a rule table {kinds, min_params, exclude, match}")
FILE_NAME = Param((str,), None, lambda x: bool(NAME.match(x)),
                  "a plain file name (letters, digits, _ . -; no path)")
