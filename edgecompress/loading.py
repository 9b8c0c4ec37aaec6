"""Safe loading of a user's model file: ``.keras``, ``.h5`` or a SavedModel folder.

Loading never runs code from the file unless the caller says ``unsafe=True``: a Lambda layer (whose
Python code is stored in the file) is refused with a message that says why. Files saved by Keras 3
are translated into an equivalent tf_keras model (:mod:`edgecompress.keras3`); the result says so
(:func:`translated_from`).

Loading uses only what is registered with tf_keras (plus ``custom_objects``) and imports no
compression family, so ``tflite_export`` can use it alone. The ``edgecompress`` side first calls
:func:`edgecompress.registration.register_edgecompress_objects` to make our, larq's and tfmot's
classes known.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from edgecompress import keras3
from edgecompress._errors import UsageError
from edgecompress._keras import keras


class ModelFileError(UsageError):
    """A model file that cannot be loaded safely; the message names the argument and the file."""


def load_model(path, argument: str = "model", unsafe: bool = False,
               custom_objects: dict | None = None) -> keras.Model:
    """Load a tf_keras model from ``path`` without running code stored in the file.

    Args:
        path: a ``.keras`` file, an ``.h5`` file or a SavedModel folder, saved by tf_keras or
            by Keras 3 (translated, see :func:`edgecompress.keras3.load_keras3`).
        argument: the argument name used in error messages.
        unsafe: allow Lambda layers (runs Python code stored in the file).
        custom_objects: classes to use beside the registered ones, by name.

    Raises:
        ModelFileError: for a missing, empty, corrupt or unsafe file, or a Keras 3 file that
            cannot be translated.
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
        config, version = _savedmodel_config(path), None
    elif path.suffix == ".keras":
        config, version = _keras_zip_config(path, argument)
    elif path.suffix in (".h5", ".hdf5"):
        config, version = _h5_config(path, argument)
    else:
        raise ModelFileError(f"`{argument}` must end in .keras or .h5, or be a SavedModel folder. "
                             f"Received: {path}")
    if config is not None and not unsafe and _has_lambda(config):
        raise ModelFileError(
            f"`{argument}` holds a Lambda layer, whose Python code would run on load; refusing. "
            f"Rebuild it without Lambda, or pass --unsafe if you trust the file. Received: {path}"
        )
    if keras3.is_keras3_version(version):
        try:
            return keras3.load_keras3(path, argument, unsafe, custom_objects)
        except keras3.TranslationError as err:
            raise ModelFileError(str(err)) from None
        except Exception as err:  # noqa: BLE001 - any translation failure becomes one clear line
            raise ModelFileError(f"`{argument}` was saved by Keras {version} and could not be "
                                 f"translated ({keras3.first_line(err)}). Received: {path}") from None
    try:
        with keras.utils.custom_object_scope(custom_objects or {}):
            if path.suffix == ".keras":
                model = keras.models.load_model(path, compile=False, safe_mode=not unsafe)
            else:
                model = keras.models.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - any loader failure becomes one clear line
        unknown = _unregistered_layer(config, custom_objects or {})
        if unknown:
            raise ModelFileError(
                f"`{argument}` holds layer {unknown[0]!r} of class {unknown[1]}, which is not "
                "registered with tf_keras. Pass custom_objects={...}, or for edgecompress, larq "
                "and tfmot layers call edgecompress.registration.register_edgecompress_objects() "
                f"first (the edgecompress command does). Received: {path}") from None
        raise ModelFileError(f"`{argument}` could not be loaded ({keras3.first_line(err)}). "
                             f"Received: {path}") from None
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
    return config, meta.get("keras_version")


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
    return json.loads(raw if isinstance(raw, str) else raw.decode()), version


def _savedmodel_config(path: Path):
    meta = path / "keras_metadata.pb"
    return meta.read_bytes().decode("latin-1") if meta.exists() else None


def _unregistered_layer(config, custom_objects: dict):
    """``(name, class)`` of the first layer in ``config`` that tf_keras cannot resolve, if any."""
    if not isinstance(config, dict):
        return None
    for entry in (config.get("config") or {}).get("layers", []):
        class_name = entry.get("class_name", "")
        registered = entry.get("registered_name") or class_name
        known = (registered in custom_objects or class_name in custom_objects
                 or keras.saving.get_registered_object(registered) is not None
                 or hasattr(keras.layers, class_name) or class_name in ("Functional", "Model"))
        if not known:
            return (entry.get("config", {}).get("name"), registered)
        found = _unregistered_layer(entry, custom_objects)
        if found:
            return found
    return None


def _has_lambda(config) -> bool:
    if isinstance(config, str):
        return re.search(r'"class_name":\s*"Lambda"', config) is not None
    if isinstance(config, dict):
        return config.get("class_name") == "Lambda" or any(map(_has_lambda, config.values()))
    if isinstance(config, list):
        return any(map(_has_lambda, config))
    return False


def translated_from(model) -> str | None:
    """``"Keras <version>"`` if ``model`` was translated from a Keras 3 file, else None."""
    return getattr(model, "_edgecompress_translated_from", None)
