"""Channel-dependency groups: which output channels of which layers must be pruned together.

Structured pruning removes output channels (filters) of a producer (Conv2D, Dense) and must then
remove the matching slices of every layer downstream. :func:`channel_groups` walks a Sequential or
Functional graph and tracks, for every tensor, which producer channel each of its last-axis
positions comes from:

* Conv1D / Conv2D / Dense (and their subclasses with the same weights) start a new group and
  consume their input (kernel rows are sliced);
* SeparableConv1D / SeparableConv2D start a new group (their pointwise filters) and consume their
  input through the depthwise part (its kernel and the matching pointwise rows are sliced);
* BatchNormalization (channels-last), activations, pooling, Dropout, padding pass channels
  through (BN's per-channel vectors are sliced), and so does a Reshape that keeps the last axis
  (the squeeze-excite ``(C,) -> (1, 1, C)``);
* DepthwiseConv1D / DepthwiseConv2D: channels follow the input (``depth_multiplier`` must be 1);
* Add / Subtract / Multiply / Average / Maximum / Minimum join the groups of their inputs: one
  group, one shared mask;
* Concatenate (last axis) stacks the inputs' channels (with offsets);
* Flatten repeats channels once per spatial position, so a following Dense loses the matching
  input columns; global pooling keeps them.

Anything else (a Reshape of the channel axis, Lambda, LayerNormalization, softmax over channels,
a grouped or transposed convolution, a model output, a shared or nested layer, ...) makes the
groups that reach it unprunable, with the reason, rather than wrong.

References:
    Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017.
    Liu et al., "Learning Efficient Convolutional Networks through Network Slimming", ICCV 2017.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecompress._keras import KerasTensor, check_graph_model, keras, tf
from edgecompress.surgery.graph import nodes_in_order

L = keras.layers
PASS_THROUGH = (
    L.ReLU, L.LeakyReLU, L.ELU, L.ThresholdedReLU, L.Dropout, L.SpatialDropout2D,
    L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.MaxPooling2D, L.AveragePooling2D,
    L.MaxPooling1D, L.AveragePooling1D, L.ZeroPadding2D, L.Cropping2D, L.UpSampling2D,
    L.ActivityRegularization, L.ZeroPadding1D, L.Cropping1D, L.UpSampling1D, L.SpatialDropout1D,
)
DEPTHWISE = (L.DepthwiseConv2D, L.DepthwiseConv1D)
SEPARABLE = (L.SeparableConv2D, L.SeparableConv1D)
_REFUSAL_REASONS = (
    (L.LayerNormalization, "normalizes over the channels, so removing one changes every output"),
    (L.UnitNormalization, "normalizes over the channels, so removing one changes every output"),
    (L.Lambda, "a Lambda's use of channels is unknown"),
)
GLOBAL_POOLING = (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D, L.GlobalAveragePooling1D,
                  L.GlobalMaxPooling1D)
ELEMENTWISE = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
_CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")
# TFOpLambda functions (``x + 3.0``, ``x * (1 / 6)``, ``tf.nn.relu6(x)``) that act value by value.
ELEMENTWISE_OPS = {
    "__operators__.add", "math.add", "math.subtract", "math.multiply", "math.truediv",
    "math.divide", "nn.relu", "nn.relu6", "math.sigmoid", "math.tanh", "nn.silu", "nn.swish",
    "math.maximum", "math.minimum", "math.abs", "math.negative", "math.square",
}


@dataclass
class ChannelGroup:
    """Output channels of one or more producers that are pruned together with one mask.

    Attributes:
        id: group number.
        producers: names of the layers whose output channels (filters/units) form the group.
        channels: number of channels.
        prunable: False when the group reaches something the tracker cannot follow.
        reason: why it is not prunable.
        followers: BatchNormalization / DepthwiseConv layers sliced along with the group.
        consumers: Conv / SeparableConv / Dense layers whose input slices follow the group.
    """

    id: int
    producers: list = field(default_factory=list)
    channels: int = 0
    prunable: bool = True
    reason: str | None = None
    followers: list = field(default_factory=list)
    consumers: list = field(default_factory=list)


class ChannelGraph:
    """The result of :func:`channel_groups`: groups and each layer's channel provenance."""

    def __init__(self):
        self._parent: dict[int, int] = {}
        self._groups: dict[int, ChannelGroup] = {}
        self.inputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # layer -> (gids, idx) of input
        self.produced: dict[str, int] = {}  # producer layer -> its own group id (before union)
        self.kinds: dict[str, str] = {}  # layer -> "producer" | "follower" | "pass" | "reshape"

    # union-find
    def _new(self, layer, channels) -> int:
        gid = len(self._parent)
        self._parent[gid] = gid
        self._groups[gid] = ChannelGroup(gid, [layer.name], int(channels))
        return gid

    def find(self, gid: int) -> int:
        while self._parent[gid] != gid:
            self._parent[gid] = self._parent[self._parent[gid]]
            gid = self._parent[gid]
        return gid

    def _union(self, a: int, b: int):
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        ga, gb = self._groups[a], self._groups.pop(b)
        self._parent[b] = a
        ga.producers += gb.producers
        ga.followers += gb.followers
        ga.consumers += gb.consumers
        if not gb.prunable:
            self._block(a, gb.reason)

    def _block(self, gid: int, reason: str):
        group = self._groups[self.find(gid)]
        if group.prunable:
            group.prunable, group.reason = False, reason

    def _block_all(self, gids, reason):
        for gid in set(int(g) for g in np.asarray(gids).ravel() if g >= 0):
            self._block(gid, reason)

    def _note(self, gids, attr, name):
        for gid in set(int(g) for g in gids if g >= 0):
            members = getattr(self._groups[self.find(gid)], attr)
            if name not in members:
                members.append(name)

    @property
    def groups(self) -> list[ChannelGroup]:
        return sorted(self._groups.values(), key=lambda g: g.id)

    def group_of(self, producer: str) -> ChannelGroup:
        """The (joint) group that holds ``producer``'s output channels."""
        return self._groups[self.find(self.produced[producer])]

    def keep_input(self, layer_name: str, masks: dict[int, np.ndarray]) -> np.ndarray:
        """Boolean keep-vector over ``layer_name``'s input channels, given keep-masks per group id."""
        gids, idx = self.inputs[layer_name]
        keep = np.ones(len(gids), dtype=bool)
        for pos, (g, i) in enumerate(zip(gids, idx)):
            if g >= 0:
                mask = masks.get(self.find(int(g)))
                if mask is not None:
                    keep[pos] = bool(mask[i])
        return keep


