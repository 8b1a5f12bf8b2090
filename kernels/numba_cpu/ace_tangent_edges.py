"""Numba tangent (forward mode) of the ACE edge gradients, and its scatter into H v, for the
matrix-free Hessian-vector product of ``acepy/models/ace_hvp.py``.

The edge gradient g = grad s of s(r) = sum_lm Re-pair(W_lm(rho), Y_lm(r)), W = sum_n dE/dA R_nl
(``atomic_base.py``'s adjoint), has the tangent along u (differentiating each factor of
g = sum W' Y r_hat + W grad Y; dr = r_hat . u, ut = (u - r_hat dr) / rho as in
``ace_tangent_base.py``):

    dg = V0 dr r_hat + (Gs1 . ut) r_hat + V1 ut + dr P Gs1 / rho
         + [-(ut (r_hat . Gs0) + r_hat (ut . Gs0)) + P M0 ut] / rho - dr P Gs0 / rho^2

with P = 1 - r_hat r_hat^T, V_k = sum Re-pair(W^(2-k), Y) (W' and W'' the d/drho of W), Gs0 =
sum Re-pair(W, G), Gs1 = sum Re-pair(W', G) and M0 = sum Re-pair(W, Hess Ytilde): the Hessian of
the polynomial needs only P'' (one more line of the recursion), so the second derivatives of the
harmonics are analytic (forward mode of the recursion; no complex step, which the float64-typed
kernels of ``sph_harm.py`` would not accept, and no finite difference). M0, Gs0, Gs1 and V do not
depend on u: K vectors cost one recursion per edge. The tangent of dE/dA itself (dW) adds the
ordinary edge gradient with weights dW.

The radial-only part of g is s'(r) r_hat with s = dE/dA1 . g + dE/dcore cr (+ dE/df f_zbl at the
atom's zbl edge): its tangent is (ds' + s'' dr) r_hat + s' ut, ds' from the tangents of the outer
weights (``ace_tangent_outer.py``), in the same pass.
"""

from __future__ import annotations

import numba
import numpy as np

from ._compile import compile_pair, pick
from .ace_tangent_base import (GZ_IM, GZ_RE, GZZ_IM, GZZ_RE, U1_IM, U1_RE, U1Z_IM, U1Z_RE, U2_IM, U2_RE, Y_IM, Y_RE,
                               harmonics_args, species_order, tangent_block)
from .sph_harm import EDGE_BLOCK


# rows of the per-edge sums over lm (each (B,)): V0, V1, Gs0, Gs1, M0 (xx, xy, xz, yz, zz)
V0, V1, G0X, G0Y, G0Z, G1X, G1Y, G1Z, MXX, MXY, MXZ, MYZ, MZZ = range(13)


