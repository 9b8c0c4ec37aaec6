"""The shipped distillation recipe's student (``thin``) and the Distiller's per-output losses, on a
model small_cnn cannot replace: one classification head and one regression head."""

import numpy as np
import pytest

from edgecompress import distillation, pruning
from edgecompress._keras import keras
from tests._recipe_matrix import MODELS


def _widths(model):
    """Output widths of the weighted layers, in graph order (auto-generated names vary by session)."""
    return [(layer.name, layer.get_weights()[0].shape[-1]) for layer in model.layers
            if layer.get_weights() and layer.get_weights()[0].ndim >= 2]


def test_thin_keeps_the_graph_and_outputs_at_a_width_factor():
    keras.utils.set_random_seed(0)
    teacher = MODELS["two_heads"]()
    student = distillation.thin(teacher, width=0.25)
    names = [name for name, _ in _widths(teacher)]
    assert [width for _, width in _widths(teacher)] == [8, 16, 32, 10, 1]
    assert _widths(student) == list(zip(names, [2, 4, 8, 10, 1]))
    assert names[3:] == ["digit", "size"]
    assert [t.shape[1:] for t in student.outputs] == [t.shape[1:] for t in teacher.outputs]
    assert sorted(student.transform_report.transformed) == sorted(names[:3])
    # init="teacher" keeps the teacher's largest filters (prune_filters' weights); "random" draws new ones
    warm = distillation.thin(teacher, width=0.25, init="teacher")
    pruned = pruning.prune_filters(teacher, ratio=0.75)
    for a, b, c in zip(warm.get_weights(), pruned.get_weights(), student.get_weights()):
        np.testing.assert_array_equal(a, b)
        assert a.shape == c.shape
    assert not np.allclose(warm.get_weights()[0], student.get_weights()[0])


def test_thin_refuses_a_model_with_nothing_to_thin():
    i = keras.Input((8,))
    model = keras.Model(i, keras.layers.Dense(3, name="head")(i))
    with pytest.raises(ValueError, match=r"`thin` found no layer .*'head'"):
        distillation.thin(model)
    with pytest.raises(ValueError, match=r"`width` must be in \(0, 1\). Received: width=1"):
        distillation.thin(model, width=1)


def test_distiller_loss_per_output_kind_matches_a_reference():
    """Soft targets (T**2 KL at temperature T) for the softmax head, MSE for the regression head."""
    keras.utils.set_random_seed(0)
    teacher = MODELS["two_heads"]()
    student = distillation.thin(teacher, width=0.5)
    distiller = distillation.Distiller(teacher, student, temperature=2.0)
    assert [t.kind for t in distiller.tasks] == ["classification", "regression"]
    x = np.random.default_rng(0).normal(size=(8, 16, 16, 1)).astype("float32")
    t_out, s_out = teacher(x), student(x)
    got = float(distiller.output_loss(t_out, s_out))

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    t_log = log_softmax(np.log(t_out[0].numpy().astype(np.float64)) / 2.0)
    s_log = log_softmax(np.log(s_out[0].numpy().astype(np.float64)) / 2.0)
    kl = (np.exp(t_log) * (t_log - s_log)).sum(-1).mean() * 4.0
    mse = np.mean((t_out[1].numpy() - s_out[1].numpy()) ** 2)
    np.testing.assert_allclose(got, kl + mse, rtol=1e-4)


def test_distiller_refuses_mismatched_output_counts():
    teacher = MODELS["two_heads"]()
    i = keras.Input((16, 16, 1))
    one_head = keras.Model(i, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(i)))
    with pytest.raises(ValueError, match="same output shape as `teacher` \\(as many outputs"):
        distillation.Distiller(teacher, one_head)
