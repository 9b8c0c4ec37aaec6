"""Structured filter pruning that really removes filters: a new, smaller dense model.

tfmot only masks weights, so a pruned model keeps its shape and its speed (tfmot issues #541,
#732, #760, #611). ``prune_filters`` ranks each channel-dependency group's filters, drops the
weakest, and rebuilds the model through the surgery core with fewer filters in the producers and
fewer input channels downstream (BatchNormalization, DepthwiseConv1D/2D, the next
Conv1D/Conv2D/SeparableConv/Dense, the Dense after Flatten, residual Add and squeeze-excite
Multiply groups pruned jointly, Concatenate offsets). SeparableConv1D/2D lose pointwise filters
and, for pruned inputs, the matching depthwise channels.

References:
    Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017 (l1 / l2 filter norms).
    Liu et al., "Learning Efficient Convolutional Networks through Network Slimming", ICCV 2017
    (bn_gamma).
    Wen et al., "Learning Structured Sparsity in Deep Neural Networks", NeurIPS 2016 (threshold
    after group-lasso training).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgecompress import surgery
from edgecompress._keras import check_graph_model, keras
from edgecompress._progress import Progress
from edgecompress.surgery.channels import DEPTHWISE, SEPARABLE, channel_groups

CRITERIA = ("l1", "l2", "bn_gamma", "threshold")


def _check_ratio(value, argument="ratio"):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{argument}` must be in [0, 1). Received: {argument}={value!r}")
    return float(value)


def filter_importance(model, criterion="l1", graph=None) -> dict[int, np.ndarray]:
    """Importance of every channel of every prunable group: {group id: scores}.

    Args:
        model: the model.
        criterion: "l1" or "l2" (norm of each filter, summed over a joint group's producers),
            "bn_gamma" (|gamma| of the group's BatchNormalization layers), or "threshold"
            (same scores as "l2").
        graph: a precomputed :func:`~edgecompress.surgery.channel_groups` result.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"`criterion` must be one of {CRITERIA}. Received: criterion={criterion!r}")
    graph = graph or channel_groups(model)
    layers = {layer.name: layer for layer in surgery.iter_layers(model)}
    scores = {}
    for group in graph.groups:
        if not group.prunable:
            continue
        total = np.zeros(group.channels)
        if criterion == "bn_gamma":
            found = False
            for name in group.followers:
                layer = layers[name]
                if not isinstance(layer, keras.layers.BatchNormalization) or not layer.scale:
                    continue
                gids, idx = graph.inputs[name]
                gamma = np.abs(layer.gamma.numpy())
                mine = np.array([graph.find(int(g)) == group.id if g >= 0 else False for g in gids])
                np.add.at(total, idx[mine], gamma[mine])
                found = True
            if not found:
                continue  # no BN to rank by: prune_filters leaves the group (or names it)
        else:
            for name in group.producers:
                layer = layers[name]
                kernel = layer.pointwise_kernel.numpy() if isinstance(layer, SEPARABLE) else \
                    layer.get_weights()[0]
                axes = tuple(range(kernel.ndim - 1))
                if criterion == "l1":
                    total += np.abs(kernel).sum(axis=axes)
                else:
                    total += np.sqrt((kernel.astype(np.float64) ** 2).sum(axis=axes))
        scores[group.id] = total
    return scores


def prune_filters(model, ratio=0.5, criterion="l1", threshold=None):
    """A new, smaller model with the least important filters of each layer removed.

    Args:
        model: a built Sequential or Functional tf_keras model (not modified).
        ratio: fraction in [0, 1) of each group's filters to remove (``floor(ratio * filters)``),
            or a mapping {layer name: ratio} (layers of a residual group share one ratio).
            With ``criterion="threshold"`` it may be None.
        criterion: "l1" or "l2" filter norm, "bn_gamma" (network slimming), or "threshold":
            remove the filters whose L2 norm is below ``threshold`` (after regularized training).
        threshold: the L2-norm threshold for ``criterion="threshold"``.

    Returns:
        A new model of the same kind (Sequential stays Sequential), uncompiled, with fewer filters
        and fewer input channels downstream. A model with nested models is inlined first
        (:func:`~edgecompress.surgery.flatten`) and comes back as one flat Functional model. Groups that cannot be traced (see
        :func:`~edgecompress.surgery.channel_groups`) are left unpruned, with a warning naming
        the layers and the reason. ``model.transform_report`` (a
        :class:`~edgecompress.surgery.TransformReport`) lists the pruned producers, those
        skipped and those refused, with reasons; a call that prunes nothing logs a warning.

    Raises:
        ValueError: ratio outside [0, 1), unknown criterion, a mapping naming an unprunable or
            unknown layer, a threshold that removes every filter of a layer.
        TypeError: subclassed or Keras 3 models.

    Example:
        >>> small = prune_filters(model, 0.5, criterion="l1")
        >>> small.compile(...); small.fit(x, y, epochs=2)   # fine-tune
    """
    check_graph_model(model)
    if criterion not in CRITERIA:
        raise ValueError(f"`criterion` must be one of {CRITERIA}. Received: criterion={criterion!r}")
    if criterion == "threshold":
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
            raise ValueError("`threshold` must be a number >= 0 with criterion='threshold'. "
                             f"Received: threshold={threshold!r}")
    elif threshold is not None:
        raise ValueError(f"`threshold` is only used with criterion='threshold'. Received: "
                         f"criterion={criterion!r}, threshold={threshold!r}")
    if any(isinstance(layer, keras.Model) for layer in model.layers):
        model = surgery.flatten(model)  # the channel tracker follows one flat graph
    graph = channel_groups(model)
    report = surgery.TransformReport(f"prune_filters({criterion})")
    ratios = _group_ratios(graph, ratio, criterion, report)
    scores = filter_importance(model, criterion, graph) if ratios else {}
    masks = {}
    for gid, r in ratios.items():
        group = graph._groups[gid]
        if gid not in scores:
            if isinstance(ratio, Mapping):
                raise ValueError(
                    "`criterion='bn_gamma'` needs a BatchNormalization (scale=True) after the "
                    f"pruned layer. Received: layers {group.producers} have none")
            _note(report.skipped, group, "no BatchNormalization (scale=True) to rank filters by")
            continue
        score = scores[gid]
        if criterion == "threshold":
            drop = score < threshold
        else:
            drop = np.zeros(group.channels, dtype=bool)
            drop[np.argsort(score, kind="stable")[: int(r * group.channels)]] = True
        if drop.all():
            raise ValueError(
                f"Pruning would remove every filter of layers {group.producers}. Received: "
                f"criterion={criterion!r}, threshold={threshold}, largest L2 norm {score.max():.3g}"
            )
        if drop.any():
            masks[gid] = ~drop
            report.transformed += group.producers
        else:
            _note(report.skipped, group, "no filter below the threshold" if criterion == "threshold"
                  else f"ratio {r} of {group.channels} filters rounds down to 0")
    with Progress("prune_filters", len(list(surgery.iter_layers(model)))) as progress:
        small = surgery.rebuild(model, progress.rule(_rule(graph, masks)))
    report.warn_if_noop()
    return surgery.attach(small, report)


def _note(reasons: dict, group, why: str) -> None:
    for name in group.producers:
        reasons[name] = why


def _group_ratios(graph, ratio, criterion, report) -> dict[int, float]:
    if isinstance(ratio, Mapping):
        out = {}
        for name, value in ratio.items():
            value = _check_ratio(value, f"ratio['{name}']")
            if name not in graph.produced:
                raise ValueError(f"`ratio` names a layer that is not a prunable Conv2D/Dense. "
                                 f"Received: '{name}'. Layers: {sorted(graph.produced)}")
            group = graph.group_of(name)
            if not group.prunable:
                raise ValueError(f"`ratio` names layer '{name}', whose filters cannot be pruned: "
                                 f"{group.reason}. Received: ratio['{name}']={value}")
            if out.get(group.id, value) != value:
                raise ValueError(f"Layers {group.producers} are pruned jointly (residual group) and "
                                 f"need one ratio. Received: {dict(ratio)}")
            out[group.id] = value
        return out
    if ratio is None and criterion == "threshold":
        ratio = 0.0
    ratio = _check_ratio(ratio)
    out = {}
    for group in graph.groups:
        if ratio == 0.0 and criterion != "threshold":
            _note(report.skipped, group, "ratio=0")
        elif group.prunable:
            out[group.id] = ratio
        elif group.reason.startswith(("reaches the model output", f"'{group.producers[0]}' has a")):
            _note(report.skipped, group, group.reason)  # its width is the model's output
        else:
            _note(report.refused, group, group.reason)
    return out


def _rule(graph, masks):
    def rule(layer):
        kind = graph.kinds.get(layer.name)
        if kind not in ("producer", "follower", "reshape") or not masks:
            return None
        keep_in = graph.keep_input(layer.name, masks) if layer.name in graph.inputs else None
        if kind == "reshape":
            if keep_in.all():
                return None
            shape = (*layer.target_shape[:-1], int(keep_in.sum()))
            return keras.layers.Reshape(shape, name=layer.name)
        weights = layer.get_weights()
        config = layer.get_config()
        if kind == "producer":
            gid = graph.find(graph.produced[layer.name])
            keep_out = masks.get(gid, np.ones(layer.compute_output_shape(
                layer.input_shape)[-1], dtype=bool))
            if keep_in.all() and keep_out.all():
                return None
            if isinstance(layer, SEPARABLE):  # depthwise, pointwise (rows = in x multiplier), bias
                depthwise, pointwise, *rest = weights
                rows = np.repeat(keep_in, layer.depth_multiplier)
                new_weights = [depthwise[..., keep_in, :], pointwise[..., rows, :][..., keep_out]]
            else:
                new_weights = [weights[0][..., keep_in, :][..., keep_out]]
                rest = weights[1:]
            new_weights += [w[keep_out] for w in rest]
            config["filters" if "filters" in config else "units"] = int(keep_out.sum())
        elif isinstance(layer, DEPTHWISE):
            if keep_in.all():
                return None
            keep_out = np.repeat(keep_in, layer.depth_multiplier)
            new_weights = [weights[0][..., keep_in, :]] + [w[keep_out] for w in weights[1:]]
        else:  # BatchNormalization: every weight is per channel
            if keep_in.all():
                return None
            new_weights = [w[keep_in] for w in weights]
        cls = type(layer)
        with keras.utils.custom_object_scope({cls.__name__: cls}):
            new = cls.from_config(config)
        return surgery.Replacement([new], [new_weights])

    return rule
