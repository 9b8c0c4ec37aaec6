"""Device budgets: ``flash=64KB,arena=20KB,latency=5ms`` parsed strictly into a :class:`Target`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgecompress._errors import UsageError

# Binary units as microcontroller vendors count them (64KB = 65,536 bytes).
_BYTE_UNITS = {"": 1, "B": 1, "KB": 1024, "KIB": 1024, "K": 1024, "MB": 1024 ** 2, "MIB": 1024 ** 2,
               "M": 1024 ** 2}
_TIME_UNITS = {"US": 1e-3, "MS": 1.0, "S": 1e3}
_VALUE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
KEYS = ("flash", "arena", "latency")


@dataclass(frozen=True)
class Target:
    """A device budget. ``None`` means unconstrained.

    Attributes:
        flash: bytes of the model file in flash (what TFLite Micro reads in place).
        arena: bytes of the TFLite Micro tensor arena (activations plus TFLM's persistent tail).
        latency_ms: median batch-1 latency in milliseconds, measured with LiteRT.
    """

    flash: int | None = None
    arena: int | None = None
    latency_ms: float | None = None

    def misses(self, flash=None, arena=None, latency_ms=None) -> list[str]:
        """What a measured candidate misses, as short phrases (empty when it fits)."""
        out = []
        for key, limit, value, unit in (("flash", self.flash, flash, "B"),
                                        ("arena", self.arena, arena, "B"),
                                        ("latency", self.latency_ms, latency_ms, "ms")):
            if limit is not None and value is not None and value > limit:
                shown = f"{value:,.0f} {unit} > {limit:,.0f} {unit}" if unit == "B" else \
                    f"{value:.3g} {unit} > {limit:.3g} {unit}"
                out.append(f"{key} {shown}")
        return out

    def excess(self, flash=None, arena=None, latency_ms=None) -> float:
        """Sum over the budgets of how far a candidate is over each, as a fraction of it."""
        total = 0.0
        for limit, value in ((self.flash, flash), (self.arena, arena), (self.latency_ms, latency_ms)):
            if limit is not None and value is not None:
                total += max(0.0, value / limit - 1.0)
        return total

    def describe(self) -> str:
        parts = []
        if self.flash is not None:
            parts.append(f"flash={self.flash:,} B")
        if self.arena is not None:
            parts.append(f"arena={self.arena:,} B")
        if self.latency_ms is not None:
            parts.append(f"latency={self.latency_ms:g} ms")
        return ", ".join(parts)


def parse_target(text: str, argument: str = "--target") -> Target:
    """Parse ``flash=64KB,arena=20KB[,latency=5ms]``.

    Sizes take B, KB/KiB/K, MB/MiB/M (binary: 1 KB = 1,024 B) or no unit (bytes); latency takes
    us, ms (the default) or s. Every value must be a positive number.

    Raises:
        UsageError: for an empty spec, a key that is not flash/arena/latency, a repeated key, a
            value that is not a positive number with a known unit.
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"`{argument}` must be KEY=VALUE pairs such as flash=64KB,arena=20KB. "
                         f"Received: {text!r}")
    values: dict[str, float] = {}
    for item in text.split(","):
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep:
            raise UsageError(f"`{argument}` items must be KEY=VALUE (e.g. flash=64KB). Received: {item!r}")
        if key not in KEYS:
            raise UsageError(f"`{argument}` keys must be among {list(KEYS)}. Received: {key!r}")
        if key in values:
            raise UsageError(f"`{argument}` gives `{key}` twice. Received: {text!r}")
        values[key] = _parse_value(key, raw, argument)
    return Target(flash=_int(values.get("flash")), arena=_int(values.get("arena")),
                  latency_ms=values.get("latency"))


def _parse_value(key: str, raw: str, argument: str) -> float:
    units = _TIME_UNITS if key == "latency" else _BYTE_UNITS
    shown = "a positive number with unit " + ("us, ms or s (e.g. 5ms)" if key == "latency"
                                              else "B, KB or MB (e.g. 64KB)")
    match = _VALUE.match(raw)
    unit = match.group(2).upper() if match else ""
    if key == "latency" and match and unit == "":
        unit = "MS"
    if not match or unit not in units:
        raise UsageError(f"`{argument}` {key} must be {shown}. Received: {key}={raw!r}")
    value = float(match.group(1)) * units[unit]
    if value <= 0:
        raise UsageError(f"`{argument}` {key} must be > 0. Received: {key}={raw!r}")
    return value


def _int(value):
    return None if value is None else int(round(value))
