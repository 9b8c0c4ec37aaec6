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
    assert "| t | big | 64 |  | timed out after 9 s |" in table and "| t | 64 | 1.50 |" in table


def test_bad_choices_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        scale.main(["--models", "vgg99", "--transforms", "factorize"])
    assert stop.value.code == 2 and "vgg99" in capsys.readouterr().err
