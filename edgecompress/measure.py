"""The yardstick: parameters, non-zeros, unique values, bytes, MACs and accuracy.

``measure(model_or_tflite_path, data=None)`` works on a tf_keras model or on a ``.tflite`` file,
so a compressed model and its exported artifact are measured the same way.
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
import types
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgecompress._keras import keras
from edgecompress.datasets import class_labels
from edgecompress.surgery.graph import iter_layers
from edgecompress.surgery.select import unwrap

KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings")
# Variables of tfmot wrappers (QAT ranges, pruning masks, cluster codebooks) that are not
# model parameters: the wrapped kernel is counted instead.
_WRAPPER_STATE = ("_min", "_max", "optimizer_step", "mask", "threshold", "pruning_step",
                  "pulling_indices", "cluster_centroids", "ori_weights")


@dataclass
class Measurement(Mapping):
    """What :func:`measure` returns. Reads as attributes (``m.macs``) or as a mapping (``m["macs"]``).

    Attributes:
        params: number of weight values (model parameters, without optimizer or wrapper state).
        nonzero_params: how many of them are non-zero.
        unique_values: per layer, the number of distinct values in its kernel(s).
        float32_bytes: ``4 * params``, the size of the weights as float32.
        file_bytes: size of the serialized model: the file for ``.tflite``; for Keras the ``.h5``
            file (the tfmot tutorials' yardstick), only with ``file_sizes=True``, else None.
        gzip_bytes: size of that file after gzip -9 (None when ``file_bytes`` is).
        macs: multiply-accumulates of one inference (Conv2D, DepthwiseConv2D, Dense and their
            quantized/binary subclasses).
        accuracy: top-1 accuracy on ``data``, or None.
    """

    params: int
    nonzero_params: int
    unique_values: dict = field(default_factory=dict)
    float32_bytes: int = 0
    file_bytes: int | None = None
    gzip_bytes: int | None = None
    macs: int = 0
    accuracy: float | None = None

    def __getitem__(self, key):
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self.__dataclass_fields__)

    def __len__(self):
        return len(self.__dataclass_fields__)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero_params / self.params if self.params else 0.0


def measure(model_or_path, data=None, batch_size: int = 256, file_sizes: bool = False
            ) -> Measurement:
    """Measure a tf_keras model or a ``.tflite`` file.

    Args:
        model_or_path: a tf_keras model, or a path to a ``.tflite`` file.
        data: optional ``(x, y)`` with class labels (indices of shape (n,) or (n, 1), or one-hot),
            to report top-1 accuracy.
        batch_size: batch size for the Keras accuracy pass.
        file_sizes: for a Keras model, also save it as ``.h5`` in a temporary folder to fill
            ``file_bytes`` and ``gzip_bytes`` (a ``.tflite`` file always has them).

    Returns:
        A :class:`Measurement`.

    Raises:
        TypeError: for anything that is neither a tf_keras model nor a path.
        FileNotFoundError: for a missing file.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        return _measure_tflite(Path(model_or_path), data)
    if not isinstance(model_or_path, keras.Model):
        raise TypeError(
            "`model_or_path` must be a tf_keras model or a .tflite path. "
            f"Received: {type(model_or_path).__name__}"
        )
    model = model_or_path
    params = nonzero = 0
    unique: dict[str, int] = {}
    for layer in iter_layers(model):
        weights = [w for w in layer.weights if not any(t in _short(w) for t in _WRAPPER_STATE)]
        for weight in weights:
            values = weight.numpy()
            params += values.size
            nonzero += int(np.count_nonzero(values))
        kernels = [w.numpy() for w in weights if _short(w) in KERNEL_NAMES]
        if kernels:
            unique[layer.name] = int(np.unique(np.concatenate([k.ravel() for k in kernels])).size)
    file_bytes, gzip_bytes = _serialized_sizes(model) if file_sizes else (None, None)
    return Measurement(
        params=int(params),
        nonzero_params=int(nonzero),
        unique_values=unique,
        float32_bytes=int(params) * 4,
        file_bytes=file_bytes,
        gzip_bytes=gzip_bytes,
        macs=keras_macs(model),
        accuracy=None if data is None else keras_accuracy(model, data, batch_size),
    )


def keras_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one inference of ``model`` (batch 1)."""
    total = 0
    for layer in iter_layers(model):
        core = unwrap(layer)
        for input_shape, output_shape in node_shapes(layer):
            total += layer_macs(core, input_shape, output_shape)
    return int(total)


def layer_macs(layer, input_shape, output_shape) -> int:
    """MACs of one call of ``layer`` given its input and output shapes (batch axis included)."""
    out = [d for d in output_shape[1:]]
    if any(d is None for d in out):
        return 0
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return int(np.prod(out) * kh * kw)
    if isinstance(layer, keras.layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        in_c = input_shape[-1]
        depth = in_c * layer.depth_multiplier
        spatial = int(np.prod(out[:-1]))
        return int(spatial * depth * kh * kw + spatial * depth * layer.filters)
    if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose):
        kh, kw = layer.kernel_size
        in_c = input_shape[-1] // max(getattr(layer, "groups", 1), 1)
        return int(np.prod(out) * kh * kw * in_c)
    if isinstance(layer, keras.layers.Dense):
        return int(np.prod(out) * input_shape[-1])
    return 0


def keras_accuracy(model, data, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` with class labels (see
    :func:`edgecompress.datasets.class_labels`)."""
    x, y = data
    y = class_labels(y, "data")
    pred = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.asarray(pred).argmax(axis=-1) == y))


