"""Model builders: shapes, parameter counts against the papers, argument errors."""

import numpy as np
import pytest

from edgecompress import models
from edgecompress._keras import keras


def test_resnet8_matches_mlperf_tiny_count():
    model = models.resnet8()
    assert model.count_params() == 78_666  # MLPerf Tiny resnet_v1_eembc, CIFAR-10
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 78_186
    assert model.output_shape == (None, 10)
    assert [layer.name for layer in model.layers if "shortcut" in layer.name] == [
        "stack2_shortcut",
        "stack3_shortcut",
    ]


def test_resnet8_mnist_shape_and_softmax():
    model = models.resnet8((28, 28, 1), 10)
    out = model.predict(np.random.rand(2, 28, 28, 1).astype("float32"), verbose=0)
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
