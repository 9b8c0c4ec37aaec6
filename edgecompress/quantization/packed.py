"""A packed file for weight-shared models: codebooks + entropy-coded indices + sparsity masks.

tfmot's clustering only shrinks a model after zip. This format is what really goes over the wire:
per weight tensor, a float32 codebook (one, or one per output channel), the indices as canonical
Huffman codes or fixed ``ceil(log2 k)``-bit fields (whichever is smaller), and, for sparse tensors,
a bit mask of non-zeros (Huffman-coded by byte) so that only non-zero weights carry an index.
Tensors with too many distinct values are stored as zlib-compressed float32, losslessly. The graph
is the model's JSON config. No pickle anywhere; the file is written atomically.

Layout: ``b"ECPK1"``, a little-endian uint32 header length, the zlib-compressed JSON header, then
the payload the header points into.

References:
    Han et al., "Deep Compression", ICLR 2016 (weight sharing + Huffman coding of indices).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from edgecompress._io import atomic_write
from edgecompress._keras import check_graph_model, keras
from edgecompress.quantization import _entropy
from edgecompress.quantization.clustering import strip

MAGIC = b"ECPK1"
MAX_CODEBOOK = 256
MASK_MIN_ZEROS = 0.2


class _Writer:
    def __init__(self):
        self.chunks: list[bytes] = []
        self.size = 0

    def put(self, data: bytes) -> list[int]:
        self.chunks.append(data)
        self.size += len(data)
        return [self.size - len(data), len(data)]


def _encode_indices(idx: np.ndarray, k: int, out: _Writer) -> dict:
    bits = max(1, int(np.ceil(np.log2(max(k, 2)))))
    fixed = _entropy.pack_fixed(idx, bits)
    table, stream = _entropy.huffman_encode(idx, k)
    if len(table) + len(stream) < len(fixed):
        return {"coding": "huffman", "table": out.put(table), "data": out.put(stream)}
    return {"coding": "fixed", "bits": bits, "data": out.put(fixed)}


def _decode_indices(rec: dict, payload: memoryview, count: int) -> np.ndarray:
    def get(span):
        return bytes(payload[span[0]:span[0] + span[1]])

    if rec["coding"] == "huffman":
        return _entropy.huffman_decode(get(rec["table"]), get(rec["data"]), count)
    return _entropy.unpack_fixed(get(rec["data"]), rec["bits"], count)


def _encode_tensor(w: np.ndarray, out: _Writer) -> dict:
    rec = {"shape": list(w.shape), "dtype": np.dtype(w.dtype).name}
    w = np.ascontiguousarray(w, dtype=np.float32)  # ints (PQ assignments) are < 2**24: exact
    raw = zlib.compress(w.tobytes(), 9)
    best = None
    if w.size >= 16:
        mask = w != 0
        use_mask = 1 - mask.mean() >= MASK_MIN_ZEROS
        trial = _Writer()
        book = _codebook(w, mask if use_mask else np.ones_like(mask))
        if book is not None:
            codebook, idx = book
            enc = {"enc": "codebook", "groups": int(codebook.shape[0]),
                   "codebook": trial.put(codebook.astype(np.float32).tobytes())}
            if use_mask:
                mtable, mstream = _entropy.huffman_encode(np.packbits(mask.ravel()), 256)
                enc["mask"] = {"table": trial.put(mtable), "data": trial.put(mstream)}
            enc["indices"] = _encode_indices(idx, codebook.shape[1], trial)
            best = (trial, enc)
    if best is None or best[0].size >= len(raw):
        rec.update(enc="zlib", data=out.put(raw))
        return rec
    trial, enc = best
    base = out.size
    for chunk in trial.chunks:
        out.put(chunk)
    rec.update(_shift(enc, base))
    return rec


def _codebook(w, mask):
    """(codebook [groups, k], local indices) for the weights under ``mask``: one codebook, or one
    per last-axis channel when the tensor has more than 256 distinct values; None if neither fits.
    """
    nz = w[mask]
    if nz.size == 0:
        return np.zeros((1, 1), np.float32), np.zeros(0, np.int64)
    uniq, inv = np.unique(nz, return_inverse=True)
    if len(uniq) <= MAX_CODEBOOK:
        return uniq[None, :], inv
    if w.ndim < 2:
        return None
    channels = w.shape[-1]
    chan = np.broadcast_to(np.arange(channels), w.shape)[mask]
    books, local = [], np.zeros(nz.size, dtype=np.int64)
    for c in range(channels):
        sel = chan == c
        u, i = np.unique(nz[sel], return_inverse=True)
        if len(u) > MAX_CODEBOOK:
            return None
        books.append(u if len(u) else np.zeros(1, np.float32))
        local[sel] = i
    width = max(len(b) for b in books)
    return np.stack([np.pad(b, (0, width - len(b))) for b in books]), local


def _shift(obj, base):
    if isinstance(obj, dict):
        return {k: _shift(v, base) for k, v in obj.items()}
    if isinstance(obj, list) and len(obj) == 2 and all(isinstance(v, int) for v in obj):
        return [obj[0] + base, obj[1]]
    return obj


def _decode_tensor(rec: dict, payload: memoryview) -> np.ndarray:
    shape = tuple(rec["shape"])

    def get(span):
        return bytes(payload[span[0]:span[0] + span[1]])

    if rec["enc"] == "zlib":
        return np.frombuffer(zlib.decompress(get(rec["data"])), dtype=np.float32).reshape(shape)
    size = int(np.prod(shape))
    book = np.frombuffer(get(rec["codebook"]), dtype=np.float32).reshape(rec["groups"], -1)
    if "mask" in rec:
        mbytes = _entropy.huffman_decode(get(rec["mask"]["table"]), get(rec["mask"]["data"]),
                                         (size + 7) // 8)
        mask = np.unpackbits(mbytes.astype(np.uint8))[:size].astype(bool)
        positions = np.flatnonzero(mask)
    else:
        positions = np.arange(size)
    idx = _decode_indices(rec["indices"], payload, len(positions))
    group = positions % shape[-1] if rec["groups"] > 1 else np.zeros(len(positions), np.int64)
    out = np.zeros(size, dtype=np.float32)
    out[positions] = book[group, idx]
    return out.reshape(shape)


def save_packed(model: keras.Model, path) -> int:
    """Write ``model`` (graph + weights) in the packed format; return the file size in bytes.

    Clustering wrappers are stripped first (on a copy). Weight tensors with at most 256 distinct
    values (or 256 per output channel) are stored as codebook + entropy-coded indices; others
    losslessly as zlib float32. Loading gives identical outputs.

    Args:
        model: a built Sequential or Functional tf_keras model (clustered, stripped or plain).
        path: destination file; written atomically (temporary file + rename).

    Returns:
        The number of bytes written.
    """
    check_graph_model(model)
    model = strip(model)
    out = _Writer()
    records = [_encode_tensor(w, out) for w in model.get_weights()]
    header = zlib.compress(
        json.dumps({"config": model.to_json(), "weights": records}).encode(), 9)
    blob = MAGIC + struct.pack("<I", len(header)) + header + b"".join(out.chunks)
    atomic_write(path, blob)
    return len(blob)


def load_packed(path) -> keras.Model:
    """Rebuild the Keras model stored by :func:`save_packed` (uncompiled)."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(
            f"`path` must be a file written by save_packed (magic {MAGIC!r}). Received: {path}")
    (hlen,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    header = json.loads(zlib.decompress(data[start:start + hlen]))
    payload = memoryview(data)[start + hlen:]
    model = keras.models.model_from_json(header["config"])
    model.set_weights([_decode_tensor(rec, payload).astype(rec.get("dtype", "float32"))
                       for rec in header["weights"]])
    return model
