import numpy as np
import pytest
from conftest import multi_io_model, nested_model, residual_cnn, sequential_cnn, weights_fingerprint

from edgecompress import lowrank, measure, surgery
from edgecompress._keras import keras
from edgecompress.lowrank import decompose
from edgecompress.lowrank.factorize import select

BUILDERS = {"sequential": sequential_cnn, "functional_residual": residual_cnn, "nested": nested_model,
            "multi_io_shared": multi_io_model}
METHODS = ("svd", "spatial_svd", "tucker2", "auto")


def _inputs(model, rng, n=4):
    return [rng.standard_normal((n, *t.shape[1:])).astype("float32") for t in model.inputs]


def _predict(model, x):
    out = model(x if len(x) > 1 else x[0], training=False)  # faster than predict for one batch
    return [np.asarray(o) for o in out] if isinstance(out, list) else [np.asarray(out)]


def _randomize(model, rng):
    """Random weights with a decaying spectrum-free scale, so outputs are not saturated."""
    for layer in surgery.iter_layers(model):
        if layer.weights:
            layer.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.3
                               if w.ndim > 1 else rng.uniform(0.5, 1.5, w.shape).astype("float32")
                               for w in layer.get_weights()])


def _conv_model(shape=(11, 13, 8), filters=16, **conv_kwargs):
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(filters, conv_kwargs.pop("kernel_size", 3), name="conv",
                            activation="relu", **conv_kwargs)(inp)
    return keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x))


def _dense_model(n_in=20, n_out=30):
    inp = keras.Input((n_in,))
    return keras.Model(inp, keras.layers.Dense(n_out, activation="tanh", name="fc")(inp))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("builder", list(BUILDERS.values()), ids=list(BUILDERS))
def test_full_rank_reproduces_outputs_and_leaves_input_alone(builder, method, rng):
    model = builder()
    _randomize(model, rng)
    before = weights_fingerprint(model)
    kinds = {"svd": keras.layers.Dense, "spatial_svd": keras.layers.Conv2D,
             "tucker2": keras.layers.Conv2D}
    expected = [layer.name for layer in surgery.iter_layers(model)
                if type(layer) in (keras.layers.Dense, keras.layers.Conv2D)
                and (method == "auto" or isinstance(layer, kinds[method]))]
    # with no layer of the method's kind (expected == []) it is a reported no-op
    new, report = lowrank.factorize(model, method=method, energy=1.0, force=True,
                                    return_report=True)
    x = _inputs(model, rng)
    for ref, out in zip(_predict(model, x), _predict(new, x), strict=False):
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert weights_fingerprint(model) == before
    assert type(new) is type(model)
    assert [r.layer for r in report.factorized] == expected
    names = {layer.name for layer in surgery.iter_layers(new)}
    assert not names & set(expected)  # every chosen layer was replaced


@pytest.mark.parametrize("conv_kwargs", [
    dict(strides=2, padding="same"), dict(strides=2, padding="valid"),
    dict(strides=(2, 1), padding="same"), dict(dilation_rate=2, padding="same"),
    dict(dilation_rate=(1, 2), padding="valid"), dict(kernel_size=(3, 5), padding="same"),
    dict(kernel_size=1), dict(use_bias=False, padding="valid"),
], ids=["s2same", "s2valid", "s21same", "d2same", "d12valid", "k3x5", "1x1", "nobias"])
@pytest.mark.parametrize("method", ["spatial_svd", "tucker2"])
def test_conv_geometry_respected_at_full_rank(method, conv_kwargs, rng):
    model = _conv_model(**conv_kwargs)
    _randomize(model, rng)
    new = lowrank.factorize(model, method=method, energy=1.0, force=True)
    x = _inputs(model, rng)
    inner = keras.Model(new.inputs, new.layers[-2].output)
    ref_inner = keras.Model(model.inputs, model.get_layer("conv").output)
    assert inner.output_shape == ref_inner.output_shape
    np.testing.assert_allclose(_predict(inner, x)[0], _predict(ref_inner, x)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method,rank,params,macs", [
    # Dense 20 -> 30 at rank 5: 20*5 + 5*30 + bias 30
    ("svd", 5, 20 * 5 + 5 * 30 + 30, 20 * 5 + 5 * 30),
    # conv 3x3 valid, 11x13x8 -> 9x11x16; kx1 output is 9x13
    ("spatial_svd", 4, 3 * 8 * 4 + 3 * 4 * 16 + 16, 9 * 13 * 3 * 8 * 4 + 9 * 11 * 3 * 4 * 16),
    # reduce 1x1 at 11x13, core 3x3 4->6 at 9x11, expand 1x1 6->16 at 9x11 (4 < 8, 6 < 16)
    ("tucker2", (4, 6), 8 * 4 + 9 * 4 * 6 + 6 * 16 + 16,
     11 * 13 * 8 * 4 + 9 * 11 * (9 * 4 * 6 + 6 * 16)),
])
def test_param_and_mac_counts_match_formulas(method, rank, params, macs):
    model = _dense_model() if method == "svd" else _conv_model(padding="valid")
    name = "fc" if method == "svd" else "conv"
    new, report = lowrank.factorize(model, method=method, rank={name: rank}, return_report=True)
    (row,) = report
    assert (row.params_after, row.macs_after) == (params, macs)
    old_m, new_m = measure(model), measure(new)
    assert new_m.params == old_m.params - row.params_before + params
    assert new_m.macs == old_m.macs - row.macs_before + macs
    assert row.params_before == model.get_layer(name).count_params()


