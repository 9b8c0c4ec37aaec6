"""Read a ``.tflite`` flatbuffer without running it: op types, tensors, constants, MACs, output names.

Beyond LiteRT's interpreter API, :func:`inspect` reads every constant dequantized (sparse tensors
densified, LCE bit-packed filters unpacked) and names each graph output by its signature name, so
outputs can be matched to a Keras model's by name and not by position.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Op types whose MACs we count (by their names in the file).
CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "LceBconv2d")


@dataclass
class ModelInfo:
    """What :func:`inspect` reads from a ``.tflite`` file.

    Attributes:
        ops: the op type of every operator, in execution order (builtin names such as
            ``"CONV_2D"``; custom ops by their custom code, e.g. ``"LceBconv2d"``).
        constants: name -> values of every constant tensor that holds parameters (weights,
            biases, folded scales). Values are **dequantized** to float32 where the tensor carries
            a scale (int8/int16 weights, int32 biases), float16 is widened to float32, sparse
            tensors are densified, and LCE bit-packed binary filters are unpacked to +-1 (one
            value per weight). Integer constants without a scale (shapes, axes, indices) are not
            parameters and are left out.
        macs: multiply-accumulates of one inference (batch 1) of CONV_2D, DEPTHWISE_CONV_2D,
            FULLY_CONNECTED and LCE's LceBconv2d.
        tensor_types: name -> type name ("FLOAT32", "INT8", ...) of every tensor.
        op_details: per operator, a dict with ``op``, ``inputs`` and ``outputs`` (tensor indices).
        tensors: per tensor, a dict with ``name``, ``type``, ``shape``, ``bytes``, ``constant`` and
            ``scales`` (how many quantization scales: 0 unquantized, 1 per tensor, more per channel).
        inputs: tensor indices of the graph inputs.
        outputs: tensor indices of the graph outputs.
        output_names: per graph output (in ``outputs`` order), its name in the file's first
            signature (the Keras output name for converted Keras models), else its tensor name.
        input_names: the same for the graph inputs.
    """

    ops: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)
    macs: int = 0
    tensor_types: dict = field(default_factory=dict)
    op_details: list = field(default_factory=list)
    tensors: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    output_names: list = field(default_factory=list)
    input_names: list = field(default_factory=list)

    @property
    def op_types(self) -> list:
        """The distinct op types, sorted."""
        return sorted(set(self.ops))

    @property
    def is_lce(self) -> bool:
        return any(op.startswith("Lce") for op in self.ops)


def read_bytes(path_or_bytes, argument: str = "path") -> bytes:
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        path = Path(path_or_bytes)
        if not path.is_file():
            raise FileNotFoundError(f"`{argument}` must be an existing .tflite file. Received: {path}")
        data = path.read_bytes()
    else:
        raise TypeError(
            f"`{argument}` must be a .tflite path or bytes. Received: {type(path_or_bytes).__name__}"
        )
    # A flatbuffer has a 4-byte root offset, then the file identifier "TFL3".
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"`{argument}` is not a TFLite flatbuffer (no TFL3 identifier).")
    return data


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _enum_names(cls) -> dict:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _op_name(opcode, builtin_names) -> str:
    code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
    name = builtin_names.get(code, f"OP_{code}")
    if name == "CUSTOM":
        custom = opcode.customCode
        return custom.decode() if isinstance(custom, bytes) else str(custom)
    return name


_NP_TYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT32": np.int32,
    "INT64": np.int64, "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_,
    "UINT32": np.uint32, "UINT16": np.uint16,
}


def inspect(path_or_bytes) -> ModelInfo:
    """Read op types, constant tensors and MACs from a ``.tflite`` file (path or bytes).

    Only the first subgraph (the model's main function) is read.

    Raises:
        FileNotFoundError: for a missing path.
        ValueError: for bytes that are not a TFLite flatbuffer.
    """
    data = read_bytes(path_or_bytes)
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    builtin_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    graph = model.subgraphs[0]
    opnames = [_op_name(oc, builtin_names) for oc in model.operatorCodes]

    info = ModelInfo(
        inputs=[int(i) for i in (graph.inputs if graph.inputs is not None else [])],
        outputs=[int(i) for i in (graph.outputs if graph.outputs is not None else [])],
    )
    raw = {}
    for index, tensor in enumerate(graph.tensors):
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        tname = type_names.get(tensor.type, str(tensor.type))
        shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
        values = _buffer_values(model, tensor, tname, shape, data)
        info.tensor_types[name] = tname
        dtype = _NP_TYPES.get(tname)
        count = int(np.prod([max(d, 1) for d in shape]))
        nbytes = count * np.dtype(dtype).itemsize if dtype is not None else 0
        scales = tensor.quantization.scale if tensor.quantization is not None else None
        info.tensors.append(
            {"name": name, "type": tname, "shape": shape, "bytes": nbytes, "constant": values is not None,
             "scales": 0 if scales is None else len(scales)}
        )
        if values is not None:
            raw[index] = values
    for op in graph.operators:
        name = opnames[op.opcodeIndex]
        inputs = [int(i) for i in (op.inputs if op.inputs is not None else [])]
        outputs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        info.ops.append(name)
        info.op_details.append({"op": name, "inputs": inputs, "outputs": outputs})
        options = _custom_options(op) if name.startswith("Lce") else {}
        if name == "LceBconv2d" and len(inputs) > 1 and inputs[1] in raw:
            raw[inputs[1]] = _unpack_bits(raw[inputs[1]], options.get("channels_in"))
        info.macs += _op_macs(name, inputs, outputs, info.tensors, raw, options)
    info.input_names = _signature_names(model, info.inputs, info.tensors, "inputs")
    info.output_names = _signature_names(model, info.outputs, info.tensors, "outputs")
    for index, values in raw.items():
        tensor = graph.tensors[index]
        name = info.tensors[index]["name"]
        if _encoded(values, info.tensors[index]["shape"], tensor.quantization):
            continue  # e.g. TFLM LUT indices, expanded by a DECODE op: not weights as stored
        value = _dequantize_constant(values, tensor.quantization)
        if value.dtype.kind in "iub":  # shapes, axes, indices: not parameters
            continue
        info.constants[name] = value
    return info


def stored_constants(path_or_bytes) -> dict:
    """Tensor index -> values of the first subgraph's dense constants as stored (int8 stays int8)."""
    data = read_bytes(path_or_bytes)
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    type_names = _enum_names(schema.TensorType)
    out = {}
    for index, tensor in enumerate(model.subgraphs[0].tensors):
        tname = type_names.get(tensor.type, str(tensor.type))
        shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
        values = _buffer_values(model, tensor, tname, shape, data)
        if values is not None and tensor.sparsity is None:
            out[index] = values
    return out


def _signature_names(model, indices, tensors, kind) -> list:
    by_index = {}
    for signature in (model.signatureDefs or [])[:1]:
        for entry in getattr(signature, kind) or []:
            name = entry.name.decode() if isinstance(entry.name, bytes) else str(entry.name)
            by_index[int(entry.tensorIndex)] = name
    return [by_index.get(i, tensors[i]["name"]) for i in indices]


def _buffer_values(model, tensor, tname, shape, data):
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    if buffer is None:
        return None
    raw = buffer.data
    if (raw is None or len(raw) == 0) and getattr(buffer, "offset", 0) > 1:
        raw = np.frombuffer(data, np.uint8, count=buffer.size, offset=buffer.offset)
    if raw is None or len(raw) == 0:
        return None
    dtype = _NP_TYPES.get(tname)
    if dtype is None:
        return None
    values = np.frombuffer(np.asarray(raw, dtype=np.uint8).tobytes(), dtype=dtype)
    if tensor.sparsity is not None:
        return _densify(values, shape, tensor.sparsity)
    return values.reshape(shape) if values.size == int(np.prod(shape)) else values


def _densify(values, shape, sparsity):
    """Dense copy of a sparse-encoded constant (TFLite's traversal order + DENSE/CSR dims)."""
    order = [int(d) for d in sparsity.traversalOrder]
    block_map = [int(d) for d in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    rank = len(shape)
    pos = np.zeros(1, dtype=np.int64)
    coords = {}
    for level, meta in enumerate(sparsity.dimMetadata):
        if meta.format == 0:  # DENSE
            size = int(meta.denseSize)
            coords = {d: np.repeat(c, size) for d, c in coords.items()}
            coords[order[level]] = np.tile(np.arange(size), len(pos))
            pos = (pos[:, None] * size + np.arange(size)).ravel()
        else:  # SPARSE_CSR
            segments = np.asarray(_index_vector(meta.arraySegments), dtype=np.int64)
            indices = np.asarray(_index_vector(meta.arrayIndices), dtype=np.int64)
            starts, counts = segments[pos], segments[pos + 1] - segments[pos]
            offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
            pos = offsets + np.arange(int(counts.sum()))
            coords = {d: np.repeat(c, counts) for d, c in coords.items()}
            coords[order[level]] = indices[pos]
    full = [coords[d].copy() for d in range(rank)]
    for i, dim in enumerate(block_map):
        block = sparsity.dimMetadata[order.index(rank + i)].denseSize
        full[dim] = full[dim] * int(block) + coords[rank + i]
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(full)] = values[pos]
    return dense


def _index_vector(vector):
    """The values of a TFLite SparseIndexVector (int32, uint16 or uint8 variant)."""
    return vector.values if vector is not None and vector.values is not None else []


def _encoded(values, shape, quantization) -> bool:
    """Whether a constant's bytes are not its values: a size or per-channel scale that does not fit."""
    if values.ndim == 1 and values.size != int(np.prod(shape or [1])):
        return True
    scale = None if quantization is None else quantization.scale
    if scale is None or len(scale) <= 1:
        return False
    axis = int(quantization.quantizedDimension)
    return values.ndim <= axis or values.shape[axis] != len(scale)


def _dequantize_constant(values, quantization):
    scale = None if quantization is None else quantization.scale
    if scale is None or len(scale) == 0 or values.dtype.kind not in "iu":
        return values.astype(np.float32) if values.dtype == np.float16 else values
    scale = np.asarray(scale, dtype=np.float32)
    zero = np.asarray(
        quantization.zeroPoint if quantization.zeroPoint is not None else [0], dtype=np.float32
    )
    if scale.size > 1 and values.ndim > 0:
        axis = int(quantization.quantizedDimension)
        bshape = [1] * values.ndim
        bshape[axis] = -1
        scale, zero = scale.reshape(bshape), zero.reshape(bshape)
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def _custom_options(op) -> dict:
    raw = op.customOptions
    if raw is None or len(raw) == 0:
        return {}
    try:
        from flatbuffers import flexbuffers

        decoded = flexbuffers.Loads(bytes(bytearray(np.asarray(raw, dtype=np.uint8))))
        return decoded if isinstance(decoded, dict) else {}
    except Exception:  # noqa: BLE001 - options we cannot read only cost us the MAC count
        return {}


def _unpack_bits(packed, channels_in):
    """LCE bit-packed filters (int32 words, 1 bit -> -1, 0 bit -> +1) to +-1 float32 values."""
    if packed.dtype != np.int32 or packed.ndim != 4:
        return packed
    bits = np.unpackbits(packed.astype("<i4").view(np.uint8).reshape(packed.shape + (4,)),
                         axis=-1, bitorder="little")
    bits = bits.reshape(packed.shape[:3] + (-1,))
    if channels_in:
        bits = bits[..., : int(channels_in)]
    return (1.0 - 2.0 * bits).astype(np.float32)


def _op_macs(name, inputs, outputs, tensors, raw, options) -> int:
    if name not in CONV_OPS or len(inputs) < 2 or not outputs:
        return 0
    out_shape = tensors[outputs[0]]["shape"]
    w_shape = tensors[inputs[1]]["shape"]
    if not out_shape or len(w_shape) < 2:
        return 0
    per_sample = int(np.prod(out_shape[1:])) if len(out_shape) > 1 else int(out_shape[0])
    if name == "CONV_2D":  # filter [out_c, kh, kw, in_c]
        return per_sample * int(np.prod(w_shape[1:]))
    if name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, out_c]
        return per_sample * int(w_shape[1] * w_shape[2])
    if name == "FULLY_CONNECTED":  # weights [units, in]
        rows = int(np.prod(out_shape[:-1])) // max(int(out_shape[0]), 1)
        return max(rows, 1) * int(w_shape[0] * w_shape[1])
    # LceBconv2d: filter [out_c, kh, kw, packed in_c]; the output may itself be bit-packed.
    cin = options.get("channels_in") or (raw[inputs[1]].shape[-1] if inputs[1] in raw else 0)
    if len(out_shape) != 4:
        return 0
    return int(out_shape[1] * out_shape[2] * w_shape[0] * w_shape[1] * w_shape[2] * int(cin))
