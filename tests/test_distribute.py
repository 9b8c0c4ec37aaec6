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


MULTIWORKER = Path(__file__).parent / "_multiworker_script.py"


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _result(stdout, stderr):
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_multiworker_pruning_fine_tune_matches_one_process():
    """Two real worker processes on 127.0.0.1 (TF_CONFIG, two ports) train one pruned model in
    sync and reach the loss of the same fine-tune in one process."""
    import os

    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, str(MULTIWORKER), "multiworker"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    single = subprocess.run([sys.executable, str(MULTIWORKER), "none"], capture_output=True,
                            text=True, timeout=600)
    outs = [p.communicate(timeout=600) for p in procs]
    alone = _result(single.stdout, single.stderr)
    chief, other = (_result(*out) for out in outs)
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["losses"] == pytest.approx(other["losses"], rel=1e-5)  # one model, in sync
    assert chief["losses"][-1] < chief["losses"][0]
    assert chief["losses"][-1] == pytest.approx(alone["losses"][-1], rel=0.1)
    assert chief["sparsity"] == pytest.approx(0.5, abs=0.01) == alone["sparsity"]


def test_recipe_fit_under_mirrored_strategy_trains_the_model_in_place(tmp_path):
    """The recipe's fit step with strategy='mirrored' trains a copy made in the strategy's scope
    and hands its weights back to the run's model (unchanged weights would equal the input's)."""
    import numpy as np
    from _search_models import tiny_classifier

    from edgecompress import datasets, distribute
    from edgecompress import recipe as recipes

    (x, y), _ = datasets.load("digits")
    model = tiny_classifier(filters=4, units=16)
    before = model.evaluate(x[:256], y[:256], verbose=0)[0]
    recipe = recipes.parse("[[step]]\nkind = 'fit'\nepochs = 2\npatience = 0\n")
    result = recipes.run(recipe, model, (x[:256], y[:256]), (x[256:384], y[256:384]), tmp_path,
                         verbose=0, strategy="mirrored")
    trained = result.model
    assert distribute.get_strategy("mirrored").num_replicas_in_sync >= 1
    assert not any(np.array_equal(a, b) for a, b in zip(model.get_weights(), trained.get_weights()))
    trained.compile("adam", "sparse_categorical_crossentropy")
    assert trained.evaluate(x[:256], y[:256], verbose=0) < before
