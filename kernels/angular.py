"""Sums over pairs of edges of one centre (the angular part of the aenet Chebyshev descriptor).

For every atom ``i`` with edges ``offsets[i]:offsets[i+1]`` (vectors ``r_e``, lengths ``d_e``),
channel ``c`` and order ``n = 0..n_max``::

    G[i, c, n] = sum over pairs j < k of edges of i of  T_n(cos theta_jk) w[j, c] w[k, c],
    cos theta_jk = r_j . r_k / (d_j d_k),

with ``T_n`` the Chebyshev polynomials of the first kind, evaluated by the three-term recurrence
(never ``cos(n arccos x)``, whose derivative is infinite at ``cos theta = +-1``). Each unordered
pair counts once. The weights ``w (E, C)`` are functions of the edge length only (the descriptor
passes ``f_c(d)`` and ``s(t_j) f_c(d)``); ``dw (E, C)`` is their derivative ``dw/dd``.

* :func:`angular_sum`: ``G (N, C, n_max+1)``.
* :func:`angular_sum_edge_grads`: the adjoint. Given ``grad = dL/dG (N, C, n_max+1)``, the
  per-edge gradient ``g_e = dL/dr_e (E, 3)`` of ``L = sum grad * G``; every edge's gradient
  depends only on its own centre's edges, so the force scatter of the graph turns it into forces.
* :func:`angular_sum_jacobian`: ``J[e, c, n] = dG[centre(e), c, n] / dr_e (E, C, n_max+1, 3)``.

The derivatives (ACE_SPEC.md 5): ``dcos/dr_j = (r_k/d_k - cos r_j/d_j) / d_j`` and
``dw[j]/dr_j = dw[j] r_j / d_j``. Every edge must have a non-zero length (the descriptor checks
that, naming the atoms); a zero length gives NaN, not an exception, here.

The Numba kernels own one centre per parallel iteration (no triplet list is materialised); the
Triton kernels run one program per centre (per block of its edges for the adjoint and the
Jacobian) over tiles of edge pairs; the torch reference materialises the pairs.
"""

from __future__ import annotations

import torch

from .backend import check_offsets, prepare


def _checked(fn, call, n_max, c_expected=None):
    vectors, weights, offsets = call.vectors, call.weights, call.offsets
    if int(n_max) != n_max or n_max < 0:
        raise ValueError(f"{fn}: n_max must be a non-negative integer, got {n_max}")
    if vectors.ndim != 2 or vectors.shape[1] != 3:
        raise ValueError(f"{fn}: vectors must be (E, 3), got {tuple(vectors.shape)}")
    e = vectors.shape[0]
    if weights.ndim != 2 or weights.shape[0] != e:
        raise ValueError(f"{fn}: weights must be (E={e}, C), got {tuple(weights.shape)}")
    dweights = call.tensors.get("dweights")
    if dweights is not None and dweights.shape != weights.shape:
        raise ValueError(f"{fn}: dweights must have the shape of weights {tuple(weights.shape)}, "
                         f"got {tuple(dweights.shape)}")
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"{fn}: offsets must be (N+1,) with N >= 0, got {tuple(offsets.shape)}")
    return e, offsets.shape[0] - 1, weights.shape[1], int(n_max)


def angular_sum(vectors: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor, n_max: int,
                backend: str | None = None, check: bool = True) -> torch.Tensor:
    """``G (N, C, n_max+1)``: the pair sums of every centre (module docstring).

    ``vectors (E, 3)`` sorted by centre with CSR ``offsets (N+1,)``, ``weights (E, C)``.
    ``check=False`` skips the value check of the offsets (no host sync; the caller vouches for them).
    """
    fn = "angular_sum"
    call = prepare(fn, "angular", backend, floats={"vectors": vectors, "weights": weights},
                   indices={"offsets": offsets})
    e, n, c, n_max = _checked(fn, call, n_max)
    if check:
        check_offsets(fn, "offsets", call.offsets, e)
    if n == 0 or e == 0 or c == 0:
        return call.zeros((n, c, n_max + 1))
    return call.impl.angular_sum(call.vectors, call.weights, call.offsets, n_max)


def angular_sum_edge_grads(grad: torch.Tensor, vectors: torch.Tensor, weights: torch.Tensor,
                           dweights: torch.Tensor, offsets: torch.Tensor, backend: str | None = None,
                           check: bool = True) -> torch.Tensor:
    """``g (E, 3)``, ``g_e = d(sum grad * G)/d r_e``: the adjoint of :func:`angular_sum`.

    ``grad (N, C, n_max+1)``, ``dweights = dw/dd (E, C)``; the rest as :func:`angular_sum`.
    """
    fn = "angular_sum_edge_grads"
    call = prepare(fn, "angular", backend,
                   floats={"vectors": vectors, "weights": weights, "dweights": dweights, "grad": grad},
                   indices={"offsets": offsets})
    g = call.grad
    n_max = g.shape[-1] - 1 if g.ndim == 3 else 0
    e, n, c, n_max = _checked(fn, call, n_max)
    if g.ndim != 3 or tuple(g.shape[:2]) != (n, c):
        raise ValueError(f"{fn}: grad must be (N={n}, C={c}, n_max+1), got {tuple(g.shape)}")
    if check:
        check_offsets(fn, "offsets", call.offsets, e)
    if n == 0 or e == 0 or c == 0:
        return call.zeros((e, 3))
    return call.impl.angular_sum_edge_grads(g, call.vectors, call.weights, call.dweights, call.offsets)


def angular_sum_jacobian(vectors: torch.Tensor, weights: torch.Tensor, dweights: torch.Tensor,
                         offsets: torch.Tensor, n_max: int, backend: str | None = None,
                         check: bool = True) -> torch.Tensor:
    """``J (E, C, n_max+1, 3)``, ``J[e] = dG[centre(e)] / d r_e`` (zero for an edge without a partner)."""
    fn = "angular_sum_jacobian"
    call = prepare(fn, "angular", backend, floats={"vectors": vectors, "weights": weights, "dweights": dweights},
                   indices={"offsets": offsets})
    e, n, c, n_max = _checked(fn, call, n_max)
    if check:
        check_offsets(fn, "offsets", call.offsets, e)
    if n == 0 or e == 0 or c == 0:
        return call.zeros((e, c, n_max + 1, 3))
    return call.impl.angular_sum_jacobian(call.vectors, call.weights, call.dweights, call.offsets, n_max)