def _tangent_edge_kernel(ga_re, ga_im, dga_re, dga_im, offsets, nbr_species, fv, fd, f2, rnl_col, nb, core_col,
                         vectors, v, neighbors, a0, lmax, diag, sub, a, b, with_base, d_a1, dd_a1, d_core, dd_core,
                         zedge, z1, z2, dz1, out):
    n_atoms = d_a1.shape[0]
    nspecies = ga_re.shape[1]
    n_k = v.shape[0]
    nrad, n_l = rnl_col.shape
    h = n_l * (n_l + 1) // 2
    for i in numba.prange(n_atoms):
        first = offsets[i]
        n_e = offsets[i + 1] - first
        start, perm, vloc = species_order(first, n_e, nbr_species, nspecies, vectors)
        state = np.empty((24, EDGE_BLOCK))
        blk = np.empty((12, h, EDGE_BLOCK))
        rt = np.empty((3, nrad, n_l, EDGE_BLOCK))  # R, R', R'' of the block's edges, edge innermost
        w = np.empty((6, h, EDGE_BLOCK))  # W, W', W'' (re, im) = sum_n dE/dA R^(k)
        dw = np.empty((4, h, EDGE_BLOCK))  # dW, dW' (re, im) of one vector
        red = np.empty((13, EDGE_BLOCK))
        dred = np.empty((4, EDGE_BLOCK))  # dV1, Hs0 = sum Re-pair(dW, G) of one vector
        ds1 = np.empty((n_k, EDGE_BLOCK))
        s1 = np.empty(EDGE_BLOCK)
        s2 = np.empty(EDGE_BLOCK)
        ci = a0 + i
        for mu in range(nspecies):
            for b0 in range(start[mu], start[mu + 1], EDGE_BLOCK):
                nblk = min(EDGE_BLOCK, start[mu + 1] - b0)
                # ---- the radial-only terms: s' and s'' of each edge, ds' per vector --------------
                for q in range(nblk):
                    e = first + perm[b0 + q]
                    t1 = 0.0
                    t2 = 0.0
                    for k in range(nb):
                        t1 += d_a1[i, mu * nb + k] * fd[e, k]
                        t2 += d_a1[i, mu * nb + k] * f2[e, k]
                    if core_col >= 0:
                        t1 += d_core[i] * fd[e, core_col]
                        t2 += d_core[i] * f2[e, core_col]
                    if e == zedge[i]:
                        t1 += z1[i]
                        t2 += z2[i]
                    s1[q] = t1
                    s2[q] = t2
                    for kk in range(n_k):
                        t = 0.0
                        for k in range(nb):
                            t += dd_a1[kk, i, mu * nb + k] * fd[e, k]
                        if core_col >= 0:
                            t += dd_core[kk, i] * fd[e, core_col]
                        if e == zedge[i]:
                            t += dz1[kk, i]
                        ds1[kk, q] = t
                red[:, :nblk] = 0.0
                if with_base:
                    tangent_block(vloc, b0, nblk, lmax, diag, sub, a, b, True, state, blk)
                    for q in range(nblk):
                        e = first + perm[b0 + q]
                        for n in range(nrad):
                            for l in range(n_l):
                                col = rnl_col[n, l]
                                rt[0, n, l, q] = fv[e, col]
                                rt[1, n, l, q] = fd[e, col]
                                rt[2, n, l, q] = f2[e, col]
                    w[:, :, :nblk] = 0.0
                    for n in range(nrad):
                        lm = 0
                        for l in range(n_l):
                            r0 = rt[0, n, l, :nblk]
                            r1 = rt[1, n, l, :nblk]
                            r2 = rt[2, n, l, :nblk]
                            for m in range(l + 1):
                                gr = ga_re[i, mu, n, lm]
                                gi = ga_im[i, mu, n, lm]
                                w0, w1, w2 = w[0, lm, :nblk], w[1, lm, :nblk], w[2, lm, :nblk]
                                w3, w4, w5 = w[3, lm, :nblk], w[4, lm, :nblk], w[5, lm, :nblk]
                                for q in range(nblk):  # views indexed from 0 by the counter: it vectorises
                                    w0[q] += gr * r0[q]
                                    w1[q] += gi * r0[q]
                                    w2[q] += gr * r1[q]
                                    w3[q] += gi * r1[q]
                                    w4[q] += gr * r2[q]
                                    w5[q] += gi * r2[q]
                                lm += 1
                    for lm in range(h):
                        for q in range(nblk):
                            yr, yi = blk[Y_RE, lm, q], blk[Y_IM, lm, q]
                            u1r, u1i = blk[U1_RE, lm, q], blk[U1_IM, lm, q]
                            gzr, gzi = blk[GZ_RE, lm, q], blk[GZ_IM, lm, q]
                            wr, wi, w1r, w1i = w[0, lm, q], w[1, lm, q], w[2, lm, q], w[3, lm, q]
                            red[V1, q] += w1r * yr + w1i * yi
                            red[V0, q] += w[4, lm, q] * yr + w[5, lm, q] * yi
                            red[G0X, q] += wr * u1r + wi * u1i
                            red[G0Y, q] += wi * u1r - wr * u1i  # Re-pair(W, i U1)
                            red[G0Z, q] += wr * gzr + wi * gzi
                            red[G1X, q] += w1r * u1r + w1i * u1i
                            red[G1Y, q] += w1i * u1r - w1r * u1i
                            red[G1Z, q] += w1r * gzr + w1i * gzi
                            u2r, u2i = blk[U2_RE, lm, q], blk[U2_IM, lm, q]
                            uzr, uzi = blk[U1Z_RE, lm, q], blk[U1Z_IM, lm, q]
                            red[MXX, q] += wr * u2r + wi * u2i
                            red[MXY, q] += wi * u2r - wr * u2i
                            red[MXZ, q] += wr * uzr + wi * uzi
                            red[MYZ, q] += wi * uzr - wr * uzi
                            red[MZZ, q] += wr * blk[GZZ_RE, lm, q] + wi * blk[GZZ_IM, lm, q]
                for kk in range(n_k):
                    dred[:, :nblk] = 0.0
                    if with_base:
                        dw[:, :, :nblk] = 0.0
                        for n in range(nrad):
                            lm = 0
                            for l in range(n_l):
                                r0 = rt[0, n, l, :nblk]
                                r1 = rt[1, n, l, :nblk]
                                for m in range(l + 1):
                                    gr = dga_re[kk, i, mu, n, lm]
                                    gi = dga_im[kk, i, mu, n, lm]
                                    x0, x1 = dw[0, lm, :nblk], dw[1, lm, :nblk]
                                    x2, x3 = dw[2, lm, :nblk], dw[3, lm, :nblk]
                                    for q in range(nblk):
                                        x0[q] += gr * r0[q]
                                        x1[q] += gi * r0[q]
                                        x2[q] += gr * r1[q]
                                        x3[q] += gi * r1[q]
                                    lm += 1
                        for lm in range(h):
                            for q in range(nblk):
                                u1r, u1i = blk[U1_RE, lm, q], blk[U1_IM, lm, q]
                                dred[0, q] += dw[2, lm, q] * blk[Y_RE, lm, q] + dw[3, lm, q] * blk[Y_IM, lm, q]
                                dred[1, q] += dw[0, lm, q] * u1r + dw[1, lm, q] * u1i
                                dred[2, q] += dw[1, lm, q] * u1r - dw[0, lm, q] * u1i
                                dred[3, q] += dw[0, lm, q] * blk[GZ_RE, lm, q] + dw[1, lm, q] * blk[GZ_IM, lm, q]
                    for q in range(nblk):
                        e = first + perm[b0 + q]
                        vx, vy, vz = vloc[b0 + q, 0], vloc[b0 + q, 1], vloc[b0 + q, 2]
                        inv = 1.0 / np.sqrt(vx * vx + vy * vy + vz * vz)
                        x, y, z = vx * inv, vy * inv, vz * inv
                        g0x, g0y, g0z = red[G0X, q], red[G0Y, q], red[G0Z, q]
                        g1x, g1y, g1z = red[G1X, q], red[G1Y, q], red[G1Z, q]
                        mxx, mxy, mxz, myz, mzz = red[MXX, q], red[MXY, q], red[MXZ, q], red[MYZ, q], red[MZZ, q]
                        myy = -mxx
                        d0 = x * g0x + y * g0y + z * g0z  # r_hat . Gs0
                        d1 = x * g1x + y * g1y + z * g1z
                        p0x, p0y, p0z = g0x - x * d0, g0y - y * d0, g0z - z * d0  # P Gs0
                        p1x, p1y, p1z = g1x - x * d1, g1y - y * d1, g1z - z * d1
                        h0x, h0y, h0z = dred[1, q], dred[2, q], dred[3, q]
                        hd = x * h0x + y * h0y + z * h0z
                        j = neighbors[e]
                        ux = np.float64(v[kk, j, 0]) - np.float64(v[kk, ci, 0])
                        uy = np.float64(v[kk, j, 1]) - np.float64(v[kk, ci, 1])
                        uz = np.float64(v[kk, j, 2]) - np.float64(v[kk, ci, 2])
                        dr = x * ux + y * uy + z * uz
                        tx = (ux - x * dr) * inv
                        ty = (uy - y * dr) * inv
                        tz = (uz - z * dr) * inv
                        mtx = mxx * tx + mxy * ty + mxz * tz  # M0 ut, then projected
                        mty = mxy * tx + myy * ty + myz * tz
                        mtz = mxz * tx + myz * ty + mzz * tz
                        md = x * mtx + y * mty + z * mtz
                        t_g0 = tx * g0x + ty * g0y + tz * g0z
                        t_g1 = tx * g1x + ty * g1y + tz * g1z
                        along = dred[0, q] + red[V0, q] * dr + t_g1 + ds1[kk, q] + s2[q] * dr  # along r_hat
                        across = red[V1, q] + s1[q]  # along ut
                        out[kk, e, 0] = (along * x + across * tx + (h0x - x * hd) * inv + dr * inv * p1x
                                         + inv * (mtx - x * md - tx * d0 - x * t_g0) - dr * inv * inv * p0x)
                        out[kk, e, 1] = (along * y + across * ty + (h0y - y * hd) * inv + dr * inv * p1y
                                         + inv * (mty - y * md - ty * d0 - y * t_g0) - dr * inv * inv * p0y)
                        out[kk, e, 2] = (along * z + across * tz + (h0z - z * hd) * inv + dr * inv * p1z
                                         + inv * (mtz - z * md - tz * d0 - z * t_g0) - dr * inv * inv * p0z)


