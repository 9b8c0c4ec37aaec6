"""Results back in Keras 3: write a plain-layer tf_keras model as a Keras 3 ``.keras`` file.

For users who go on training in Keras 3 after compressing here: a low-rank factorized model,
filter-pruned model, stripped pruning or clustering result, or decoded PQ model holds only
built-in layers, which Keras 3 has too. The file is written without importing Keras 3, in the
format :mod:`edgecompress.keras3` reads (``keras/src/saving/saving_lib.py``): ``config.json`` in
Keras 3's serialization (``DTypePolicy`` dtypes, ``batch_shape`` inputs, node lists that
``keras/src/models/functional.py`` ``deserialize_node`` takes), ``metadata.json`` and
``model.weights.h5`` with one group per layer, named by class with ``_N`` suffixes per container.

Layers with no Keras 3 equivalent (tfmot wrappers, larq's quantized layers, our own layers) are
refused with that reason. Keras and tfmot offer no Keras 2 to Keras 3 writer; this is it.
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from edgecompress import keras3
from edgecompress._io import atomic_path
from edgecompress._keras import check_graph_model, keras

# tf_keras options that Keras 3's layer does not take, with the value they must have to be
# dropped (_ANY: they don't change the outputs).
_ANY = object()
_KERAS3_LACKS = {
    "BatchNormalization": {"fused": _ANY, "virtual_batch_size": None, "adjustment": None},
    "DepthwiseConv2D": {"groups": 1},
    "Conv2DTranspose": {"groups": 1},
    "SeparableConv2D": {"groups": 1, "kernel_initializer": _ANY, "kernel_regularizer": None,
                        "kernel_constraint": None},
    "SpatialDropout2D": {"trainable": _ANY, "noise_shape": None},
}
_RENAMED_BACK = {cls: {new: old for old, new in renames.items()}
                    for cls, renames in keras3.RENAMED_OPTIONS.items()}
_ACTIVATIONS_BACK = {ours: name for name, ours in keras3.TRANSLATED_ACTIVATIONS.items()
                     if name != "hard_swish"}
_DTYPE = {"module": "keras", "class_name": "DTypePolicy", "registered_name": None}
KERAS3_VERSION = "3.0.0"  # written when Keras 3 is not installed


def save_keras3(model, path, overwrite: bool = False) -> Path:
    """Write ``model`` (tf_keras, built-in layers only) as a Keras 3 ``.keras`` file.

    Args:
        model: a Sequential or Functional tf_keras model (nested models allowed) whose layers are
            all in :data:`edgecompress.keras3.SUPPORTED_LAYERS`.
        path: the ``.keras`` file to write (atomically).
        overwrite: replace an existing file.

    Returns:
        The written path.

    Raises:
        ValueError: a layer with no Keras 3 equivalent (named, with its class and the reason),
            or a bad path.

    Example:
        >>> small = edgecompress.lowrank.factorize(model, energy=0.9)
        >>> save_keras3(small, "small_k3.keras")   # then keras.saving.load_model in Keras 3
    """
    check_graph_model(model, "model")
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"`path` must end in .keras. Received: path={path}")
    config = _model_entry(model)
    config.update(build_config={"input_shape": None}, compile_config=None)
    weights = io.BytesIO()
    _write_weights(model, weights)
    meta = {"keras_version": _keras3_version(),
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    with atomic_path(path, overwrite) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr("metadata.json", json.dumps(meta))
        archive.writestr("config.json", json.dumps(config, default=_json_default))
        archive.writestr("model.weights.h5", weights.getvalue(), compress_type=zipfile.ZIP_STORED)
    return path


def _model_entry(model) -> dict:
    sequential = isinstance(model, keras.Sequential)
    config = model.get_config()
    # tf_keras counts a nested graph model's own creation as its node 0; Keras 3 does not.
    shift = {layer.name: 1 for layer in model.layers if _has_creation_node(layer)}
    layers = []
    for entry in config["layers"]:
        name = entry["config"]["name"] if sequential else entry["name"]
        if entry["class_name"] == "InputLayer":
            layers.append(_input_entry(entry))
            continue
        layer = model.get_layer(name)
        new = _model_entry(layer) if isinstance(layer, keras.Model) else _layer_entry(layer)
        if not sequential:
            new["name"] = name
            new["inbound_nodes"] = [_node(node, shift) for node in entry.get("inbound_nodes", [])]
        layers.append(new)
    inner = {"name": model.name, "trainable": model.trainable, "layers": layers}
    if sequential:
        return {"module": "keras", "class_name": "Sequential", "config": inner,
                "registered_name": None}
    for key in ("input_layers", "output_layers"):
        specs = [_node([spec], shift)[0][:3] for spec in config[key]]
        inner[key] = specs[0] if len(specs) == 1 else specs  # a single tensor, as Keras 3 writes
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": inner,
            "registered_name": "Functional"}


def _input_entry(entry: dict) -> dict:
    config = dict(entry["config"])
    config["batch_shape"] = config.pop("batch_input_shape")
    config = {k: v for k, v in config.items() if k in ("batch_shape", "dtype", "sparse", "name")}
    out = {"module": "keras.layers", "class_name": "InputLayer", "config": config,
           "registered_name": None}
    if "name" in entry:
        out.update(name=entry["name"], inbound_nodes=[])
    return out


def _layer_entry(layer) -> dict:
    class_name = type(layer).__name__
    if class_name not in keras3.SUPPORTED_LAYERS or type(layer) is not getattr(
            keras.layers, class_name, None):
        raise ValueError(
            f"`model` has layer {layer.name!r} of class {type(layer).__module__}.{class_name}, "
            f"which has no Keras 3 equivalent ({_reason(layer)}). Keras 3 files take the "
            f"built-in layers {', '.join(keras3.SUPPORTED_LAYERS)}")
    config = {}
    renames = _RENAMED_BACK.get(class_name, {})
    lacks = {"batch_input_shape": _ANY, **_KERAS3_LACKS.get(class_name, {})}
    for key, value in layer.get_config().items():
        if key in lacks:
            if lacks[key] is not _ANY and value != lacks[key]:
                raise ValueError(f"`model` has layer {layer.name!r} ({class_name}) with "
                                 f"{key}={value!r}, which Keras 3's {class_name} does not take")
            continue
        if key == "activation":
            value = _activation(value, layer)
        elif key == "axis" and class_name == "BatchNormalization" and isinstance(value, list):
            if len(value) != 1:
                raise ValueError(f"`model` has layer {layer.name!r} (BatchNormalization) over "
                                 f"axes {value}; Keras 3's BatchNormalization takes one axis")
            value = value[0]
        elif key == "dtype":
            value = {**_DTYPE, "config": {"name": _dtype_name(value)}}
        else:
            value = _object(value)
        config[renames.get(key, key)] = value
    return {"module": "keras.layers", "class_name": class_name, "config": config,
            "registered_name": None}


def _reason(layer) -> str:
    module = type(layer).__module__
    if isinstance(layer, keras.layers.Wrapper):
        return ("a tfmot wrapper; strip it first (edgecompress.pruning.strip, "
                "edgecompress.quantization.strip); QAT models have no plain-layer form")
    if module.startswith("larq"):
        return "a larq quantized layer, which Keras 3 lacks"
    return "not a tf_keras built-in layer"


def _activation(value, layer):
    name = value if isinstance(value, str) else (
        value.get("config") if isinstance(value, dict) else None)
    if name in _ACTIVATIONS_BACK:
        return _ACTIVATIONS_BACK[name]
    if name in keras3.SAME_ACTIVATIONS:
        return name
    raise ValueError(
        f"`model` has layer {layer.name!r} ({type(layer).__name__}) with activation {value!r}, "
        "which Keras 3 computes differently or lacks (tf_keras's hard_sigmoid is clip(0.2x+0.5), "
        f"Keras 3's relu6(x+3)/6). Keras 3 files take: {', '.join(keras3.SUPPORTED_ACTIVATIONS)}")


def _dtype_name(value) -> str:
    return value["config"]["name"] if isinstance(value, dict) else str(value)


def _object(value):
    """Initializers, regularizers and constraints in Keras 3's full serialized form."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        module = value.get("module") or "keras.initializers"
        return {"module": module, "class_name": value["class_name"],
                "config": {k: _object(v) for k, v in value["config"].items()},
                "registered_name": None}
    return value


