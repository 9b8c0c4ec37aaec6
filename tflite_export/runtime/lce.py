"""Larq Compute Engine's interpreter: files with LCE binary ops (reference kernels on x86)."""

from __future__ import annotations

import numpy as np

from tflite_export.runtime.base import Runner, qparams


class LCERunner(Runner):
    """Run a file with LCE custom ops (``LceBconv2d``, ``LceQuantize``...), one sample at a time."""

    backend = "lce"
    max_batch = 1

    def _open(self):
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        self._lce = Interpreter(self.model_bytes, num_threads=self.num_threads)
        lce = self._lce
        self.input_details = [
            {"dtype": np.dtype(t), "shape": np.array(s), "quantization": qparams(sc, zp)}
            for t, s, sc, zp in zip(lce.input_types, lce.input_shapes, lce.input_scales,
                                    lce.input_zero_points, strict=False)
        ]
        self.output_details = [
            {"dtype": np.dtype(t), "shape": np.array(s), "quantization": qparams(sc, zp)}
            for t, s, sc, zp in zip(lce.output_types, lce.output_shapes, lce.output_scales,
                                    lce.output_zero_points, strict=False)
        ]

    def _run(self, batch):
        return [np.asarray(o) for o in self._lce.interpreter.predict(list(batch))]