def _channels(shape) -> int:
    return int(shape[-1])


def _none(n):
    return np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64)


def channel_groups(model: keras.Model) -> ChannelGraph:
    """Trace the channel-dependency groups of a Sequential or Functional model.

    Args:
        model: a built tf_keras Sequential or Functional model (not modified).

    Returns:
        A :class:`ChannelGraph`; ``graph.groups`` lists every :class:`ChannelGroup` with
        ``prunable`` and ``reason``.

    Raises:
        TypeError: for subclassed or Keras 3 models.
    """
    check_graph_model(model)
    graph = ChannelGraph()
    prov: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for tensor in model.inputs:
        prov[id(tensor)] = _none(_channels(tensor.shape))

    for node in nodes_in_order(model):
        if node.is_input:
            continue
        layer = node.layer
        ins = [prov.get(id(t)) or _none(_channels(t.shape)) for t in node.keras_inputs]
        outs = tf.nest.flatten(node.outputs)
        result = _step(graph, layer, ins, outs)
        for tensor, p in zip(outs, result):
            prov[id(tensor)] = p
    for tensor in tf.nest.flatten(model.outputs):
        gids, _ = prov[id(tensor)]
        graph._block_all(gids, f"reaches the model output '{tensor.name.split('/')[0]}'")
    return graph


def _unprunable_producer(graph, layer, ins, outs, why):
    """A layer with filters the tracker cannot prune: its inputs and its own group are blocked."""
    _unknown(graph, layer, ins, outs, why)
    n = _channels(outs[0].shape)
    gid = graph._new(layer, n)
    graph._block(gid, f"'{layer.name}' ({type(layer).__name__}): {why}")
    return [(np.full(n, gid, dtype=np.int64), np.arange(n))]


def _unknown(graph, layer, ins, outs, why):
    for gids, _ in ins:
        graph._block_all(gids, f"consumed by '{layer.name}' ({type(layer).__name__}): {why}")
    return [_none(_channels(t.shape)) for t in outs]


