"""A shallow CNN described in one line, for simple tasks with few classes (survey section 6)."""

from __future__ import annotations

from edgecompress._keras import keras
from edgecompress.models._checks import check_builder_args


def _positive_ints(value, argument, allow_empty):
    ok = isinstance(value, (tuple, list)) and (allow_empty or len(value) > 0)
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    if not ok:
        what = "a tuple" if allow_empty else "a non-empty tuple"
        raise ValueError(
            f"`{argument}` must be {what} of positive ints. Received: {argument}={value!r}"
        )
    return tuple(value)


def small_cnn(
    input_shape=(28, 28, 1),
    num_classes: int = 10,
    filters=(16, 32),
    dense=(64,),
    kernel_size: int = 3,
    batch_norm: bool = True,
    global_pool: bool = False,
    dropout: float = 0.0,
    name: str = "small_cnn",
) -> keras.Model:
    """A plain conv stack: per entry of ``filters`` a conv block, then ``dense`` hidden layers.

    Each conv block is Conv2D(``f``, ``kernel_size``, same padding) [+ BatchNorm] + ReLU +
    2x2 max-pool, so the input must be at least ``2 ** len(filters)`` pixels on each side. The
    blocks are followed by Flatten (or global average pooling), the ``dense`` ReLU layers
    (optionally with dropout before each) and a softmax classifier. Every layer is a built-in
    Keras layer, so the model exports to int8 and runs on TFLite Micro.

    Args:
        input_shape: (height, width, channels).
        num_classes: number of classes, >= 2.
        filters: conv filters per block, e.g. ``(16, 32)``; one 2x2 pool per block.
        dense: hidden Dense widths, e.g. ``(64,)``; ``()`` for none.
        kernel_size: conv kernel size (odd int >= 1).
        batch_norm: BatchNorm after each conv.
        global_pool: global average pooling instead of Flatten (fewer Dense weights).
        dropout: dropout rate in [0, 1) before each Dense layer.
        name: model name.

    Returns:
        A Functional tf_keras model with a softmax output.

    Raises:
        ValueError: bad ``filters``/``dense``/``kernel_size``/``dropout``, an input smaller than
            ``2 ** len(filters)``, or ``num_classes`` < 2.

    Example:
        >>> model = small_cnn((28, 28, 1), 10, filters=(8, 16), dense=(32,))   # 27k params
    """
    filters = _positive_ints(filters, "filters", allow_empty=False)
    dense = _positive_ints(dense, "dense", allow_empty=True)
    check_builder_args(input_shape, num_classes, min_size=2 ** len(filters))
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(
            f"`kernel_size` must be a positive int. Received: kernel_size={kernel_size!r}"
        )
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    inp = keras.Input(tuple(input_shape), name="image")
    x = inp
    for i, f in enumerate(filters, 1):
        x = keras.layers.Conv2D(f, kernel_size, padding="same", use_bias=not batch_norm,
                                name=f"conv{i}")(x)  # fmt: skip
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    if global_pool:
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense + (num_classes,), 1):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
        last = i == len(dense) + 1
        x = keras.layers.Dense(units, activation="softmax" if last else "relu",
                               name="predictions" if last else f"fc{i}")(x)  # fmt: skip
    return keras.Model(inp, x, name=name)
