"""Students derived from the teacher itself: its own graph, thinner.

A student with the teacher's architecture at a fraction of its width fits any model the teacher
fits (any input, any number and kind of outputs), where a fixed backbone such as
:func:`edgecompress.models.small_cnn` needs an image classifier. The thinning is
:func:`edgecompress.pruning.prune_filters` (so every channel-dependency rule of the surgery core
applies: residual groups, depthwise layers, Flatten->Dense; the output widths stay), then the
weights are drawn afresh by Keras's ``clone_model`` unless ``init="teacher"`` keeps the teacher's
largest filters (a warm start, as in pruning followed by distillation).

References:
    Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015 (thinner students).
    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015.
"""

from __future__ import annotations

from edgecompress import surgery
from edgecompress._keras import keras

#: The default fraction of the teacher's filters and units a thinned student keeps (about
#: ``width**2`` of the weights of a layer between two thinned ones).
DEFAULT_WIDTH = 0.25
INITS = ("random", "teacher")


def thin(teacher, width: float = DEFAULT_WIDTH, init: str = "random"):
    """A student with the teacher's graph and ``width`` of its filters/units in every prunable layer.

    Args:
        teacher: a built Sequential or Functional tf_keras model (not modified).
        width: fraction in (0, 1) of each layer's filters or units to keep (at least one); layers
            whose width is a model output (the heads) keep theirs.
        init: ``"random"`` (fresh weights from each layer's initializers) or ``"teacher"`` (the
            teacher's filters with the largest L1 norms).

    Returns:
        The student, uncompiled; ``student.transform_report`` names the thinned layers and those
        left at full width, with the reason.

    Raises:
        ValueError: ``width`` outside (0, 1), an unknown ``init``, or a teacher with no layer that
            can be thinned (the message names the layers and why).
        TypeError: subclassed or Keras 3 models.

    Example:
        >>> student = thin(teacher, width=0.25)
        >>> distiller = Distiller(teacher, student)
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width < 1:
        raise ValueError(f"`width` must be in (0, 1). Received: width={width!r}")
    if init not in INITS:
        raise ValueError(f"`init` must be one of {list(INITS)}. Received: init={init!r}")
    from edgecompress.pruning import prune_filters

    small = prune_filters(teacher, ratio=1.0 - float(width), criterion="l1")
    pruned = small.transform_report
    if not pruned.transformed:
        reasons = {**pruned.refused, **pruned.skipped}
        detail = "; ".join(f"'{k}': {v}" for k, v in list(reasons.items())[:3]) or "no Conv/Dense layer"
        raise ValueError(f"`thin` found no layer of model '{teacher.name}' whose filters or units can be "
                         f"thinned ({detail}). Use a `swap_backbone` step for this model")
    if init == "random":
        small = keras.models.clone_model(small)
    report = surgery.TransformReport(f"thin(width={width})", list(pruned.transformed),
                                     dict(pruned.skipped), dict(pruned.refused))
    return surgery.attach(small, report)
