"""Reference sums over pairs of edges of one centre (contract: ``kernels/angular.py``).

The pairs are materialised (every ``j < k`` of each centre), which is what makes this the oracle
and not the fast path: plain torch ops, exact in float64, twice differentiable in the vectors and
the weights.
"""

from __future__ import annotations

import torch

from .chebyshev import IDENTITY
from .chebyshev import chebyshev as _chebyshev


def pairs(offsets: torch.Tensor, n_edges: int):
    """``(j, k, owner)``: every pair of edges ``j < k`` of the same centre, by centre then ``j``."""
    n = offsets.shape[0] - 1
    counts = offsets[1:] - offsets[:-1]
    owner_e = torch.repeat_interleave(torch.arange(n, device=offsets.device), counts, output_size=n_edges)
    e = torch.arange(n_edges, device=offsets.device)
    after = offsets[1:].index_select(0, owner_e) - e - 1  # edges k > j of the same centre
    total = int(after.sum()) if n_edges else 0
    j = torch.repeat_interleave(e, after, output_size=total)
    first = torch.cumsum(after, 0) - after  # position of each j's first pair
    k = j + 1 + torch.arange(total, device=offsets.device) - first.index_select(0, j)
    return j, k, owner_e.index_select(0, j)


def _geometry(vectors, j, k):
    vj, vk = vectors.index_select(0, j), vectors.index_select(0, k)
    dj = torch.linalg.vector_norm(vj, dim=1)
    dk = torch.linalg.vector_norm(vk, dim=1)
    cos = (vj * vk).sum(1) / (dj * dk)
    return vj, vk, dj, dk, cos


def _t(cos, n_max: int, order: int):
    """T_n(cos) (P, n_max+1), and dT_n/dcos with order 1 (three-term recurrence, never arccos)."""
    values, d1, _ = _chebyshev(cos, n_max, 1, IDENTITY, 0.0, 1.0, 0.0, order)
    return values, d1


def angular_sum(vectors, weights, offsets, n_max: int):
    n, c = offsets.shape[0] - 1, weights.shape[1]
    j, k, owner = pairs(offsets, vectors.shape[0])
    _, _, _, _, cos = _geometry(vectors, j, k)
    t, _ = _t(cos, n_max, 0)
    ww = weights.index_select(0, j) * weights.index_select(0, k)  # (P, C)
    out = vectors.new_zeros((n, c, n_max + 1))
    return out.index_add(0, owner, ww[:, :, None] * t[:, None, :])


def _pair_terms(vectors, weights, dweights, offsets, n_max):
    """Per pair: the two edges, their unit vectors, d cos / d r_j and d cos / d r_k, T and T'."""
    j, k, owner = pairs(offsets, vectors.shape[0])
    vj, vk, dj, dk, cos = _geometry(vectors, j, k)
    uj, uk = vj / dj[:, None], vk / dk[:, None]
    dcos_j = (uk - cos[:, None] * uj) / dj[:, None]  # (P, 3)
    dcos_k = (uj - cos[:, None] * uk) / dk[:, None]
    t, dt = _t(cos, n_max, 1)
    wj, wk = weights.index_select(0, j), weights.index_select(0, k)
    dwj, dwk = dweights.index_select(0, j), dweights.index_select(0, k)
    return j, k, owner, uj, uk, dcos_j, dcos_k, t, dt, wj, wk, dwj, dwk


def angular_sum_edge_grads(grad, vectors, weights, dweights, offsets):
    """``g_e = d(sum grad * G)/d r_e`` (E, 3), from the closed-form derivatives (ACE_SPEC.md 5)."""
    j, k, owner, uj, uk, dcos_j, dcos_k, t, dt, wj, wk, dwj, dwk = _pair_terms(
        vectors, weights, dweights, offsets, grad.shape[2] - 1)
    gam = grad.index_select(0, owner)  # (P, C, n+1)
    p = (gam * t[:, None, :]).sum(2)  # sum_n gamma T_n, (P, C)
    dp = (gam * dt[:, None, :]).sum(2)  # sum_n gamma T'_n
    a = (wj * wk * dp).sum(1)  # the coefficient of d cos
    bj = (dwj * wk * p).sum(1)  # of the radial derivative of w_j
    bk = (wj * dwk * p).sum(1)
    gj = a[:, None] * dcos_j + bj[:, None] * uj
    gk = a[:, None] * dcos_k + bk[:, None] * uk
    out = vectors.new_zeros(vectors.shape)
    return out.index_add(0, j, gj).index_add(0, k, gk)


def angular_sum_jacobian(vectors, weights, dweights, offsets, n_max: int):
    """``J[e, c, n] = d G[centre(e), c, n] / d r_e`` (E, C, n_max+1, 3)."""
    j, k, _, uj, uk, dcos_j, dcos_k, t, dt, wj, wk, dwj, dwk = _pair_terms(
        vectors, weights, dweights, offsets, n_max)
    ww = (wj * wk)[:, :, None]  # (P, C, 1)
    jj = (ww * dt[:, None, :])[..., None] * dcos_j[:, None, None, :] \
        + ((dwj * wk)[:, :, None] * t[:, None, :])[..., None] * uj[:, None, None, :]
    jk = (ww * dt[:, None, :])[..., None] * dcos_k[:, None, None, :] \
        + ((wj * dwk)[:, :, None] * t[:, None, :])[..., None] * uk[:, None, None, :]
    out = vectors.new_zeros((vectors.shape[0], weights.shape[1], n_max + 1, 3))
    return out.index_add(0, j, jj).index_add(0, k, jk)