@pytest.mark.parametrize("method", ["svd", "spatial_svd", "tucker2"])
def test_truncation_error_grows_monotonically_as_rank_falls(method, rng):
    model = _dense_model(24, 24) if method == "svd" else _conv_model()
    _randomize(model, rng)
    x = _inputs(model, rng, n=16)
    ref = _predict(model, x)[0]
    ranks = [1, 2, 4, 8, 16] if method != "tucker2" else [(1, 1), (2, 3), (4, 6), (6, 10), (8, 16)]
    name = "fc" if method == "svd" else "conv"
    errors = [np.linalg.norm(_predict(lowrank.factorize(model, method=method, rank={name: r},
                                                        force=True), x)[0] - ref) for r in ranks]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors


def test_decompose_reconstructs_kernels(rng):
    w = rng.standard_normal((3, 5, 4, 6))
    v, h = decompose.spatial_svd_factors(w, 12)
    np.testing.assert_allclose(np.einsum("aik,bko->abio", v[:, 0], h[0]), w, atol=1e-5)
    red, core, exp = decompose.tucker2_factors(w, 4, 6, iterations=1)
    np.testing.assert_allclose(np.einsum("ir,abrs,so->abio", red[0, 0], core, exp[0, 0]), w,
                               atol=1e-5)
    s = decompose.singular_values(w.reshape(15, 24))
    assert decompose.rank_for_energy(s, 1.0) == 15 and decompose.rank_for_energy(s, 1e-9) == 1


def test_energy_and_target_ratio_select_ranks(rng):
    model = sequential_cnn()
    _randomize(model, rng)
    _, report = lowrank.factorize(model, method="svd", energy=0.6, return_report=True)
    assert all(r.retained_energy >= 0.6 for r in report.factorized)
    for target in ("params", "macs"):
        new, report = lowrank.factorize(model, target_ratio=0.5, target=target, return_report=True)
        key = "params" if target == "params" else "macs"
        before = sum(getattr(r, f"{key}_before") for r in report)
        after = sum(getattr(r, f"{key}_after") for r in report)
        assert after <= 0.5 * before
        assert measure(new).params == measure(model).params - sum(
            r.params_before - r.params_after for r in report)


def test_layers_that_would_not_shrink_are_left_alone_and_reported():
    model = sequential_cnn()
    new, report = lowrank.factorize(model, method="svd", rank=4, return_report=True)
    fc2 = next(r for r in report if r.layer == "fc2")  # 16 -> 4: rank 4 saves nothing
    assert not fc2.factorized and "no params saved" in fc2.reason
    assert "fc2" in [layer.name for layer in new.layers]
    assert [r.layer for r in report.factorized] == ["fc1"]


