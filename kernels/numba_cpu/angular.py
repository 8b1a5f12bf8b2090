"""Numba sums over pairs of edges of one centre (contract: ``reference/angular.py``).

Owner computes: each parallel iteration is one centre, which owns its output row and its CSR
range of edges, and loops over the pairs ``j < k`` of that range. No triplet list is
materialised: the scratch is one row per edge of the centre (unit vector, inverse length, weights) and the
Chebyshev values of the pair in hand. Both edges of a pair belong to the owner, so the adjoint
and the Jacobian add to both rows without races. Everything is accumulated in float64.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ._compile import compile_pair, pick


def _load(vectors, weights, dweights, start, deg, c, unit, inv, w, dw, with_dw):
    """The centre's edges into float64 scratch rows: unit vectors, inverse lengths, weights."""
    for q in range(deg):
        e = start + q
        x, y, z = np.float64(vectors[e, 0]), np.float64(vectors[e, 1]), np.float64(vectors[e, 2])
        d = np.sqrt(x * x + y * y + z * z)
        unit[q, 0], unit[q, 1], unit[q, 2] = x / d, y / d, z / d
        inv[q] = 1.0 / d
        for ch in range(c):
            w[q, ch] = np.float64(weights[e, ch])
            if with_dw:
                dw[q, ch] = np.float64(dweights[e, ch])


_load = numba.njit(cache=True, inline="always")(_load)


def _chebyshev_t(x, np1, t, dt, with_dt):
    """T_n(x) (and dT_n/dx) for n < np1 by the three-term recurrences (exact at x = +-1)."""
    t[0] = 1.0
    dt[0] = 0.0
    if np1 > 1:
        t[1] = x
        dt[1] = 1.0
    for n in range(2, np1):
        t[n] = 2.0 * x * t[n - 1] - t[n - 2]
        if with_dt:
            dt[n] = 2.0 * t[n - 1] + 2.0 * x * dt[n - 1] - dt[n - 2]


_chebyshev_t = numba.njit(cache=True, inline="always")(_chebyshev_t)


def _angular_sum_kernel(vectors, weights, offsets, out):
    n_atoms, c, np1 = out.shape
    for i in numba.prange(n_atoms):
        start = offsets[i]
        deg = offsets[i + 1] - start
        acc = np.zeros((c, np1))
        part = np.empty((c, np1))  # sum over the partners b of one edge a
        unit = np.empty((deg, 3))
        inv = np.empty(deg)
        w = np.empty((deg, c))
        t = np.empty(np1)
        dt = np.empty(np1)
        _load(vectors, weights, weights, start, deg, c, unit, inv, w, w, False)
        for a in range(deg):
            part[:, :] = 0.0
            for b in range(a + 1, deg):
                cos = unit[a, 0] * unit[b, 0] + unit[a, 1] * unit[b, 1] + unit[a, 2] * unit[b, 2]
                _chebyshev_t(cos, np1, t, dt, False)
                for ch in range(c):
                    wb = w[b, ch]
                    for n in range(np1):
                        part[ch, n] += wb * t[n]
            for ch in range(c):
                for n in range(np1):
                    acc[ch, n] += w[a, ch] * part[ch, n]
        for ch in range(c):
            for n in range(np1):
                out[i, ch, n] = acc[ch, n]


def _edge_grads_kernel(grad, vectors, weights, dweights, offsets, out):
    n_atoms, c, np1 = grad.shape
    for i in numba.prange(n_atoms):
        start = offsets[i]
        deg = offsets[i + 1] - start
        unit = np.empty((deg, 3))
        inv = np.empty(deg)
        w = np.empty((deg, c))
        dw = np.empty((deg, c))
        g = np.zeros((deg, 3))
        gam = np.empty((c, np1))
        t = np.empty(np1)
        dt = np.empty(np1)
        _load(vectors, weights, dweights, start, deg, c, unit, inv, w, dw, True)
        for ch in range(c):
            for n in range(np1):
                gam[ch, n] = np.float64(grad[i, ch, n])
        for a in range(deg):
            ax, ay, az = unit[a, 0], unit[a, 1], unit[a, 2]
            gx, gy, gz = 0.0, 0.0, 0.0
            for b in range(a + 1, deg):
                bx, by, bz = unit[b, 0], unit[b, 1], unit[b, 2]
                cos = ax * bx + ay * by + az * bz
                _chebyshev_t(cos, np1, t, dt, True)
                # coef: coefficient of d cos; ra, rb: of the radial derivatives of w_a, w_b
                coef, ra, rb = 0.0, 0.0, 0.0
                for ch in range(c):
                    p, dp = 0.0, 0.0
                    for n in range(np1):
                        p += gam[ch, n] * t[n]
                        dp += gam[ch, n] * dt[n]
                    coef += w[a, ch] * w[b, ch] * dp
                    ra += dw[a, ch] * w[b, ch] * p
                    rb += w[a, ch] * dw[b, ch] * p
                # d cos / d r_a = (u_b - cos u_a) / d_a, and symmetrically
                ka = coef * inv[a]
                kb = coef * inv[b]
                sa = ra - ka * cos
                sb = rb - kb * cos
                gx += ka * bx + sa * ax
                gy += ka * by + sa * ay
                gz += ka * bz + sa * az
                g[b, 0] += kb * ax + sb * bx
                g[b, 1] += kb * ay + sb * by
                g[b, 2] += kb * az + sb * bz
            g[a, 0] += gx
            g[a, 1] += gy
            g[a, 2] += gz
        for q in range(deg):
            for x in range(3):
                out[start + q, x] = g[q, x]


