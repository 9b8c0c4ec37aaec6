import pytest
from conftest import Subclassed, residual_cnn, sequential_cnn

from edgecompress import surgery
from edgecompress._keras import keras

L = keras.layers


def reshape_model():
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(4, 3, name="c1")(inp)
    x = L.Reshape((6, 6, 2, 2), name="reshape")(x)
    x = L.Reshape((6, 6, 4), name="back")(x)
    x = L.Conv2D(3, 1, name="c2")(x)
    return keras.Model(inp, L.GlobalMaxPooling2D(name="gmp")(x))


def mixed_add_model():
    inp = keras.Input((8, 8, 1))
    a = L.Conv2D(2, 1, name="a")(inp)
    b = L.Conv2D(2, 1, name="b")(inp)
    c = L.Conv2D(4, 1, name="c")(inp)
    x = L.Add(name="add")([L.Concatenate(name="cat")([a, b]), c])
    x = L.DepthwiseConv2D(3, depth_multiplier=1, name="dw")(x)
    x = L.Flatten(name="flat")(x)
    return keras.Model(inp, L.Dense(2, name="head")(x))


def shared_and_output_model():
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(3, 1, name="c1")(inp)
    shared = L.Conv2D(3, 1, name="shared")
    y = shared(shared(x))
    z = L.Conv2D(5, 1, name="c3")(x)
    x = L.Concatenate(name="cat")([y, z])
    x = L.BatchNormalization(name="bn")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    h = L.Dense(6, activation="relu", name="h")(x)
    return keras.Model(inp, [L.Dense(2, activation="softmax", name="out")(h), h])


# model builder -> {producers tuple: (channels, prunable, reason substring, followers, consumers)}
CASES = {
    "sequential": (sequential_cnn, {
        ("conv1",): (6, True, None, ["bn1"], ["conv2"]),
        ("conv2",): (8, True, None, [], ["fc1"]),
        ("fc1",): (16, True, None, [], ["fc2"]),
        ("fc2",): (4, False, "softmax", [], []),
    }),
    "residual_dw_concat_gap": (residual_cnn, {
        ("stem", "res_a"): (8, True, None, ["res_bn", "res_dw"], ["res_a", "side", "fc1"]),
        ("side",): (4, True, None, [], ["fc1"]),
        ("fc1",): (16, True, None, [], ["fc2"]),
        ("fc2",): (4, False, "softmax", [], []),
    }),
    "reshape_unknown": (reshape_model, {
        ("c1",): (4, False, "'reshape' (Reshape): reshapes the channel axis", [], []),
        ("c2",): (3, False, "reaches the model output", [], []),
    }),
    "add_of_concat": (mixed_add_model, {
        ("a",): (2, False, "not one whole group", [], []),
        ("b",): (2, False, "not one whole group", [], []),
        ("c",): (4, False, "not one whole group", [], []),
        ("head",): (2, False, "reaches the model output", [], []),
    }),
    "shared_and_second_output": (shared_and_output_model, {
        ("c1",): (3, False, "shared layer", [], ["c3"]),
        ("c3",): (5, True, None, ["bn"], ["h"]),
        ("h",): (6, False, "reaches the model output", [], ["out"]),
        ("out",): (2, False, "softmax", [], []),
    }),
}


@pytest.mark.parametrize("case", list(CASES))
def test_channel_groups(case):
    builder, expected = CASES[case]
    graph = surgery.channel_groups(builder())
    got = {tuple(g.producers): g for g in graph.groups}
    assert set(got) == set(expected)
    for producers, (channels, prunable, reason, followers, consumers) in expected.items():
        group = got[producers]
        assert (group.channels, group.prunable) == (channels, prunable), producers
        if reason:
            assert reason in group.reason
        if prunable:
            assert group.followers == followers and group.consumers == consumers


def test_flatten_repeats_channels_per_position():
    graph = surgery.channel_groups(sequential_cnn())
    gids, idx = graph.inputs["fc1"]
    assert len(gids) == 5 * 5 * 8
    assert list(idx[:10]) == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
    assert {graph.find(int(g)) for g in gids} == {graph.group_of("conv2").id}


def test_refuses_subclassed():
    with pytest.raises(TypeError, match="subclassed"):
        surgery.channel_groups(Subclassed())


def test_hard_swish_tfoplambda_passes_channels_and_a_vector_constant_blocks():
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, name="c1")(inp)
    x = L.Multiply(name="hswish")([x, L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)])  # MobileNetV3
    y = L.Conv2D(4, 1, name="c2")(x)
    y = y + keras.backend.constant([1.0, 2.0, 3.0, 4.0])
    graph = surgery.channel_groups(keras.Model(inp, L.GlobalAveragePooling2D()(L.Conv2D(2, 1, name="c3")(y))))
    assert graph.group_of("c1").prunable and graph.group_of("c1").consumers == ["c2"]
    assert "not a scalar" in graph.group_of("c2").reason
