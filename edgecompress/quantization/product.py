"""Product quantization of Dense / Conv2D kernels, with Q-CNN codebook refinement.

Each kernel, seen as a ``(D, out)`` matrix (``D = kh * kw * cin`` for a Conv2D), is cut along the
input dimension into ``M = D / d`` sub-spaces of ``d`` rows. In sub-space ``m`` every output unit
owns one ``d``-dimensional sub-vector; k-means (scikit-learn) learns a codebook of ``K`` of them and
each unit keeps only the index of its nearest codeword. With calibration data the codebooks and
assignments are then refined to minimise the error of the layer's *output* (Q-CNN) instead of the
weights. PQ layers are real Keras layers (subclasses of Dense / Conv2D) with trainable codebooks and
fixed integer assignments; the kernel is decoded on the fly, so ``fit`` fine-tunes the codebooks.
:func:`decode` turns them back into plain layers for TFLite export. No TF tool offers PQ; this goes
beyond tfmot.

References:
    Jegou, Douze, Schmid, "Product Quantization for Nearest Neighbor Search", TPAMI 2011.
    Gong et al., "Compressing Deep Convolutional Networks using Vector Quantization", 2014.
    Wu et al., "Quantized Convolutional Neural Networks for Mobile Devices" (Q-CNN), CVPR 2016.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edgecompress._ahead import run_ahead
from edgecompress._keras import check_graph_model, keras, tf
from edgecompress._progress import Progress
from edgecompress.datasets import sample_count, take
from edgecompress.surgery import (
    Replacement,
    TransformReport,
    attach,
    find_layers,
    iter_layers,
    rebuild,
)


class _PQMixin:
    """Codebooks ``(M, K, d)`` (trainable) + assignments ``(M, out)`` (int32, fixed) -> kernel."""

    def _init_pq(self, subvector_size, codebook_size):
        self.subvector_size = int(subvector_size)
        self.codebook_size = int(codebook_size)

    def _build_pq(self, kernel_shape):
        self.kernel_shape = tuple(int(s) for s in kernel_shape)
        depth = int(np.prod(self.kernel_shape[:-1]))
        subspaces = depth // self.subvector_size
        self.codebooks = self.add_weight(
            name="codebooks", shape=(subspaces, self.codebook_size, self.subvector_size),
            initializer="glorot_uniform", trainable=True, dtype=self.dtype)
        self.assignments = self.add_weight(
            name="assignments", shape=(subspaces, self.kernel_shape[-1]), dtype=tf.int32,
            initializer="zeros", trainable=False)

    @property
    def kernel(self):
        gathered = tf.gather(self.codebooks, self.assignments, batch_dims=1)  # (M, out, d)
        return tf.reshape(tf.transpose(gathered, [0, 2, 1]), self.kernel_shape)

    def _pq_config(self):
        return {"subvector_size": self.subvector_size, "codebook_size": self.codebook_size}


@keras.utils.register_keras_serializable(package="edgecompress")
class PQDense(_PQMixin, keras.layers.Dense):
    """A Dense layer whose kernel is product-quantized (see the module docstring).

    Args:
        units: output units.
        subvector_size: rows per sub-space ``d`` (must divide the input dimension).
        codebook_size: codewords per sub-space ``K``.
        **kwargs: the other Dense arguments.
    """

    def __init__(self, units, subvector_size=4, codebook_size=16, **kwargs):
        super().__init__(units, **kwargs)
        self._init_pq(subvector_size, codebook_size)

    def build(self, input_shape):
        last = int(tf.TensorShape(input_shape)[-1])
        _check_divides(self.name, "input dimension", last, self.subvector_size)
        self._build_pq((last, self.units))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer,
                                    dtype=self.dtype) if self.use_bias else None
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: last})
        self.built = True

    def call(self, inputs):
        kernel = tf.cast(self.kernel, inputs.dtype)
        if inputs.shape.rank == 2:
            out = tf.matmul(inputs, kernel)
        else:
            out = tf.tensordot(inputs, kernel, [[inputs.shape.rank - 1], [0]])
        if self.use_bias:
            out = tf.nn.bias_add(out, self.bias)
        return self.activation(out) if self.activation is not None else out

    def get_config(self):
        return {**super().get_config(), **self._pq_config()}


@keras.utils.register_keras_serializable(package="edgecompress")
class PQConv2D(_PQMixin, keras.layers.Conv2D):
    """A Conv2D layer (channels_last, groups=1) whose kernel is product-quantized.

    Sub-vectors run along the input channels, so ``subvector_size`` must divide them.
    """

    def __init__(self, filters, kernel_size, subvector_size=4, codebook_size=16, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self._init_pq(subvector_size, codebook_size)

    def build(self, input_shape):
        cin = int(tf.TensorShape(input_shape)[-1])
        _check_divides(self.name, "input channels", cin, self.subvector_size)
        self._build_pq(tuple(self.kernel_size) + (cin, self.filters))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer=self.bias_initializer,
                                    dtype=self.dtype) if self.use_bias else None
        self.input_spec = keras.layers.InputSpec(min_ndim=4, axes={-1: cin})
        self.built = True

    def call(self, inputs):
        out = self.convolution_op(inputs, tf.cast(self.kernel, inputs.dtype))
        if self.use_bias:
            out = tf.nn.bias_add(out, self.bias)
        return self.activation(out) if self.activation is not None else out

    def get_config(self):
        return {**super().get_config(), **self._pq_config()}


def _check_divides(name, what, size, d):
    if d < 1 or size % d:
        raise ValueError(
            f"`subvector_size` must divide the {what} of layer '{name}' ({size}). "
            f"Received: subvector_size={d}")


PQ_LAYERS = (PQDense, PQConv2D)
SUPPORTED = (keras.layers.Dense, keras.layers.Conv2D)
HOLDOUT = 0.25
RIDGE = 0.1
SAMPLES_PER_CODEWORD = 4
MAX_KMEANS_POINTS = 2048
KMEANS_ITERS = 10
"""Lloyd iterations per layer (faiss trains PQ with 25 from a random start; from k-means++ seeds,
10 left a trained LeNet-5's relative weight error within 0.3% of what 30 reach)."""
KMEANS_ITERS_BEFORE_REFINE = 3
"""Lloyd iterations when Q-CNN refinement follows: its sweeps re-assign and re-fit every codeword."""
REFINE_BLOCK = 64
REFINE_DTYPE = np.float32
"""Q-CNN's arithmetic: 1.6-1.8x faster than float64 on ResNet50 layer shapes, held-out errors
equal to 5 digits (each codeword solve is ridge-regularized, condition number <= 1 + d / ridge)."""
LOOKAHEAD = 2
"""Layers whose k-means runs ahead of their refinement."""
INPUT_BUDGET = 32 * 2**20
"""Floats of layer inputs collected at once for refinement (128 MiB)."""
log = logging.getLogger("edgecompress")


def _refusal(layer, d: int) -> str | None:
    """Why PQ cannot quantize ``layer`` with sub-vectors of ``d`` rows, or None if it can."""
    cls = type(layer).__name__
    if isinstance(layer, PQ_LAYERS):
        return "already product-quantized"
    if (not isinstance(layer, SUPPORTED) or isinstance(layer, keras.layers.Conv2DTranspose)
            or isinstance(layer, keras.layers.DepthwiseConv2D)):
        return (f"{cls} is not supported: product quantization handles Dense and Conv2D, whose "
                "kernels are laid out (..., in, out)")
    if isinstance(layer, keras.layers.Conv2D) and layer.groups != 1:
        return f"a grouped Conv2D (groups={layer.groups}) is not supported"
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "only channels_last Conv2D is supported"
    size = int(layer.kernel.shape[-2])
    if size % d:
        what = "input channels" if isinstance(layer, keras.layers.Conv2D) else "input dimension"
        return f"subvector_size={d} does not divide its {what} ({size})"
    return None


def _quantize_matrix(w2d: np.ndarray, d: int, k: int, seed: int = 0, iters: int = KMEANS_ITERS,
                     max_points: int = MAX_KMEANS_POINTS, final_assignment: bool = True):
    """PQ of a (D, out) matrix: codebooks (M, k, d), assignments (M, out).

    Greedy k-means++ seeding (:func:`_kmeans_plusplus`) and at most ``iters`` Lloyd iterations
    (stopping as scikit-learn's KMeans does, at ``tol=1e-4``), both batched over all sub-spaces
    in numpy. With ``k >= out`` every sub-vector is its own codeword (exact). A
    layer with more than ``max_points`` output units learns its codebooks on a random sample of
    that many units, then assigns every unit; the work per layer is bounded by ``max_points``.
    Without ``final_assignment`` (Q-CNN refinement re-assigns every unit next), the assignment
    of the last Lloyd iteration is returned when it covers every unit: one pass fewer.
    """
    depth, out = w2d.shape
    subs = np.ascontiguousarray(w2d.reshape(depth // d, d, out).transpose(0, 2, 1), np.float32)  # (M, out, d)
    M = len(subs)
    if k >= out:
        books = np.concatenate([subs, np.repeat(subs[:, :1], k - out, axis=1)], axis=1)
        return books.astype(np.float32), np.tile(np.arange(out, dtype=np.int32), (M, 1))
    rng = np.random.RandomState(seed)
    sample = subs if out <= max_points else subs[:, np.sort(rng.choice(out, max_points, replace=False))]
    books = _kmeans_plusplus(sample, k, rng)
    offsets = (np.arange(M) * k)[:, None]
    # scikit-learn's KMeans stop: squared centre shift <= tol * the data's variance (tol=1e-4)
    settled = 1e-4 * float(np.sum(np.var(sample, axis=1)))
    labels = None
    for _ in range(iters):
        labels = _nearest(sample, books)
        flat = (labels + offsets).ravel()  # one bin per (sub-space, codeword)
        counts = np.bincount(flat, minlength=M * k).reshape(M, k)
        sums = np.stack([np.bincount(flat, weights=sample[..., j].ravel(), minlength=M * k)
                         for j in range(d)], axis=-1).reshape(M, k, d)
        new = np.where((counts > 0)[..., None], sums / np.maximum(counts, 1)[..., None], books)
        shift = float(np.sum((new - books) ** 2))
        books = new
        if shift <= settled:
            break
    if labels is None or final_assignment or sample is not subs:
        labels = _nearest(subs, books)
    return books.astype(np.float32), labels.astype(np.int32)


def _kmeans_plusplus(points: np.ndarray, k: int, rng: np.random.RandomState) -> np.ndarray:
    """Greedy k-means++ seeds of every sub-space at once: (M, n, d) points -> (M, k, d) seeds.

    The algorithm of scikit-learn's ``kmeans_plusplus`` (``2 + log k`` candidates per step, the
    one that lowers the potential most is kept), vectorized over the ``M`` sub-spaces: one call
    per sub-space cost 17 s on a 3x3x512x512 kernel (1,152 sub-spaces), this costs under 1 s.
    The seeds differ from scikit-learn's (another random stream), not their distribution.

    References:
        Arthur, Vassilvitskii, "k-means++: The Advantages of Careful Seeding", SODA 2007.
    """
    M, n, d = points.shape
    trials = 2 + int(np.log(k))
    rows = np.arange(M)
    transposed = points.transpose(0, 2, 1)  # (M, d, n)
    norms = np.einsum("mnd,mnd->mn", points, points)
    seeds = np.empty((M, k, d), points.dtype)
    seeds[:, 0] = points[rows, rng.randint(n, size=M)]
    closest = np.maximum(norms - 2 * (seeds[:, :1] @ transposed)[:, 0]
                         + np.einsum("md,md->m", seeds[:, 0], seeds[:, 0])[:, None], 0)
    for c in range(1, k):
        # sample in proportion to ``closest``: one sorted search over all rows, each row's
        # cumulative share shifted by its index so the rows follow each other
        cumulative = np.cumsum(closest, axis=1, dtype=np.float64)
        total = np.maximum(cumulative[:, -1:], np.finfo(np.float64).tiny)
        draws = rng.random_sample((M, trials)) + rows[:, None]
        picks = np.searchsorted((cumulative / total + rows[:, None]).ravel(), draws.ravel())
        picks = np.minimum(picks.reshape(M, trials) - rows[:, None] * n, n - 1)
        candidates = points[rows[:, None], picks]  # (M, trials, d)
        dist = (norms[:, None, :] - 2 * (candidates @ transposed)
                + np.einsum("mtd,mtd->mt", candidates, candidates)[..., None])
        reach = np.minimum(closest[:, None, :], np.maximum(dist, 0))  # (M, trials, n)
        best = reach.sum(-1).argmin(axis=1)
        seeds[:, c] = candidates[rows, best]
        closest = reach[rows, best]
    return seeds


def _nearest(subs, books, chunk: int = 1 << 14):
    """Index of the nearest codeword for every sub-vector: (M, n, d), (M, k, d) -> (M, n).

    Sub-spaces are taken a few at a time (about ``chunk`` sub-vectors), so the (m, n, k)
    distances stay in cache: on a 3x3x512x512 kernel this halves the time of one pass.
    """
    M, n, _ = subs.shape
    norms = np.einsum("mkd,mkd->mk", books, books)[:, None, :]
    codewords = books.transpose(0, 2, 1)
    step = max(1, chunk // max(n, 1))
    out = np.empty((M, n), np.intp)
    for i in range(0, M, step):
        dist = subs[i:i + step] @ codewords[i:i + step]
        dist *= -2
        dist += norms[i:i + step]
        out[i:i + step] = dist.argmin(axis=-1)
    return out


def _decode_matrix(books, assign):
    gathered = np.take_along_axis(books, assign[:, :, None], axis=1)  # (M, out, d)
    return gathered.transpose(0, 2, 1).reshape(-1, assign.shape[1])


def _qcnn_refine(x: np.ndarray, w2d: np.ndarray, books, assign, sweeps: int = 2,
                 ridge: float = RIDGE, x_held: np.ndarray | None = None, block: int | None = None):
    """Q-CNN: alternate assignment and codebook updates to minimise ||X W - X W_hat||^2.

    Each codeword solve is a ridge regression pulled toward the mean of the weight sub-vectors
    it stands for, with strength ``ridge * trace(X_m^T X_m) / d``: an input dimension the
    calibration data never excites (a dead ReLU, an always-zero pixel) keeps the weights' value
    instead of an arbitrary one. With ``x_held`` (held-out rows), refinement stops at the first
    sweep whose held-out output error rises, and the best codebooks seen are returned.

    Sub-spaces are visited in order, each seeing the residual its predecessors left, as in
    Q-CNN. The residual is kept per ``block`` sub-spaces: ``X_b^T R`` and ``X_b^T X_b`` once per
    block (matrix products), and inside the block each update corrects ``X_m^T R`` through the
    block's Gram matrix, so no per-sub-space pass over the (rows x out) residual is made. The
    result equals ``block=1`` (one residual pass per sub-space) up to rounding; on a ResNet50
    layer the per-sub-space passes were memory-bound and took minutes. A sweep costs about
    ``D * out * (rows + block * d)``, so the default block (None) is ``rows / (4 d)``, at most
    :data:`REFINE_BLOCK`.

    Returns:
        ``(books, assign, errors)``: ``errors`` is the held-out relative error after the k-means
        start and after each sweep run (empty without ``x_held``).
    """
    x = x.astype(REFINE_DTYPE)
    books = books.astype(REFINE_DTYPE)
    assign = assign.copy()
    M, K, d = books.shape
    if block is None:
        block = min(REFINE_BLOCK, len(x) // (4 * d))
    block = max(int(block), 1)
    weight_subs = w2d.reshape(M, d, -1).astype(REFINE_DTYPE)  # (M, d, out)
    approx = _decode_matrix(books, assign)
    resid = x @ (w2d - approx)
    blocks = [(b, min(b + block, M)) for b in range(0, M, block)]
    grams = [x[:, b * d:e * d].T @ x[:, b * d:e * d] for b, e in blocks]
    ref_held = None if x_held is None else x_held @ w2d
    eye_d, eye_k = np.eye(d, dtype=REFINE_DTYPE), np.eye(K, dtype=REFINE_DTYPE)

    def held_error(kernel):
        return float(np.linalg.norm(x_held @ kernel - ref_held) / max(np.linalg.norm(ref_held), 1e-12))

    errors = [] if x_held is None else [held_error(approx)]
    best = (books.copy(), assign.copy())
    for _ in range(sweeps):
        for (b, e), gb in zip(blocks, grams, strict=True):
            rows = slice(b * d, e * d)
            xb = x[:, rows]
            at_start = approx[rows].copy()
            xtr_start = xb.T @ resid  # X_b^T R before this block's updates
            subs_gram = np.stack([gb[j * d:(j + 1) * d, j * d:(j + 1) * d] for j in range(e - b)])
            lams = ridge * np.trace(subs_gram, axis1=1, axis2=2) / d + 1e-12
            regularized = subs_gram + lams[:, None, None] * eye_d
            inverses = np.linalg.inv(regularized)
            for j, m in enumerate(range(b, e)):
                sub, here = slice(j * d, (j + 1) * d), slice(m * d, (m + 1) * d)
                # X_m^T (R + X_m A_m), R corrected for the updates made earlier in this block
                xtr = xtr_start[sub] + subs_gram[j] @ approx[here]
                if j:
                    xtr -= gb[sub, :j * d] @ (approx[b * d:m * d] - at_start[:j * d])
                proj = xtr + lams[j] * weight_subs[m]  # (d, out)
                codes = books[m]
                cost = proj.T @ (-2 * codes.T)  # (out, K)
                cost += np.einsum("kd,kd->k", codes @ regularized[j], codes)
                assign[m] = picked = cost.argmin(axis=1)
                counts = np.bincount(picked, minlength=K)
                live = counts > 0
                means = (proj @ eye_k[picked])[:, live] / counts[live]  # (d, live codewords)
                codes[live] = (inverses[j] @ means).T
                approx[here] = codes[picked].T
            resid -= xb @ (approx[rows] - at_start)
        if x_held is not None:
            errors.append(held_error(approx))
            if errors[-1] > min(errors[:-1]):
                break
            best = (books.copy(), assign.copy())
        else:
            best = (books, assign)
    return best[0].astype(np.float32), best[1].astype(np.int32), errors


def _layer_inputs(model, layers, data, fit_count: int, max_rows: int, seed: int, batch_size: int = 16):
    """Each layer's input as (rows, D) matrices (im2col rows for a Conv2D), from ``model``.

    One forward pass over ``data`` gives every layer's input: the first ``fit_count`` samples
    make the fit rows, the rest the held-out rows. At most ``max_rows`` fit rows per layer, an
    equal share per sample drawn at random over positions, are kept (each held-out sample gives
    the same share), so memory stays bounded by one batch of activations.

    A shared layer gives rows from every call of it in ``model``, so its refinement fits all of
    them (``layer.input`` is the first call's input only).

    Returns:
        ``[(fit rows, held-out rows or None)]``, one pair per layer.
    """
    calls = [(i, tensor) for i, layer in enumerate(layers) for tensor in _call_inputs(model, layer)]
    probe = keras.Model(model.inputs, [tensor for _, tensor in calls])
    rng = np.random.default_rng(seed)
    per_sample = -(-max_rows // max(fit_count, 1))
    parts = [([], []) for _ in layers]
    for start in range(0, sample_count(data), batch_size):
        outs = probe(take(data, slice(start, start + batch_size)), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for (i, _), out in zip(calls, outs, strict=True):
            layer, part = layers[i], parts[i]
            if isinstance(layer, keras.layers.Conv2D):
                kh, kw = layer.kernel_size
                out = tf.image.extract_patches(
                    out, sizes=[1, kh, kw, 1], strides=[1, *layer.strides, 1],
                    rates=[1, *layer.dilation_rate, 1], padding=layer.padding.upper())
            out = np.asarray(out)
            out = out.reshape(out.shape[0], -1, out.shape[-1])  # (samples, positions, D)
            share = min(per_sample, out.shape[1])
            if share < out.shape[1]:  # ``share`` positions per sample, in order, all at once
                picks = np.sort(np.argsort(rng.random(out.shape[:2]), axis=1)[:, :share], axis=1)
                out = np.take_along_axis(out, picks[..., None], axis=1)
            fit_here = min(max(fit_count - start, 0), len(out))
            for rows, which in ((out[:fit_here], 0), (out[fit_here:], 1)):
                if len(rows):
                    part[which].append(rows.reshape(-1, out.shape[-1]))
    result = []
    for fit, held in parts:
        x = np.concatenate(fit)
        if len(x) > max_rows:
            x = x[np.sort(rng.choice(len(x), max_rows, replace=False))]
        result.append((x, np.concatenate(held) if held else None))
    return result


def _call_inputs(model, layer) -> list:
    """The input tensor of each call of ``layer`` in ``model`` (several for a shared layer)."""
    nodes = getattr(model, "_network_nodes", ())
    inputs = [layer.get_input_at(i) for i in range(len(layer._inbound_nodes))
              if f"{layer.name}_ib-{i}" in nodes]
    return inputs or [layer.input]


def _input_rows(layer, samples: int, max_rows: int) -> int:
    """Rows of ``layer``'s input matrix from ``samples`` samples (``max_rows`` if unknown)."""
    try:
        shape = layer.output.shape if isinstance(layer, keras.layers.Conv2D) else layer.input.shape
    except (AttributeError, RuntimeError, ValueError):  # a shared layer has no single tensor
        return max_rows
    positions = shape[1:-1]
    if any(p is None for p in positions):
        return max_rows
    return min(max_rows, samples * int(np.prod(positions, dtype=np.int64)))


def _input_group(layers, refined, samples: int, max_rows: int, budget: int = INPUT_BUDGET) -> list:
    """The leading layers to refine whose input rows (fit and held out) fit ``budget`` floats."""
    group, size = [], 0
    for layer in layers:
        if id(layer) not in refined:
            continue
        floats = int(np.prod(layer.kernel.shape[:-1])) * _input_rows(layer, samples, max_rows)
        if group and size + floats > budget:
            break
        group.append(layer)
        size += floats
    return group


def _split(data, holdout: float, seed: int):
    """(fit samples, held-out samples or None): a random ``holdout`` fraction is held out."""
    count = sample_count(data)
    held = int(round(holdout * count))
    if held < 1 or held >= count:
        return take(data, slice(None)), None
    order = np.random.default_rng(seed).permutation(count)
    return take(data, order[held:]), take(data, order[:held])


def product_quantize(model: keras.Model, subvector_size: int = 4, codebook_size: int = 16,
                     layers=None, calibration_data=None, sweeps: int = 2,
                     max_rows: int = 4096, seed: int = 0, holdout: float = HOLDOUT,
                     ridge: float = RIDGE) -> keras.Model:
    """Replace Dense / Conv2D layers by :class:`PQDense` / :class:`PQConv2D`.

    Args:
        model: a built Sequential or Functional tf_keras model (never modified).
        subvector_size: ``d``, rows per sub-space; must divide each quantized Dense layer's input
            dimension and each Conv2D's input channels.
        codebook_size: ``K`` >= 2 codewords per sub-space; a layer with fewer output units than
            ``K`` keeps all its sub-vectors (exact).
        layers: names of Dense / Conv2D layers to quantize (each must be quantizable, else
            ValueError); None for every layer that can be: the others (Conv2DTranspose, grouped
            convs, channels ``d`` does not divide) are skipped and listed in the report.
        calibration_data: input samples (a list of arrays for a model with several inputs);
            when given, codebooks and assignments are refined Q-CNN style against each layer's
            output error (top-level layers).
        sweeps: at most this many Q-CNN refinement passes over the sub-spaces.
        max_rows: at most this many input rows (pixels for a Conv2D) are used for refinement.
        seed: k-means and hold-out seed.
        holdout: fraction of ``calibration_data`` held out; refinement stops when the error on
            it rises (early stopping), so the codebooks do not overfit the calibration samples.
        ridge: strength of the pull of each refined codeword toward its weights (see
            :func:`_qcnn_refine`), relative to the sub-space's input energy.

    Returns:
        A new, uncompiled model; ``fit`` fine-tunes the codebooks (assignments stay fixed). Its
        ``transform_report`` lists the quantized and the skipped layers.

    Raises:
        ValueError: for a bad argument, a layer named in ``layers`` that cannot be quantized
            (with the reason), or a bad layer name.

    References:
        Wu et al., "Quantized Convolutional Neural Networks for Mobile Devices", CVPR 2016.
    """
    check_graph_model(model)
    for arg, val, least in (("subvector_size", subvector_size, 1), ("codebook_size", codebook_size, 1),
                            ("sweeps", sweeps, 0), ("max_rows", max_rows, 1)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < least:
            raise ValueError(f"`{arg}` must be an int >= {least}. Received: {arg}={val!r}")
    if codebook_size < 2:
        raise ValueError(f"`codebook_size` must be an int >= 2. Received: codebook_size={codebook_size}")
    for arg, val, top in (("holdout", holdout, 1.0), ("ridge", ridge, np.inf)):
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 <= val < top:
            raise ValueError(f"`{arg}` must be in [0, {top}). Received: {arg}={val!r}")
    d, k = int(subvector_size), int(codebook_size)
    report = TransformReport("product_quantize")
    if layers is None:
        selected = []
        for layer in iter_layers(model):
            if not any(hasattr(layer, w) for w in ("kernel", "depthwise_kernel", "pointwise_kernel")):
                continue
            why = _refusal(layer, d)
            if why is None:
                selected.append(layer)
            else:
                report.skipped[layer.name] = why
    else:
        selected = find_layers(model, layers, SUPPORTED)
        for layer in selected:
            why = _refusal(layer, d)
            if why is not None:
                raise ValueError(
                    f"`layers` names layer '{layer.name}' ({type(layer).__name__}), which product "
                    f"quantization cannot quantize: {why}. Leave it out of `layers`.")
    top = set(id(layer) for layer in model.layers)
    fit_x = held_x = None
    if calibration_data is not None:
        fit_x, held_x = _split(calibration_data, holdout, seed)
    refined = {id(layer) for layer in selected if id(layer) in top} if fit_x is not None else set()
    inputs = {}
    plans, small, progress = {}, [], Progress("product_quantize", len(selected))
    calibration = fit_x if held_x is None else (
        [np.concatenate(pair) for pair in zip(fit_x, held_x)] if isinstance(fit_x, list)
        else np.concatenate([fit_x, held_x]))
    def kmeans(layer):
        kernel = layer.kernel.numpy()
        w2d = kernel.reshape(-1, kernel.shape[-1])
        if id(layer) in refined and sweeps:
            return w2d, _quantize_matrix(w2d, d, k, seed, KMEANS_ITERS_BEFORE_REFINE, final_assignment=False)
        return w2d, _quantize_matrix(w2d, d, k, seed, KMEANS_ITERS)

    def refine(name, w2d, books, assign, x, x_held):
        books, assign, _ = _qcnn_refine(x, w2d, books, assign, sweeps, ridge, x_held)
        progress.step(name)
        return books, assign

    # k-means runs LOOKAHEAD layers ahead on one thread and the refinements on another while
    # this one collects layer inputs (TF): their large numpy steps release the GIL, and on
    # ResNet50 at 64x64 (12.9 -> 10-11 s) one thread left a core idle most of the time; two
    # refinement threads were slower (GIL contention). Each layer's k-means has its own seeded
    # stream and each refinement its own arrays, so results do not depend on the overlap.
    refine_pool = ThreadPoolExecutor(1, thread_name_prefix="product_quantize_refine")
    try:
        with run_ahead(kmeans, selected, LOOKAHEAD, "product_quantize_kmeans") as clustered:
            for i, (layer, future) in enumerate(zip(selected, clustered)):
                if id(layer) in refined and id(layer) not in inputs:  # the next layers' inputs, one pass
                    group = _input_group(selected[i:], refined, sample_count(calibration), max_rows)
                    for name in [n for n, plan in plans.items() if not isinstance(plan, tuple)]:
                        plans[name] = plans[name].result()  # the previous group's inputs are freed
                    inputs.update(zip(map(id, group), _layer_inputs(
                        model, group, calibration, sample_count(fit_x), max_rows, seed)))
                w2d, (books, assign) = future.result()
                if id(layer) not in inputs:
                    plans[layer.name] = (books, assign)
                    progress.step(layer.name)
                    continue
                x, x_held = inputs.pop(id(layer))
                if len(x) < SAMPLES_PER_CODEWORD * k:
                    small.append(f"'{layer.name}' ({len(x)} rows)")
                plans[layer.name] = refine_pool.submit(refine, layer.name, w2d, books, assign, x, x_held)
        plans = {name: plan if isinstance(plan, tuple) else plan.result() for name, plan in plans.items()}
    finally:
        refine_pool.shutdown(wait=True, cancel_futures=True)
    report.transformed.extend(layer.name for layer in selected)
    progress.close()
    if small:
        log.warning(
            "product_quantize: calibration_data is small for codebook_size=%d: fewer than %d rows "
            "for %s; the refined codebooks may overfit. Pass at least %d samples.",
            k, SAMPLES_PER_CODEWORD * k, ", ".join(small), SAMPLES_PER_CODEWORD * k)

    def rule(layer):
        if layer.name not in plans or _refusal(layer, d) is not None:
            return None
        books, assign = plans[layer.name]
        config = layer.get_config()
        config.update(subvector_size=d, codebook_size=int(books.shape[1]))
        cls = PQDense if isinstance(layer, keras.layers.Dense) else PQConv2D
        new = cls.from_config(config)
        weights = [books] + ([layer.bias.numpy()] if layer.use_bias else []) + [assign]
        return Replacement([new], [weights])

    result = rebuild(model, rule)
    attach(result, report)
    report.warn_if_noop()
    return result


def decode(model: keras.Model) -> keras.Model:
    """Replace every PQ layer by a plain Dense / Conv2D holding the decoded kernel (for TFLite)."""
    check_graph_model(model)

    def rule(layer):
        if not isinstance(layer, PQ_LAYERS):
            return None
        config = layer.get_config()
        config.pop("subvector_size")
        config.pop("codebook_size")
        cls = keras.layers.Dense if isinstance(layer, PQDense) else keras.layers.Conv2D
        weights = [layer.kernel.numpy()] + ([layer.bias.numpy()] if layer.use_bias else [])
        return Replacement([cls.from_config(config)], [weights])

    return rebuild(model, rule)


def pq_size(model: keras.Model) -> dict:
    """Packed bytes of each PQ layer: float32 codebooks + ceil(log2 K)-bit assignments + bias.

    Returns:
        ``{layer name: {"bytes", "float32_bytes"}}`` for the PQ layers, plus a ``"total"`` entry.
    """
    sizes, total, total_f = {}, 0, 0
    for layer in iter_layers(model):
        if not isinstance(layer, PQ_LAYERS):
            continue
        M, K, d = layer.codebooks.shape
        bits = max(1, math.ceil(math.log2(K)))
        bias = 4 * int(layer.bias.shape[0]) if layer.use_bias else 0
        nbytes = 4 * M * K * d + -(-M * layer.kernel_shape[-1] * bits // 8) + bias
        fbytes = 4 * int(np.prod(layer.kernel_shape)) + bias
        sizes[layer.name] = {"bytes": int(nbytes), "float32_bytes": int(fbytes)}
        total += nbytes
        total_f += fbytes
    sizes["total"] = {"bytes": int(total), "float32_bytes": int(total_f)}
    return sizes
