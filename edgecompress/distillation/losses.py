"""Soft-target losses between teacher and student logits, serializable and resolvable by name.

Every loss here is called as ``loss(teacher_logits, student_logits)`` on logits that the
:class:`~edgecompress.distillation.Distiller` has already divided by the temperature ``T``; the
Distiller multiplies the result by ``T**2`` (Hinton et al. 2015, section 2: the soft-target
gradients scale as ``1/T**2``, so the factor keeps their weight against the hard-label loss
independent of ``T``). All three losses are invariant to adding a constant to every logit of a
sample, so log-probabilities can stand in for logits (what the Distiller does for models that end
in a softmax it cannot see through).

References:
    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015.
    Ba, Caruana, "Do Deep Nets Really Need to be Deep?", NeurIPS 2014 (regression on logits).
"""

from __future__ import annotations

from edgecompress._keras import keras, tf

_PACKAGE = "edgecompress"


@keras.utils.register_keras_serializable(package=_PACKAGE)
class SoftTargetKL(keras.losses.Loss):
    """``KL(softmax(teacher) || softmax(student))`` per sample, summed over classes.

    The Hinton soft-target loss. Its gradient equals that of :class:`SoftTargetCrossEntropy`; its
    value is 0 when the student matches the teacher.
    """

    def __init__(self, reduction="auto", name="soft_target_kl"):
        super().__init__(reduction=reduction, name=name)

    def call(self, teacher_logits, student_logits):
        t_log = tf.nn.log_softmax(teacher_logits, axis=-1)
        s_log = tf.nn.log_softmax(student_logits, axis=-1)
        return tf.reduce_sum(tf.exp(t_log) * (t_log - s_log), axis=-1)


@keras.utils.register_keras_serializable(package=_PACKAGE)
class SoftTargetCrossEntropy(keras.losses.Loss):
    """``-sum(softmax(teacher) * log_softmax(student))`` per sample (KL plus the teacher's entropy)."""

    def __init__(self, reduction="auto", name="soft_target_cross_entropy"):
        super().__init__(reduction=reduction, name=name)

    def call(self, teacher_logits, student_logits):
        t_prob = tf.nn.softmax(teacher_logits, axis=-1)
        return -tf.reduce_sum(t_prob * tf.nn.log_softmax(student_logits, axis=-1), axis=-1)


@keras.utils.register_keras_serializable(package=_PACKAGE)
class LogitMSE(keras.losses.Loss):
    """Mean squared error between per-sample *centred* logits (Ba & Caruana's logit regression).

    Centring (subtracting each sample's mean logit) makes it shift-invariant like the KL loss; it
    is Hinton's high-temperature limit of the KL loss. With the Distiller's ``T**2`` factor the
    value does not depend on ``T``: ``T**2 * mse(t/T, s/T) == mse(t, s)``.
    """

    def __init__(self, reduction="auto", name="logit_mse"):
        super().__init__(reduction=reduction, name=name)

    def call(self, teacher_logits, student_logits):
        t = teacher_logits - tf.reduce_mean(teacher_logits, axis=-1, keepdims=True)
        s = student_logits - tf.reduce_mean(student_logits, axis=-1, keepdims=True)
        return tf.reduce_mean(tf.square(t - s), axis=-1)


_ALIASES = {
    "kl": SoftTargetKL,
    "kl_divergence": SoftTargetKL,
    "soft_target_kl": SoftTargetKL,
    "cross_entropy": SoftTargetCrossEntropy,
    "ce": SoftTargetCrossEntropy,
    "soft_target_cross_entropy": SoftTargetCrossEntropy,
    "mse": LogitMSE,
    "logit_mse": LogitMSE,
}


def get(identifier) -> keras.losses.Loss:
    """Resolve a distillation loss from a name, a config dict or a Loss instance.

    Args:
        identifier: ``"kl"`` (default of the Distiller), ``"cross_entropy"``, ``"mse"``, a
            serialized config dict, or a ``keras.losses.Loss`` (or any callable
            ``(teacher_logits, student_logits) -> scalar``).

    Returns:
        A loss object.

    Raises:
        ValueError: for an unknown name or an object that is not callable.
    """
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"`distillation_loss` must be one of {sorted(set(_ALIASES))} or a Loss. "
                f"Received: distillation_loss={identifier!r}"
            )
        return cls()
    if isinstance(identifier, dict):
        return keras.losses.deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(
        "`distillation_loss` must be a name, a config dict or a callable Loss. "
        f"Received: distillation_loss={identifier!r}"
    )


def serialize(loss) -> dict | str:
    """The config that :func:`get` turns back into ``loss``."""
    return keras.losses.serialize(loss)
