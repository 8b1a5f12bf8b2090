"""Numba Chebyshev polynomials of a transformed distance (contract: ``reference/chebyshev.py``)."""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from ._compile import compile_pair, pick


def _chebyshev_kernel(r, n_max, kind, code, lam, rcut, rmin, order, out, d1, d2):
    """One edge per iteration: the transform (codes of ``reference/chebyshev.py``), then the
    three-term recurrences for P, dP/dx, d2P/dx2 carried in float64 scalars, then the chain rule.
    ``d1`` / ``d2`` are only written when ``order`` asks for them."""
    n_edges = r.shape[0]
    for e in numba.prange(n_edges):
        re = np.float64(r[e])
        # x(r), dx/dr, d2x/dr2, in the same operation order as the reference
        if code == 0:  # identity
            x, dx, d2x = re, 1.0, 0.0
        elif code == 1:  # exp_cos
            y1 = math.exp(-lam * re / rcut)
            y2 = math.exp(-lam)
            x = 1.0 - 2.0 * (y1 - y2) / (1.0 - y2)
            dx = 2.0 * (lam / rcut) * y1 / (1.0 - y2)
            d2x = -(lam / rcut) * dx
        elif code == 2:  # pow: held at x = 1 (zero derivatives) where 1 - r/rcut <= 0 (or NaN)
            base = 1.0 - re / rcut
            if base > 0.0:
                x = 1.0 - 2.0 * base**lam
                dx = 2.0 * lam / rcut * base ** (lam - 1.0)
                d2x = -2.0 * lam * (lam - 1.0) / (rcut * rcut) * base ** (lam - 2.0)
            else:
                x, dx, d2x = 1.0, 0.0, 0.0
        elif code == 3:  # linear
            x, dx, d2x = 1.0 - re / rcut, -1.0 / rcut, 0.0
        else:  # aenet
            width = rcut - rmin
            x, dx, d2x = (2.0 * re - rmin - rcut) / width, 2.0 / width, 0.0
        # n = 0
        p_prev, dp_prev, d2p_prev = 1.0, 0.0, 0.0
        out[e, 0] = 1.0
        # (0 * dx rather than 0: a non-finite dx propagates as in the reference)
        if order >= 1:
            d1[e, 0] = dp_prev * dx
        if order >= 2:
            d2[e, 0] = d2p_prev * (dx * dx) + dp_prev * d2x
        if n_max == 0:
            continue
        # n = 1: T_1 = x, U_1 = 2x
        p, dp, d2p = x * kind, np.float64(kind), 0.0
        out[e, 1] = p
        if order >= 1:
            d1[e, 1] = dp * dx
        if order >= 2:
            d2[e, 1] = d2p * (dx * dx) + dp * d2x
        for n in range(1, n_max):
            p_next = 2.0 * x * p - p_prev
            dp_next = 2.0 * p + 2.0 * x * dp - dp_prev
            d2p_next = 4.0 * dp + 2.0 * x * d2p - d2p_prev
            p_prev, dp_prev, d2p_prev = p, dp, d2p
            p, dp, d2p = p_next, dp_next, d2p_next
            out[e, n + 1] = p
            if order >= 1:
                d1[e, n + 1] = dp * dx
            if order >= 2:
                d2[e, n + 1] = d2p * (dx * dx) + dp * d2x


_chebyshev = compile_pair(_chebyshev_kernel)


def chebyshev(r, n_max, kind, code, lam, rcut, rmin, order):
    """``(values, d/dr, d2/dr2)``, each ``(E, n_max+1)`` in the dtype of ``r`` (``None`` above ``order``)."""
    e = r.shape[0]
    outs = [torch.empty((e, n_max + 1), dtype=r.dtype) if q <= order else None for q in range(3)]
    dummy = np.empty((0, 0), dtype=r.numpy().dtype)  # stands in for the outputs not asked for
    arrays = [o.numpy() if o is not None else dummy for o in outs]
    kernel = pick(_chebyshev, e * (n_max + 1))
    kernel(r.numpy(), int(n_max), int(kind), int(code), float(lam), float(rcut), float(rmin), int(order), *arrays)
    return tuple(outs)
