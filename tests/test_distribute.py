"""`fit` under MirroredStrategy over two logical CPU devices, for the families that train."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "_mirrored_script.py"


@pytest.fixture(scope="module")
def mirrored():
    families = ["pruning", "clustering", "qat", "binary"]
    out = subprocess.run([sys.executable, str(SCRIPT), *families], capture_output=True, text=True,
                         timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, out.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_two_replicas(mirrored):
    assert mirrored["replicas"] == 2


@pytest.mark.parametrize("family", ["pruning", "clustering", "qat", "binary"])
def test_training_lowers_the_loss(mirrored, family):
    assert mirrored[family]["loss_last"] < mirrored[family]["loss_first"]


def test_pruning_reaches_its_sparsity(mirrored):
    assert mirrored["pruning"]["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_clustering_keeps_its_codebook(mirrored):
    assert mirrored["clustering"]["unique"] <= 8
