import numpy as np
import pytest
from conftest import (
    Subclassed,
    multi_io_model,
    nested_model,
    residual_cnn,
    sequential_cnn,
    weights_fingerprint,
)

from edgecompress import surgery
from edgecompress._keras import keras

BUILDERS = {
    "sequential": sequential_cnn,
    "functional_residual_concat": residual_cnn,
    "nested": nested_model,
}


def _inputs(model, rng, n=5):
    return [rng.standard_normal((n, *t.shape[1:])).astype("float32") for t in model.inputs]


def _randomize_bn(model, rng):
    for layer in surgery.iter_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, w.shape).astype("float32")
                               for w in layer.get_weights()])


@pytest.mark.parametrize("builder", list(BUILDERS.values()) + [multi_io_model], ids=list(BUILDERS) + ["multi_io_shared"])
def test_identity_rebuild_is_bit_identical_and_independent(builder, rng):
    model = builder()
    _randomize_bn(model, rng)
    before = weights_fingerprint(model)
    new = surgery.rebuild(model)
    x = _inputs(model, rng)
    ref, out = model.predict(x, verbose=0), new.predict(x, verbose=0)
    ref, out = (ref, out) if isinstance(ref, list) else ([ref], [out])
    assert len(ref) == len(out)
    for r, o in zip(ref, out):
        np.testing.assert_array_equal(r, o)
    assert type(new) is type(model)
    assert [w.name for w in new.weights] != [] and not set(map(id, new.weights)) & set(map(id, model.weights))
    assert weights_fingerprint(model) == before
    assert [layer.name for layer in surgery.iter_layers(new)] == [layer.name for layer in surgery.iter_layers(model)]


def _split_dense(layer):
    """fc1 -> two Dense layers whose product equals the original (exact factorization)."""
    if layer.name != "fc1":
        return None
    kernel, bias = layer.get_weights()
    n_in, n_out = kernel.shape
    first = keras.layers.Dense(n_in, use_bias=False, name="fc1_a")
    second = keras.layers.Dense(n_out, activation=layer.activation, name="fc1_b")
    return surgery.Replacement([first, second], [[np.eye(n_in, dtype="float32")], [kernel, bias]])


@pytest.mark.parametrize("builder", [sequential_cnn, residual_cnn], ids=["sequential", "functional"])
def test_replace_by_equivalent_chain(builder, rng):
    model = builder()
    new = surgery.rebuild(model, _split_dense)
    x = _inputs(model, rng)
    np.testing.assert_allclose(new.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    names = [layer.name for layer in new.layers]
    assert "fc1_a" in names and "fc1_b" in names and "fc1" not in names


def test_drop_layer_and_replace_single_layer(rng):
    model = sequential_cnn()
    new = surgery.rebuild(model, lambda layer: surgery.DROP if layer.name == "bn1" else None)
    assert "bn1" not in [layer.name for layer in new.layers]
    # BN at init with default stats is (almost) identity, so outputs stay close
    x = _inputs(model, rng)
    np.testing.assert_allclose(new.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-2)


def test_drop_multi_input_layer_is_refused():
    with pytest.raises(ValueError, match="single-input"):
        surgery.rebuild(residual_cnn(), lambda layer: surgery.DROP if layer.name == "add" else None)


def test_rule_recurses_into_nested_model(rng):
    model = nested_model()
    seen = []
    surgery.rebuild(model, lambda layer: seen.append(layer.name))
    assert "inner_conv" in seen and "head" in seen


def test_wrong_weights_name_the_layer():
    def rule(layer):
        if layer.name == "fc2":
            return surgery.Replacement([keras.layers.Dense(3, name="fc2")], [layer.get_weights()])
        return None

    with pytest.raises(ValueError, match="fc2"):
        surgery.rebuild(sequential_cnn(), rule)


@pytest.mark.parametrize(
    "model, match",
    [(Subclassed(), "subclassed"), ("not a model", "tf_keras"), (keras.Sequential([keras.layers.Dense(2)]), "not built")],
    ids=["subclassed", "string", "unbuilt"],
)
def test_refuses_models_it_cannot_rewrite(model, match):
    with pytest.raises((TypeError, ValueError), match=match):
        surgery.rebuild(model)


@pytest.mark.parametrize(
    "layers, match",
    [(["nope"], "not in the model"), (["bn1"], "must name Dense/Conv2D")],
)
def test_find_layers_errors(layers, match):
    with pytest.raises(ValueError, match=match):
        surgery.find_layers(sequential_cnn(), layers, (keras.layers.Dense, keras.layers.Conv2D))


def test_find_layers_default_selects_by_type():
    found = surgery.find_layers(residual_cnn(), None, (keras.layers.Dense,))
    assert [layer.name for layer in found] == ["fc1", "fc2"]


def test_rebuild_keeps_tfmot_wrapper_state(rng):
    # tfmot's cluster wrapper hides its centroids and indices from get_weights(); the copy
    # must carry every variable or the clustered kernel comes back different.
    from edgecompress.quantization import cluster_weights

    model = cluster_weights(sequential_cnn(), clusters=4, init="linear")
    x = _inputs(model, rng)
    np.testing.assert_array_equal(surgery.clone(model)(x, training=False), model(x, training=False))


# ---------------------------------------------------------------- Dense -> 1x1 conv rule


@pytest.mark.parametrize("builder", [sequential_cnn, residual_cnn], ids=["sequential", "functional"])
def test_dense_as_conv_is_the_same_function(builder, rng):
    model = builder()
    dense = [layer for layer in surgery.iter_layers(model) if type(layer) is keras.layers.Dense]
    before = weights_fingerprint(model)
    conv = surgery.dense_as_conv(model, dense)
    assert weights_fingerprint(model) == before
    assert not any(isinstance(layer, keras.layers.Dense) for layer in surgery.iter_layers(conv))
    assert {type(conv.get_layer(layer.name)) for layer in dense} == {keras.layers.Conv2D}
    x = _inputs(model, rng)
    np.testing.assert_allclose(conv(x), model(x), rtol=1e-5, atol=1e-5)


def test_dense_as_conv_refuses_by_name_and_reason():
    class MyDense(keras.layers.Dense):
        pass

    seq = keras.Sequential([keras.Input((3, 4)), keras.layers.Dense(2, name="on_3d")])
    with pytest.raises(ValueError, match=r"'on_3d' \(Dense\): input of rank 3"):
        surgery.dense_as_conv(seq, seq.layers)
    custom = keras.Sequential([keras.Input((4,)), MyDense(2, name="mine")])
    with pytest.raises(ValueError, match="'mine' .*no 1x1 convolution counterpart .*MyDense"):
        surgery.dense_as_conv(custom, custom.layers)
    with pytest.raises(TypeError, match="Dense subclass and a Conv2D subclass"):
        surgery.register_conv_counterpart(keras.layers.Conv2D, MyDense)
    surgery.register_conv_counterpart(MyDense, keras.layers.Conv2D)
    assert surgery.why_not_as_conv(custom.layers[0]) == ""
    surgery.dense_conv._COUNTERPARTS.pop(MyDense)
