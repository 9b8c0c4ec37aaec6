"""LiteRT (``ai_edge_litert``): the phone runtime, with XNNPACK, or its builtin kernels as fallback."""

from __future__ import annotations

import numpy as np

from tflite_export.runtime.base import Runner


class LiteRTRunner(Runner):
    """Run a file in LiteRT. XNNPACK (the default delegate) refuses some valid files, e.g. sparse
    int8 FULLY_CONNECTED; those run on the builtin kernels (``backend == "litert-builtin"``)."""

    backend = "litert"

    def _open(self):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        try:
            self._interp = Interpreter(model_content=self.model_bytes, num_threads=self.num_threads)
            self._interp.allocate_tensors()
        except RuntimeError:
            self.backend = "litert-builtin"
            self._interp = Interpreter(
                model_content=self.model_bytes,
                num_threads=self.num_threads,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self._interp.allocate_tensors()
        self.input_details = self._interp.get_input_details()
        self.output_details = self._interp.get_output_details()
        self._batch = int(self.input_details[0]["shape"][0]) if len(self.input_details) else 1
        # LiteRT's output details follow the graph's outputs, as the reader's names do.
        indices = [int(d["index"]) for d in self.output_details]
        if indices != self.info.outputs:
            raise RuntimeError(f"LiteRT output order {indices} differs from the file's {self.info.outputs}")

    def _run(self, batch):
        size = len(batch[0])
        if size != self._batch:
            for d, a in zip(self.input_details, batch, strict=False):
                self._interp.resize_tensor_input(d["index"], [size, *a.shape[1:]])
            self._interp.allocate_tensors()
            self._batch = size
        for d, a in zip(self.input_details, batch, strict=False):
            self._interp.set_tensor(d["index"], np.ascontiguousarray(a))
        self._interp.invoke()
        return [self._interp.get_tensor(d["index"]).copy() for d in self.output_details]
