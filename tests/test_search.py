"""Budget search: strict targets, a small LeNet-5 search verified in TFLite Micro, the recipe that
reproduces its winner, and the exit codes of `edgecompress compress --target`."""

import json

import numpy as np
import pytest
from _search_models import tiny_classifier

from edgecompress import cli, datasets, models, search
from edgecompress._errors import UsageError
from edgecompress._keras import keras
from edgecompress.search import Target, parse_target

KB = 1024


@pytest.mark.parametrize("text, expected", [
    ("flash=64KB,arena=20KB", Target(64 * KB, 20 * KB, None)),
    ("flash=17276,latency=5ms", Target(17276, None, 5.0)),
    ("arena=1.5MB, latency=500us", Target(None, int(1.5 * KB * KB), 0.5)),
    ("FLASH=2K,latency=2", Target(2 * KB, None, 2.0)),
])
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text, needle", [
    ("flash=abc", "flash='abc'"), ("flash=-4KB", "flash='-4KB'"), ("flash=0", "must be > 0"),
    ("ram=4KB", "'ram'"), ("flash=4KB,flash=8KB", "twice"), ("flash", "KEY=VALUE"),
    ("latency=5KB", "latency='5KB'"), ("", "KEY=VALUE"),
])
def test_bad_target_is_one_line_exit_2_and_no_output(tmp_path, capsys, text, needle):
    with pytest.raises(UsageError, match="`--target`"):
        parse_target(text)
    out = tmp_path / "out"
    code = cli.main(["compress", str(tmp_path / "missing.keras"), "--data", "digits",
                     "--target", text, "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]
    assert not out.exists()


def test_compress_needs_recipe_or_target(tmp_path, capsys):
    assert cli.main(["compress", "m.keras", "--data", "digits", "-o", str(tmp_path / "o")]) == 2
    assert "--target" in capsys.readouterr().err


def _tflm_top1(tflite: bytes, x, dtype=np.float32):
    """Top-1 of every sample from the real TensorFlow Lite Micro interpreter, fed as a device
    would: float, or int8 quantized with the input tensor's own scale and zero point."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(tflite, arena_size=1 << 20)
    details = interpreter.get_input_details(0)
    assert details["dtype"] == dtype
    if dtype == np.int8:
        scale, zero = details["quantization_parameters"]["scales"][0], \
            details["quantization_parameters"]["zero_points"][0]
        x = np.clip(np.round(x / scale) + zero, -128, 127)
    top = []
    for sample in x:
        interpreter.set_input(sample[None].astype(dtype), 0)
        interpreter.invoke()
        top.append(int(interpreter.get_output(0).argmax()))
    return np.array(top)


@pytest.fixture(scope="module")
def lenet_search():
    (x, y), _ = datasets.load("mnist5k")
    x, y = x[:1200], y[:1200]
    keras.utils.set_random_seed(0)
    model = models.lenet5()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    weights = [w.copy() for w in model.get_weights()]
    result = search.search(model, (x, y), "flash=100KB,arena=24KB", max_drop=5.0, workers=1,
                           ratios=(0.5, 0.75), rank_fractions=(0.1, 0.25), lut_bits=(4,), epochs=2,
                           patience=1, top_k=1, scan_samples=200, step=1.0)
    return model, weights, result, (x, y)


def test_small_search_meets_a_loose_budget_verified_in_tflm(lenet_search):
    model, weights, result, _ = lenet_search
    winner = result.winner
    assert winner is not None, [c["misses"] for c in result.candidates]
    assert winner["flash"] == len(winner["tflite"]) <= 100 * KB
    assert winner["arena"] <= 24 * KB
    assert winner["drop"] <= 5.0
    # The int8 baseline (450 KB) misses the flash budget, and the winner is a changed model
    # that had the final fine-tune.
    baseline = result.candidates[0]
    assert baseline["name"] == "int8_ptq" and baseline["flash"] > 100 * KB
    assert any("flash" in m for m in baseline["misses"])
    assert winner["actions"] and winner["final"] and winner["phases"][0]["kind"] == "distill"
    from edgecompress.search.core import describe

    # The device runs the winner's model: TFLM's top-1 (the file may hold LUT-compressed
    # weights, which only TFLM decodes) against the winner's Keras model on 64 digits.
    from edgecompress.search.jobs import model_from_bytes

    x = datasets.load("mnist5k")[1][0][:64]
    keras_top1 = model_from_bytes(winner["keras"]).predict(x, verbose=0).argmax(-1)
    # An arena budget makes the int8 file take and give int8 (no float input buffer).
    assert winner["int8_io"] and "int8 input/output" in describe(winner)
    assert np.mean(_tflm_top1(winner["tflite"], x, np.int8) == keras_top1) >= 0.95
    assert winner["tflm_agreement"] >= 0.95
    # The user's model is untouched.
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_proposals_are_least_shrinks_and_the_best_is_taken(lenet_search):
    """NetAdapt's rule: each layer proposes the least shrink reaching the iteration's aim (one
    grid step less misses it), and the iteration takes the least validation loss added per excess freed."""
    from edgecompress.search import space

    model, _, result, _ = lenet_search
    rows = [r for r in result.sensitivities if r["iteration"] == 0]
    kinds = {(r["action"]["layer"], r["action"]["kind"]) for r in rows}
    assert {("conv1", "prune"), ("conv2", "prune"), ("fc1", "prune"), ("fc1", "rank"),
            ("fc1", "lut")} <= kinds
    reached = [r for r in rows if r["reached"]]
    assert reached and all(r["excess"] <= r["aim"] + 1e-9 for r in reached)
    taken = [r for r in rows if r["taken"]]
    assert len(taken) == 1 and taken[0]["score"] == min(r["score"] for r in reached)
    reference, ref_stats = result.candidates[0], space.stats(model, {})
    limits = {"flash": 100 * KB, "arena": 24 * KB}
    for row in reached:
        action = row["action"]
        values = space.sizes(model, action["layer"], action["kind"], {}, (0.5, 0.75), (0.1, 0.25), (4,))
        index = values.index(int(action["value"]))
        assert space.excess(limits, row["estimate"]) == pytest.approx(row["excess"])
        if index:  # the next smaller move misses the aim
            new, lut, _ = space.move(model, space.Action(action["layer"], action["kind"],
                                                         values[index - 1]), {})
            cost = space.excess(limits, space.estimate(reference, ref_stats, space.stats(new, lut)))
            assert cost > row["aim"]
    # Estimates are close to the measured files (within 3% of flash).
    final = result.winner
    assert final["flash"] == pytest.approx(final["estimate"]["flash"], rel=0.03)


def test_pareto_front(lenet_search):
    _, _, result, _ = lenet_search
    front = result.pareto()
    assert front and front == sorted(front, key=lambda c: c["flash"])
    for cand in result.candidates:  # nothing off the front beats a front member on both axes
        if cand in front:
            continue
        assert any(f["flash"] <= cand["flash"] and f["accuracy"] >= cand["accuracy"] for f in front)


def test_outputs_and_recipe_reproduce_the_winner(lenet_search, tmp_path):
    from edgecompress import recipe as recipes
    from edgecompress.loading import load_model

    model, _, result, data = lenet_search
    paths = search.write_outputs(result, tmp_path)
    for key in ("tflite", "keras", "recipe", "search", "markdown", "pareto"):
        assert paths[key].is_file()
    assert paths["tflite"].read_bytes() == result.winner["tflite"]
    saved = load_model(paths["keras"], argument="model")
    assert saved.count_params() == result.winner["params"]
    parsed = recipes.load(paths["recipe"])
    kinds = [step.kind for step in parsed.steps]
    assert kinds[-1] == "export" and kinds.count("distill") == len(result.winner["phases"])
    # The recipe runner rebuilds the winner: the same layers, and a file of its size.
    out = tmp_path / "rerun"
    out.mkdir()
    rerun = recipes.run(parsed, model, data, data, out, verbose=0, enforce=False)
    assert [(layer.name, layer.count_params()) for layer in rerun.model.layers] == \
        [(layer.name, layer.count_params()) for layer in saved.layers]
    exported = [a for a in rerun.artifacts if a.mode == "int8"]
    assert exported and exported[-1].file_bytes == pytest.approx(result.winner["flash"], abs=64)


def test_impossible_budget_exits_1_naming_the_closest(tmp_path, capsys):
    model = tiny_classifier(filters=8, units=32)
    path = tmp_path / "tiny.keras"
    model.save(path)
    out = tmp_path / "out"
    code = cli.main(["compress", str(path), "--data", "digits", "--target", "flash=1KB",
                     "--ratios", "0.5", "--ranks", "0.25", "--lut-bits", "none", "--epochs", "0",
                     "--top-k", "1", "--iterations", "1", "--workers", "1", "-o", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    err = lines[-1]
    assert code == 1
    # A missed budget is the one line: TensorFlow's log (shown for a failed verification) explains nothing.
    assert not any("TensorFlow's output" in line for line in lines)
    # After its one move, the model is the closest: it misses flash, and says so.
    assert "closest: step1_int8" in err and "flash" in err and "> 1,024 B" in err
    assert not out.exists()


def test_cli_defaults_are_the_search_defaults():
    from edgecompress.search import cli as search_cli
    from edgecompress.search import core

    assert (search_cli.FINAL_EPOCHS, search_cli.TOP_K, search_cli.MAX_ITERATIONS) == \
        (core.FINAL_EPOCHS, core.TOP_K, core.MAX_ITERATIONS)


@pytest.mark.parametrize("with_val", [True, False])
def test_target_search_uses_the_data_s_own_validation_set(tmp_path, capsys, monkeypatch, with_val):
    """An .npz x_val beside x_test is the search's validation; without one the search holds out
    part of the training data, and the CLI says which."""
    (x, y), (xt, yt) = datasets.load("digits")
    arrays = {"x_train": x[:300], "y_train": y[:300], "x_test": xt, "y_test": yt}
    if with_val:
        arrays.update(x_val=x[300:420], y_val=y[300:420])
    data = tmp_path / "data.npz"
    np.savez(data, **arrays)
    model = tiny_classifier(filters=4, units=8)
    path = tmp_path / "tiny.keras"
    model.save(path)
    seen = {}

    def fake_search(model, train, target, validation=None, **kwargs):
        seen.update(train=train, validation=validation)
        raise UsageError("stopped by the test")

    monkeypatch.setattr(search, "search", fake_search)
    out = tmp_path / "out"
    code = cli.main(["compress", str(path), "--data", str(data), "--target", "flash=4KB", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 2 and not out.exists()
    assert len(seen["train"][0]) == 300
    if with_val:
        assert "validation: data.npz x_val/y_val, 120 samples" in printed
        np.testing.assert_array_equal(seen["validation"][1], y[300:420])
    else:
        assert seen["validation"] is None and "held out by the search" in printed


def _two_headed():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Flatten()(keras.layers.Conv2D(16, 3, activation="relu", name="conv")(inp))
    h = keras.layers.Dense(24, activation="relu", name="fc")(h)
    model = keras.Model(inp, [keras.layers.Dense(10, activation="softmax", name="cls")(h),
                              keras.layers.Dense(1, name="ink")(h)])
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    return model


def test_target_search_on_an_autoencoder_scores_its_error_in_litert_and_tflm():
    """A regression output is searched by its error: the drop is percent more MSE, the scores are
    LiteRT's on the winner's file, and TFLM runs that file as LiteRT does."""
    from tflite_micro.python.tflite_micro import runtime as tflm

    from edgecompress.search.measure import tflite_scores

    (x, _), _ = datasets.load("digits")
    x = x.reshape(len(x), 64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu", name="enc"),
                              keras.layers.Dense(8, activation="relu", name="code"),
                              keras.layers.Dense(32, activation="relu", name="dec"),
                              keras.layers.Dense(64, name="recon")])
    model.compile("adam", "mse")
    model.fit(x, x, epochs=30, batch_size=32, verbose=0)
    result = search.search(model, (x, x), "flash=10KB", max_drop=50.0, workers=1, epochs=6, patience=2,
                           top_k=1, lut_bits=(), step=1.0)
    winner = result.winner
    assert winner is not None, [c["misses"] for c in result.candidates]
    assert [t.kind for t in result.tasks] == ["regression"] and result.baseline_accuracy is None
    assert result.candidates[0]["flash"] > 10 * KB >= winner["flash"] == len(winner["tflite"])
    val = search.core._split((x, x), None, 0)[1]
    base_mse = float(np.mean((model.predict(val[0], verbose=0) - val[1]) ** 2))
    assert result.baseline["recon"] == pytest.approx(base_mse, rel=1e-5)
    assert tflite_scores(winner["tflite"], val, result.tasks) == winner["scores"]
    assert winner["drop"] == pytest.approx(100 * (winner["scores"]["recon"] / base_mse - 1), abs=1e-3)
    assert winner["drop"] <= 50.0 and winner["accuracy"] is None
    interpreter = tflm.Interpreter.from_bytes(winner["tflite"], arena_size=1 << 16)
    interpreter.set_input(val[0][:1].astype(np.float32), 0)
    interpreter.invoke()
    from tflite_export.runtime import Runner

    np.testing.assert_allclose(interpreter.get_output(0), Runner(winner["tflite"]).predict(val[0][:1]),
                               atol=0.05 * float(np.sqrt(np.mean(val[1] ** 2))))
    assert winner["tflm_agreement"] == 1.0


def test_target_search_on_a_two_headed_model(tmp_path, capsys):
    """A class head and a regression head (ink: the mean pixel): the search judges both, and the
    CLI prints each output's score; one label array for two outputs is a one-line exit 2."""
    (x, y), (xt, yt) = datasets.load("digits")
    model = _two_headed()
    model.fit(x, [y, x.mean(axis=(1, 2, 3))], epochs=15, batch_size=32, verbose=0)
    path, out = tmp_path / "two.keras", tmp_path / "out"
    model.save(path)
    one_y = tmp_path / "one_y.npz"
    np.savez(one_y, x=x, y=y)
    code = cli.main(["compress", str(path), "--data", str(one_y), "--target", "flash=8KB", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert len(err) == 1 and "`--data` must hold one label array per model output" in err[-1]
    data = tmp_path / "two.npz"
    np.savez(data, x_train=x, y_train_cls=y, y_train_ink=x.mean(axis=(1, 2, 3)),
             x_test=xt, y_test_cls=yt, y_test_ink=xt.mean(axis=(1, 2, 3)))
    code = cli.main(["compress", str(path), "--data", str(data), "--target", "flash=12KB", "--max-drop", "40",
                     "--epochs", "2", "--top-k", "1", "--iterations", "3", "--lut-bits", "none",
                     "--workers", "1", "-o", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    summary = json.loads((out / "search.json").read_text())
    assert summary["tasks"] == {"cls": "classification", "ink": "regression"}
    winner = next(c for c in summary["candidates"] if c["name"] == summary["winner"])
    assert winner["flash"] <= 12 * KB and set(winner["scores"]) == {"cls", "ink"}
    assert winner["flash"] == (out / "winner.tflite").stat().st_size
    line = next(line for line in printed.out.splitlines() if line.startswith("winner:"))
    assert "cls accuracy" in line and "ink mse" in line and "% error" in line and " pp" in line


def test_validation_split_of_small_data_leaves_most_to_train(caplog):
    from edgecompress.search import core

    x, y = np.arange(45.0)[:, None], np.arange(45) % 3
    with caplog.at_level("WARNING", logger="edgecompress.search"):
        (fx, fy), (vx, vy) = core._split((x, y), None, seed=0)
    assert (len(fx), len(vx)) == (30, 15)
    assert sorted(np.concatenate([fx, vx]).ravel()) == list(range(45))
    assert "validation holds 15 samples (one is 6.7 pp of accuracy)" in caplog.text
    (fx, _), (vx, _) = core._split((np.zeros((5000, 1)), np.zeros(5000)), None, seed=0)
    assert (len(fx), len(vx)) == (4500, 500)
    with pytest.raises(ValueError, match="at least 20 samples.*Received: 19"):
        core._split((x[:19], y[:19]), None, seed=0)


def _residual_block():
    inp = keras.Input((8, 8, 4), name="x")
    stem = keras.layers.Conv2D(6, 3, padding="same", name="stem")(inp)
    stem = keras.layers.ReLU(name="stem_relu")(keras.layers.BatchNormalization(name="stem_bn")(stem))
    a = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="a")(stem)
    b = keras.layers.BatchNormalization(name="b_bn")(keras.layers.Conv2D(6, 3, padding="same", name="b")(a))
    out = keras.layers.ReLU(name="relu")(keras.layers.Add(name="add")([stem, b]))
    head = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D(name="gap")(out))
    return keras.Model(inp, head)


def test_arena_proxy_counts_the_shortcut_and_names_the_groups_at_the_peak():
    """While ``b`` runs, the stem's output is live for the shortcut beside ``a``'s and ``b``'s
    (64 x 17 elements; BN and ReLU fold into the conv), and the Add holds two inputs and its
    output (64 x 18, the peak). Both channel groups (the residual one, led by ``stem``, and
    ``a``'s) are live near the peak, so the joint move names both."""
    from edgecompress.search import space

    model = _residual_block()
    assert space.activation_peak(model) == 64 * 18
    assert space.peak_groups(model) == ["stem", "a"]
    assert ("stem+a", "prune_peak") in space.options(model, {})
    new, _, step = space.move(model, space.Action("stem+a", "prune_peak", 0.5), {})
    assert {layer.name: layer.filters for layer in new.layers if hasattr(layer, "filters")} == \
        {"stem": 3, "a": 2, "b": 3}  # the residual group is pruned as one (b follows stem)
    assert set(step["ratio"]) == {"stem", "a"}
    assert space.activation_peak(new) == 64 * 9


def test_joint_move_lowers_the_arena_tflm_measures(tmp_path):
    """The proxy's saving is real: TFLM's exact arena of the int8 (int8 I/O) ResNet-8 drops when
    the groups at its peak keep half their filters: by 16.6 KB of the 24 KB of peak activations
    freed (TFLM's greedy planner packs the smaller model less tightly)."""
    from edgecompress.search import measure, space
    from tflite_export import export

    model = models.resnet8(input_shape=(32, 32, 3), num_classes=10)
    x = np.random.default_rng(0).random((16, 32, 32, 3), dtype=np.float32)
    layers, kind = space.options(model, {}, kinds=("prune_peak",))[0]
    smaller = space.move(model, space.Action(layers, kind, 0.5), {})[0]
    arenas = []
    for m, name in ((model, "full"), (smaller, "half")):
        path = tmp_path / f"{name}.tflite"
        export(m, path, "int8", representative_data=x, int8_io=True)
        arenas.append(measure.footprint(path.read_bytes()).arena)
    freed = space.activation_peak(model) - space.activation_peak(smaller)
    assert freed == 24 * KB
    assert 0.5 * freed <= arenas[0] - arenas[1] <= freed


def test_search_fine_tunes_give_a_strided_pointwise_model_even_batches(monkeypatch):
    """The oneDNN workaround of the recipe fit (edgecompress._onednn) covers the search's jobs."""
    from edgecompress import augment, tasks
    from edgecompress.search import tasks as search_tasks

    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 1, strides=2)(inp)  # a ResNet shortcut's shape of conv
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h)))
    seen, real = [], augment.batches
    monkeypatch.setattr(augment, "batches", lambda x, y, *a, **k: seen.append(len(x)) or real(x, y, *a, **k))
    rng = np.random.default_rng(0)
    x, y = rng.random((39, 8, 8, 3), dtype=np.float32), rng.integers(0, 3, 39)
    shared = {"fit": (x, y), "val": (x[:8], y[:8]), "settings": {"batch_size": 13, "strategy": None},
              "tasks": tasks.infer_tasks(model, y)}
    assert search_tasks.train(model, shared, 1, 1e-3, 0) == (1, "fit")
    assert seen == [38]  # batch 12: 3 x 12 + 2, no odd batch
