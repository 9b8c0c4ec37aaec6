"""ResNet-8, the MLPerf Tiny image-classification reference (CIFAR-10).

References:
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    Banbury et al., "MLPerf Tiny Benchmark", NeurIPS Datasets and Benchmarks 2021
    (``benchmark/training/image_classification/keras_model.py``, ``resnet_v1_eembc``).
"""

from __future__ import annotations

from edgecompress._keras import keras
from edgecompress.models._checks import check_builder_args


def resnet8(
    input_shape=(32, 32, 3),
    num_classes: int = 10,
    weight_decay: float = 1e-4,
    name: str = "resnet8",
) -> keras.Model:
    """MLPerf Tiny ResNet-8: a 16-filter 3x3 stem and three residual stacks of 16/32/64 filters.

    Layout as in the MLPerf Tiny reference: conv 16@3x3 + BN + ReLU; stack 1 (identity shortcut);
    stacks 2 and 3 start with stride 2 and use a 1x1 stride-2 convolution as projection shortcut;
    average pooling over the whole final map, flatten, dense softmax. Convolutions use he_normal
    init and an L2 penalty of ``weight_decay`` (1e-4 in the reference; 0 disables it).

    On 32x32x3 with 10 classes it has 78,666 parameters (78,186 trainable plus 480 BatchNorm
    moving statistics), the count of the reference model.

    Args:
        input_shape: (height, width, channels); height and width at least 8.
        num_classes: number of classes, >= 2.
        weight_decay: L2 factor on the convolution kernels.
        name: model name.

    Returns:
        A Functional tf_keras model with a softmax output.

    Raises:
        ValueError: for a bad ``input_shape``, an input smaller than 8x8 or ``num_classes`` < 2.
    """
    check_builder_args(input_shape, num_classes, min_size=8)
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ValueError(
            f"`weight_decay` must be a float >= 0. Received: weight_decay={weight_decay!r}"
        )

    def conv(filters, kernel, strides, label):
        return keras.layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            kernel_initializer="he_normal",
            kernel_regularizer=keras.regularizers.l2(weight_decay) if weight_decay else None,
            name=label,
        )

    inp = keras.Input(input_shape, name="image")
    x = conv(16, 3, 1, "stem_conv")(inp)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    for stack, (filters, strides) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        p = f"stack{stack}_"
        y = conv(filters, 3, strides, p + "conv1")(x)
        y = keras.layers.BatchNormalization(name=p + "bn1")(y)
        y = keras.layers.Activation("relu", name=p + "relu1")(y)
        y = conv(filters, 3, 1, p + "conv2")(y)
        y = keras.layers.BatchNormalization(name=p + "bn2")(y)
        if strides != 1:  # projection shortcut (no BN, as in the reference)
            x = conv(filters, 1, strides, p + "shortcut")(x)
        x = keras.layers.Add(name=p + "add")([x, y])
        x = keras.layers.Activation("relu", name=p + "relu2")(x)
    x = keras.layers.AveragePooling2D(pool_size=min(x.shape[1:3]), name="avg_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(
        num_classes, activation="softmax", kernel_initializer="he_normal", name="classifier"
    )(x)
    return keras.Model(inp, out, name=name)
