"""Canonical Huffman coding and fixed-width bit packing of small-alphabet integer arrays, in numpy.

Encoding is vectorized over symbols. Decoding is vectorized too: a table gives the symbol and code
length that would start at *every* bit position, and pointer doubling finds the positions where
codes really start in O(log n) array passes (no per-symbol Python loop).

References:
    Huffman, "A Method for the Construction of Minimum-Redundancy Codes", 1952.
    Han et al., "Deep Compression", ICLR 2016 (Huffman coding as the last stage).
"""

from __future__ import annotations

import heapq

import numpy as np

MAX_LEN = 16


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code lengths (<= MAX_LEN) for symbol counts; unused symbols get length 0."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(len(counts), dtype=np.int64)
    used = np.flatnonzero(counts)
    if len(used) <= 1:
        lengths[used] = 1
        return lengths
    work = counts[used].astype(np.float64)
    while True:
        heap = [(float(c), i, (i,)) for i, c in enumerate(work)]
        heapq.heapify(heap)
        depth = np.zeros(len(used), dtype=np.int64)
        tie = len(heap)
        while len(heap) > 1:
            c1, _, s1 = heapq.heappop(heap)
            c2, _, s2 = heapq.heappop(heap)
            members = s1 + s2
            depth[list(members)] += 1
            heapq.heappush(heap, (c1 + c2, tie, members))
            tie += 1
        if depth.max() <= MAX_LEN:
            lengths[used] = depth
            return lengths
        work = np.floor(work / 2) + 1  # flatten the distribution until the codes fit


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code values for the given lengths (symbols ordered by length, then value)."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, prev = 0, 0
    for sym in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[sym]) - prev
        codes[sym] = code
        prev = int(lengths[sym])
        code += 1
    return codes


def _emit(values: np.ndarray, lens: np.ndarray) -> bytes:
    """Concatenate ``values[i]`` written MSB-first in ``lens[i]`` bits; return packed bytes."""
    ends = np.cumsum(lens)
    total = int(ends[-1]) if len(ends) else 0
    starts = ends - lens
    bits = np.zeros(total, dtype=np.uint8)
    for j in range(int(lens.max()) if len(lens) else 0):
        live = lens > j
        bits[starts[live] + j] = (values[live] >> (lens[live] - 1 - j)) & 1
    return np.packbits(bits).tobytes()


def huffman_encode(symbols: np.ndarray, alphabet: int) -> tuple[bytes, bytes]:
    """Encode non-negative ints < ``alphabet``. Returns (code lengths as bytes, bitstream)."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet))
    codes = canonical_codes(lengths)
    return lengths.astype(np.uint8).tobytes(), _emit(codes[symbols], lengths[symbols])


def huffman_decode(table: bytes, stream: bytes, count: int) -> np.ndarray:
    """Decode ``count`` symbols written by :func:`huffman_encode`."""
    lengths = np.frombuffer(table, dtype=np.uint8).astype(np.int64)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    codes = canonical_codes(lengths)
    width = int(lengths.max())
    tsym = np.zeros(1 << width, dtype=np.int64)
    tlen = np.ones(1 << width, dtype=np.int64)
    for sym in np.flatnonzero(lengths):
        shift = width - int(lengths[sym])
        tsym[codes[sym] << shift:(codes[sym] + 1) << shift] = sym
        tlen[codes[sym] << shift:(codes[sym] + 1) << shift] = lengths[sym]
    bits = np.unpackbits(np.frombuffer(stream, dtype=np.uint8)).astype(np.int64)
    nbits = len(bits)
    bits = np.concatenate([bits, np.zeros(width, dtype=np.int64)])
    window = np.zeros(nbits, dtype=np.int64)
    for j in range(width):
        window = (window << 1) | bits[j:j + nbits]
    sym_at, len_at = tsym[window], tlen[window]
    # jump[p] = start of the code after the one starting at p; pointer doubling walks the chain.
    jump = np.minimum(np.arange(nbits) + len_at, nbits)
    jump = np.append(jump, nbits)
    order = np.arange(count)
    pos = np.zeros(count, dtype=np.int64)
    k = 0
    while (1 << k) < count:
        sel = ((order >> k) & 1).astype(bool)
        pos[sel] = jump[pos[sel]]
        jump = jump[jump]
        k += 1
    return sym_at[np.minimum(pos, nbits - 1)]


def pack_fixed(symbols: np.ndarray, bits: int) -> bytes:
    """Pack ints into ``bits`` bits each (MSB first)."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    return _emit(symbols, np.full(len(symbols), bits, dtype=np.int64))


def unpack_fixed(stream: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_fixed`."""
    raw = np.unpackbits(np.frombuffer(stream, dtype=np.uint8))[: count * bits]
    weights = 1 << np.arange(bits - 1, -1, -1, dtype=np.int64)
    return raw.reshape(count, bits).astype(np.int64) @ weights