def test_grouped_and_subclassed_convs_are_skipped_or_refused():
    inp = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(8, 3, groups=2, name="grouped")(inp)
    x = keras.layers.Conv2DTranspose(4, 3, name="transposed")(x)
    x = keras.layers.Conv2D(8, 3, name="plain")(x)
    model = keras.Model(inp, x)
    with pytest.warns(UserWarning, match="grouped"):
        _, report = lowrank.factorize(model, method="spatial_svd", energy=0.5, return_report=True)
    assert {r.layer: r.factorized for r in report}["grouped"] is False
    with pytest.raises(ValueError, match="grouped"):
        lowrank.factorize(model, method="tucker2", energy=0.5, layers=["grouped"])
    with pytest.raises(ValueError, match="Conv2DTranspose"):
        lowrank.factorize(model, energy=0.5, layers=["transposed"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(), "Exactly one"),
    (dict(energy=0.9, rank=3), "Exactly one"),
    (dict(energy=0.0), "energy"),
    (dict(energy=1.5), "energy"),
    (dict(rank=0), "rank"),
    (dict(rank=2.5), "rank"),
    (dict(rank=10_000), "full rank"),
    (dict(rank={"fc1": 17}), "full rank"),
    (dict(rank={"conv2": (3, 99)}, method="tucker2"), "full rank"),
    (dict(target_ratio=1.0), "target_ratio"),
    (dict(energy=0.5, method="cp"), "method"),
    (dict(energy=0.5, target="flops"), "target"),
    (dict(energy=0.5, layers=["nope"]), "not in the model"),
    (dict(energy=0.5, layers=["bn1"]), "BatchNormalization"),
    (dict(energy=0.5, layers=["conv1"], method="svd"), "Conv2D"),
    (dict(rank={"fc1": 3}, layers=["fc2"]), "not in `layers`"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lowrank.factorize(sequential_cnn(), **kwargs)


def test_refuses_subclassed_model():
    from conftest import Subclassed

    with pytest.raises(TypeError):
        lowrank.factorize(Subclassed(), energy=0.5)


def test_factorized_model_fine_tunes_and_reloads(tmp_path, rng):
    model = residual_cnn()
    new = lowrank.factorize(model, energy=0.8)
    x = rng.standard_normal((32, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 4, 32)
    new.compile("adam", "sparse_categorical_crossentropy")
    before = [w.copy() for w in new.get_weights()]
    hist = new.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, new.get_weights(), strict=False))
    path = tmp_path / "lr.keras"
    new.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(_predict(loaded, [x])[0], _predict(new, [x])[0], atol=1e-6)


def test_sensitivity_picks_ranks_for_an_accuracy_budget():
    from edgecompress import datasets

    (x, y), (xt, yt) = datasets.load("digits")
    keras.utils.set_random_seed(0)
    inp = keras.Input(x.shape[1:])
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Dense(48, activation="relu", name="fc1")(h)
    h = keras.layers.Dense(32, activation="relu", name="fc2")(h)
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="fc3")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=128, verbose=0)
    sens = lowrank.rank_sensitivity(model, (xt, yt), ranks=[1, 16], layers=["fc1", "fc2"])
    assert set(sens.curves) == {"fc1", "fc2"} and sens.baseline > 0.8
    fc1 = {p.rank: p.accuracy for p in sens.curves["fc1"]}
    assert fc1[1] < fc1[16]  # rank 1 loses accuracy
    strict = lowrank.ranks_for_accuracy(sens, max_drop=0.0)
    loose = lowrank.ranks_for_accuracy(sens, max_drop=2.0)  # drops add up past 1
    assert loose == {"fc1": 1, "fc2": 1}
    for name, r in strict.items():
        assert next(p for p in sens.curves[name] if p.rank == r).drop <= 0
    small = lowrank.factorize(model, rank=loose, method=sens.method)
    assert measure(small).params < measure(model).params
    with pytest.raises(ValueError, match="max_drop"):
        lowrank.ranks_for_accuracy(sens, max_drop=-1)


@pytest.mark.parametrize("method,rank,conv", [
    ("spatial_svd", 5, dict(strides=2, padding="same")),
    ("tucker2", (3, 7), dict(strides=(2, 1), padding="valid")),
    ("tucker2", (8, 5), dict(dilation_rate=2, padding="same")),
    ("svd", 4, None)])
def test_scan_kernel_equals_the_factorized_chain(method, rank, conv, rng):
    """rank_sensitivity loads ``low_rank_kernel`` into one copy instead of rebuilding the model:
    that layer must compute what the factorized chain computes."""
    model = _dense_model() if conv is None else _conv_model(**conv)
    _randomize(model, rng)
    name = "fc" if conv is None else "conv"
    chain = lowrank.factorize(model, method=method, rank={name: rank}, force=True)
    cands, _ = select(model, method, [name])
    swapped = surgery.clone(model)
    swapped.get_layer(name).kernel.assign(cands[0].low_rank_kernel(rank, iterations=2))
    x = _inputs(model, rng)
    np.testing.assert_allclose(_predict(swapped, x)[0], _predict(chain, x)[0], rtol=1e-4, atol=1e-4)
    assert not np.allclose(_predict(swapped, x)[0], _predict(model, x)[0], atol=1e-3)


