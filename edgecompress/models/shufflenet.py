"""ShuffleNetV2 (Ma et al. 2018), written with ops that TFLite int8 and TFLite Micro run.

Keras ships no ShuffleNetV2. Channel split is ``tf.split`` (TFLite ``SPLIT``) and channel shuffle
is reshape -> 4-D transpose -> reshape (``RESHAPE``, ``TRANSPOSE``), all in the TFLite Micro
builtin set, with the two as small registered layers so a saved ``.keras`` file reloads.

References:
    Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
    ECCV 2018 (Table 5: the channel table and the 1.4M/2.3M/3.5M/7.4M parameter counts).
    Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
    Devices", CVPR 2018 (channel shuffle).
"""

from __future__ import annotations

from edgecompress._keras import keras, tf
from edgecompress.models._checks import check_builder_args, stride_plan

# Output channels of conv1, stage2, stage3, stage4, conv5 per scale (paper, Table 5).
STAGE_CHANNELS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
STAGE_REPEATS = (4, 8, 4)


@keras.utils.register_keras_serializable(package="edgecompress")
class ChannelSplit(keras.layers.Layer):
    """Split the last axis into ``parts`` equal tensors (TFLite ``SPLIT``)."""

    def __init__(self, parts: int = 2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 2:
            raise ValueError(f"`parts` must be an int >= 2. Received: parts={parts!r}")
        self.parts = parts

    def build(self, input_shape):
        if input_shape[-1] is None or input_shape[-1] % self.parts:
            raise ValueError(
                f"`ChannelSplit` needs channels divisible by parts={self.parts}. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def call(self, inputs):
        return tf.split(inputs, self.parts, axis=-1)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        return [tf.TensorShape(shape[:-1] + [shape[-1] // self.parts])] * self.parts

    def get_config(self):
        return {**super().get_config(), "parts": self.parts}


@keras.utils.register_keras_serializable(package="edgecompress")
class ChannelShuffle(keras.layers.Layer):
    """Interleave the channels of ``groups`` groups: (g, c/g) -> (c/g, g).

    Written as reshape to (N, H*W, g, c/g), 4-D transpose, reshape back, so that TFLite (and
    TFLite Micro, whose TRANSPOSE takes up to 5-D in recent versions and 4-D everywhere) runs it.
    """

    def __init__(self, groups: int = 2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 2:
            raise ValueError(f"`groups` must be an int >= 2. Received: groups={groups!r}")
        self.groups = groups

    def build(self, input_shape):
        if len(input_shape) != 4 or None in tuple(input_shape[1:]) or input_shape[-1] % self.groups:
            raise ValueError(
                f"`ChannelShuffle` needs a static (N, H, W, C) input with C divisible by "
                f"groups={self.groups}. Received: input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def call(self, inputs):
        _, h, w, c = inputs.shape
        x = tf.reshape(inputs, [-1, h * w, self.groups, c // self.groups])
        x = tf.transpose(x, [0, 1, 3, 2])
        return tf.reshape(x, [-1, h, w, c])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


def _conv_bn(x, filters, name, relu=True):
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(name=name + "_bn")(x)
    return keras.layers.ReLU(name=name + "_relu")(x) if relu else x


def _dw_bn(x, stride, name):
    x = keras.layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False, name=name)(x)
    return keras.layers.BatchNormalization(name=name + "_bn")(x)


def _unit(x, out_channels, stride, first, name):
    """ShuffleNetV2 unit: basic (channel split) or, first in a stage, the two-branch unit.

    The two-branch (down-sampling) unit also changes the channel count, so it opens every stage
    even where a small input turns its stride to 1.
    """
    half = out_channels // 2
    if not first:
        left, right = ChannelSplit(2, name=name + "_split")(x)
    else:
        left = _dw_bn(x, stride, name + "_l_dw")
        left = _conv_bn(left, half, name + "_l_pw")
        right = x
    right = _conv_bn(right, half, name + "_r_pw1")
    right = _dw_bn(right, stride, name + "_r_dw")
    right = _conv_bn(right, half, name + "_r_pw2")
    x = keras.layers.Concatenate(name=name + "_concat")([left, right])
    return ChannelShuffle(2, name=name + "_shuffle")(x)


def shufflenet_v2(
    input_shape=(224, 224, 3),
    num_classes: int = 1000,
    scale: float = 1.0,
    include_top: bool = True,
    stride_stages: int | None = None,
    name: str | None = None,
) -> keras.Model:
    """ShuffleNetV2 at ``scale`` 0.5, 1.0, 1.5 or 2.0, its strides adapted to the input size.

    conv1 3x3/2 (24) -> max-pool 3x3/2 -> stages 2-4 of 4/8/4 units (the first of each with
    stride 2) -> conv5 1x1 -> global average pooling -> softmax. Channels follow the paper's
    Table 5. Convolutions have no bias and are followed by BatchNorm; the ImageNet head has
    1.37M/2.28M/3.50M/7.39M trainable parameters (paper: 1.4M/2.3M/3.5M/7.4M).

    The five stride-2 places (conv1, max-pool, stages 2-4) are kept for inputs of 96 pixels and
    up. For smaller inputs the earliest ones become stride 1 (a pool with stride 1 is dropped):
    28x28 and 32x32 keep three, a 4x4 final map. ``stride_stages`` overrides the choice.

    Args:
        input_shape: (height, width, channels), at least 8x8.
        num_classes: number of classes, >= 2.
        scale: channel multiplier, one of 0.5, 1.0, 1.5, 2.0.
        include_top: if False, return the conv5 feature map.
        stride_stages: how many of the 5 stride-2 places to keep; None chooses by input size.
        name: model name; default ``shufflenet_v2_<scale>``.

    Returns:
        A Functional tf_keras model (softmax output when ``include_top``).

    Raises:
        ValueError: unsupported ``scale``, bad or too small ``input_shape``, ``num_classes`` < 2.

    Example:
        >>> model = shufflenet_v2((28, 28, 1), num_classes=10, scale=0.5)
    """
    check_builder_args(input_shape, num_classes, min_size=8)
    if isinstance(scale, bool) or scale not in STAGE_CHANNELS:
        raise ValueError(
            f"`scale` must be one of 0.5, 1.0, 1.5, 2.0 (the paper's table). Received: scale={scale!r}"
        )
    stages = stride_plan(input_shape, stride_stages, total=5)
    strides = [1] * (5 - stages) + [2] * stages  # conv1, pool, stage2, stage3, stage4
    channels = STAGE_CHANNELS[float(scale)]
    inp = keras.Input(tuple(input_shape), name="image")
    x = keras.layers.Conv2D(
        channels[0], 3, strides[0], padding="same", use_bias=False, name="conv1"
    )(inp)
    x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    if strides[1] == 2:
        x = keras.layers.MaxPooling2D(3, 2, padding="same", name="maxpool")(x)
    plan = zip(channels[1:4], STAGE_REPEATS, strides[2:], strict=True)
    for stage, (out, repeats, stride) in enumerate(plan, start=2):
        for i in range(repeats):
            x = _unit(x, out, stride if i == 0 else 1, i == 0, f"stage{stage}_{i + 1}")
    x = _conv_bn(x, channels[4], "conv5")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        x = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inp, x, name=name or f"shufflenet_v2_{scale:g}x")
