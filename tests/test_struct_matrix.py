"""Low-rank, filter pruning and binarization on real graphs (the architecture matrix).

Each cell either works (output shapes equal, outputs finite, and the family's figure changed:
fewer parameters for ``factorize`` and ``prune_filters``, larq binary layers for ``binarize``) or
refuses with a message that names the layer and the reason. The builders are shared with the
quantization matrix.
"""

import re

import larq as lq
import numpy as np
import pytest

from edgecompress import binary, lowrank, pruning
from edgecompress._keras import keras
from edgecompress.surgery import iter_layers
from tests.test_quantization_real import HEAVY, LIGHT

MODELS = [m.__name__ for m in LIGHT] + HEAVY
BUILDERS = {m.__name__: m for m in LIGHT}

# model -> family -> (layer, reason substring, whole model refused); absent: every layer works.
REFUSALS = {
    "conv1d_net": {"binarize": ("c1", "Conv1D: no binary kernel", True)},
    "separable_layernorm": {"binarize": ("sep", "SeparableConv2D: no binary kernel", True),
                            "prune_filters": ("sep", "'ln' (LayerNormalization): normalizes", False)},
    "grouped_unet": {"binarize": ("grouped", "grouped convolution (groups=4)", True),
                     "prune_filters": ("grouped", "grouped convolution (groups=4)", True)},
}


@pytest.fixture(scope="module")
def built():
    """Each model built once for the module, when first asked for."""
    cache = {}

    def get(name):
        if name not in cache:
            keras.utils.set_random_seed(0)
            cache[name] = BUILDERS[name]() if name in BUILDERS else getattr(
                keras.applications, name)(input_shape=(32, 32, 3), weights=None, classes=4)
        return cache[name]

    return get


def _outputs(model, xs):
    out = model(xs if len(xs) > 1 else xs[0], training=False)
    return [np.asarray(o) for o in (out if isinstance(out, list) else [out])]


def _transform(family, model):
    if family == "factorize":
        return lowrank.factorize(model, energy=0.5)
    if family == "prune_filters":
        return pruning.prune_filters(model, 0.5)
    return binary.binarize(model, "binarynet")


@pytest.mark.parametrize("family", ["factorize", "prune_filters", "binarize"])
@pytest.mark.parametrize("name", MODELS)
def test_struct_matrix(name, family, built, caplog):
    model = built(name)
    refusal = REFUSALS.get(name, {}).get(family)
    if refusal and family == "binarize":
        with pytest.raises(ValueError, match=f"'{refusal[0]}': .*{re.escape(refusal[1])}"):
            _transform(family, model)
        return
    with caplog.at_level("WARNING", logger="edgecompress"):
        new = _transform(family, model)
    report = new.transform_report
    messages = [r.getMessage() for r in caplog.records]
    if refusal:
        assert refusal[1] in report.refused[refusal[0]]
        assert any(f"'{refusal[0]}' left unchanged" in m for m in messages)
    if refusal and refusal[2]:
        assert not report.transformed and new.count_params() == model.count_params()
        assert any("changed no layer" in m for m in messages)
        return
    assert report.transformed, report.to_dict()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, *t.shape[1:])).astype("float32") for t in model.inputs]
    before, after = _outputs(model, xs), _outputs(new, xs)
    assert [o.shape for o in after] == [o.shape for o in before]
    assert all(np.isfinite(o).all() for o in after)
    if family == "binarize":
        assert all(isinstance(layer, lq.layers_base.BaseLayer)
                   for layer in iter_layers(new) if layer.name in report.transformed
                   and not isinstance(layer, keras.layers.BatchNormalization))
        assert binary.summary(new)["binary_mac_fraction"] > 0.1
    else:
        assert new.count_params() < model.count_params()