@pytest.mark.parametrize("rank,layers", [((8, 6), ["conv_core", "conv_expand"]),
                                         ((4, 16), ["conv_reduce", "conv_core"]),
                                         ((8, 16), ["conv_core"])])
def test_tucker2_leaves_out_identity_1x1_layers(rank, layers, rng):
    model = _conv_model(padding="same")
    _randomize(model, rng)
    new, (row,) = lowrank.factorize(model, method="tucker2", rank={"conv": rank}, force=True,
                                    return_report=True)
    assert [layer.name for layer in new.layers if layer.name.startswith("conv")] == layers
    assert measure(new).params == measure(model).params - row.params_before + row.params_after
    if rank == (8, 16):
        x = _inputs(model, rng)
        np.testing.assert_allclose(_predict(new, x)[0], _predict(model, x)[0], rtol=1e-4, atol=1e-4)


def test_factorized_model_converts_to_int8_tflite(rng):
    """Plain layers only: full-integer conversion works and agrees with Keras (until tflite_export)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgecompress._keras import tf

    model = sequential_cnn()
    _randomize(model, rng)
    new = lowrank.factorize(model, energy=0.9)
    x = rng.random((32, 12, 12, 1)).astype("float32")
    converter = tf.lite.TFLiteConverter.from_keras_model(new)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    interp = Interpreter(model_content=converter.convert())
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    preds = []
    for i in range(len(x)):
        interp.set_tensor(inp["index"], x[i:i + 1])
        interp.invoke()
        preds.append(interp.get_tensor(out["index"])[0])
    ref = _predict(new, [x])[0]
    assert np.mean(np.argmax(preds, 1) == ref.argmax(1)) >= 0.85


def test_data_weighted_energy_follows_the_input_activations(rng):
    """With ``data``, a direction the inputs never excite costs no energy, whatever its singular value."""
    inp = keras.Input((6,))
    out = keras.layers.Dense(6, use_bias=False, name="fc")(inp)
    model = keras.Model(inp, out)
    q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    s = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    model.get_layer("fc").set_weights([(np.eye(6) * s) @ q])  # u_i = e_i, singular values s
    x = np.zeros((50, 6), np.float32)
    x[:, 3:] = rng.standard_normal((50, 3))  # only the 3 weakest directions are excited
    _, plain = lowrank.factorize(model, method="svd", energy=0.5, return_report=True, force=True)
    _, aware = lowrank.factorize(model, method="svd", energy=0.5, data=x, return_report=True, force=True)
    assert plain[0].rank == 2  # 36+25 = 61 of 91 squared values
    assert aware[0].rank == 4  # directions 1..3 carry no response; 4 carries ~9/14 of it
    # the reported energy is the response share, checked against a direct computation
    _, r5 = lowrank.factorize(model, method="svd", rank=5, data=x, return_report=True, force=True)
    resp = s**2 * np.sum(x**2, 0)
    assert r5[0].retained_energy == pytest.approx(1 - resp[5:].sum() / resp.sum())


def test_data_weighting_spreads_a_budget_over_layers():
    """A ``target_ratio`` with ``data`` is met, the model is untouched, and the choice differs from plain energy."""
    from edgecompress import datasets

    (x, y), _ = datasets.load("digits")
    keras.utils.set_random_seed(0)
    inp = keras.Input(x.shape[1:])
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Dense(64, activation="relu", name="fc1")(h)
    h = keras.layers.Dense(48, activation="relu", name="fc2")(h)
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="fc3")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, batch_size=128, verbose=0)
    before = weights_fingerprint(model)
    _, aware = lowrank.factorize(model, method="svd", target_ratio=0.4, data=x[:300], return_report=True)
    assert weights_fingerprint(model) == before
    assert sum(r.params_after for r in aware) <= 0.4 * sum(r.params_before for r in aware)
    for row in aware.factorized:
        assert 0 <= row.retained_energy <= 1
    _, plain = lowrank.factorize(model, method="svd", target_ratio=0.4, return_report=True)
    assert [r.rank for r in plain] != [r.rank for r in aware]


def test_ranks_for_target_spends_a_cost_budget_on_the_smallest_measured_drops():
    pts = lowrank.SensitivityPoint
    sens = lowrank.Sensitivity(baseline=0.9, method="svd", before={"a": (1000, 1000), "b": (1000, 1000)},
                               curves={"a": [pts(8, 0.9, 0.0, 800, 800), pts(2, 0.6, 0.3, 200, 200)],
                                       "b": [pts(8, 0.89, 0.01, 800, 800), pts(2, 0.88, 0.02, 200, 200)]})
    assert lowrank.ranks_for_target(sens, 0.6) == {"a": 8, "b": 2}  # 800 + 200 <= 1200, drop 0.02
    assert lowrank.ranks_for_target(sens, 0.9) == {"a": 8}  # 800 + 1000 <= 1800, no drop
    with pytest.warns(UserWarning, match="cannot be reached"):
        assert lowrank.ranks_for_target(sens, 0.1) == {"a": 2, "b": 2}
    with pytest.raises(ValueError, match="target_ratio"):
        lowrank.ranks_for_target(sens, 1.5)


def test_tucker2_contractions_are_pairwise(rng, monkeypatch):
    """Regression (#22.4): the three-operand einsum ran as one six-index loop (260 s on 512^2)."""
    calls = []
    plain = np.einsum

    def spy(*operands, **kwargs):
        calls.append((operands[0], kwargs.get("optimize", False)))
        return plain(*operands, **kwargs)

    monkeypatch.setattr(np, "einsum", spy)
    decompose.tucker2_factors(rng.standard_normal((3, 3, 16, 16)), 4, 5, iterations=2)
    assert calls and all(optimize for _, optimize in calls), calls


def test_hooi_stops_when_energy_stops_growing(rng, monkeypatch):
    # An exact multilinear rank (4, 5) kernel: HOSVD is already optimal, so one sweep ends HOOI.
    core = rng.standard_normal((3, 3, 4, 5))
    u_in, u_out = rng.standard_normal((12, 4)), rng.standard_normal((14, 5))
    kernel = np.einsum("abrs,ir,os->abio", core, u_in, u_out)
    updates = []
    plain = np.linalg.qr
    monkeypatch.setattr(np.linalg, "qr", lambda m: updates.append(m.shape) or plain(m))
    red, core_f, exp = decompose.tucker2_factors(kernel, 4, 5, iterations=100)
    assert len(updates) == 2  # a single sweep: one subspace step per factor
    np.testing.assert_allclose(np.einsum("ir,abrs,so->abio", red[0, 0], core_f, exp[0, 0]),
                               kernel, atol=1e-4)


def test_hooi_subspace_sweeps_match_exact_hooi(rng):
    """The cheap sweep (one subspace step per factor) never loses energy and stays within 1%
    (relative) of exact HOOI (full eigendecomposition per factor) after as many sweeps."""
    kernel = rng.standard_normal((3, 3, 48, 40)) * np.linspace(2.0, 0.1, 40)
    total = np.sum(kernel ** 2)

    def captured(core):
        return np.sum(np.asarray(core, np.float64) ** 2) / total

    u_in = decompose.mode_basis(kernel, 2)[1][:, :20]
    u_out = decompose.mode_basis(kernel, 3)[1][:, :16]
    previous = captured(decompose.tucker2_factors(kernel, 20, 16, iterations=0)[1])
    for sweeps in (1, 2, 3):
        u_in = decompose.mode_basis(np.einsum("abio,os->abis", kernel, u_out), 2)[1][:, :20]
        u_out = decompose.mode_basis(np.einsum("abio,ir->abro", kernel, u_in), 3)[1][:, :16]
        exact = captured(np.einsum("abio,ir,os->abrs", kernel, u_in, u_out))
        fast = captured(decompose.tucker2_factors(kernel, 20, 16, iterations=sweeps, tol=0)[1])
        assert previous - 1e-6 <= fast <= exact + 1e-6 and exact - fast < 0.01 * exact, (sweeps, fast, exact)
        previous = fast


@pytest.mark.parametrize("shape", [(300, 280), (40, 700), (700, 40)])
def test_gram_basis_equals_lapack_svd(rng, shape):
    """The one-decomposition fast path gives LAPACK's spectrum, energy ranks and best rank-r fit."""
    low = rng.standard_normal((shape[0], 12)) @ rng.standard_normal((12, shape[1])) * 10
    matrix = low + 0.01 * rng.standard_normal(shape)
    exact_u, exact_s, exact_vt = np.linalg.svd(matrix, full_matrices=False)
    values = decompose.singular_values(matrix)
    np.testing.assert_allclose(values[:12], exact_s[:12], rtol=1e-9)
    for energy in (0.5, 0.9, 0.99, 0.9999999):
        assert decompose.rank_for_energy(values, energy) == decompose.rank_for_energy(exact_s, energy)
    for rank in (12, 30):
        first, second = decompose.svd_factors(matrix, rank)
        best = exact_u[:, :rank] * exact_s[:rank] @ exact_vt[:rank]
        np.testing.assert_allclose(first.astype(np.float64) @ second, best, atol=1e-3 * exact_s[0])
    full = min(shape)
    first, second = decompose.svd_factors(matrix, full)
    np.testing.assert_allclose(first.astype(np.float64) @ second, matrix, atol=1e-4 * exact_s[0])


def _resnet_stages(widths=(32, 64, 128)):
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(widths[0], 3, padding="same", name="stem")(inp)
    for i, width in enumerate(widths):
        stride = 1 if i == 0 else 2
        y = keras.layers.Conv2D(width, 3, strides=stride, padding="same", activation="relu",
                                name=f"s{i}_a")(x)
        y = keras.layers.Conv2D(width, 3, padding="same", name=f"s{i}_b")(y)
        short = x if i == 0 else keras.layers.Conv2D(width, 1, strides=stride, name=f"s{i}_proj")(x)
        x = keras.layers.ReLU()(keras.layers.Add()([y, short]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10, name="fc")(x))


def test_three_stage_resnet_ranks_equal_the_exact_decomposition(rng):
    model = _resnet_stages()
    _randomize(model, rng)
    new, report = lowrank.factorize(model, energy=0.8, return_report=True, force=True)
    kernels = {layer.name: layer.get_weights()[0] for layer in model.layers if layer.weights}
    for row in report.factorized:
        k = kernels[row.layer]
        if row.method == "tucker2":
            exact = tuple(decompose.rank_for_energy(np.linalg.svd(decompose.unfold(k, m),
                                                                  compute_uv=False), 0.8)
                          for m in (2, 3))
        else:
            matrix = k if k.ndim == 2 else decompose.spatial_matrix(k)
            exact = decompose.rank_for_energy(np.linalg.svd(matrix, compute_uv=False), 0.8)
        assert row.rank == exact, row.layer
    assert {r.method for r in report.factorized} == {"tucker2", "spatial_svd", "svd"}
    x = rng.standard_normal((2, 16, 16, 3)).astype("float32")
    out = new(x, training=False).numpy()
    assert out.shape == (2, 10) and np.isfinite(out).all()
    assert new.transform_report.transformed == [r.layer for r in report.factorized]


def test_long_factorize_logs_progress_per_layer_and_noop_warns(rng, monkeypatch, caplog):
    from edgecompress import _progress

    monkeypatch.setattr(_progress, "SHOW_AFTER_SECONDS", 0.0)
    model = sequential_cnn()
    with caplog.at_level("INFO", logger="edgecompress"):
        lowrank.factorize(model, method="svd", rank=2)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("factorize (factors): layer 1/2 'fc1'") for line in lines), lines
    caplog.clear()
    with caplog.at_level("WARNING", logger="edgecompress"):
        new = lowrank.factorize(model, method="svd", rank=16)  # saves nothing anywhere
    assert not new.transform_report.transformed
    assert any("factorize changed no layer" in r.getMessage() for r in caplog.records)


def test_mode_basis_of_a_wide_side_matches_the_full_gram(rng):
    """A 1x1 conv with more input channels than outputs: the spectrum and leading subspace come
    from the small Gram, equal to the full Gram's; a rank past them is completed orthonormally."""
    kernel = rng.standard_normal((1, 1, 48, 12))
    values, vectors = decompose.mode_basis(kernel, 2)
    full_values, full_vectors = decompose._eigh_descending(decompose.mode_gram(kernel, 2))
    assert values.shape == (48,) and vectors.shape == (48, 12)
    np.testing.assert_allclose(values, full_values, atol=1e-6)
    np.testing.assert_allclose(np.abs(vectors.T @ full_vectors[:, :12]), np.eye(12), atol=1e-8)
    completed = decompose._leading(vectors, 30)
    np.testing.assert_allclose(completed.T @ completed, np.eye(30), atol=1e-10)
    reduce, core, expand = decompose.tucker2_factors(kernel.astype("float32"), 30, 12)
    rebuilt = np.einsum("ir,abrs,so->abio", reduce[0, 0], core, expand[0, 0])
    np.testing.assert_allclose(rebuilt, kernel, atol=1e-4)  # 12 directions hold all the energy
