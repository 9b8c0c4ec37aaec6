"""Training-time augmentation chosen by the kind of input, so one recipe fits every model.

``"auto"`` gives image-like inputs (rank 4: batch, height, width, channels, with height and width
>= 16 and 1 or 3 channels) random shifts of about 7% of the shorter side (2 px on 28x28 digits),
and everything else (spectrograms with other channel counts, time series, vectors, width-1 maps)
none; so does a model with a regression output (an autoencoder's reconstruction, a box), whose
target does not move with the shifted input. ``"none"`` turns it off; a table ``{shift = 2, flip = false, rotation = 0, zoom = 0}`` sets it.
Keras's preprocessing layers do the work; this module decides what fits and says so when a
setting cannot.
"""

from __future__ import annotations

import numpy as np

AUTO = "auto"
NONE = "none"
KEYS = ("shift", "flip", "rotation", "zoom")
MIN_SIDE = 16
IMAGE_CHANNELS = (1, 3)
SHIFT_FRACTION = 0.07


def is_image_like(input_shape) -> bool:
    """Whether ``input_shape`` (without the batch axis) is an image the auto rule augments."""
    shape = tuple(input_shape)
    return (len(shape) == 3 and all(isinstance(d, int) for d in shape)
            and min(shape[:2]) >= MIN_SIDE and shape[2] in IMAGE_CHANNELS)


def resolve(augment, input_shapes, argument: str = "augment", tasks=()) -> dict:
    """The augmentation for a model whose inputs have ``input_shapes`` (without batch axes).

    Args:
        augment: ``"auto"``, ``"none"``, or a dict with some of :data:`KEYS`.
        input_shapes: one shape tuple, or a list of them (several inputs get no augmentation).
        argument: the name used in errors.
        tasks: the model's :class:`edgecompress.tasks.Task` list; ``"auto"`` augments none when
            one is a regression.

    Returns:
        A dict with every key of :data:`KEYS` (all zero/False for none).

    Raises:
        ValueError: for an unknown value or key, or a setting the input cannot take (naming the
            input shape).
    """
    shapes = input_shapes if isinstance(input_shapes, list) else [input_shapes]
    shapes = [tuple(s) for s in shapes]
    off = {"shift": 0, "flip": False, "rotation": 0.0, "zoom": 0.0}
    if augment == NONE:
        return off
    if augment == AUTO:
        if len(shapes) != 1 or not is_image_like(shapes[0]) or any(t.kind == "regression" for t in tasks):
            return off
        return {**off, "shift": max(1, round(SHIFT_FRACTION * min(shapes[0][:2])))}
    if not isinstance(augment, dict):
        raise ValueError(f"`{argument}` must be 'auto', 'none' or a table with keys {list(KEYS)}. "
                         f"Received: {argument}={augment!r}")
    unknown = sorted(set(augment) - set(KEYS))
    if unknown:
        raise ValueError(f"`{argument}` keys must be some of {list(KEYS)}. Received: {unknown}")
    spec = {**off, **augment}
    for key, kind, top in (("shift", int, None), ("rotation", (int, float), 180), ("zoom", (int, float), 1)):
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, kind) or value < 0 or (top and value >= top):
            bound = f" and < {top}" if top else ""
            raise ValueError(f"`{argument}.{key}` must be a number >= 0{bound}. Received: {key}={value!r}")
    if not isinstance(spec["flip"], bool):
        raise ValueError(f"`{argument}.flip` must be true or false. Received: flip={spec['flip']!r}")
    if any((spec["shift"], spec["flip"], spec["rotation"], spec["zoom"])):
        shape = shapes[0]
        if len(shapes) != 1 or len(shape) != 3 or None in shape:
            raise ValueError(f"`{argument}` = {augment!r} needs one image input (height, width, channels). "
                             f"Received: input shape {shapes[0] if len(shapes) == 1 else shapes}; "
                             f"use augment = 'auto' or 'none'")
        if spec["shift"] and 2 * spec["shift"] >= min(shape[:2]):
            raise ValueError(f"`{argument}.shift` = {spec['shift']} px must be under half the input's "
                             f"height and width. Received: input shape {shape}")
    return {**spec, "rotation": float(spec["rotation"]), "zoom": float(spec["zoom"])}


def describe(spec: dict) -> str:
    parts = [f"{k}={spec[k]}" for k in KEYS if spec.get(k)]
    return ", ".join(parts) or "none"


def batches(x, y, spec: dict, batch_size: int = 64, seed: int = 0):
    """A shuffled ``tf.data`` pipeline of ``(x, y)`` batches, augmented by ``spec``
    (from :func:`resolve`). ``y`` may be a list of label arrays (several outputs)."""
    from edgecompress._keras import keras, tf

    labels = tuple(np.asarray(v) for v in y) if isinstance(y, (list, tuple)) else np.asarray(y)
    data = tf.data.Dataset.from_tensor_slices((x, labels)).shuffle(len(x), seed=seed).batch(batch_size)
    layers = []
    if spec.get("flip"):
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 3))
    if spec.get("rotation"):
        layers.append(keras.layers.RandomRotation(spec["rotation"] / 360, fill_mode="constant", seed=seed + 1))
    if spec.get("zoom"):
        layers.append(keras.layers.RandomZoom(spec["zoom"], fill_mode="constant", seed=seed + 2))
    if spec.get("shift"):
        layers.append(keras.layers.RandomTranslation(spec["shift"] / x.shape[1], spec["shift"] / x.shape[2],
                                                     fill_mode="constant", seed=seed))
    if layers:
        pipeline = keras.Sequential(layers)
        data = data.map(lambda images, target: (pipeline(images, training=True), target),
                        num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)