def _step(graph: ChannelGraph, layer, ins, outs):
    name = layer.name
    if isinstance(layer, keras.Model):
        return _unknown(graph, layer, ins, outs, "nested models are not traced")
    if len(layer._inbound_nodes) > 1:
        return _unknown(graph, layer, ins, outs, "shared layer (called more than once)")
    if len(ins) == 1:
        gids, idx = ins[0]
        graph.inputs[name] = (gids, idx)
    mixing = getattr(getattr(layer, "activation", None), "__name__", "") in _CHANNEL_MIXING_ACTIVATIONS
    if isinstance(layer, (L.Conv1D, L.Conv2D)) and getattr(layer, "groups", 1) != 1:
        return _unprunable_producer(graph, layer, ins, outs, f"grouped convolution "
                                    f"(groups={layer.groups}) is not traced")
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return _unknown(graph, layer, ins, outs, "channels_first layout is not traced")
    if _is_producer(layer):
        graph.kinds[name] = "producer"
        graph._note(ins[0][0], "consumers", name)
        n = _channels(outs[0].shape)
        gid = graph._new(layer, n)
        graph.produced[name] = gid
        if mixing:
            graph._block(gid, f"'{name}' has a {layer.activation.__name__} over its channels")
        return [(np.full(n, gid, dtype=np.int64), np.arange(n))]
    if isinstance(layer, DEPTHWISE):
        graph.kinds[name] = "follower"
        gids, idx = ins[0]
        graph._note(gids, "followers", name)
        m = layer.depth_multiplier
        if m != 1:
            graph._block_all(gids, f"'{name}' has depth_multiplier={m}")
        return [(np.repeat(gids, m), np.repeat(idx, m))]
    if isinstance(layer, L.Reshape):
        if len(outs[0].shape) < 2 or _channels(outs[0].shape) != len(ins[0][0]):
            return _unknown(graph, layer, ins, outs, "reshapes the channel axis")
        graph.kinds[name] = "reshape"  # its target shape follows the channel count
        return [ins[0]]
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose)):
        return _unprunable_producer(graph, layer, ins, outs, "transposed convolutions are not traced")
    for kinds, why in _REFUSAL_REASONS:
        if isinstance(layer, kinds):
            return _unknown(graph, layer, ins, outs, why)
    if isinstance(layer, L.BatchNormalization):
        axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
        rank = len(outs[0].shape)
        if axis is None or axis % rank != rank - 1:
            return _unknown(graph, layer, ins, outs, f"normalizes axis {layer.axis}, not channels")
        graph.kinds[name] = "follower"
        graph._note(ins[0][0], "followers", name)
        return [ins[0]]
    if isinstance(layer, L.Activation):
        if mixing:
            return _unknown(graph, layer, ins, outs, "mixes channels")
        graph.kinds[name] = "pass"
        return [ins[0]]
    if isinstance(layer, PASS_THROUGH) or isinstance(layer, GLOBAL_POOLING):
        graph.kinds[name] = "pass"
        return [ins[0]]
    if isinstance(layer, L.Flatten):
        graph.kinds[name] = "pass"
        gids, idx = ins[0]
        reps = _channels(outs[0].shape) // max(len(gids), 1)
        if reps * len(gids) != _channels(outs[0].shape):
            return _unknown(graph, layer, ins, outs, "input shape is not fully known")
        return [(np.tile(gids, reps), np.tile(idx, reps))]
    if isinstance(layer, L.Concatenate):
        rank = len(outs[0].shape)
        if layer.axis % rank != rank - 1:
            return _unknown(graph, layer, ins, outs, f"concatenates along axis {layer.axis}")
        graph.kinds[name] = "pass"
        return [(np.concatenate([g for g, _ in ins]), np.concatenate([i for _, i in ins]))]
    if isinstance(layer, ELEMENTWISE):
        return [_join(graph, layer, ins, outs)]
    if type(layer).__name__ == "TFOpLambda" and layer.get_config().get("function") in ELEMENTWISE_OPS:
        node = layer._inbound_nodes[0]
        constants = [a for a in tf.nest.flatten((node.call_args, node.call_kwargs))
                     if not isinstance(a, (KerasTensor, str, type(None)))]
        if any(np.size(c) != 1 for c in constants):
            return _unknown(graph, layer, ins, outs, "a constant operand that is not a scalar")
        if any(len(g) != _channels(outs[0].shape) for g, _ in ins):
            return _unknown(graph, layer, ins, outs, "broadcasting operation")
        if len(ins) == 1:
            graph.kinds[name] = "pass"
            return [ins[0]]
        return [_join(graph, layer, ins, outs)]
    if isinstance(layer, L.Rescaling) and np.size(layer.scale) == 1 and np.size(layer.offset) == 1:
        graph.kinds[name] = "pass"  # scalar x * a + b: what Keras 3's `x + 3.0` is translated to
        return [ins[0]]
    return _unknown(graph, layer, ins, outs, "layer kind not traced")



def _is_producer(layer) -> bool:
    """Dense, Conv1D/Conv2D (groups=1) and SeparableConv1D/2D: layers whose filters can go."""
    if isinstance(layer, (L.Dense, *SEPARABLE)):
        return True
    return (isinstance(layer, (L.Conv1D, L.Conv2D))
            and not isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose))
            and getattr(layer, "groups", 1) == 1 and layer.data_format == "channels_last")


def _join(graph, layer, ins, outs):
    """Elementwise merge: the inputs' groups become one group with one shared mask."""
    graph.kinds[name := layer.name] = "pass"
    first_g, first_i = ins[0]
    for gids, _ in ins:
        if len(gids) != len(first_g):
            return _unknown(graph, layer, ins, outs, "broadcasting merge")[0]
    layouts = []
    for gids, idx in ins:
        groups = {graph.find(int(g)) for g in gids if g >= 0}
        simple = (len(groups) == 1 and (gids >= 0).all()
                  and np.array_equal(idx, np.arange(len(idx))))
        layouts.append((simple, groups))
    if not all(simple for simple, _ in layouts):
        every = np.concatenate([g for g, _ in ins])
        graph._block_all(every, f"joined by '{name}' ({type(layer).__name__}) with a "
                                "channel layout that is not one whole group")
        return ins[0]
    root = next(iter(layouts[0][1]))
    for _, groups in layouts[1:]:
        graph._union(root, next(iter(groups)))
    return ins[0]