def _node(node, shift: dict):
    # tf_keras's node list [[layer, node_index, tensor_index, kwargs], ...], which Keras 3 reads.
    return [[name, index - shift.get(name, 0), tensor, rest[0] if rest else {}]
            for name, index, tensor, *rest in node]


def _has_creation_node(layer) -> bool:
    # tf_keras's functional._should_skip_first_node.
    if not (isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False)):
        return False
    first = layer._self_tracked_trackables[:1]
    return not first or isinstance(first[0], keras.layers.InputLayer)


def _write_weights(model, stream) -> None:
    import h5py

    with h5py.File(stream, "w") as h5:
        h5.create_group("vars").attrs["name"] = model.name
        _write_container(model, h5)


def _write_container(model, group) -> None:
    layers = group.create_group("layers")
    used = {}
    for layer in model.layers:
        name = keras3.unique_name(keras3.snake_case(type(layer).__name__), used)
        child = layers.create_group(name)
        variables = child.create_group("vars")
        variables.attrs["name"] = layer.name
        if isinstance(layer, keras.Model):
            _write_container(layer, child)
            continue
        for i, weight in enumerate(layer.weights):
            variables.create_dataset(str(i), data=np.asarray(weight.numpy()))


def _keras3_version() -> str:
    from importlib import metadata

    try:
        version = metadata.version("keras")
    except metadata.PackageNotFoundError:
        return KERAS3_VERSION
    return version if keras3.is_keras3_version(version) else KERAS3_VERSION


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to config.json")

