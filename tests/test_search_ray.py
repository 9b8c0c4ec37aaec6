"""The search on a local two-CPU Ray cluster gives the winner the local worker processes give."""

import pytest

from edgecompress import datasets, search
from edgecompress._keras import keras

ray = pytest.importorskip("ray")


def _tiny_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(16, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(name="flatten"),
                              keras.layers.Dense(64, activation="relu", name="fc1"),
                              keras.layers.Dense(10, activation="softmax", name="fc2")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_ray_gives_the_local_winner():
    (x, y), _ = datasets.load("digits")
    model = _tiny_model()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    kwargs = dict(target="flash=16KB", max_drop=10.0, ratios=(0.5,), rank_fractions=(0.25,),
                  epochs=1, top_k=2, scan_samples=150, seed=3)
    local = search.search(model, (x, y), workers=2, **kwargs)
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False)
    try:
        remote = search.search(model, (x, y), ray_address="local", **kwargs)
    finally:
        ray.shutdown()
    assert remote.executor.startswith("Ray") and local.executor == "2 local workers"
    assert local.winner is not None
    assert remote.winner["name"] == local.winner["name"]
    # The same file up to the names TensorFlow numbers per process (e.g. "sequential_3").
    assert remote.winner["flash"] == pytest.approx(local.winner["flash"], abs=64)
    assert remote.winner["epochs"] == local.winner["epochs"]
    assert [c["accuracy"] for c in remote.candidates] == [c["accuracy"] for c in local.candidates]
    assert [r["accuracy"] for r in remote.sensitivities] == \
        [r["accuracy"] for r in local.sensitivities]
