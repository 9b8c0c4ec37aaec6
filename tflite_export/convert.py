"""Convert a tf_keras model to a verified ``.tflite`` file in one of six modes.

Beyond the TFLite converter (and LCE's), ``export`` checks that an ``int8`` file is really
integer-only (the converter silently leaves float ops behind), verifies the file against the
Keras model, and writes atomically: a failure at any point leaves no file behind.

References:
    Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
    Inference", CVPR 2018 (the int8 scheme).
    Bannink et al., "Larq Compute Engine: Design, Benchmark, and Deploy State-of-the-Art Binarized
    Neural Networks", MLSys 2021 (the binary converter).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgecompress._errors import CheckError
from edgecompress._io import atomic_write
from edgecompress._keras import check_graph_model, keras, tf
from edgecompress.datasets import CALIBRATION_SAMPLES
from edgecompress.measure import gzip_size
from tflite_export import runtime
from tflite_export.verify import VerificationError, verify

MODES = ("float32", "dynamic", "float16", "int8", "int16x8", "binary")
#: What ``micro_compress`` accepts (tflite_export.micro's LUT compression).
MICRO_COMPRESSIONS = ("lut",)
# Ops that may stay float in an int8 file without int8 I/O: the boundary converters.
_BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")


@dataclass
class ExportReport:
    """What :func:`export` returns.

    Attributes:
        path: the written ``.tflite`` file.
        mode: the conversion mode.
        bytes: file size.
        gzip_bytes: file size after gzip -9.
        ops: the distinct op types in the file, sorted.
        agreement: top-1 agreement of the file with the Keras model on ``verify_data`` (the lowest
            over classification outputs; None without verification or classification output).
        accuracy: top-1 accuracy of the file (None without labels).
        keras_accuracy: top-1 accuracy of the Keras model (None without labels).
        max_abs_diff: largest absolute difference of the (dequantized) outputs.
        rel_l2: largest relative-L2 error ``||file - keras|| / ||keras||`` over the outputs.
        outputs: per Keras output, what :func:`tflite_export.verify.verify` compared.
        runtime: the runtime the file was verified in (``litert``, ``lce``...).
        flash_bytes: (``micro``) the bytes a microcontroller stores: the file as written.
        arena: (``micro``) the exact TFLM tensor arena, ``{"bytes", "head", "tail", "recorded"}``.
        tflm_agreement: (``micro`` with ``verify_data``) top-1 agreement of TFLM with Keras.
        tflm_outputs: (``micro`` with ``verify_data``) per output, what TFLM's run compared.
        latency_us: median batch-1 latency, when a benchmark filled it (None from ``export``).
        notes: what the export changed or left as it was (e.g. float layers of a binary model).
        micro_compression: (``micro_compress``) :class:`tflite_export.micro.LutReport` as a dict,
            with ``arena_before`` and ``decode_arena_bytes`` (what DECODE adds to the arena).
    """

    path: str
    mode: str
    bytes: int
    gzip_bytes: int
    ops: list = field(default_factory=list)
    agreement: float | None = None
    accuracy: float | None = None
    keras_accuracy: float | None = None
    max_abs_diff: float | None = None
    rel_l2: float | None = None
    outputs: list = field(default_factory=list)
    runtime: str | None = None
    flash_bytes: int | None = None
    arena: dict | None = None
    tflm_agreement: float | None = None
    tflm_outputs: list = field(default_factory=list)
    latency_us: float | None = None
    notes: list = field(default_factory=list)
    micro_compression: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


class FloatOpsError(CheckError, ValueError):
    """An ``int8`` conversion left float ops in the file."""


def export(
    model,
    path,
    mode: str,
    representative_data=None,
    int8_io: bool = False,
    verify_data=None,
    min_agreement: float | None = None,
    overwrite: bool = True,
    optimize_sparsity: bool = False,
    log: Callable[[str], None] | None = None,
    max_rel_error: float | None = None,
    micro: bool = False,
    micro_compress: str | None = None,
    fc_per_tensor: bool = False,
) -> ExportReport:
    """Convert ``model`` to a ``.tflite`` file, check it, verify it, and write it atomically.

    Args:
        model: a tf_keras Sequential/Functional model, or a path to a ``.keras`` / ``.h5`` file
            or a SavedModel folder (loaded with ``safe_mode=True``).
        path: where to write the ``.tflite`` file. Its folder must exist.
        mode: ``"float32"``, ``"dynamic"`` (int8 weights, float activations), ``"float16"``,
            ``"int8"`` (full integer), ``"int16x8"`` (int16 activations, int8 weights) or
            ``"binary"`` (a larq model through Larq Compute Engine).
        representative_data: calibration inputs for ``int8`` and ``int16x8`` (not used for a
            tfmot QAT model, which converts from its learned ranges): an array
            (up to ``CALIBRATION_SAMPLES`` random ones are used), a ``tf.data.Dataset`` (of inputs or
            ``(inputs, labels)``, batched or not) or an iterable/generator of the same.
        int8_io: for ``int8``, make the file's input and output int8 too (no float boundary).
        verify_data: ``(x, y)`` (or ``x`` alone) to run the file and the Keras model on and fill
            the report's agreement, accuracies and max difference.
        min_agreement: with ``verify_data``, the least top-1 agreement accepted for each
            classification output, in [0, 1]; a lower one raises :class:`VerificationError` and
            writes nothing. Non-finite outputs always fail.
        max_rel_error: with ``verify_data``, the largest relative-L2 error accepted for each other
            output (regression, one-unit binary); with ``min_agreement`` alone,
            :data:`tflite_export.verify.MAX_REL_ERROR`.
        micro: also run the file in TensorFlow Lite Micro: TFLM must accept every op
            (:class:`tflite_export.runtime.MicroOpsError` otherwise), the exact arena is measured,
            and with ``verify_data`` TFLM's outputs are compared with Keras under the same
            thresholds.
        micro_compress: ``"lut"``: LUT-compress the int8 weights for TFLite Micro
            (:func:`tflite_export.micro.lut_compress`; implies ``micro``). The written file is the
            compressed one; it runs in TFLM only. Needs mode ``"int8"``.
        fc_per_tensor: for ``int8``/``int16x8``, quantize FULLY_CONNECTED weights per tensor, not
            per output channel. Each per-channel scale costs 12 bytes of flash (a float32 scale and
            an int64 zero point): 20 KB of the 289 KB int8 MLPerf-Tiny FC autoencoder. Verify that
            accuracy holds (``verify_data``).
        overwrite: if False, an existing ``path`` is an error.
        optimize_sparsity: also apply ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` (a pruned
            model's zeros are stored in a sparse format).
        log: called with a short progress message at each stage.

    Returns:
        An :class:`ExportReport`.

    Raises:
        ValueError: for a bad argument.
        CheckError: an int8 file with float ops (:class:`FloatOpsError`, which lists them), a failed
            verification (:class:`VerificationError`) or a file TFLM cannot run (``MicroOpsError``).
        FileNotFoundError / FileExistsError: for a missing model or an existing output.
    """
    say = log or (lambda message: None)
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {list(MODES)}. Received: mode={mode!r}")
    for name, value in (("int8_io", int8_io), ("overwrite", overwrite),
                        ("optimize_sparsity", optimize_sparsity), ("micro", micro),
                        ("fc_per_tensor", fc_per_tensor)):
        if not isinstance(value, bool):
            raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    if int8_io and mode != "int8":
        raise ValueError(f"`int8_io` needs mode='int8'. Received: int8_io=True, mode={mode!r}")
    if optimize_sparsity and mode == "binary":
        raise ValueError("`optimize_sparsity` is not available with mode='binary' (LCE has no such option).")
    if min_agreement is not None:
        if isinstance(min_agreement, bool) or not isinstance(min_agreement, (int, float)) or not (
            0.0 <= min_agreement <= 1.0
        ):
            raise ValueError(f"`min_agreement` must be in [0, 1]. Received: min_agreement={min_agreement!r}")
        if verify_data is None:
            raise ValueError("`min_agreement` needs `verify_data` to verify against. Received: verify_data=None")
    if micro_compress is not None and micro_compress not in MICRO_COMPRESSIONS:
        raise ValueError(f"`micro_compress` must be None or one of {list(MICRO_COMPRESSIONS)}. "
                         f"Received: micro_compress={micro_compress!r}")
    if micro_compress and mode != "int8":
        raise ValueError(f"`micro_compress` needs mode='int8' (LUT tables of int8 weights). "
                         f"Received: mode={mode!r}")
    out = _check_output(path, overwrite)
    model = load_model(model)
    if mode in ("int8", "int16x8") and representative_data is None and not is_qat(model):
        raise ValueError(
            f"`representative_data` is required for mode={mode!r} (calibration inputs: an array, "
            "a tf.data.Dataset or a generator). Received: None"
        )
    if mode == "binary" and not _has_larq_layers(model):
        raise ValueError(
            "mode='binary' needs a larq model (QuantConv2D/QuantDense layers); this model has none. "
            "Use mode='int8' or binarize it first."
        )

    notes = []
    if mode in ("int8", "int16x8") and is_qat(model):
        # A QAT model carries learned ranges; re-calibrating over them mis-converts Dense->BN
        # blocks (issue #22.7), so the converter uses the learned ranges only.
        if representative_data is not None:
            notes.append("QAT model: converted from its learned ranges; representative_data not used")
        representative_data = None
    converted = model
    if mode == "binary":
        from tflite_export.lce import dense_as_conv

        converted, binary_notes = dense_as_conv(model)
        notes.extend(binary_notes)
    say(f"converting to {mode}")
    raw = _convert(converted, mode, representative_data, int8_io, optimize_sparsity, fc_per_tensor)
    info = runtime.inspect(raw)
    if mode == "int8":
        floats = float_ops(info, allow_boundary=not int8_io)
        if floats:
            hint = (" This QAT model has no learned range there (tfmot does not fake-quantize a "
                    "Dense or Conv followed by BatchNormalization): fold the BatchNormalization "
                    "into the layer before QAT." if is_qat(model) else "")
            raise FloatOpsError(
                "mode='int8' left float ops in the file (no file written): "
                + ", ".join(floats)
                + "." + hint + " Replace those layers, or export with mode='dynamic' or 'int16x8'."
            )
    report = ExportReport(
        path=str(out), mode=mode, bytes=len(raw), gzip_bytes=gzip_size(raw), ops=info.op_types,
        notes=notes,
    )
    if verify_data is not None:
        say(f"verifying on {_count(verify_data)} samples")
        result = _verified(raw, model, verify_data, "auto", min_agreement, max_rel_error, report)
        report.agreement = result["agreement"]
        report.accuracy = result["accuracy"]
        report.keras_accuracy = result["keras_accuracy"]
        report.max_abs_diff = result["max_abs_diff"]
        report.rel_l2 = result["rel_l2"]
        report.outputs = result["outputs"]
        report.runtime = result["runtime"]
    if micro_compress == "lut":
        from tflite_export.micro import lut_compress

        say("LUT-compressing weights for TFLite Micro")
        before = runtime.measure_arena(raw)
        raw, lut = lut_compress(raw)
        report.micro_compression = {**lut.to_dict(), "method": "lut", "arena_before": before.bytes}
        report.bytes, report.gzip_bytes = len(raw), gzip_size(raw)
        report.ops = runtime.inspect(raw).op_types
        report.notes.append(
            f"LUT-compressed {len(lut.tensors)} weight tensor(s): the file runs in TFLM only "
            "(DECODE op); the LiteRT figures above are of the file before compression"
            if lut.tensors else "LUT compression found no weight tensor to compress"
        )
    if micro or micro_compress:
        say("measuring the TFLite Micro arena")
        report.flash_bytes = len(raw)
        report.arena = runtime.measure_arena(raw).to_dict()
        if report.micro_compression is not None:
            report.micro_compression["decode_arena_bytes"] = (
                report.arena["bytes"] - report.micro_compression["arena_before"])
        if verify_data is not None:
            say("verifying in TFLite Micro")
            result = _verified(raw, model, verify_data, "tflm", min_agreement, max_rel_error, report)
            report.tflm_agreement = result["agreement"]
            report.tflm_outputs = result["outputs"]
    say(f"writing {out}")
    atomic_write(out, raw, overwrite)
    return report


def _verified(raw, model, data, runtime, min_agreement, max_rel_error, report) -> dict:
    """:func:`verify`, with a failure's message and export report (no file was written)."""
    try:
        return verify(raw, model, data, runtime=runtime, min_agreement=min_agreement,
                      max_rel_error=max_rel_error)
    except VerificationError as err:
        found = err.report or {}
        report.agreement, report.max_abs_diff = found.get("agreement"), found.get("max_abs_diff")
        report.outputs, report.runtime = found.get("outputs", []), found.get("runtime")
        raise VerificationError(f"{err} No file written.", report=report) from None


def load_model(model) -> keras.Model:
    """``model`` itself if it is a tf_keras model (checked), or the model saved at a path.

    Paths load through :func:`edgecompress.loading.load_model` (safe mode: Lambda layers refused).
    """
    if isinstance(model, (str, os.PathLike)):
        from edgecompress.loading import load_model as load_file

        model = load_file(model, argument="model")
    check_graph_model(model, "model")
    return model


def _check_output(path, overwrite: bool) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"`path` must be a file path. Received: path={path!r}")
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"`path` is a folder; give a file name such as model.tflite. Received: {out}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"`path` must be in an existing folder. Received: {out}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"`path` already exists; pass overwrite=True (CLI: --overwrite). Received: {out}")
    return out


def is_qat(model) -> bool:
    """Whether ``model`` holds tfmot quantization-aware-training layers (fake-quant ranges)."""
    return any(type(layer).__module__.startswith("tensorflow_model_optimization.python.core.quantization")
               for layer in model.submodules)


def _has_larq_layers(model) -> bool:
    for layer in model.submodules:
        if type(layer).__module__.startswith("larq."):
            return True
    return False


def _convert(model, mode, representative_data, int8_io, optimize_sparsity, fc_per_tensor=False) -> bytes:
    if mode == "binary":
        import larq_compute_engine as lce

        return _guard(lambda: lce.convert_keras_model(model), mode)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations = [] if mode == "float32" else [tf.lite.Optimize.DEFAULT]
    if optimize_sparsity:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode in ("int8", "int16x8") and representative_data is not None:
        converter.representative_dataset = representative_dataset(representative_data, model)
    if fc_per_tensor:  # the TFLite converter's (experimental) switch for Dense layers
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if mode == "int8":
        # Float fallback stays allowed so the file can be inspected and its float ops named. A QAT
        # model (no representative data) takes its int8 ops from its fake-quant ranges.
        if representative_data is not None:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS
            ]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    if mode == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    return _guard(converter.convert, mode)


def _guard(convert, mode) -> bytes:
    try:
        return bytes(convert())
    except ValueError as err:
        if str(err).startswith("`"):
            raise
        raise ValueError(f"Conversion to {mode} failed: {_first_line(err)}") from None
    except Exception as err:  # noqa: BLE001 - converter errors are long multi-line dumps
        raise ValueError(f"Conversion to {mode} failed ({type(err).__name__}): {_first_line(err)}") from None