def gzip_size(path_or_bytes) -> int:
    """Bytes after gzip -9 (deterministic: no name or time in the header)."""
    raw = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return len(gzip.compress(raw, compresslevel=9, mtime=0))


def _serialized_sizes(model) -> tuple[int | None, int | None]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.h5"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "h5 is legacy": it is the tfmot tutorial's yardstick
                model.save(path, include_optimizer=False, save_format="h5")
        except Exception:  # noqa: BLE001 - some custom layers cannot go to h5
            return None, None
        return path.stat().st_size, gzip_size(path)




def _short(weight) -> str:
    return weight.name.split("/")[-1].split(":")[0]


def node_shapes(layer):
    """(input shape, output shape) of each call of ``layer`` (batch axis included)."""
    shapes = []
    for node in layer._inbound_nodes:
        try:
            in_shapes = [t.shape.as_list() for t in node.keras_inputs]
            out_shapes = [t.shape.as_list() for t in _flat(node.outputs)]
        except AttributeError:
            continue
        if in_shapes and out_shapes:
            shapes.append((in_shapes[0], out_shapes[0]))
    return shapes


def _flat(x):
    return x if isinstance(x, (list, tuple)) else [x]


def _measure_tflite(path: Path, data) -> Measurement:
    if not path.is_file():
        raise FileNotFoundError(f"`model_or_path` must be an existing .tflite file. Received: {path}")
    from tflite_export import runtime

    info = runtime.inspect(path)
    params = nonzero = 0
    unique = {}
    for name, values in info.constants.items():
        params += values.size
        nonzero += int(np.count_nonzero(values))
        unique[name] = int(np.unique(values).size)
    accuracy = None
    if data is not None:
        x, y = data
        y = class_labels(y, "data")
        pred = runtime.Runner(path).predict(x)
        accuracy = float(np.mean(np.asarray(pred).argmax(axis=-1) == y))
    size = path.stat().st_size
    return Measurement(
        params=int(params),
        nonzero_params=int(nonzero),
        unique_values=unique,
        float32_bytes=int(params) * 4,
        file_bytes=size,
        gzip_bytes=gzip_size(path),
        macs=info.macs,
        accuracy=accuracy,
    )


class _CallableModule(types.ModuleType):
    """``from edgecompress import measure`` gives this module or the function, depending on what
    was imported first; both call :func:`measure`."""

    def __call__(self, *args, **kwargs):
        return measure(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
