import gzip
import struct

import numpy as np
import pytest

from edgecompress import datasets


def test_mnist5k_split_is_real_stratified_and_fixed(mnist5k):
    (x_tr, y_tr), (x_te, y_te) = mnist5k
    assert x_tr.shape == (4000, 28, 28, 1) and x_te.shape == (1000, 28, 28, 1)
    assert x_tr.dtype == np.float32 and 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    assert np.bincount(y_te).tolist() == [100] * 10  # 500 per class in the source, stratified
    (x_tr2, _), _ = datasets.load("mnist5k")
    np.testing.assert_array_equal(x_tr, x_tr2)


def test_digits():
    (x_tr, y_tr), (x_te, y_te) = datasets.load("digits")
    assert x_tr.shape[1:] == (8, 8, 1) and len(x_tr) + len(x_te) == 1797
    assert x_tr.max() <= 1.0 and set(np.unique(y_tr)) == set(range(10))


def test_unknown_name():
    with pytest.raises(ValueError, match="`name` must be one of"):
        datasets.load("cifar10")


def _write_idx(path, array, code=0x08, compress=False):
    header = bytes([0, 0, code, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(">u1").tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_roundtrip(tmp_path, compress, rng):
    images = rng.integers(0, 256, (7, 5, 4)).astype("uint8")
    labels = rng.integers(0, 10, 7).astype("uint8")
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"i{suffix}", images, compress=compress)
    _write_idx(tmp_path / f"l{suffix}", labels, compress=compress)
    x, y = datasets.load_idx(tmp_path / f"i{suffix}", tmp_path / f"l{suffix}")
    assert x.shape == (7, 5, 4, 1)
    np.testing.assert_allclose(x[..., 0] * 255, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)


def test_idx_errors(tmp_path, rng):
    _write_idx(tmp_path / "i", rng.integers(0, 256, (7, 5, 4)).astype("uint8"))
    _write_idx(tmp_path / "l", rng.integers(0, 10, 6).astype("uint8"))
    with pytest.raises(ValueError, match="one label per image"):
        datasets.load_idx(tmp_path / "i", tmp_path / "l")
    (tmp_path / "bad").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="IDX"):
        datasets.load_idx(tmp_path / "bad", tmp_path / "l")
    with pytest.raises(FileNotFoundError, match="images_path"):
        datasets.load_idx(tmp_path / "missing", tmp_path / "l")
    (tmp_path / "trunc").write_bytes((tmp_path / "i").read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        datasets.load_idx(tmp_path / "trunc", tmp_path / "l")


def test_npz(tmp_path, rng):
    x = rng.integers(0, 256, (6, 4, 4)).astype("uint8")
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(6))
    xs, ys = datasets.load_npz(tmp_path / "d.npz")
    assert xs.shape == (6, 4, 4, 1) and xs.dtype == np.float32 and xs.max() <= 1
    np.savez(tmp_path / "bad.npz", x=x, y=np.arange(5))
    with pytest.raises(ValueError, match="one label per sample"):
        datasets.load_npz(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="x_key"):
        datasets.load_npz(tmp_path / "d.npz", x_key="images")
    np.savez(tmp_path / "nan.npz", x=np.full((2, 3, 3), np.nan), y=np.arange(2))
    with pytest.raises(ValueError, match="finite"):
        datasets.load_npz(tmp_path / "nan.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="could not be read"):
        datasets.load_npz(tmp_path / "corrupt.npz")


def test_image_folder(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (10, 6), color=(i * 100, 0, 0)).save(tmp_path / cls / f"{i}.png")
    x, y, names = datasets.load_image_folder(tmp_path, (4, 5))
    assert x.shape == (4, 4, 5, 3) and names == ["cat", "dog"] and y.tolist() == [0, 0, 1, 1]


def test_calibration_set(rng):
    x = rng.random((50, 4, 4, 1)).astype("float32")
    batches = list(datasets.calibration_set(x, count=10))
    assert len(batches) == 10 and batches[0][0].shape == (1, 4, 4, 1)
    with pytest.raises(ValueError, match="`count`"):
        list(datasets.calibration_set(x, count=0))


def test_augmented_batches_shift_rotate_and_zoom(rng):
    x = np.zeros((8, 28, 28, 1), "float32")
    x[:, 10:18, 10:18] = 1.0
    y = np.arange(8)
    plain = next(iter(datasets.shifted_batches(x, y, batch_size=8, pixels=0)))
    assert sorted(plain[1].numpy().tolist()) == y.tolist()
    np.testing.assert_array_equal(plain[0].numpy(), x)  # every image is the same square
    images, labels = next(iter(datasets.shifted_batches(x, y, batch_size=8, pixels=2,
                                                        rotation=15, zoom=0.1, seed=3)))
    assert images.shape == x.shape and sorted(labels.numpy().tolist()) == y.tolist()
    moved = images.numpy()
    assert not np.allclose(moved, x) and 0.6 < moved.sum() / x.sum() < 1.4  # distorted, not lost
    assert len({m.tobytes() for m in moved}) > 1  # each image gets its own distortion


@pytest.mark.parametrize("kwargs, message", [
    (dict(rotation=-1), "`rotation` must be a number >= 0 and < 180. Received: rotation=-1"),
    (dict(zoom=1.0), "`zoom` must be a number >= 0 and < 1"),
    (dict(pixels="2"), "`pixels` must be a number >= 0"),
])
def test_augmented_batches_bad_arguments(kwargs, message):
    x = np.zeros((4, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match=message):
        datasets.shifted_batches(x, np.arange(4), **kwargs)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_resolve_shipped_roles_match_load():
    (x_tr, y_tr), (x_te, y_te) = datasets.load("digits")
    x, y = datasets.resolve("digits", "train")
    np.testing.assert_array_equal(x, x_tr)
    for role in ("validation", "test"):
        np.testing.assert_array_equal(datasets.resolve("digits", role)[1], y_te)
    np.testing.assert_array_equal(datasets.resolve("digits", "calibration")[0], x_tr)
    assert "360 held-out" in datasets.describe("digits", "test")


def test_resolve_plain_npz_is_a_stated_stratified_seeded_split(tmp_path, rng):
    x = rng.integers(0, 256, (100, 6, 6)).astype("uint8")
    y = np.repeat(np.arange(4), 25)
    spec = _npz(tmp_path / "d.npz", x=x, y=y)
    x_tr, y_tr = datasets.resolve(spec, "train")
    x_va, y_va = datasets.resolve(spec, "validation", input_shape=(6, 6, 1))
    assert len(x_tr) == 80 and x_va.shape == (20, 6, 6, 1) and x_tr.max() <= 1
    assert np.bincount(y_va).tolist() == [5] * 4  # stratified
    assert not {a.tobytes() for a in x_tr} & {a.tobytes() for a in x_va[..., 0]}  # disjoint
    np.testing.assert_array_equal(datasets.resolve(spec, "test")[0], x_va[..., 0])
    np.testing.assert_array_equal(datasets.resolve(spec, "calibration")[0], x_tr)
    assert "20 of 100 samples (20%) held out, stratified seeded split" in datasets.describe(spec)


def test_resolve_npz_named_parts(tmp_path, rng):
    x_tr, x_va, x_te = (rng.random((n, 4)).astype("float32") for n in (12, 5, 7))
    spec = _npz(tmp_path / "d.npz", x_train=x_tr, y_train=np.arange(12) % 3, x_val=x_va,
                y_val=np.arange(5) % 3, x_test=x_te, y_test=np.eye(3)[np.arange(7) % 3])
    np.testing.assert_array_equal(datasets.resolve(spec, "train")[0], x_tr)  # no split
    np.testing.assert_array_equal(datasets.resolve(spec, "validation")[0], x_va)
    x, y = datasets.resolve(spec, "test")
    np.testing.assert_array_equal(x, x_te)
    assert y.tolist() == [0, 1, 2, 0, 1, 2, 0]  # one-hot -> class indices
    # x_test alone serves validation and test whole; it has no training data
    only_test = _npz(tmp_path / "t.npz", x_test=x_te, y_test=np.arange(7))
    np.testing.assert_array_equal(datasets.resolve(only_test, "validation")[0], x_te)
    with pytest.raises(ValueError, match=r"`--verify` holds no calibration data: the training set \(t.npz has no x_train"):
        datasets.resolve(only_test, "calibration", "--verify")


def test_resolve_unlabeled_and_regression_targets(tmp_path, rng):
    x = rng.random((30, 640)).astype("float32")
    spec = _npz(tmp_path / "ae.npz", x_train=x)
    x_tr, y_tr = datasets.resolve(spec, "train")
    assert y_tr is None and len(x_tr) == 24 and "unlabeled" in datasets.describe(spec, "train")
    targets = rng.random(30).astype("float32")
    _, y = datasets.resolve(_npz(tmp_path / "r.npz", x=x, y=targets), "validation")
    assert y.dtype == np.float32 and set(y.tolist()) <= set(targets.tolist())


def test_resolve_idx_pair_and_image_folder(tmp_path, rng):
    from PIL import Image

    _write_idx(tmp_path / "i", rng.integers(0, 256, (20, 5, 4)).astype("uint8"))
    _write_idx(tmp_path / "l", np.arange(20).astype("uint8") % 2)
    for spec in (f"{tmp_path}/i,{tmp_path}/l", [str(tmp_path / "i"), str(tmp_path / "l")]):
        x, y = datasets.resolve(spec, "train")
        assert x.shape == (16, 5, 4, 1) and np.bincount(y).tolist() == [8, 8]
    folder = tmp_path / "images"
    for cls in ("cat", "dog"):
        (folder / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("L", (6, 4), color=i * 40).save(folder / cls / f"{i}.png")
    x, y = datasets.resolve(str(folder), "validation")
    assert x.shape == (2, 4, 6, 3) and sorted(y.tolist()) == [0, 1]


@pytest.mark.parametrize("spec, role, kwargs, error, message", [
    ("cifar", "train", {}, FileNotFoundError, "`--data` must be one of .*Received: 'cifar'"),
    ("digits", "dev", {}, ValueError, "`role` must be one of"),
    ("digits", "train", {"input_shape": (28, 28, 1)}, ValueError,
     r"`--data` inputs must have shape \(28, 28, 1\) to fit the model. Received: \(8, 8, 1\)"),
    ("{p}/few.npz", "train", {}, ValueError, "at least 10 samples"),
    ("{p}/both.npz", "train", {}, ValueError, "either x/y or x_train/y_train"),
    ("{p}/labels_only.npz", "train", {}, ValueError, "holds 'y_val' without 'x_val'"),
    ("{p}/a,{p}/b,{p}/c", "train", {}, ValueError, "two IDX paths"),
])
def test_resolve_errors(tmp_path, spec, role, kwargs, error, message):
    x = np.zeros((5, 3), "float32")
    _npz(tmp_path / "few.npz", x=x, y=np.arange(5))
    _npz(tmp_path / "both.npz", x=x, x_train=x)
    _npz(tmp_path / "labels_only.npz", x=x, y_val=np.arange(5))
    for name in "abc":
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(error, match=message):
        datasets.resolve(spec.format(p=tmp_path), role, **kwargs)


def test_resolved_arrays_are_shared_read_only(tmp_path, rng):
    spec = _npz(tmp_path / "d.npz", x=rng.random((20, 3)), y=np.arange(20) % 2)
    x, y = datasets.resolve(spec, "train")
    assert datasets.resolve(spec, "train")[0] is x  # cached while the file is unchanged
    with pytest.raises(ValueError, match="read-only"):
        x[0] = 1.0
    np.savez(tmp_path / "d.npz", x=rng.random((30, 3)), y=np.arange(30) % 2)
    assert len(datasets.resolve(spec, "train")[0]) == 24  # a changed file is read again
