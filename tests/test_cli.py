"""The `edgecompress` command on bad input: one line, exit 2, nothing left behind."""

import numpy as np
import pytest

from edgecompress._keras import keras
from edgecompress.cli import main

GOOD_RECIPE = "[[step]]\nkind = 'strip'\n"


@pytest.fixture
def files(tmp_path):
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "model.keras")
    (tmp_path / "good.toml").write_text(GOOD_RECIPE)
    (tmp_path / "bad.toml").write_text("[[step]]\nkind = 'fit'\nepochs = 'many'\n")
    np.savez(tmp_path / "wrong_shape.npz", x=np.zeros((20, 8, 8)), y=np.zeros(20, int))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("user file")
    return tmp_path


CASES = [
    ([], "a command is required"),
    (["dance"], "invalid choice"),
    (["compress", "{p}/missing.keras", "--recipe", "{p}/good.toml", "--data", "mnist5k", "-o", "{p}/out"], "MODEL"),
    (["compress", "{p}/model.keras", "--recipe", "{p}/bad.toml", "--data", "mnist5k", "-o", "{p}/out"], "step 1 \\(fit\\): `epochs` must be"),
    (["compress", "{p}/model.keras", "--recipe", "{p}/missing.toml", "--data", "mnist5k", "-o", "{p}/out"], "existing TOML"),
    (["compress", "{p}/model.keras", "--recipe", "nosuchrecipe", "--data", "mnist5k", "-o", "{p}/out"], "shipped recipe"),
    (["compress", "{p}/model.keras", "--recipe", "{p}/good.toml", "--data", "cifar", "-o", "{p}/out"], "`--data` must be"),
    (["compress", "{p}/model.keras", "--recipe", "{p}/good.toml", "--data", "{p}/wrong_shape.npz", "-o", "{p}/out"], "must have shape"),
    (["compress", "{p}/model.keras", "--recipe", "{p}/good.toml", "--data", "mnist5k", "-o", "{p}/full"], "not empty"),
    (["compress", "{p}/model.keras", "--recipe", "{p}/good.toml", "--data", "mnist5k", "-o", "{p}/no/such/dir"], "existing folder"),
    (["compress", "{p}/model.keras", "--data", "mnist5k", "-o", "{p}/out"], "--recipe"),
    (["demo", "--epochs", "0", "-o", "{p}/out"], "`--epochs` must be >= 1"),
    (["demo", "--epochs", "two"], "invalid int"),
    (["bench", "--families", "magic"], "`--families` must be"),
    (["bench", "--test-images", "{p}/x.idx"], "together"),
    (["report", "{p}/missing.tflite", "--data", "mnist5k", "-o", "{p}/out"], "missing.tflite"),
]


@pytest.mark.parametrize("argv, match", CASES, ids=[f"{i}-{c[0][0] if c[0] else 'none'}" for i, c in enumerate(CASES)])
def test_bad_input_one_line_exit_2_nothing_written(files, capsys, argv, match):
    import re

    before = sorted(p.relative_to(files) for p in files.rglob("*"))
    code = main([a.format(p=files) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err and re.search(match, err[-1]), err
    assert not any("Traceback" in line for line in err)
    assert sorted(p.relative_to(files) for p in files.rglob("*")) == before
    assert (files / "full" / "keep.txt").read_text() == "user file"


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "0.1.0"
