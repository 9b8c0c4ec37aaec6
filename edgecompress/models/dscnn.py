"""DS-CNN, the depthwise-separable keyword-spotting network of the MLPerf Tiny benchmark.

References:
    Zhang et al., "Hello Edge: Keyword Spotting on Microcontrollers", arXiv:1711.07128, 2017.
    Banbury et al., "MLPerf Tiny Benchmark", NeurIPS Datasets and Benchmarks 2021
    (``benchmark/training/keyword_spotting``: 49x10 MFCC input, 12 classes).
"""

from __future__ import annotations

from edgecompress._keras import keras
from edgecompress.models._checks import check_builder_args


def ds_cnn(input_shape=(49, 10, 1), num_classes: int = 12, filters: int = 64, blocks: int = 4,
           name: str = "ds_cnn") -> keras.Model:
    """A 10x4 stride-2 conv stem, then ``blocks`` depthwise-separable blocks (3x3 depthwise and 1x1
    pointwise, each followed by BatchNormalization and ReLU), global average pooling and a softmax.

    With the defaults it has 24,332 parameters (23,052 trainable plus 1,280 BN moving statistics).

    Args:
        input_shape: (time frames, features, channels), e.g. 49 MFCC frames of 10 coefficients.
        num_classes: number of keywords, >= 2.
        filters: channels of every conv, >= 1.
        blocks: depthwise-separable blocks, >= 1.
        name: model name.

    Returns:
        A Functional tf_keras model.

    Raises:
        ValueError: for a bad argument.
    """
    check_builder_args(input_shape, num_classes, min_size=1)
    for arg, value in (("filters", filters), ("blocks", blocks)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{arg}` must be an int >= 1. Received: {arg}={value!r}")
    inputs = keras.Input(tuple(input_shape))
    x = keras.layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for _ in range(blocks):
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
        x = keras.layers.Conv2D(filters, 1, use_bias=False)(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x), name=name)
