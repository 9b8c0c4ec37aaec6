"""Larq Compute Engine conversion that bit-packs binary Dense layers by itself.

LCE turns a binary ``QuantConv2D`` into its bit-packed ``LceBconv2d`` but leaves a larq
``QuantDense`` as a float ``FULLY_CONNECTED`` with 32-bit weights (larq/compute-engine #631,
#744), so a binary LeNet-5 came out only 1.1x smaller than float. Beyond LCE: before conversion,
each binary ``QuantDense`` on 2-D inputs is rebuilt (by ``edgecompress.surgery.dense_as_conv``) as
``Reshape -> 1x1 QuantConv2D -> Reshape``: the same function and weights, which LCE bit-packs.
The report says which larq layers stayed float, and why.

References:
    Bannink et al., "Larq Compute Engine: Design, Benchmark, and Deploy State-of-the-Art Binarized
    Neural Networks", MLSys 2021.
"""

from __future__ import annotations

from edgecompress import surgery
from edgecompress._keras import keras


def _binary(quantizer) -> bool:
    return getattr(quantizer, "precision", None) == 1


def dense_as_conv(model) -> tuple[keras.Model, list]:
    """``model`` with every binary larq ``QuantDense`` (a class with a registered conv
    counterpart, 2-D input) as a 1x1 binary convolution, and the notes on every larq layer LCE
    will leave float.

    Returns:
        ``(new model or model itself when nothing changes, notes)``. ``model`` is not changed.
    """
    import larq as lq

    notes, chosen = [], []
    weighted = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)
    for layer in surgery.iter_layers(model):
        kind = type(layer).__name__
        if not isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense,
                                  lq.layers.QuantDepthwiseConv2D)):
            if isinstance(layer, weighted):
                notes.append(f"{layer.name} ({kind}) stays float: not a binary larq layer "
                             "(binarize keeps the first and last layers float)")
            continue
        kernel = getattr(layer, "kernel_quantizer", None) or getattr(layer, "depthwise_quantizer", None)
        if isinstance(layer, lq.layers.QuantDepthwiseConv2D):
            notes.append(f"{layer.name} ({kind}) stays float: LCE has no binary depthwise kernel")
        elif not _binary(kernel):
            notes.append(f"{layer.name} ({kind}) stays float: its weights are not binary")
        elif not _binary(getattr(layer, "input_quantizer", None)):
            notes.append(f"{layer.name} ({kind}) stays float: its input is not binarized "
                         "(a first layer, or no input_quantizer)")
        elif isinstance(layer, lq.layers.QuantDense):
            why = surgery.why_not_as_conv(layer)
            if why:
                notes.append(f"{layer.name} ({kind}) stays float: {why}")
            else:
                chosen.append(layer)
    if not chosen:
        return model, notes
    notes.append(f"bit-packed as 1x1 binary convolutions: {len(chosen)} QuantDense layer(s)")
    return surgery.dense_as_conv(model, chosen), notes
