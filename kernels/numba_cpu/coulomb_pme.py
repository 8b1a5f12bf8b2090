"""Numba kernel of the exact position Hessian of a particle-mesh (PME) reciprocal energy.

The energy is ``E = pref/2 sum_(m, m') Q(m) Phi(m - m') Q(m')`` with the spread charges
``Q(m) = sum_i q_i W_i(m)`` and the separable stencil ``W_i(m) = w_x(u_ix) w_y(u_iy) w_z(u_iz)``
over ``p^3`` mesh points from a base point ``b_i``; ``u`` are the atoms' mesh coordinates
(``u = ns * frac``, so ``grad_x = A grad_u`` with ``A[a, d] = ns_d inv(cell)[a, d]``).

For a pair ``(i, j)`` the block is ``pref q_i q_j sum_(s, s') dW_i(b_i + s) Phi(b_i - b_j + s - s') dW_j(b_j + s')``;
only ``t = s - s'`` enters Phi, and the stencils are products over axes, so the sum is
``sum_t Phi(D + t) c_x(t_x) c_y(t_y) c_z(t_z)`` with 1D correlations ``c_d(t) = sum_(s - s' = t) f(s) g(s')``
of the weights or their derivatives: ``(2p - 1)^3`` mesh values per pair instead of ``p^6``
(p = 7: 2197 instead of 117649). The diagonal blocks add ``pref q_i sum_m ddW_i(m) V(m)`` with
the mesh potential ``V = Phi * Q``.
"""

from __future__ import annotations

import numba
import numpy as np

from ._compile import _LAYER, _OneLaunchAtATime, _renamed, pick


def _pme_hessian_kernel(phi, pot, base, w, dw, ddw, q, amat, pref, order, out):
    """``out (n, 3, n, 3)`` (float64, written in full): the Hessian described in the module
    docstring. ``phi``, ``pot``: (nx, ny, nz) meshes; ``base`` (n, 3) int64, the (unwrapped) mesh
    index of each atom's first stencil point; ``w``, ``dw``, ``ddw`` (n, 3, p): the 1D weights
    and their first and second derivatives in ``u``; ``q`` (n,); ``amat`` (3, 3); ``order`` (n,):
    the atoms in mesh order (the pairs of consecutive atoms read nearby parts of ``phi``)."""
    n = base.shape[0]
    p = w.shape[2]
    span = 2 * p - 1
    nx, ny, nz = phi.shape
    for step in numba.prange(n):
        # rows in the order 0, n-1, 1, n-2, ...: contiguous chunks of steps get equal numbers of pairs
        ii = step // 2 if step % 2 == 0 else n - 1 - step // 2
        i = order[ii]
        corr = np.empty((3, span, 4))
        block = np.empty((span, span, span))
        iy = np.empty(span, dtype=np.int64)
        iz = np.empty(span, dtype=np.int64)
        hu = np.empty((3, 3))
        hx = np.empty((3, 3))
        for jj in range(ii, n):
            j = order[jj]
            # 1D correlations c[d, t, type], type = 2 * (derivative on i) + (derivative on j), t = s - s'
            corr[:] = 0.0
            for d in range(3):
                for s in range(p):
                    wi = w[i, d, s]
                    dwi = dw[i, d, s]
                    for s2 in range(p):
                        t = s - s2 + p - 1
                        wj = w[j, d, s2]
                        dwj = dw[j, d, s2]
                        corr[d, t, 0] += wi * wj
                        corr[d, t, 1] += wi * dwj
                        corr[d, t, 2] += dwi * wj
                        corr[d, t, 3] += dwi * dwj
            # the (2p - 1)^3 values Phi(D + t) as one contiguous block
            for t in range(span):
                iy[t] = (base[i, 1] - base[j, 1] + t - (p - 1)) % ny
                iz[t] = (base[i, 2] - base[j, 2] + t - (p - 1)) % nz
            z_start = iz[0]
            for tx in range(span):
                mx = (base[i, 0] - base[j, 0] + tx - (p - 1)) % nx
                for ty in range(span):
                    if z_start + span <= nz:
                        for tz in range(span):
                            block[tx, ty, tz] = phi[mx, iy[ty], z_start + tz]
                    else:
                        for tz in range(span):
                            block[tx, ty, tz] = phi[mx, iy[ty], iz[tz]]
            # H_ac needs the types (x, y, z) = (2[a=x] + [c=x], ...): nine of the 64 combinations
            f00 = f01 = f02 = f10 = f11 = f12 = f20 = f21 = f22 = 0.0
            for tx in range(span):
                y00 = y10 = y01 = y20 = y30 = y21 = y02 = y12 = y03 = 0.0
                for ty in range(span):
                    z0 = z1 = z2 = z3 = 0.0
                    for tz in range(span):
                        v = block[tx, ty, tz]
                        z0 += v * corr[2, tz, 0]
                        z1 += v * corr[2, tz, 1]
                        z2 += v * corr[2, tz, 2]
                        z3 += v * corr[2, tz, 3]
                    c0 = corr[1, ty, 0]
                    c1 = corr[1, ty, 1]
                    c2 = corr[1, ty, 2]
                    y00 += c0 * z0
                    y10 += c1 * z0
                    y01 += c0 * z1
                    y20 += c2 * z0
                    y30 += corr[1, ty, 3] * z0
                    y21 += c2 * z1
                    y02 += c0 * z2
                    y12 += c1 * z2
                    y03 += c0 * z3
                c0 = corr[0, tx, 0]
                c1 = corr[0, tx, 1]
                c2 = corr[0, tx, 2]
                f00 += corr[0, tx, 3] * y00
                f01 += c2 * y10
                f02 += c2 * y01
                f10 += c1 * y20
                f11 += c0 * y30
                f12 += c0 * y21
                f20 += c1 * y02
                f21 += c0 * y12
                f22 += c0 * y03
            hu[0, 0] = f00
            hu[0, 1] = f01
            hu[0, 2] = f02
            hu[1, 0] = f10
            hu[1, 1] = f11
            hu[1, 2] = f12
            hu[2, 0] = f20
            hu[2, 1] = f21
            hu[2, 2] = f22
            _to_cartesian(amat, hu, pref * q[i] * q[j], hx)
            if j == i:
                for a in range(3):
                    for c in range(3):
                        out[i, a, i, c] = 0.5 * (hx[a, c] + hx[c, a])
            else:
                for a in range(3):
                    for c in range(3):
                        out[i, a, j, c] = hx[a, c]
                        out[j, c, i, a] = hx[a, c]
        # the curvature of the stencil in the mesh potential: pref q_i sum_m ddW_i(m) V(m)
        hu[:] = 0.0
        for sx in range(p):
            mx = (base[i, 0] + sx) % nx
            for sy in range(p):
                my = (base[i, 1] + sy) % ny
                for sz in range(p):
                    v = pot[mx, my, (base[i, 2] + sz) % nz]
                    for d in range(3):
                        for e in range(d, 3):
                            g = v
                            for ax in range(3):
                                s = sx if ax == 0 else (sy if ax == 1 else sz)
                                nder = (ax == d) + (ax == e)
                                if nder == 0:
                                    g *= w[i, ax, s]
                                elif nder == 1:
                                    g *= dw[i, ax, s]
                                else:
                                    g *= ddw[i, ax, s]
                            hu[d, e] += g
        for d in range(3):
            for e in range(d):
                hu[d, e] = hu[e, d]
        _to_cartesian(amat, hu, pref * q[i], hx)
        for a in range(3):
            for c in range(3):
                out[i, a, i, c] += hx[a, c]


