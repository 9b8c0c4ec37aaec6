"""TensorFlow Lite Micro: run a file in TFLM's own interpreter and measure its exact tensor arena.

Uses the ``tflite-micro`` package's Python interpreter (the TFLM C++ kernels and
``RecordingMicroAllocator``). Beyond it: the smallest arena that allocates is searched for in
child processes (a far-too-small arena crashes the TFLM process, so the caller's process never
tries one), and a file TFLM cannot run is refused with the op names (TFLM's log names builtin
ops by number and custom ops not at all; the names come from the file, checked against the op
list of ``micro_mutable_op_resolver.h``).

References:
    David et al., "TensorFlow Lite Micro: Embedded Machine Learning on TinyML Systems", MLSys 2021.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass

import numpy as np

from edgecompress._errors import CheckError
from tflite_export.runtime.base import Runner, qparams
from tflite_export.runtime.reader import read_bytes

# The ops tflite-micro's MicroMutableOpResolver can register (tensorflow/lite/micro/
# micro_mutable_op_resolver.h, its Add* methods), builtin and custom. Only used to name the ops
# of a file TFLM refused; TFLM itself decides whether a file runs.
TFLM_OPS = frozenset(
    """ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND
    BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTH_TO_SPACE
    DEPTHWISE_CONV_2D DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS
    FILL FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH
    IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOG_SOFTMAX LOGICAL_AND LOGICAL_NOT
    LOGICAL_OR LOGISTIC MAX_POOL_2D MAXIMUM MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2
    PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE RESIZE_BILINEAR
    RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND
    SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF
    TANH TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE
    CIRCULAR_BUFFER TFLite_Detection_PostProcess ETHOSU TFLM_DECODE""".split()
)
# Room for a runner without a measured arena: activations, plus LUT-decoded weights, which DECODE
# writes into the arena.
_SPARE_ARENA = 16 << 20
_ALLOCATION = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


class MicroOpsError(CheckError, ValueError):
    """TFLite Micro cannot run the file (an op it lacks, or a tensor type its kernel refuses)."""


@dataclass(frozen=True)
class Arena:
    """The tensor arena of a file in TFLM, as measured by :func:`measure_arena`.

    Attributes:
        bytes: the smallest arena (bytes) with which TFLM allocates and runs the file.
        head: TFLM's head: the activation tensors and scratch buffers (non-persistent).
        tail: TFLM's tail: persistent structures (tensor and node metadata, op data).
        recorded: head + tail as TFLM's ``RecordingMicroAllocator`` reports them with a large
            arena. ``bytes`` can be above it (setup needs temporary room that the record leaves
            out) or a few bytes under it (alignment slack the record counts).
    """

    bytes: int
    head: int
    tail: int
    recorded: int

    def to_dict(self) -> dict:
        return asdict(self)


class TFLMRunner(Runner):
    """Run a ``.tflite`` file in TensorFlow Lite Micro's interpreter (batch 1, sample by sample).

    The file is first opened in a child process: a file TFLM cannot run raises
    :class:`MicroOpsError` naming the ops, and never crashes the caller.

    Args:
        path_or_bytes: a ``.tflite`` path or its bytes.
        arena_bytes: the tensor arena; None gives a generous one (use :func:`measure_arena` for
            the smallest).

    Example:
        >>> TFLMRunner("model_int8.tflite").predict(x_test).argmax(-1)
    """

    backend = "tflm"
    max_batch = 1

    def __init__(self, path_or_bytes, arena_bytes: int | None = None, num_threads: int = 1,
                 backend: str = "tflm"):
        # num_threads and backend: what Runner(..., backend="tflm") passes on (TFLM runs one thread).
        super().__init__(path_or_bytes, arena_bytes=arena_bytes)

    def _open(self, arena_bytes=None):
        if arena_bytes is not None and (
            isinstance(arena_bytes, bool) or not isinstance(arena_bytes, int) or arena_bytes < 1
        ):
            raise ValueError(f"`arena_bytes` must be an int >= 1. Received: arena_bytes={arena_bytes!r}")
        self.arena_bytes = arena_bytes or len(self.model_bytes) * 2 + _SPARE_ARENA
        probe = _probe(self.model_bytes, self.arena_bytes)
        if not probe["ok"]:
            large = len(self.model_bytes) * 2 + _SPARE_ARENA
            if arena_bytes is not None and _probe(self.model_bytes, large)["ok"]:
                raise MicroOpsError(f"A TFLite Micro arena of {arena_bytes} bytes is too small for this "
                                    "file; tflite_export.runtime.measure_arena gives the smallest.")
            raise _refusal(self.model_bytes, probe, self.arena_bytes)
        from tflite_micro.python.tflite_micro import runtime

        self._interp = runtime.Interpreter.from_bytes(self.model_bytes, arena_size=self.arena_bytes)
        self.input_details = [_details(self._interp.get_input_details(i)) for i in range(len(self.info.inputs))]
        self.output_details = [_details(self._interp.get_output_details(i)) for i in range(len(self.info.outputs))]

    def _run(self, batch):
        for i, a in enumerate(batch):
            self._interp.set_input(np.ascontiguousarray(a), i)
        self._interp.invoke()
        return [np.array(self._interp.get_output(i)) for i in range(len(self.output_details))]


def _details(detail) -> dict:
    q = detail["quantization_parameters"]
    return {"dtype": np.dtype(detail["dtype"]), "shape": np.asarray(detail["shape"]),
            "quantization": qparams(q["scales"], q["zero_points"])}


def allocates(tflite, arena_bytes: int) -> bool:
    """Whether TFLM allocates and runs the file with an arena of ``arena_bytes`` (in a child process)."""
    return _probe(read_bytes(tflite, "tflite"), int(arena_bytes))["ok"]


def measure_arena(tflite) -> Arena:
    """The smallest tensor arena with which TFLM allocates and runs the file, with its head/tail.

    Each trial runs in a child process (a far-too-small arena crashes TFLM). The search starts from
    what ``RecordingMicroAllocator`` records with a large arena, grows until a trial works, and
    bisects to the byte.

    Args:
        tflite: a ``.tflite`` path or its bytes.

    Returns:
        An :class:`Arena`.

    Raises:
        MicroOpsError: TFLM cannot run the file (the message names the ops).
    """
    data = read_bytes(tflite, "tflite")
    large = len(data) * 2 + _SPARE_ARENA
    probe = _probe(data, large)
    if not probe["ok"]:
        raise _refusal(data, probe, large)
    head, tail, recorded = probe["head"], probe["tail"], probe["total"]
    lo, hi, step = recorded, recorded, 64
    while not _probe(data, hi)["ok"]:  # setup also needs temporary room the record leaves out
        lo, hi, step = hi, hi + step, step * 2
    if lo == hi:  # the record itself works: the minimum can be a little under it (alignment)
        lo = max(hi - 64, 0)
        while lo > 0 and _probe(data, lo)["ok"]:
            hi, lo = lo, max(lo - 1024, 0)
    while hi - lo > 1:  # lo fails (or is 0), hi works
        mid = (lo + hi) // 2
        if _probe(data, mid)["ok"]:
            hi = mid
        else:
            lo = mid
    return Arena(bytes=hi, head=head, tail=tail, recorded=recorded)


def _probe(data: bytes, arena_bytes: int) -> dict:
    """Open ``data`` in TFLM with ``arena_bytes`` in a child process, invoke once, report the arena."""
    with tempfile.NamedTemporaryFile(suffix=".tflite", delete=False) as f:
        f.write(data)
        path = f.name
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tflite_export.runtime._tflm_probe", path, str(arena_bytes)],
            capture_output=True, text=True, timeout=600,
        )
    finally:
        os.unlink(path)
    log = done.stdout + done.stderr
    found = {k: int(v) for k, v in _ALLOCATION.findall(log)}
    return {"ok": done.returncode == 0, "returncode": done.returncode, "log": log,
            "total": found.get("total", 0), "head": found.get("head", 0), "tail": found.get("tail", 0)}


def _refusal(data, probe, arena_bytes) -> MicroOpsError:
    from tflite_export.runtime.reader import inspect

    ops = inspect(data).op_types
    missing = [op for op in ops if op not in TFLM_OPS]
    said = [line.strip() for line in probe["log"].splitlines()
            if line.strip() and not line.startswith(("Traceback", "  ", "[RecordingMicroAllocator]"))]
    reason = "; ".join(dict.fromkeys(said))[:300] or f"exit code {probe['returncode']}"
    if missing:
        return MicroOpsError(
            f"TFLite Micro cannot run this file: it lacks the op(s) {', '.join(missing)} "
            f"(TFLM: {reason}). Export those layers as int8 builtin ops, or target LiteRT/LCE instead."
        )
    return MicroOpsError(
        f"TFLite Micro refused the file with an arena of {arena_bytes} bytes (ops {', '.join(ops)}; "
        f"TFLM: {reason}). Check that every op has an int8 kernel (e.g. no float ops left)."
    )
