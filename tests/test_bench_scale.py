"""The cost-at-scale harness: exponent fit and table (the timings themselves are the lead's)."""

import numpy as np
import pytest

from edgecompress.bench import scale


def test_exponent_is_the_log_log_slope_and_errors_are_rows():
    rows = [{"transform": "t", "size": 64, "model": f"m{p}", "params": p, "seconds": 2e-6 * p ** 1.5,
             "peak_mib": 100.0, "growth_mib": 1.0} for p in (1e4, 1e5, 1e6)]
    rows.append({"transform": "t", "size": 64, "model": "big", "error": "timed out after 9 s"})
    slopes = scale.exponents(rows)
    np.testing.assert_allclose(slopes[("t", 64)], 1.5, rtol=1e-9)
    table = scale.markdown(rows, slopes)
    assert "| t | big | 64 |  | timed out after 9 s |" in table and "| t | 64 | 1.50 | - |" in table


def test_merge_joins_runs_later_cells_win(tmp_path, capsys):
    import json

    cell = {"transform": "t", "size": 64, "params": 10, "peak_mib": 1.0, "growth_mib": 0.0}
    first, second, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "all.json"
    first.write_text(json.dumps({"rows": [{**cell, "model": "m1", "seconds": 9.0},
                                          {**cell, "model": "m2", "seconds": 1.0}]}))
    second.write_text(json.dumps({"rows": [{**cell, "model": "m1", "seconds": 2.0, "cpu_seconds": 1.5}]}))
    assert scale.main(["--merge", str(first), str(second), "--json", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["m1"]["seconds"] == 2.0 and rows["m2"]["seconds"] == 1.0
    assert "| t | m1 | 64 | 10 | 2.00 | 1.5 |" in capsys.readouterr().out
    assert scale.main(["--merge", str(tmp_path / "missing.json")]) == 2


def test_bad_choices_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        scale.main(["--models", "vgg99", "--transforms", "factorize"])
    assert stop.value.code == 2 and "vgg99" in capsys.readouterr().err
