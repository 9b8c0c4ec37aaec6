"""A TensorFlow 2.21 oneDNN crash in training, and its workaround: even batches.

TensorFlow 2.21's oneDNN kernels corrupt the heap (a segfault or ``free(): invalid size``) in the
gradient of a 1x1 convolution with stride 2 on a batch of odd size: reproduced with
``tf.nn.conv2d`` alone (39 samples, 32x32x3, a 1x1x3x16 kernel, stride 2), fine with 38 or 40,
with a 3x3 kernel or with ``TF_ENABLE_ONEDNN_OPTS=0``. The flag is read when TensorFlow is
imported, so a run cannot switch it for one fit; even batches avoid the crash. Every fine-tune
edgecompress runs (recipe ``fit``/``distill`` steps, the budget search's jobs) goes through
:func:`even_batches`.
"""

from __future__ import annotations

import logging

from edgecompress.datasets import sample_count, take

log = logging.getLogger("edgecompress")


def has_strided_pointwise(model) -> bool:
    """Whether ``model`` has a 1x1 convolution with a stride > 1 (a ResNet shortcut)."""
    from edgecompress import surgery

    for layer in surgery.iter_layers(model):
        base = surgery.unwrap(layer)
        kernel, strides = getattr(base, "kernel_size", None), getattr(base, "strides", None)
        if kernel and strides and all(k == 1 for k in kernel) and any(st > 1 for st in strides):
            return True
    return False


def even_batches(model, x, y, batch_size: int, where: str):
    """``(x, y, batch_size)`` whose every batch has an even number of samples when ``model`` has
    a strided 1x1 convolution (one sample dropped at most, and said so); else unchanged."""
    if not has_strided_pointwise(model):
        return x, y, batch_size
    n = sample_count(x)
    batch_size = max(2, batch_size - batch_size % 2)
    if n % batch_size % 2 == 0 or n < 3:
        return x, y, batch_size
    log.info("%s: %d of %d training samples used (even batches: TensorFlow 2.21's oneDNN crashes in the "
             "gradient of a strided 1x1 convolution on an odd batch)", where, n - 1, n)
    return take(x, slice(n - 1)), take(y, slice(n - 1)), batch_size
