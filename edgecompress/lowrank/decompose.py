"""The numerical side of low-rank approximation: spectra and factors of Dense and Conv2D kernels.

Pure numpy on kernels in Keras layout: Dense ``(n_in, n_out)``, Conv2D ``(kh, kw, c_in, c_out)``.
Every factor is returned in the layout of the plain Keras layer that will hold it.

Cost is bounded for large layers: spectra come from one singular-value computation per matrix
(no vectors), leading vectors at a small rank come from a randomized truncated SVD
(scikit-learn's ``randomized_svd``, Halko et al.) instead of a full one, every tensor
contraction runs pairwise through BLAS (``np.einsum(..., optimize=True)``), and HOOI stops
after ``iterations`` sweeps or when the captured energy stops growing by ``tol``.

References:
    Denton et al., "Exploiting Linear Structure Within Convolutional Networks for Efficient
    Evaluation", NeurIPS 2014 (SVD of fully connected layers).
    Jaderberg et al., "Speeding up Convolutional Neural Networks with Low Rank Expansions",
    BMVC 2014 (k x 1 then 1 x k spatial factorization; reshape as in Qualcomm AIMET).
    Kim et al., "Compression of Deep Convolutional Neural Networks for Fast and Low Power Mobile
    Applications", ICLR 2016 (Tucker-2: 1x1 reduce, k x k core, 1x1 expand).
    De Lathauwer et al., "On the Best Rank-(R1, ..., RN) Approximation of Higher-Order Tensors",
    SIAM J. Matrix Anal. Appl. 2000 (HOSVD and HOOI).
    Halko, Martinsson, Tropp, "Finding Structure with Randomness", SIAM Review 2011 (randomized
    truncated SVD).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.extmath import randomized_svd

TRUNCATED_MIN_SIZE = 256
"""Leading vectors of a matrix whose smaller side has at least this many entries, at a rank of at
most a quarter of it, come from a randomized truncated SVD (exact LAPACK SVD otherwise)."""
HOOI_TOL = 1e-4
"""HOOI stops when a sweep raises the captured energy ``||core||^2 / ||kernel||^2`` by less."""


def singular_values(matrix: np.ndarray) -> np.ndarray:
    """Singular values of a 2-D array, largest first (float64)."""
    return np.linalg.svd(np.asarray(matrix, np.float64), compute_uv=False)


def rank_for_energy(values: np.ndarray, energy: float) -> int:
    """The smallest rank whose leading singular values keep ``energy`` of the squared sum."""
    power = np.asarray(values, np.float64) ** 2
    total = power.sum()
    if total == 0:
        return 1
    kept = np.cumsum(power) / total
    return int(min(np.searchsorted(kept, energy - 1e-12) + 1, len(values)))


def discarded_energy(values: np.ndarray) -> np.ndarray:
    """``out[r]``: the fraction of squared singular values dropped at rank ``r`` (index 0..n)."""
    power = np.asarray(values, np.float64) ** 2
    total = power.sum() or 1.0
    tail = np.concatenate([np.cumsum(power[::-1])[::-1], [0.0]])
    return tail / total


def truncated_svd(matrix: np.ndarray, rank: int, seed: int = 0):
    """``(U, s, Vt)`` of the leading ``rank`` singular triplets of a 2-D array (float64).

    Randomized (Halko et al., 10 oversamples, 4 power iterations, fixed seed) when ``rank`` is
    small against a large matrix (see :data:`TRUNCATED_MIN_SIZE`); exact otherwise.
    """
    matrix = np.asarray(matrix, np.float64)
    small = min(matrix.shape)
    if small >= TRUNCATED_MIN_SIZE and rank <= small // 4:
        return randomized_svd(matrix, rank, n_oversamples=10, n_iter=4, random_state=seed)
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    return u[:, :rank], s[:rank], vt[:rank]


def svd_factors(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """W ~= (U sqrt(S)) (sqrt(S) V^T): the kernels ``(n_in, rank)`` and ``(rank, n_out)``."""
    u, s, vt = truncated_svd(kernel, rank)
    root = np.sqrt(s)
    first = u * root
    second = root[:, None] * vt
    return first.astype(np.float32), second.astype(np.float32)


def spatial_matrix(kernel: np.ndarray) -> np.ndarray:
    """A conv kernel ``(kh, kw, cin, cout)`` as the ``(kh*cin, kw*cout)`` matrix of spatial SVD."""
    kh, kw, cin, cout = kernel.shape
    return np.asarray(kernel).transpose(0, 2, 1, 3).reshape(kh * cin, kw * cout)


def spatial_svd_factors(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """A k x k kernel as a vertical ``(kh, 1, cin, rank)`` then a horizontal ``(1, kw, rank, cout)``."""
    kh, kw, cin, cout = kernel.shape
    first, second = svd_factors(spatial_matrix(kernel), rank)
    vertical = first.reshape(kh, cin, rank)[:, None]
    horizontal = second.reshape(rank, kw, cout).transpose(1, 0, 2)[None]
    return vertical, horizontal


def unfold(kernel: np.ndarray, mode: int) -> np.ndarray:
    """The mode-``mode`` unfolding of a tensor: that axis first, the rest flattened."""
    kernel = np.asarray(kernel)
    return np.moveaxis(kernel, mode, 0).reshape(kernel.shape[mode], -1)


def tucker2_spectra(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values of the input-channel and output-channel unfoldings of a conv kernel."""
    return singular_values(unfold(kernel, 2)), singular_values(unfold(kernel, 3))


