"""Safe loading of a user's model file: ``.keras``, ``.h5`` or a SavedModel folder.

Loading never runs code from the file unless the caller says ``unsafe=True``: a Lambda layer (whose
Python code is stored in the file) is refused with a message that says why, and Keras 3 files are
named as such.
"""

from __future__ import annotations

import contextlib
import json
import re
import zipfile
from pathlib import Path

from edgecompress._keras import keras


class ModelFileError(ValueError):
    """A model file that cannot be loaded safely; the message names the argument and the file."""


@contextlib.contextmanager
def custom_object_scope():
    """Make the classes of files written by edgecompress, larq or tfmot loadable."""
    import importlib

    import larq  # noqa: F401 - registers its layers and quantizers
    import tensorflow_model_optimization as tfmot

    # Our registered layers, quantizers and losses live in these packages.
    for package in ("binary", "distillation", "models", "pruning", "quantization"):
        importlib.import_module(f"edgecompress.{package}")

    with contextlib.ExitStack() as stack:
        for scope in (tfmot.sparsity.keras.prune_scope, tfmot.clustering.keras.cluster_scope,
                      tfmot.quantization.keras.quantize_scope):
            stack.enter_context(scope())
        yield


def load_model(path, argument: str = "model", unsafe: bool = False) -> keras.Model:
    """Load a tf_keras model from ``path`` without running code stored in the file.

    Args:
        path: a ``.keras`` file, an ``.h5`` file or a SavedModel folder.
        argument: the argument name used in error messages.
        unsafe: allow Lambda layers (runs Python code stored in the file).

    Raises:
        ModelFileError: for a missing, empty, corrupt, Keras 3 or unsafe file.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"`{argument}` must be an existing .keras, .h5 or SavedModel path. "
                             f"Received: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise ModelFileError(f"`{argument}` is an empty file. Received: {path}")
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ModelFileError(f"`{argument}` is a folder without saved_model.pb. Received: {path}")
        config = _savedmodel_config(path)
    elif path.suffix == ".keras":
        config = _keras_zip_config(path, argument)
    elif path.suffix in (".h5", ".hdf5"):
        config = _h5_config(path, argument)
    else:
        raise ModelFileError(f"`{argument}` must end in .keras or .h5, or be a SavedModel folder. "
                             f"Received: {path}")
    if config is not None and not unsafe and _has_lambda(config):
        raise ModelFileError(
            f"`{argument}` holds a Lambda layer, whose Python code would run on load; refusing. "
            f"Rebuild it without Lambda, or pass --unsafe if you trust the file. Received: {path}"
        )
    try:
        with custom_object_scope():
            if path.suffix == ".keras":
                model = keras.models.load_model(path, compile=False, safe_mode=not unsafe)
            else:
                model = keras.models.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - any loader failure becomes one clear line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ModelFileError(f"`{argument}` could not be loaded ({first}). Received: {path}") from None
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"`{argument}` does not hold a Keras model. Received: {path}")
    return model


def _keras_zip_config(path: Path, argument: str):
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            meta = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
            config = json.loads(archive.read("config.json")) if "config.json" in names else None
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError, KeyError):
        raise ModelFileError(f"`{argument}` is not a valid .keras file (corrupt zip). "
                             f"Received: {path}") from None
    if config is None:
        raise ModelFileError(f"`{argument}` is not a valid .keras file (no config.json). "
                             f"Received: {path}")
    if str(meta.get("keras_version", "")).startswith("3"):
        raise ModelFileError(
            f"`{argument}` was saved by Keras 3 ({meta.get('keras_version')}); edgecompress needs "
            f"a tf_keras (Keras 2) model. Rebuild it with `import tf_keras as keras` and load the "
            f"weights. Received: {path}"
        )
    return config


def _h5_config(path: Path, argument: str):
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get("model_config")
            version = str(h5.attrs.get("keras_version", ""))
    except OSError:
        raise ModelFileError(f"`{argument}` is not a valid HDF5 file. Received: {path}") from None
    if raw is None:
        raise ModelFileError(f"`{argument}` holds weights only, not a model (no model_config). "
                             f"Received: {path}")
    if version.startswith("3"):
        raise ModelFileError(f"`{argument}` was saved by Keras 3 ({version}); edgecompress needs a "
                             f"tf_keras (Keras 2) model. Received: {path}")
    return json.loads(raw if isinstance(raw, str) else raw.decode())


def _savedmodel_config(path: Path):
    meta = path / "keras_metadata.pb"
    return meta.read_bytes().decode("latin-1") if meta.exists() else None


def _has_lambda(config) -> bool:
    if isinstance(config, str):
        return re.search(r'"class_name":\s*"Lambda"', config) is not None
    if isinstance(config, dict):
        return config.get("class_name") == "Lambda" or any(map(_has_lambda, config.values()))
    if isinstance(config, list):
        return any(map(_has_lambda, config))
    return False