def _to_cartesian(amat, hu, scale, hx):
    """``hx = scale A hu A^T`` (3 x 3): a block in mesh coordinates to Cartesian ones
    (``grad_x = A grad_u``, module docstring)."""
    for a in range(3):
        for c in range(3):
            acc = 0.0
            for d in range(3):
                for e in range(3):
                    acc += amat[a, d] * hu[d, e] * amat[c, e]
            hx[a, c] = scale * acc


_to_cartesian = numba.njit(cache=True, fastmath=True, inline="always")(_to_cartesian)


def _compile_fast(fn):
    """``(serial, parallel)`` as ``_compile.compile_pair`` but with ``fastmath``: the contraction's
    dot products vectorise only when LLVM may reassociate them (5x faster; the sums then differ
    from a sequential order by rounding, ~1e-16 relative, and stay deterministic for one build)."""
    serial = numba.njit(cache=True, fastmath=True)(fn)
    parallel = numba.njit(parallel=True, cache=True, fastmath=True)(_renamed(fn, "__parallel"))
    return serial, (_OneLaunchAtATime(parallel) if _LAYER == "workqueue" else parallel)


_pme_hessian = _compile_fast(_pme_hessian_kernel)


def pme_hessian(phi, pot, base, w, dw, ddw, q, amat, pref: float) -> np.ndarray:
    """The dense ``(n, 3, n, 3)`` float64 Hessian (module docstring); numpy arrays in, float64."""
    n = base.shape[0]
    out = np.empty((n, 3, n, 3))
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    wrapped = np.mod(base, np.array(phi.shape))
    order = np.lexsort((wrapped[:, 2], wrapped[:, 1], wrapped[:, 0])).astype(np.int64)
    kernel = pick(_pme_hessian, n * n)
    kernel(f64(phi), f64(pot), np.ascontiguousarray(base, dtype=np.int64), f64(w), f64(dw), f64(ddw), f64(q),
           f64(amat), float(pref), order, out)
    return out