def _leading(matrix: np.ndarray, rank: int) -> np.ndarray:
    return truncated_svd(matrix, rank)[0]


def tucker2_factors(kernel: np.ndarray, rank_in: int, rank_out: int, iterations: int = 0,
                    tol: float = HOOI_TOL):
    """Tucker-2 of a conv kernel over its channel axes, by HOSVD and at most ``iterations`` HOOI sweeps.

    A mode kept at its full channel count gets the identity factor (Tucker-1), so the caller can
    drop that 1x1 layer. HOOI stops early when a sweep raises the captured energy by less than
    ``tol``; each contraction is pairwise (``optimize=True``): the three-operand einsum without it
    took 260 s on a 3x3x512x512 kernel, 0.02 s with it.

    Returns:
        ``(reduce, core, expand)`` kernels of shapes ``(1, 1, cin, rank_in)``,
        ``(kh, kw, rank_in, rank_out)`` and ``(1, 1, rank_out, cout)``.
    """
    k = np.asarray(kernel, np.float64)
    cin, cout = k.shape[2:]

    def factor(matrix, rank, size):
        return np.eye(size) if rank == size else _leading(matrix, rank)

    def project(u_in, u_out):
        return np.einsum("abio,ir,os->abrs", k, u_in, u_out, optimize=True)

    u_in = factor(unfold(k, 2), rank_in, cin)
    u_out = factor(unfold(k, 3), rank_out, cout)
    total = float(np.sum(k * k)) or 1.0
    captured = float(np.sum(project(u_in, u_out) ** 2)) / total
    for _ in range(iterations if rank_in < cin and rank_out < cout else 0):
        # HOOI: each factor is the best one given the other (one full mode needs no sweep)
        u_in = factor(unfold(np.einsum("abio,os->abis", k, u_out, optimize=True), 2), rank_in, cin)
        u_out = factor(unfold(np.einsum("abio,ir->abro", k, u_in, optimize=True), 3),
                       rank_out, cout)
        now = float(np.sum(project(u_in, u_out) ** 2)) / total
        done, captured = now - captured < tol, now
        if done:
            break
    core = project(u_in, u_out)
    return (u_in[None, None].astype(np.float32), core.astype(np.float32),
            u_out.T[None, None].astype(np.float32))
