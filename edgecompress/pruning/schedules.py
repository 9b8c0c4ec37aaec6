"""Pruning schedules: tfmot's schedules as validated, registered objects that fit the run length.

tfmot's ``ConstantSparsity`` and ``PolynomialDecay`` need ``end_step`` and ``frequency`` up front,
and their default ``frequency=100`` means a short run (64 steps) never updates a mask. Ours leave
``end_step``/``frequency`` as ``None`` by default; :class:`~edgecompress.pruning.PrunedModel.fit`
resolves them from the length of the run (epochs x steps per epoch) so that the last mask update
lands on the target. Beyond tfmot: the resolution, :meth:`reached` (the sparsity a run can reach)
and Keras-standard ``get_config``.

References:
    Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
    compression", 2017 (the polynomial schedule).
"""

from __future__ import annotations

import tensorflow_model_optimization as tfmot

from edgecompress._keras import keras

_tfmot = tfmot.sparsity.keras

#: Fraction of the run over which a resolved PolynomialDecay ramps up (the rest fine-tunes).
RAMP_FRACTION = 0.75
#: Number of mask updates a resolved schedule makes over its ramp.
UPDATES = 10


def _check_sparsity(value, argument):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{argument}` must be a float in [0, 1). Received: {argument}={value!r}")
    return float(value)


def _check_step(value, argument, allow_none=True, minimum=0):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = " or None" if allow_none else ""
        raise ValueError(
            f"`{argument}` must be an int >= {minimum}{extra}. Received: {argument}={value!r}"
        )
    return int(value)


class _Resolvable:
    """Shared logic: resolution from the run length and the sparsity a run reaches."""

    @property
    def resolved(self) -> bool:
        return self.frequency is not None and self.end_step is not None

    def _check_resolved(self):
        if not self.resolved:
            raise RuntimeError(
                f"{type(self).__name__} has end_step={self.end_step}, frequency={self.frequency}: "
                "they are set from the run length by `model.fit` of the model that "
                "`prune_low_magnitude` returned. In a custom training loop call "
                "`schedule.resolve(total_steps)` first, or give end_step and frequency."
            )

    def __call__(self, step):
        self._check_resolved()
        return super().__call__(step)

    def target(self) -> float:
        raise NotImplementedError

    def sparsity_at(self, step: int) -> float:
        raise NotImplementedError

    def reached(self, first_step: int, last_step: int) -> float:
        """Sparsity after the last mask update among steps ``first_step..last_step`` (0 if none).

        tfmot's wrapper sees steps 1, 2, ... and updates the mask when the schedule says so.
        """
        self._check_resolved()
        end = last_step if self.end_step == -1 else min(last_step, self.end_step)
        start = max(first_step, self.begin_step)
        if end < start:
            return 0.0
        last = end - (end - self.begin_step) % self.frequency
        return self.sparsity_at(last) if last >= start else 0.0

    def get_config(self):
        return dict(self._config())

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("class_name", None)
        return cls(**config)


@keras.utils.register_keras_serializable(package="edgecompress")
class ConstantSparsity(_Resolvable, _tfmot.ConstantSparsity):
    """Prune to ``target`` sparsity at every mask update from ``begin_step`` on.

    Args:
        target: sparsity in [0, 1).
        begin_step: first step that may update the mask.
        end_step: last such step, -1 for "until training ends" (the default).
        frequency: steps between mask updates; None (default) resolves to about a tenth of the
            run at ``fit`` time (at least 1), so even a short run prunes.
    """

    def __init__(self, target=0.5, begin_step=0, end_step=-1, frequency=None):
        self.target_sparsity = _check_sparsity(target, "target")
        self.begin_step = _check_step(begin_step, "begin_step", allow_none=False)
        if end_step != -1:
            end_step = _check_step(end_step, "end_step", allow_none=False)
            if end_step < self.begin_step:
                raise ValueError(
                    f"`end_step` must be -1 or >= begin_step={self.begin_step}. "
                    f"Received: end_step={end_step}"
                )
        self.end_step = end_step
        self.frequency = _check_step(frequency, "frequency", minimum=1)

    def target(self) -> float:
        return self.target_sparsity

    def sparsity_at(self, step):
        return self.target_sparsity

    def resolve(self, total_steps: int, start_step: int = 0):
        """Set ``frequency`` from the run length if it is None. Returns self."""
        if self.frequency is None:
            span = max(1, start_step + total_steps - self.begin_step)
            self.frequency = max(1, span // UPDATES)
        return self

    def _config(self):
        return {"target": self.target_sparsity, "begin_step": self.begin_step,
                "end_step": self.end_step, "frequency": self.frequency}


@keras.utils.register_keras_serializable(package="edgecompress")
class PolynomialDecay(_Resolvable, _tfmot.PolynomialDecay):
    """Ramp sparsity from ``initial`` to ``target`` as ``1 - (1 - t)^power`` (Zhu & Gupta).

    Args:
        target: final sparsity in [0, 1).
        initial: starting sparsity in [0, target].
        begin_step: step where the ramp starts.
        end_step: step where ``target`` is reached; None (default) resolves at ``fit`` time to
            ``RAMP_FRACTION`` (75%) of the run, leaving the rest to recover accuracy.
        power: exponent of the ramp (> 0).
        frequency: steps between mask updates; None resolves so that about ``UPDATES`` (10)
            updates happen and one lands exactly on ``end_step``.
    """

    def __init__(self, target=0.8, initial=0.0, begin_step=0, end_step=None, power=3,
                 frequency=None):
        self.final_sparsity = _check_sparsity(target, "target")
        self.initial_sparsity = _check_sparsity(initial, "initial")
        if self.initial_sparsity > self.final_sparsity:
            raise ValueError(
                f"`initial` must be <= target={self.final_sparsity}. Received: initial={initial}"
            )
        self.begin_step = _check_step(begin_step, "begin_step", allow_none=False)
        self.end_step = _check_step(end_step, "end_step", minimum=self.begin_step + 1)
        if isinstance(power, bool) or not isinstance(power, (int, float)) or power <= 0:
            raise ValueError(f"`power` must be a number > 0. Received: power={power!r}")
        self.power = power
        self.frequency = _check_step(frequency, "frequency", minimum=1)

    def target(self) -> float:
        return self.final_sparsity

    def sparsity_at(self, step):
        p = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1 - p) ** self.power

    def resolve(self, total_steps: int, start_step: int = 0):
        """Set ``end_step`` and ``frequency`` from the run length where they are None."""
        if self.end_step is None:
            last = start_step + max(1, total_steps)
            self.end_step = max(self.begin_step + 1,
                                self.begin_step + int(RAMP_FRACTION * (last - self.begin_step)))
        if self.frequency is None:
            span = self.end_step - self.begin_step
            self.frequency = max(1, span // UPDATES)
            # land one update exactly on end_step, where the sparsity equals the target
            self.end_step = self.begin_step + max(1, span // self.frequency) * self.frequency
        return self

    def _config(self):
        return {"target": self.final_sparsity, "initial": self.initial_sparsity,
                "begin_step": self.begin_step, "end_step": self.end_step, "power": self.power,
                "frequency": self.frequency}


def get(identifier):
    """A schedule from one of ours, a tfmot schedule, a float (constant target) or a config dict.

    None gives the default ``PolynomialDecay(target=0.8)`` fitted to the run.
    """
    if identifier is None:
        return PolynomialDecay()
    if isinstance(identifier, _Resolvable):
        return type(identifier).from_config(identifier.get_config())  # never share one instance
    if isinstance(identifier, _tfmot.ConstantSparsity):
        return ConstantSparsity(identifier.target_sparsity, identifier.begin_step,
                                identifier.end_step, identifier.frequency)
    if isinstance(identifier, _tfmot.PolynomialDecay):
        return PolynomialDecay(identifier.final_sparsity, identifier.initial_sparsity,
                               identifier.begin_step, identifier.end_step, identifier.power,
                               identifier.frequency)
    if isinstance(identifier, float):
        return ConstantSparsity(identifier)
    if isinstance(identifier, dict):
        return keras.utils.deserialize_keras_object(identifier)
    raise ValueError(
        "`schedule` must be a ConstantSparsity or PolynomialDecay (ours or tfmot's), a float "
        f"target sparsity, or None. Received: schedule={identifier!r}"
    )