def _first_line(err) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [line for line in lines if "error" in line.lower()] or lines or [type(err).__name__]
    return useful[0][:300]


def representative_dataset(data, model) -> Callable[[], Iterable[list]]:
    """A ``converter.representative_dataset`` from an array, a tf.data dataset or an iterable.

    Each yielded item is a list with one batch-1 float32 array per model input. Labels in
    ``(x, y)`` pairs are dropped. Arrays give up to ``CALIBRATION_SAMPLES`` random samples.
    """
    ranks = [len(t.shape) for t in model.inputs]
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        data = data[0]  # (x, y)
    if isinstance(data, np.ndarray):
        if data.ndim != ranks[0] or len(data) == 0 or not np.issubdtype(data.dtype, np.number):
            raise ValueError(
                f"`representative_data` must be a non-empty numeric batch of rank {ranks[0]} "
                f"(samples x input shape). Received: array of shape {data.shape}, dtype {data.dtype}"
            )
        pick = np.random.default_rng(0).permutation(len(data))[:CALIBRATION_SAMPLES]
        samples = data[np.sort(pick)].astype(np.float32)

        def from_array():
            for sample in samples:
                yield [sample[None]]

        return from_array
    if isinstance(data, tf.data.Dataset):
        source = lambda: data.take(CALIBRATION_SAMPLES).as_numpy_iterator()  # noqa: E731
    elif callable(data):
        source = data
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        items = list(data)  # a generator can be consumed only once: keep its items
        source = lambda: iter(items)  # noqa: E731
    else:
        raise ValueError(
            "`representative_data` must be an array, a tf.data.Dataset or an iterable of input "
            f"batches. Received: {type(data).__name__}"
        )

    def from_iterable():
        count = 0
        for item in source():
            for batch in _split(_inputs_of(item, len(ranks)), ranks):
                yield batch
                count += 1
        if count == 0:
            raise ValueError("`representative_data` yielded no samples.")

    return from_iterable


