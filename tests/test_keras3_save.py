"""Results back in Keras 3: save_keras3 files load in Keras 3 (a subprocess) with equal outputs."""

import _keras3_models
import numpy as np
import pytest

from edgecompress import lowrank, pruning, quantization
from edgecompress._keras import keras
from edgecompress.keras3_save import save_keras3

L = keras.layers


def _base():
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", name="conv1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    a = L.ReLU(name="relu1")(x)
    block = keras.Sequential([keras.Input((12, 12, 8)), L.Conv2D(8, 3, padding="same"),
                              L.BatchNormalization()], name="block")
    x = L.Add(name="add")([a, block(a)])
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2D(12, 1, activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(16, activation="relu", name="fc1")(x)
    model = keras.Model(inp, L.Dense(4, activation="softmax", name="fc2")(x), name="base")
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape) if "variance" in v.name
                       else rng.normal(0, 0.3, w.shape)
                       for v, w in zip(model.weights, model.get_weights())])
    return model


RESULTS = {
    "factorized": lambda m: lowrank.factorize(m, rank=2),
    "filter_pruned": lambda m: pruning.prune_filters(m, ratio=0.5),
    "pruning_stripped": lambda m: pruning.strip(pruning.prune_low_magnitude(m)),
    "clustering_stripped": lambda m: quantization.strip(quantization.cluster_weights(
        m, clusters=4, init="linear")),
    "pq_decoded": lambda m: quantization.decode(quantization.product_quantize(
        m, subvector_size=2, codebook_size=4, layers=["fc1"])),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("to_keras3")
    base = _base()
    x = np.random.default_rng(1).normal(0, 1, (3, 12, 12, 3)).astype("float32")
    models = {}
    for name, make in RESULTS.items():
        model = make(base)
        models[name] = model
        save_keras3(model, out / f"{name}.keras")
        np.savez(out / f"{name}.npz", x0=x, y0=np.asarray(model(x, training=False)))
    _keras3_models.run(out, "predict")
    return out, models, base


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_keras3_predicts_what_tf_keras_did(written, name):
    out, models, base = written
    ours = np.load(out / f"{name}.npz")["y0"]
    theirs = np.load(out / f"{name}.k3.npz")["y0"]
    np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=0)


def test_the_results_differ_from_the_base_where_they_should(written):
    out, models, base = written
    x = np.load(out / "factorized.npz")["x0"]
    assert models["filter_pruned"].count_params() < base.count_params()
    assert models["factorized"].count_params() < base.count_params()
    assert not np.allclose(np.load(out / "factorized.npz")["y0"], base(x), atol=1e-5)
    assert len(np.unique(models["clustering_stripped"].get_layer("fc1").kernel.numpy())) <= 4


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda m: pruning.prune_low_magnitude(m), "tfmot wrapper; strip it first"),
        (lambda m: quantization.product_quantize(m, subvector_size=2, codebook_size=4,
                                                 layers=["fc1"]), "not a tf_keras built-in"),
        (lambda m: keras.Sequential([keras.Input((4,)), L.Dense(2, activation="hard_sigmoid")]),
         "computes differently"),
    ],
    ids=["tfmot_wrapper", "pq_layer", "tf_keras_hard_sigmoid"],
)
def test_refused_with_the_reason_and_no_file(tmp_path, make, match):
    path = tmp_path / "m.keras"
    with pytest.raises(ValueError, match=match):
        save_keras3(make(_base()), path)
    assert list(tmp_path.iterdir()) == []


def test_larq_layers_are_refused(tmp_path):
    import larq as lq

    model = keras.Sequential([keras.Input((4,)), lq.layers.QuantDense(
        2, kernel_quantizer="ste_sign", name="binary_fc")])
    with pytest.raises(ValueError, match="'binary_fc' of class larq.*larq quantized layer"):
        save_keras3(model, tmp_path / "m.keras")
