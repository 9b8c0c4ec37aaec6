"""k-means weight sharing (clustering) on tfmot, with a clone-first guard and strict checks.

References:
    Han, Mao, Dally, "Deep Compression: Compressing Deep Neural Networks with Pruning, Trained
    Quantization and Huffman Coding", ICLR 2016.
    Gong et al., "Compressing Deep Convolutional Networks using Vector Quantization", 2014.
"""

from __future__ import annotations

import numpy as np
import tensorflow_model_optimization as tfmot

from edgecompress._keras import check_graph_model, keras
from edgecompress._progress import Progress
from edgecompress.surgery import (
    Replacement,
    TransformReport,
    attach,
    find_layers,
    iter_layers,
    rebuild,
)

_cluster = tfmot.clustering.keras
_CI = _cluster.CentroidInitialization

CLUSTERABLE = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)
DEFAULT_CLUSTERS = 16
DEFAULT_INIT = "linear"
"""Linear init spreads the centroids over the weight range, so the many near-zero weights of a
trained layer share a few centroids and the packed indices Huffman-code well: on LeNet-5 at 16
clusters the packed file is 10.4x under float32 with ``linear`` against 8.1x with ``kmeans++``, at
the same accuracy (BENCHMARKS.md)."""


@keras.utils.register_keras_serializable(package="edgecompress")
class ClusterableDepthwiseConv2D(keras.layers.DepthwiseConv2D, _cluster.ClusterableLayer):
    """A DepthwiseConv2D whose depthwise kernel tfmot clusters.

    tfmot 0.8.1 lists DepthwiseConv2D as supported with no clusterable weights, so its kernel
    silently keeps every value; this layer names it. :func:`strip` turns it back into a plain
    DepthwiseConv2D.
    """

    def get_clusterable_weights(self):
        return [("depthwise_kernel", self.depthwise_kernel)]

_INITS = {
    "linear": _CI.LINEAR,
    "random": _CI.RANDOM,
    "density": _CI.DENSITY_BASED,
    "density_based": _CI.DENSITY_BASED,
    "kmeans++": _CI.KMEANS_PLUS_PLUS,
    "kmeans_plus_plus": _CI.KMEANS_PLUS_PLUS,
}


#: The centroid initializations :func:`get_init` accepts by name.
INITS = tuple(_INITS)


def get_init(init) -> _CI:
    """Resolve a centroid initialization: ``linear``, ``random``, ``density`` or ``kmeans++``.

    A ``tfmot.clustering.keras.CentroidInitialization`` member is returned as is.
    """
    if isinstance(init, _CI):
        return init
    key = str(init).lower() if isinstance(init, str) else None
    if key not in _INITS:
        raise ValueError(
            "`init` must be one of 'linear', 'random', 'density', 'kmeans++'. "
            f"Received: init={init!r}"
        )
    return _INITS[key]


def _kernel_name(layer) -> str:
    return "depthwise_kernel" if isinstance(layer, keras.layers.DepthwiseConv2D) else "kernel"


def _check_clusters(layer, clusters: int, per_channel: bool) -> None:
    kernel = getattr(layer, _kernel_name(layer))
    size = int(np.prod(kernel.shape))
    if per_channel and isinstance(layer, keras.layers.Conv2D):
        size //= int(kernel.shape[-1])
    if clusters > size:
        where = "per channel " if per_channel and isinstance(layer, keras.layers.Conv2D) else ""
        raise ValueError(
            f"`clusters` must not exceed the number of weights {where}of layer '{layer.name}' "
            f"({type(layer).__name__}, {size}). Received: clusters={clusters}. "
            "Lower `clusters` or leave the layer out with `layers=`."
        )