def _inputs_of(item, n_inputs):
    if isinstance(item, dict):
        item = list(item.values())
    if isinstance(item, (tuple, list)):
        if len(item) == 2 and n_inputs == 1:  # (x, y)
            item = [item[0]]
        elif len(item) != n_inputs:
            raise ValueError(
                f"`representative_data` items must hold {n_inputs} input(s). Received: {len(item)}"
            )
        return [np.asarray(a, dtype=np.float32) for a in item]
    return [np.asarray(item, dtype=np.float32)]


def _split(arrays, ranks):
    """Batch-1 lists from one item: unbatched samples get a batch axis, batches are split."""
    arrays = [a[None] if a.ndim == r - 1 else a for a, r in zip(arrays, ranks, strict=False)]
    for a, r in zip(arrays, ranks, strict=False):
        if a.ndim != r:
            raise ValueError(
                f"`representative_data` items must have rank {r} or {r - 1}. Received: shape {a.shape}"
            )
    for i in range(len(arrays[0])):
        yield [a[i : i + 1] for a in arrays]


def float_ops(info, allow_boundary: bool = True) -> list:
    """Ops of a file that compute in float: any float32 tensor among their inputs or outputs.

    With ``allow_boundary``, QUANTIZE at the input and DEQUANTIZE at the output (float I/O of an
    otherwise integer model) are not counted. Returns ``"OP_TYPE (tensor name)"`` strings.
    """
    found = []
    for detail in info.op_details:
        if allow_boundary and detail["op"] in _BOUNDARY_OPS:
            continue
        tensors = [info.tensors[i] for i in detail["inputs"] + detail["outputs"] if i >= 0]
        if any(t["type"] in ("FLOAT32", "FLOAT16") for t in tensors):
            out = info.tensors[detail["outputs"][0]]["name"] if detail["outputs"] else ""
            found.append(f"{detail['op']} ({out})")
    return found


def _count(data) -> int:
    x = data[0] if isinstance(data, (tuple, list)) else data
    x = x[0] if isinstance(x, (tuple, list)) else x
    return len(x)
