"""The README's main command, `edgecompress demo`, and the baseline it trains."""

import json

from edgecompress.cli import main
from edgecompress.pipeline import DEMO_RECIPES


def test_demo_quick_runs_every_family(tmp_path, capsys, monkeypatch):
    from edgecompress import recipe as recipe_lib

    seen, run = [], recipe_lib.run

    def spy(recipe_, model, train, test, out_dir, **kwargs):
        seen.append((train[0], kwargs["validation"][0], test[0]))
        return run(recipe_, model, train, test, out_dir, **kwargs)

    monkeypatch.setattr(recipe_lib, "run", spy)
    out = tmp_path / "report"
    assert main(["demo", "--quick", "-o", str(out)]) == 0
    # early stopping sees digits carved from the training set, never the report's held-out ones
    for train_x, val_x, test_x in seen:
        rows = {r.tobytes() for r in test_x}
        assert len(val_x) and not rows & {r.tobytes() for r in val_x}
        assert not {r.tobytes() for r in val_x} & {r.tobytes() for r in train_x}
    stdout = capsys.readouterr().out
    assert "report.md" in stdout and "baseline_float32" in stdout
    report = json.loads((out / "report.json").read_text())
    names = {a["name"] for a in report["artifacts"]}
    for recipe in DEMO_RECIPES:
        assert any(n.startswith(recipe + "_") for n in names), recipe
    assert all(a["accuracy"] is not None for a in report["artifacts"])
    assert (out / "baseline.keras").exists() and (out / "pareto.png").exists()


def test_baseline_reaches_98_percent_on_held_out_digits(mnist5k):
    from edgecompress.measure import keras_accuracy
    from edgecompress.pipeline import train_baseline

    train, test = mnist5k
    model = train_baseline(train, test, verbose=0)
    assert keras_accuracy(model, test) >= 0.98
