"""Numba evaluation of vector-valued cubic Hermite spline tables (contract: ``reference/spline.py``).

``hermite`` and ``table_row`` are the one definition of the per-column arithmetic: this module's
kernel and the fused ACE kernel (``ace_fused.py``) both inline them (``inline="always"``: inlined in
Numba's IR, so each caller's fast-math flags apply as they did to its own loop).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ._compile import compile_pair, pick


def _table_row(fl, n_seg):
    """The table row of ``fl = floor(r * rscale)`` (>= 1 by the callers' checks; the clamp only
    keeps unchecked input inside the table: a NaN fails every comparison and lands on row 0,
    giving NaN outputs as in the reference)."""
    n = 0
    if fl >= 1.0:
        n = min(int(fl), n_seg - 1)
    return n


def _hermite(coeffs, tab, n, k, t, s):
    """Column ``k`` of table ``tab``, row ``n``, at ``t = x - floor(x)`` in [0, 1): the value
    ``c0 + t (c1 + t (c2 + t c3))`` and its first and second d/dr (``s = dx/dr``, the table's
    ``rscale``), in float64. A caller that drops a derivative pays nothing for it (dead code)."""
    c0 = np.float64(coeffs[tab, n, 0, k])
    c1 = np.float64(coeffs[tab, n, 1, k])
    c2 = np.float64(coeffs[tab, n, 2, k])
    c3 = np.float64(coeffs[tab, n, 3, k])
    f = c0 + t * (c1 + t * (c2 + t * c3))
    df = (c1 + t * (2.0 * c2 + 3.0 * c3 * t)) * s
    d2f = (2.0 * c2 + 6.0 * c3 * t) * (s * s)
    return f, df, d2f


table_row = numba.njit(inline="always", cache=True)(_table_row)
hermite = numba.njit(inline="always", cache=True)(_hermite)


def _spline_kernel(coeffs, rscale, nlut, r, table_index, order, f, df, d2f):
    """One edge per iteration; ``df`` / ``d2f`` are only written when ``order`` asks for them."""
    n_edges = r.shape[0]
    n_seg = coeffs.shape[1]
    k_max = coeffs.shape[3]
    for e in numba.prange(n_edges):
        tab = table_index[e]
        s = rscale[tab]  # float64, as is all the arithmetic below (rounded once, at the store)
        x = np.float64(r[e]) * s
        fl = np.floor(x)  # a float: math.floor would convert to int, undefined for huge or NaN x
        t = x - fl
        if fl >= nlut[tab]:  # at or beyond the last node: every output is zero
            for k in range(k_max):
                f[e, k] = 0.0
                if order >= 1:
                    df[e, k] = 0.0
                if order >= 2:
                    d2f[e, k] = 0.0
            continue
        n = table_row(fl, n_seg)  # the wrapper guarantees 1 <= n
        # one loop per order (no branch inside the loop over functions, which then vectorises)
        if order == 0:
            for k in range(k_max):
                f[e, k] = hermite(coeffs, tab, n, k, t, s)[0]
        elif order == 1:
            for k in range(k_max):
                v, d, _ = hermite(coeffs, tab, n, k, t, s)
                f[e, k] = v
                df[e, k] = d
        else:
            for k in range(k_max):
                f[e, k], df[e, k], d2f[e, k] = hermite(coeffs, tab, n, k, t, s)


_spline = compile_pair(_spline_kernel)


def spline_eval(coeffs, rscale, nlut, r, table_index, order):
    """``(f, df, d2f)``, each ``(E, K)`` in the dtype of ``r`` (``None`` above ``order``)."""
    e, k = r.shape[0], coeffs.shape[3]
    outs = [torch.empty((e, k), dtype=r.dtype) if q <= order else None for q in range(3)]
    dummy = np.empty((0, 0), dtype=r.numpy().dtype)  # stands in for the outputs not asked for
    arrays = [o.numpy() if o is not None else dummy for o in outs]
    kernel = pick(_spline, e * k)
    kernel(coeffs.numpy(), rscale.numpy(), nlut.numpy(), r.numpy(), table_index.numpy(), int(order), *arrays)
    return tuple(outs)
