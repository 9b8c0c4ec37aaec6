"""Every example runs in its fast mode (in-process, so TensorFlow loads once)."""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_fast_mode(path, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sys, "argv", [str(path), "--fast"])
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip()
