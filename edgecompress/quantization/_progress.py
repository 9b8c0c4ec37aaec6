"""Progress lines for transforms that take a while: one INFO log line per step on the
"edgecompress" logger, once the transform has run longer than a few seconds."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("edgecompress")
QUIET_SECONDS = 2.0


class Progress:
    """``step(what)`` logs ``<transform>: <i>/<total> <what> (<elapsed> s)`` after QUIET_SECONDS."""

    def __init__(self, transform: str, total: int | None = None):
        self.transform, self.total, self.count = transform, total, 0
        self.start = time.monotonic()

    def step(self, what: str) -> None:
        self.count += 1
        elapsed = time.monotonic() - self.start
        if elapsed > QUIET_SECONDS:
            where = f"{self.count}/{self.total}" if self.total else f"{self.count}"
            log.info("%s: %s %s (%.1f s)", self.transform, where, what, elapsed)
