"""The search on a local two-CPU Ray cluster gives the winner the local worker processes give."""

import pytest
from _search_models import tiny_classifier

from edgecompress import datasets, search

ray = pytest.importorskip("ray")


def test_ray_gives_the_local_winner():
    (x, y), _ = datasets.load("digits")
    model = tiny_classifier()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    kwargs = dict(target="flash=16KB", max_drop=10.0, ratios=(0.5,), rank_fractions=(0.25,),
                  lut_bits=(), epochs=1, top_k=2, scan_samples=150, step=1.0, seed=3)
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
    assert remote.winner["phases"] == local.winner["phases"]
    assert [c["accuracy"] for c in remote.candidates] == [c["accuracy"] for c in local.candidates]
    assert [r["scores"] for r in remote.sensitivities] == \
        [r["scores"] for r in local.sensitivities]
