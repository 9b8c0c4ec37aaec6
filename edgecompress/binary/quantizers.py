"""Binary quantizers that larq does not ship.

larq has deterministic sign quantizers (``ste_sign``, ``approx_sign``, ``magnitude_aware_sign``)
but no stochastic binarization. :class:`StochasticSign` adds it as a larq-compatible quantizer:
it plugs into ``input_quantizer`` / ``kernel_quantizer`` of any larq layer, is counted as 1 bit by
``larq.models.summary`` and by the Bop optimizer, and serializes with the model.
"""

from __future__ import annotations

import larq as lq

from edgecompress._keras import keras, tf


def _check_clip(clip_value):
    if clip_value is not None and not clip_value > 0:
        raise ValueError(f"`clip_value` must be None or > 0. Received: clip_value={clip_value}")


def straight_through(x, q, clip_value=1.0):
    """``q`` in the forward pass, the gradient of hard-tanh(x) in the backward pass.

    The value is exactly ``q`` (``x - stop_gradient(x)`` is exactly zero); the gradient is 1 where
    ``|x| <= clip_value`` and 0 elsewhere (no clipping when ``clip_value`` is None).
    """
    passthrough = x - tf.stop_gradient(x)
    if clip_value is not None:
        passthrough *= tf.stop_gradient(tf.cast(tf.abs(x) <= clip_value, x.dtype))
    return tf.stop_gradient(q) + passthrough


@keras.utils.register_keras_serializable(package="edgecompress")
class StochasticSign(lq.quantizers._BaseQuantizer):
    r"""Stochastic binarization: +1 with probability hard_sigmoid(x), else -1, while training.

    \[ q(x) = +1 \text{ with probability } p = \mathrm{clip}((x + 1) / 2, 0, 1),\ -1 \text{ otherwise} \]

    At inference (``training`` false or unset) it is the deterministic ``sign`` (larq's convention,
    sign(0) = +1), so a trained model exports like a BinaryConnect/BinaryNet model. The gradient is
    the straight-through estimator of hard-tanh (1 where ``|x| <= clip_value``).
    Beyond larq: larq ships only deterministic sign quantizers.

    Args:
        clip_value: gradient clipping threshold, or None for no clipping.
        seed: optional integer seed for the random draws.
        metrics: larq training metrics, e.g. ``["flip_ratio"]``.

    References:
        - Courbariaux, Bengio, David. BinaryConnect: Training Deep Neural Networks with binary
          weights during propagations. NeurIPS 2015. https://arxiv.org/abs/1511.00363
        - Hubara et al. Binarized Neural Networks. NeurIPS 2016. https://arxiv.org/abs/1602.02830
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0, seed: int | None = None, **kwargs):
        _check_clip(clip_value)
        self.clip_value = clip_value
        self.seed = seed
        super().__init__(**kwargs)

    @staticmethod
    def probability(x):
        """P(q(x) = +1) while training: hard_sigmoid(x) = clip((x + 1) / 2, 0, 1)."""
        return tf.clip_by_value((x + 1.0) / 2.0, 0.0, 1.0)

    def call(self, inputs, training=None):
        x = tf.convert_to_tensor(inputs)

        def stochastic():
            draw = tf.random.uniform(tf.shape(x), dtype=x.dtype, seed=self.seed)
            return tf.where(draw < self.probability(x), 1.0, -1.0)

        def deterministic():
            return lq.math.sign(x)

        q = keras.backend.in_train_phase(stochastic, deterministic, training=training)
        return super().call(straight_through(x, q, self.clip_value))

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value, "seed": self.seed}
