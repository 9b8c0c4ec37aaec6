"""Argument checks shared by the model builders."""

from __future__ import annotations


def check_builder_args(input_shape, num_classes, min_size: int) -> None:
    """Raise a one-line ValueError for a bad ``input_shape`` or ``num_classes``."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(
            f"`input_shape` must be (height, width, channels) of positive ints. "
            f"Received: input_shape={input_shape!r}"
        )
    if min(shape[:2]) < min_size:
        raise ValueError(
            f"`input_shape` is too small for this network's strides: height and width must be "
            f">= {min_size}. Received: input_shape={shape}"
        )
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(
            f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}"
        )


def stride_plan(input_shape, stride_stages, total: int, min_final: int = 3) -> int:
    """How many of a network's ``total`` stride-2 stages to keep for this input size.

    ``stride_stages=None`` picks the largest count (at most ``total``) that leaves a final feature
    map of at least ``min_final`` pixels on the shorter side, so a 224x224 or 96x96 input keeps the
    ImageNet strides and a 32x32 or 28x28 input keeps three. Builders drop the *earliest* stride-2
    stages first, which keeps the early layers at full resolution (as CIFAR variants do).
    An explicit count must be in [0, total] and the input at least ``2**stride_stages`` pixels.
    """
    side = min(input_shape[:2])
    if stride_stages is None:
        count = 0
        while count < total and -(-side // 2 ** (count + 1)) >= min_final:
            count += 1
        return count
    if isinstance(stride_stages, bool) or not isinstance(stride_stages, int):
        raise ValueError(
            f"`stride_stages` must be None or an int in [0, {total}]. "
            f"Received: stride_stages={stride_stages!r}"
        )
    if not 0 <= stride_stages <= total:
        raise ValueError(
            f"`stride_stages` must be None or an int in [0, {total}]. "
            f"Received: stride_stages={stride_stages}"
        )
    if side < 2**stride_stages:
        raise ValueError(
            f"`input_shape` is too small for {stride_stages} stride-2 stages: height and width must "
            f"be >= {2**stride_stages}. Received: input_shape={tuple(input_shape)}"
        )
    return stride_stages