# no fast-math flags: its loops are element-wise over a block's edges (measured: reassociation made
# it 4% slower, 1 thread, Cu-shaped)
_tangent_edge = compile_pair(_tangent_edge_kernel)


@numba.njit(cache=True)
def _scatter(dg, offsets, neighbors, a0, out):
    """``out[k, j] += dg[k, e]``, ``out[k, a0 + i] -= dg[k, e]`` for each edge e = (i, j): the
    forces' scatter (serial: a few operations per edge, no races)."""
    for k in range(dg.shape[0]):
        for i in range(offsets.shape[0] - 1):
            c = a0 + i
            for e in range(offsets[i], offsets[i + 1]):
                j = neighbors[e]
                for t in range(3):
                    out[k, j, t] += dg[k, e, t]
                    out[k, c, t] -= dg[k, e, t]


def tangent_edge_hvp(ga_re, ga_im, dga_re, dga_im, offsets, nbr_species, radial, vectors, v, neighbors, a0,
                     with_base, d_a1, dd_a1, d_core, dd_core, zbl, out):
    """Adds to ``out (K, N_all, 3)`` the tangent along ``v (K, N_all, 3)`` of the edge gradients of
    the atoms ``a0 ..`` (local ``offsets``, global ``neighbors``), scattered as the forces are.

    ``ga, dga``: dE/dA ``(N, S, nrad, H)`` and its tangents ``(K, N, S, nrad, H)`` (read only with
    ``with_base``); ``radial``: ``ace_tangent_base.RadialColumns``; ``d_a1 (N, S * nb)``,
    ``d_core (N,)``: dE/dA1 and dE/drho_core, ``dd_a1``, ``dd_core`` their tangents; ``zbl``:
    ``(edge (N,), dE/df f', dE/df f'' (N,), d(dE/df) f' (K, N))`` of each atom's zbl edge (-1: none)."""
    e, k = vectors.shape[0], v.shape[0]
    nrad, n_l = radial.rnl_col.shape
    h = n_l * (n_l + 1) // 2
    dg = np.empty((k, e, 3))
    kernel = pick(_tangent_edge, e * (nrad * h * with_base + radial.nb) * (2 + k))
    kernel(ga_re, ga_im, dga_re, dga_im, offsets, nbr_species, *radial.f, radial.rnl_col, radial.nb, radial.core_col,
           vectors, v, neighbors, a0, *harmonics_args(n_l), with_base, d_a1, dd_a1, d_core, dd_core, *zbl, dg)
    _scatter(dg, offsets, neighbors, a0, out)
