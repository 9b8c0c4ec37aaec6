"""What a transform did to each layer: transformed, skipped (and why) or refused (and why).

Every family transform builds one :class:`TransformReport`, attaches it to the model it returns
as ``model.transform_report`` and calls :meth:`TransformReport.warn_if_noop`, so that a transform
that changed nothing is never silent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger("edgecompress")


@dataclass
class TransformReport:
    """Per-layer outcome of one transform.

    Attributes:
        transform: the transform's name, e.g. ``"cluster_weights"``.
        transformed: names of the layers that were changed.
        skipped: layer name -> reason, for eligible-looking layers left as they were.
        refused: layer name -> reason, for layers the transform cannot handle.
    """

    transform: str
    transformed: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    refused: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.transformed)

    def to_dict(self) -> dict:
        return {"transform": self.transform, "transformed": list(self.transformed),
                "skipped": dict(self.skipped), "refused": dict(self.refused)}

    def to_markdown(self) -> str:
        from edgecompress._markdown import table

        return table(["layer", "outcome", "reason"],
                     [*([name, "transformed", ""] for name in self.transformed),
                      *([name, "skipped", why] for name, why in self.skipped.items()),
                      *([name, "refused", why] for name, why in self.refused.items())])

    def warn_if_noop(self) -> None:
        """Log a warning naming the transform when it changed no layer, and one line per refusal."""
        for name, why in self.refused.items():
            log.warning("%s: layer '%s' left unchanged: %s", self.transform, name, why)
        if not self.transformed:
            reasons = {**self.skipped, **self.refused}
            detail = "; ".join(f"{k}: {v}" for k, v in list(reasons.items())[:5])
            log.warning("%s changed no layer%s", self.transform, f" ({detail})" if detail else "")


def attach(model, report: TransformReport):
    """Attach ``report`` to ``model`` as ``model.transform_report`` (untracked) and return model."""
    object.__setattr__(model, "transform_report", report)
    return model