def _jacobian_kernel(vectors, weights, dweights, offsets, out):
    _, c, np1, _ = out.shape
    n_atoms = offsets.shape[0] - 1
    for i in numba.prange(n_atoms):
        start = offsets[i]
        deg = offsets[i + 1] - start
        unit = np.empty((deg, 3))
        inv = np.empty(deg)
        w = np.empty((deg, c))
        dw = np.empty((deg, c))
        jac = np.zeros((deg, c, np1, 3))
        t = np.empty(np1)
        dt = np.empty(np1)
        da = np.empty(3)
        db = np.empty(3)
        _load(vectors, weights, dweights, start, deg, c, unit, inv, w, dw, True)
        for a in range(deg):
            for b in range(a + 1, deg):
                cos = unit[a, 0] * unit[b, 0] + unit[a, 1] * unit[b, 1] + unit[a, 2] * unit[b, 2]
                _chebyshev_t(cos, np1, t, dt, True)
                for x in range(3):
                    da[x] = (unit[b, x] - cos * unit[a, x]) * inv[a]
                    db[x] = (unit[a, x] - cos * unit[b, x]) * inv[b]
                for ch in range(c):
                    ww = w[a, ch] * w[b, ch]
                    ra = dw[a, ch] * w[b, ch]
                    rb = w[a, ch] * dw[b, ch]
                    for n in range(np1):
                        for x in range(3):
                            jac[a, ch, n, x] += ww * dt[n] * da[x] + ra * t[n] * unit[a, x]
                            jac[b, ch, n, x] += ww * dt[n] * db[x] + rb * t[n] * unit[b, x]
        for q in range(deg):
            for ch in range(c):
                for n in range(np1):
                    for x in range(3):
                        out[start + q, ch, n, x] = jac[q, ch, n, x]


_angular_sum = compile_pair(_angular_sum_kernel)
_edge_grads = compile_pair(_edge_grads_kernel)
_jacobian = compile_pair(_jacobian_kernel)


def _work(offsets, c, np1) -> int:
    """Pairs times channels times orders: the work of a launch (picks serial or parallel)."""
    deg = (offsets[1:] - offsets[:-1]).to(torch.float64)
    return int(float((deg * (deg - 1)).sum()) * 0.5 * c * np1)


def angular_sum(vectors, weights, offsets, n_max):
    n, c = offsets.shape[0] - 1, weights.shape[1]
    out = torch.empty((n, c, n_max + 1), dtype=vectors.dtype)
    kernel = pick(_angular_sum, _work(offsets, c, n_max + 1))
    kernel(vectors.numpy(), weights.numpy(), offsets.numpy(), out.numpy())
    return out


def angular_sum_edge_grads(grad, vectors, weights, dweights, offsets):
    out = torch.empty((vectors.shape[0], 3), dtype=vectors.dtype)
    kernel = pick(_edge_grads, _work(offsets, weights.shape[1], grad.shape[2]))
    kernel(grad.numpy(), vectors.numpy(), weights.numpy(), dweights.numpy(), offsets.numpy(), out.numpy())
    return out


def angular_sum_jacobian(vectors, weights, dweights, offsets, n_max):
    c = weights.shape[1]
    out = torch.empty((vectors.shape[0], c, n_max + 1, 3), dtype=vectors.dtype)
    kernel = pick(_jacobian, _work(offsets, c, n_max + 1))
    kernel(vectors.numpy(), weights.numpy(), dweights.numpy(), offsets.numpy(), out.numpy())
    return out
