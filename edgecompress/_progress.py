"""Per-layer progress for transforms that take more than a few seconds.

A transform ticks :class:`Progress` once per layer. Nothing is shown for the first
:data:`SHOW_AFTER_SECONDS`, so small models stay quiet; after that, a terminal (``stderr`` is a
TTY) gets one self-overwriting line, anything else gets one ``INFO`` log line per layer on the
``edgecompress`` logger.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("edgecompress")

SHOW_AFTER_SECONDS = 2.0
"""Progress appears once a transform has run this long."""


class Progress:
    """Count the layers a transform has handled and show it once it runs long.

    Args:
        label: the transform's name, e.g. ``"factorize"``.
        total: the number of layers it will handle (None when unknown).
        stream: where a TTY line goes (default ``sys.stderr``).
        unit: what one step is (``"layer"``, or ``"stage"`` for a transform in phases).

    Example:
        >>> with Progress("factorize", len(layers)) as progress:
        ...     for layer in layers:
        ...         progress.step(layer.name)
        ...         work(layer)
    """

    def __init__(self, label: str, total: int | None = None, stream=None, unit: str = "layer"):
        self.label, self.total, self.count, self.unit = label, total, 0, unit
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False

    def step(self, name: str) -> None:
        """Record that layer ``name`` is being handled; show it if the transform runs long."""
        self.count += 1
        elapsed = time.monotonic() - self.start
        if elapsed < SHOW_AFTER_SECONDS:
            return
        of = f"/{self.total}" if self.total else ""
        text = f"{self.label}: {self.unit} {self.count}{of} '{name}' ({elapsed:.0f} s)"
        if self._tty:
            self.stream.write("\r" + text[:120].ljust(120))
            self.stream.flush()
            self._drawn = True
        else:
            log.info(text)

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def rule(self, rule):
        """Wrap a surgery rule so that each layer it is asked about is one step."""

        def ticking(layer):
            self.step(layer.name)
            return rule(layer)

        return ticking

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
