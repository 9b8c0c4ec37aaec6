"""XNOR-Net layers: larq's QuantConv2D/QuantDense plus the activation scaling factor K.

larq binarizes inputs and weights and, with ``magnitude_aware_sign``, scales each output channel
by alpha = mean|W|; what it lacks is XNOR-Net's input scaling K: the mean absolute value of the
*float* input over channels, averaged over each receptive field (Rastegari et al., Sec. 3.2):

    y = (sign(x) * sign(W)) * alpha * K + b,   K = avg_{k x k}(mean_c |x|)

For Dense, the receptive field is the whole input, so K = mean |x| per sample.
Beyond larq: larq has no layer that computes K.
"""

from __future__ import annotations

import larq as lq

from edgecompress._keras import keras, tf
from edgecompress.surgery import register_conv_counterpart


class _XnorMixin:
    """Multiply the binary product by K before bias and activation."""

    def activation_scale(self, inputs):  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def call(self, inputs):
        k = self.activation_scale(inputs)
        with lq.utils.patch_object(self, "activation", None), lq.utils.patch_object(
            self, "use_bias", False
        ):
            outputs = super().call(inputs) * k
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.utils.register_keras_serializable(package="edgecompress")
class XnorConv2D(_XnorMixin, lq.layers.QuantConv2D):
    """A larq ``QuantConv2D`` with XNOR-Net's activation scaling K (channels_last only).

    Use it with ``input_quantizer="ste_sign"`` and ``kernel_quantizer="magnitude_aware_sign"``
    (alpha per output channel), as :func:`edgecompress.binary.binarize` does for ``"xnor"``.

    References:
        - Rastegari et al. XNOR-Net: ImageNet Classification Using Binary Convolutional Neural
          Networks. ECCV 2016. https://arxiv.org/abs/1603.05279
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError(
                f"`data_format` must be 'channels_last' for XnorConv2D. "
                f"Received: data_format={self.data_format}"
            )
        if self.groups != 1:
            raise ValueError(f"`groups` must be 1 for XnorConv2D. Received: groups={self.groups}")

    def activation_scale(self, inputs):
        a = tf.reduce_mean(tf.abs(inputs), axis=-1, keepdims=True)
        kh, kw = self.kernel_size
        box = tf.fill((kh, kw, 1, 1), tf.cast(1.0 / (kh * kw), a.dtype))
        if self.padding == "same" and not self._is_native_padding:
            # larq pads with pad_values: the padded border has |x| = |pad_values|.
            a = tf.pad(a, self._get_padding_same(a), constant_values=abs(float(self.pad_values)))
            padding = "VALID"
        else:
            padding = self.padding.upper()
        return tf.nn.conv2d(a, box, strides=self.strides, padding=padding,
                            dilations=self.dilation_rate)


@keras.utils.register_keras_serializable(package="edgecompress")
class XnorDense(_XnorMixin, lq.layers.QuantDense):
    """A larq ``QuantDense`` with XNOR-Net's activation scaling K = mean |x| per sample.

    References:
        - Rastegari et al. XNOR-Net. ECCV 2016. https://arxiv.org/abs/1603.05279
    """

    def activation_scale(self, inputs):
        return tf.reduce_mean(tf.abs(inputs), axis=-1, keepdims=True)


register_conv_counterpart(XnorDense, XnorConv2D)
