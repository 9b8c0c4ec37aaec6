"""Knowledge distillation (survey section 5): Hinton soft targets and FitNets feature hints.

``Distiller(teacher, student, ...)`` is a tf_keras Model: compile and ``fit`` it like any
model, then take ``distiller.student``. ``thin(teacher, width)`` derives a student from any teacher.
"""

from edgecompress.distillation import losses  # noqa: F401
from edgecompress.distillation.distiller import Distiller  # noqa: F401
from edgecompress.distillation.losses import (  # noqa: F401
    LogitMSE,
    SoftTargetCrossEntropy,
    SoftTargetKL,
    get,
)
from edgecompress.distillation.students import thin  # noqa: F401

__all__ = ["Distiller", "thin", "SoftTargetKL", "SoftTargetCrossEntropy", "LogitMSE", "get", "losses"]