def cluster_weights(
    model: keras.Model,
    clusters: int = DEFAULT_CLUSTERS,
    init=DEFAULT_INIT,
    per_channel: bool = False,
    preserve_sparsity: bool = False,
    layers=None,
) -> keras.Model:
    """Wrap a clone of ``model`` for k-means weight sharing, ready for codebook fine-tuning.

    Fine-tune the result with ``fit`` (the centroids are trainable, the assignments follow), then
    call :func:`strip` to get plain layers whose kernels hold at most ``clusters`` distinct values.

    Args:
        model: a built Sequential or Functional tf_keras model. It is never modified (tfmot's own
            ``cluster_weights`` can change its input; this clones first).
        clusters: centroids per kernel (per output channel of a Conv2D when ``per_channel``), >= 2.
        init: ``linear`` (the default, see :data:`DEFAULT_INIT`), ``random``, ``density`` or
            ``kmeans++`` (see :func:`get_init`).
        per_channel: cluster each Conv2D output channel separately (tfmot ignores it elsewhere).
        preserve_sparsity: keep zero weights at zero (for a pruned model).
        layers: names of Conv1D / Conv2D / Dense / DepthwiseConv2D layers to cluster; None for
            all of them (other layers with weights are listed in the report as skipped).

    Returns:
        A new model with tfmot ``ClusterWeights`` wrappers (layer names kept), uncompiled, with
        ``transform_report`` (clustered layers, and layers with weights left unclustered).

    Raises:
        ValueError: for ``clusters`` < 2, more clusters than a layer has weights, an unknown
            ``init`` or a bad layer name.

    Example:
        >>> clustered = cluster_weights(model, clusters=16, init="linear")
        >>> clustered.compile("adam", "sparse_categorical_crossentropy"); clustered.fit(x, y)
        >>> final = strip(clustered)

    References:
        Han et al., "Deep Compression", ICLR 2016 (trained quantization by weight sharing).
    """
    check_graph_model(model)
    if not isinstance(clusters, (int, np.integer)) or isinstance(clusters, bool) or clusters < 2:
        raise ValueError(f"`clusters` must be an int >= 2. Received: clusters={clusters!r}")
    centroid_init = get_init(init)
    selected = find_layers(model, layers, CLUSTERABLE)
    for layer in selected:
        _check_clusters(layer, int(clusters), per_channel)
    names = {layer.name for layer in selected}
    report = TransformReport("cluster_weights")
    for layer in iter_layers(model):
        if layer.name in names:
            report.transformed.append(layer.name)
        elif layer.weights and not isinstance(layer, keras.layers.InputLayer):
            report.skipped[layer.name] = (
                "not selected by `layers`" if layers is not None and isinstance(layer, CLUSTERABLE)
                else f"{type(layer).__name__} has no clustering rule (clustered: "
                     f"{'/'.join(t.__name__ for t in CLUSTERABLE)})")
    params = dict(
        number_of_clusters=int(clusters),
        cluster_centroids_init=centroid_init,
        preserve_sparsity=bool(preserve_sparsity),
        cluster_per_channel=bool(per_channel),
    )

    def clusterable(layer):  # tfmot wraps (and may alter) the layers it is given: give it copies
        if layer.name in names and type(layer) is keras.layers.DepthwiseConv2D:
            return Replacement([ClusterableDepthwiseConv2D.from_config(layer.get_config())],
                               [layer.get_weights()])
        return None

    private = rebuild(model, clusterable)

    progress = Progress("cluster_weights", len(names))

    def wrap(layer):
        if isinstance(layer, keras.Model):
            return keras.models.clone_model(layer, clone_function=wrap)
        if layer.name in names:
            wrapped = _cluster.cluster_weights(layer, **params)
            progress.step(layer.name)
            return wrapped
        return layer

    with progress:
        result = keras.models.clone_model(private, clone_function=wrap)
    attach(result, report)
    report.warn_if_noop()
    return result


def strip(model: keras.Model) -> keras.Model:
    """Remove tfmot clustering wrappers: plain layers holding the clustered kernels.

    Returns a new model (the input is not modified). A model without wrappers comes back as a clone.
    """
    check_graph_model(model)
    if any(isinstance(layer, _cluster_wrapper_types()) for layer in iter_layers(model)):
        model = _cluster.strip_clustering(model)

    def plain(layer):
        if isinstance(layer, ClusterableDepthwiseConv2D):
            config = layer.get_config()
            return Replacement([keras.layers.DepthwiseConv2D.from_config(config)], [layer.get_weights()])
        return None

    return rebuild(model, plain)


def _cluster_wrapper_types():
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

    return (cluster_wrapper.ClusterWeights,)


