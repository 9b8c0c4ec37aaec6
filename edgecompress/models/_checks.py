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
        raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}")
