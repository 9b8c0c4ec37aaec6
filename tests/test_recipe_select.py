"""Layer selection by rule (edgecompress.surgery.find_layers), shared by every `layers=` argument."""

import numpy as np
import pytest

from edgecompress import models, pruning, surgery
from edgecompress._keras import keras

CONV_DENSE = (keras.layers.Conv2D, keras.layers.Dense)


def _names(model, layers, types=CONV_DENSE):
    return [layer.name for layer in surgery.find_layers(model, layers, types)]


@pytest.mark.parametrize("layers, expected", [
    (None, ["conv1", "conv2", "fc1", "fc2"]),
    ("fc1", ["fc1"]),
    (["fc2", "conv1"], ["conv1", "fc2"]),
    ({"kinds": ["dense"]}, ["fc1", "fc2"]),
    ({"kinds": ["conv", "dense"], "exclude": "first_last"}, ["conv2", "fc1"]),
    ({"min_params": 6000}, ["conv2", "fc1"]),
    ({"match": "^fc"}, ["fc1", "fc2"]),
    ({"kinds": ["Conv2D"], "exclude": ["conv1"]}, ["conv2"]),
])
def test_lenet_selection(layers, expected):
    model = models.lenet5()
    params = {layer.name: layer.count_params() for layer in model.layers}
    assert params["conv2"] >= 6000 and params["fc1"] >= 6000 and params["fc2"] < 6000
    assert _names(model, layers) == expected


def test_first_last_sees_every_output_head_and_nested_models():
    inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(6, name="stem"),
                              keras.layers.Dense(6, name="mid")], name="block")
    i = keras.Input((8,))
    h = inner(i)
    out = [keras.layers.Dense(3, name="head_a")(h),
           keras.layers.Dense(1, name="head_b")(keras.layers.Dense(4, name="neck")(h))]
    model = keras.Model(i, out)
    assert _names(model, {"exclude": "first_last"}) == ["mid", "neck"]


def test_depthwise_is_not_conv_kind():
    model = keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=4)
    types = CONV_DENSE + (keras.layers.DepthwiseConv2D,)
    chosen = surgery.find_layers(model, {"kinds": ["conv"]}, types)
    assert len(chosen) == 15 and not any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in chosen)
    depthwise = surgery.find_layers(model, {"kinds": ["depthwise"]}, types)
    assert len(depthwise) == 13


def test_rule_selects_inside_a_family():
    model = models.lenet5()
    pruned = pruning.prune_low_magnitude(model, pruning.ConstantSparsity(0.5),
                                         layers={"kinds": ["dense"], "min_params": 6000})
    wrapped = [layer.layer.name for layer in surgery.iter_layers(pruned) if hasattr(layer, "pruning_vars")]
    assert wrapped == ["fc1"]


@pytest.mark.parametrize("layers, message", [
    ({"kinds": ["conv"]}, "selects no layer"),
    ({"min_params": 10**9}, "selects no layer"),
    ("nope", "names a layer that is not in the model"),
    ({"kinds": ["lstm_cell"]}, "`layers.kinds` must hold kinds"),
    ({"kind": ["dense"]}, "rule keys must be some of"),
    ({"match": "("}, "not a valid regular expression"),
    ({"exclude": "first"}, "`layers.exclude` must be 'first_last'"),
    ({"exclude": ["ghost"]}, "not in the model"),
    ({"min_params": -1}, "`layers.min_params` must be an int >= 0"),
])
def test_bad_selection_lists_the_layers(layers, message):
    mlp = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="only")])
    with pytest.raises(ValueError, match=message) as info:
        surgery.find_layers(mlp, layers, CONV_DENSE)
    if "model" in message or "selects" in message:
        assert "only (Dense, 15)" in str(info.value)
    assert np.char.count(str(info.value), "\n") == 0
