"""MobileNetV2 for every input size, from 28x28x1 MNIST to 224x224x3 ImageNet.

References:
    Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
    Chowdhery et al., "Visual Wake Words Dataset", 2019 (MobileNet at 96x96 on microcontrollers).
"""

from __future__ import annotations

from edgecompress._keras import keras
from edgecompress.models._checks import check_builder_args, stride_plan

# (expansion t, output channels c, repeats n, stride s) of the paper's Table 2.
_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1)]  # fmt: skip
ALPHA_RANGE = (0.35, 1.4)


def _make_divisible(v, divisor=8):
    # Same rounding as the paper's code and keras.applications: nearest multiple, never -10%.
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _bn(name):
    return keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=name)


def _inverted_residual(x, expansion, filters, stride, block_id):
    """Expand 1x1 -> depthwise 3x3 -> linear project 1x1, residual when shapes match."""
    in_channels = x.shape[-1]
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    inputs = x
    if block_id:
        x = keras.layers.Conv2D(expansion * in_channels, 1, use_bias=False, name=prefix + "expand")(
            x
        )
        x = _bn(prefix + "expand_BN")(x)
        x = keras.layers.ReLU(6.0, name=prefix + "expand_relu")(x)
    x = keras.layers.DepthwiseConv2D(
        3, strides=stride, padding="same", use_bias=False, name=prefix + "depthwise"
    )(x)
    x = _bn(prefix + "depthwise_BN")(x)
    x = keras.layers.ReLU(6.0, name=prefix + "depthwise_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=prefix + "project")(x)
    x = _bn(prefix + "project_BN")(x)
    if stride == 1 and in_channels == filters:
        x = keras.layers.Add(name=prefix + "add")([inputs, x])
    return x


def _features(inp, alpha, stride_stages):
    """The MobileNetV2 body with only the last ``stride_stages`` of its 5 stride-2 stages kept."""
    keep = [False] * (5 - stride_stages) + [True] * stride_stages  # stem, then 4 block stages
    strides = iter(keep)
    x = keras.layers.Conv2D(
        _make_divisible(32 * alpha), 3, strides=2 if next(strides) else 1, padding="same",
        use_bias=False, name="Conv1",
    )(inp)  # fmt: skip
    x = _bn("bn_Conv1")(x)
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    block_id = 0
    for t, c, n, s in _BLOCKS:
        first_stride = (2 if next(strides) else 1) if s == 2 else 1
        for i in range(n):
            filters = _make_divisible(int(c * alpha))
            x = _inverted_residual(x, t, filters, first_stride if i == 0 else 1, block_id)
            block_id += 1
    last = _make_divisible(1280 * alpha) if alpha > 1.0 else 1280  # width not cut below 1.0
    x = keras.layers.Conv2D(last, 1, use_bias=False, name="Conv_1")(x)
    x = _bn("Conv_1_bn")(x)
    return keras.layers.ReLU(6.0, name="out_relu")(x)


def mobilenet_v2(
    input_shape=(96, 96, 3),
    num_classes: int = 2,
    alpha: float = 1.0,
    include_top: bool = True,
    stride_stages: int | None = None,
    dropout: float = 0.0,
    name: str | None = None,
) -> keras.Model:
    """MobileNetV2 with width multiplier ``alpha``, its strides adapted to the input size.

    The blocks are those of the paper (and of ``keras.applications.MobileNetV2``, whose layer
    names are kept): a 3x3 stem, 17 inverted-residual blocks with linear bottlenecks and ReLU6, a
    1x1 conv to 1280 channels, global average pooling and a softmax classifier.

    At ImageNet-like sizes (the shorter side >= 96) all five stride-2 stages are kept and the body
    is ``keras.applications.MobileNetV2(weights=None, include_top=False)`` itself. For small
    inputs, where Keras's 32x downsampling would leave a 1x1 map (and which keras.applications
    rejects below 32x32), the earliest stride-2 stages become stride 1: 32x32 and 28x28 keep three,
    a 4x4 final map. ``stride_stages`` overrides the choice. Beyond keras.applications: any input
    size from 8x8, one channel, and any ``alpha`` in [0.35, 1.4].

    Args:
        input_shape: (height, width, channels), e.g. (28, 28, 1), (32, 32, 3), (96, 96, 3).
        num_classes: number of classes, >= 2 (2 for visual wake words).
        alpha: width multiplier in [0.35, 1.4] (the paper uses 0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
        include_top: if False, return the feature extractor (the 1280-channel map).
        stride_stages: how many of the 5 stride-2 stages to keep; None chooses by input size.
        dropout: dropout rate before the classifier (0 = none, as in keras.applications).
        name: model name; default ``mobilenet_v2_<alpha>_<size>``.

    Returns:
        A Functional tf_keras model (softmax output when ``include_top``).

    Raises:
        ValueError: bad ``input_shape``, input below 8x8 or too small for ``stride_stages``,
            ``alpha`` outside [0.35, 1.4], ``num_classes`` < 2, ``dropout`` outside [0, 1).

    Example:
        >>> model = mobilenet_v2((96, 96, 3), num_classes=2, alpha=0.35)   # visual wake words
    """
    check_builder_args(input_shape, num_classes, min_size=8)
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not (ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1])
    ):
        raise ValueError(f"`alpha` must be a float in [0.35, 1.4]. Received: alpha={alpha!r}")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    stages = stride_plan(input_shape, stride_stages, total=5)
    name = name or f"mobilenet_v2_{alpha:0.2f}_{input_shape[0]}"
    inp = keras.Input(tuple(input_shape), name="image")
    if stages == 5 and min(input_shape[:2]) >= 32:
        base = keras.applications.MobileNetV2(
            input_tensor=inp, alpha=float(alpha), include_top=False, weights=None
        )
        x = base.output
    else:
        x = _features(inp, float(alpha), stages)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inp, x, name=name)
