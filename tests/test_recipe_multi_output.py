"""`edgecompress compress` on a two-output model with one label array per output in the .npz
(``y_train_<output>``, ``y_test_<output>``), and the one-line errors when they do not fit."""

import json

import numpy as np
import pytest

from edgecompress._keras import keras
from edgecompress.cli import main
from tests._recipe_matrix import MODELS, data

RECIPE = '[[step]]\nkind = "fit"\nepochs = 1\nlearning_rate = 1e-4\n[[step]]\nkind = "export"\nmode = "float32"\n'


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_heads")
    keras.utils.set_random_seed(0)  # the fit's outcome, and so the guard's, must not hang on test order
    model = MODELS["two_heads"]()
    model.save(folder / "two_heads.keras")
    (x_tr, (d_tr, s_tr)), (x_te, (d_te, s_te)) = data("two_heads", model)
    arrays = dict(x_train=x_tr, y_train_digit=d_tr, y_train_size=s_tr, x_test=x_te, y_test_digit=d_te,
                  y_test_size=s_te)
    np.savez(folder / "d.npz", **arrays)
    (folder / "r.toml").write_text(RECIPE)
    return folder, arrays


def _compress(folder, npz, out, capsys):
    code = main(["compress", str(folder / "two_heads.keras"), "--recipe", str(folder / "r.toml"), "--data",
                 str(npz), "-o", str(out), "--quiet", "--max-drop", "100"])
    return code, capsys.readouterr().err.strip().splitlines()


def test_per_output_labels_reach_every_output(files, tmp_path, capsys):
    folder, _ = files
    code, err = _compress(folder, folder / "d.npz", tmp_path / "out", capsys)
    assert code == 0, err[-5:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["trace"][0]["scores"]) == {"digit", "size"}
    assert 0 <= report["trace"][0]["scores"]["digit"] <= 1  # accuracy; "size" is an error (mse)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("y_train_size"), "one label array per model output"),
    (lambda a: a.update(y_train_size=np.zeros((len(a["x_train"]), 3), "float32")),
     "labels for output 'size' must have 1"),
])
def test_missing_or_misshapen_per_output_labels_exit_2(files, change, message, tmp_path, capsys):
    folder, arrays = files
    arrays = dict(arrays)
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    code, err = _compress(folder, tmp_path / "bad.npz", tmp_path / "out", capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()
