"""Numba tangents (forward mode) of the ACE atomic base and of its edge gradients, for the
matrix-free Hessian-vector product of ``acepy/models/ace_hvp.py``.

For an edge vector r (length rho, direction r_hat) moved along u, with dr = r_hat . u and the
tangent of the direction ut = (u - r_hat dr) / rho:

    dA[mu, n, lm] = sum_e R'_nl dr Y_lm + R_nl grad Y_lm . u,     grad Y . u = G . ut,

where Y(r) = Ytilde(r / rho) and Ytilde = c_m(x, y) P_lm(z) is a polynomial (c_m = (x + iy)^m and
P_lm a polynomial in z: the recursion of ``sph_harm.ylm_block``), G its unprojected gradient
(m c_{m-1} P, i m c_{m-1} P, c_m P') and grad Y = (1 - r_hat r_hat^T) G / rho.

The edge gradient g = grad s of s(r) = sum_lm Re-pair(W_lm(rho), Y_lm(r)), W = sum_n dE/dA R_nl
(``atomic_base.py``'s adjoint), has the tangent (differentiating each factor of
g = sum W' Y r_hat + W grad Y):

    dg = V0 dr r_hat + (Gs1 . ut) r_hat + V1 ut + dr P Gs1 / rho
         + [-(ut (r_hat . Gs0) + r_hat (ut . Gs0)) + P M0 ut] / rho - dr P Gs0 / rho^2

with P = 1 - r_hat r_hat^T, V_k = sum Re-pair(W^(2-k), Y) (W' and W'' the d/drho of W), Gs0 =
sum Re-pair(W, G), Gs1 = sum Re-pair(W', G) and M0 = sum Re-pair(W, Hess Ytilde): the Hessian of
the polynomial needs only P'' (one more line of the recursion), so the second derivatives of the
harmonics are analytic (forward mode of the recursion; no complex step, which the float64-typed
kernels of ``sph_harm.py`` would not accept, and no finite difference). M0, Gs0, Gs1 and V do not
depend on u: K vectors cost one recursion per edge. The tangent of dE/dA itself (dW) adds the
ordinary edge gradient with weights dW.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from ..reference.sph_harm import plm_coefficients
from ._compile import compile_pair, pick
from .sph_harm import EDGE_BLOCK

# rows of the per-block ingredients (re, im pairs), each (H, B)
Y_RE, Y_IM, U1_RE, U1_IM, GZ_RE, GZ_IM, U2_RE, U2_IM, U1Z_RE, U1Z_IM, GZZ_RE, GZZ_IM = range(12)


def _tangent_block(vectors, e0, nb, lmax, diag, sub, a, b, second, state, blk):
    """For edges ``e0 .. e0+nb-1`` (column q is edge e0 + q): ``state[0:3]`` the direction,
    ``state[3]`` 1/rho, and per harmonic lm the complex ingredients of Ytilde = c_m P and its
    derivatives in ``blk (12, H, B)``: Y = c_m P, U1 = m c_{m-1} P, GZ = c_m P' (G = (U1, i U1,
    GZ)) and, with ``second``, U2 = m (m-1) c_{m-2} P, U1Z = m c_{m-1} P', GZZ = c_m P'' (the
    Hessian [[U2, iU2, U1Z], [iU2, -U2, iU1Z], [U1Z, iU1Z, GZZ]])."""
    x, y, z, inv = state[0], state[1], state[2], state[3]
    c_re, c_im, c1_re, c1_im, c2_re, c2_im = state[4], state[5], state[6], state[7], state[8], state[9]
    p, dp, d2p = state[10], state[11], state[12]
    p1, dp1, d2p1, p2, dp2, d2p2 = state[13], state[14], state[15], state[16], state[17], state[18]
    for q in range(nb):
        vx = np.float64(vectors[e0 + q, 0])
        vy = np.float64(vectors[e0 + q, 1])
        vz = np.float64(vectors[e0 + q, 2])
        w = 1.0 / math.sqrt(vx * vx + vy * vy + vz * vz)
        inv[q] = w
        x[q] = vx * w
        y[q] = vy * w
        z[q] = vz * w
        c_re[q] = 1.0
        c_im[q] = 0.0
        c1_re[q] = 0.0
        c1_im[q] = 0.0
        c2_re[q] = 0.0
        c2_im[q] = 0.0
    for m in range(lmax + 1):
        if m > 0:
            for q in range(nb):
                c2_re[q] = c1_re[q]
                c2_im[q] = c1_im[q]
                c1_re[q] = c_re[q]
                c1_im[q] = c_im[q]
                c_re[q] = c1_re[q] * x[q] - c1_im[q] * y[q]
                c_im[q] = c1_re[q] * y[q] + c1_im[q] * x[q]
        for q in range(nb):
            p1[q] = diag[m]
            dp1[q] = 0.0
            d2p1[q] = 0.0
            p2[q] = 0.0
            dp2[q] = 0.0
            d2p2[q] = 0.0
        for l in range(m, lmax + 1):
            if l == m:
                for q in range(nb):
                    p[q] = p1[q]
                    dp[q] = dp1[q]
                    d2p[q] = d2p1[q]
            elif l == m + 1:
                s = sub[m]
                for q in range(nb):
                    p[q] = s * z[q] * p1[q]
                    dp[q] = s * p1[q]
                    d2p[q] = 0.0
            else:
                al = a[l, m]
                bl = b[l, m]
                for q in range(nb):
                    p[q] = al * (z[q] * p1[q] + bl * p2[q])
                    dp[q] = al * (p1[q] + z[q] * dp1[q] + bl * dp2[q])
                    d2p[q] = al * (2.0 * dp1[q] + z[q] * d2p1[q] + bl * d2p2[q])
            k = l * (l + 1) // 2 + m
            for q in range(nb):
                blk[Y_RE, k, q] = c_re[q] * p[q]
                blk[Y_IM, k, q] = c_im[q] * p[q]
                blk[U1_RE, k, q] = m * c1_re[q] * p[q]
                blk[U1_IM, k, q] = m * c1_im[q] * p[q]
                blk[GZ_RE, k, q] = c_re[q] * dp[q]
                blk[GZ_IM, k, q] = c_im[q] * dp[q]
            if second:
                mm = m * (m - 1)
                for q in range(nb):
                    blk[U2_RE, k, q] = mm * c2_re[q] * p[q]
                    blk[U2_IM, k, q] = mm * c2_im[q] * p[q]
                    blk[U1Z_RE, k, q] = m * c1_re[q] * dp[q]
                    blk[U1Z_IM, k, q] = m * c1_im[q] * dp[q]
                    blk[GZZ_RE, k, q] = c_re[q] * d2p[q]
                    blk[GZZ_IM, k, q] = c_im[q] * d2p[q]
            if l > m:
                for q in range(nb):
                    p2[q] = p1[q]
                    dp2[q] = dp1[q]
                    d2p2[q] = d2p1[q]
                    p1[q] = p[q]
                    dp1[q] = dp[q]
                    d2p1[q] = d2p[q]


tangent_block = numba.njit(inline="always", cache=True)(_tangent_block)


def _tangent_base_kernel(radial, dradial, vectors, u, lmax, diag, sub, a, b, offsets, nbr_species,
                         a_re, a_im, da_re, da_im):
    n_atoms, nspecies, nrad, h = a_re.shape
    n_k = u.shape[0]
    n_l = radial.shape[2]
    for i in numba.prange(n_atoms):
        state = np.empty((24, EDGE_BLOCK))
        blk = np.empty((12, h, EDGE_BLOCK))
        acc_re = np.zeros((nspecies, nrad, h))
        acc_im = np.zeros((nspecies, nrad, h))
        dacc_re = np.zeros((n_k, nspecies, nrad, h))
        dacc_im = np.zeros((n_k, nspecies, nrad, h))
        y_re = np.empty(h)
        y_im = np.empty(h)
        gu_re = np.empty(h)  # G . ut of one edge and vector
        gu_im = np.empty(h)
        for e0 in range(offsets[i], offsets[i + 1], EDGE_BLOCK):
            nb = min(EDGE_BLOCK, offsets[i + 1] - e0)
            tangent_block(vectors, e0, nb, lmax, diag, sub, a, b, False, state, blk)
            for q in range(nb):
                e = e0 + q
                mu = nbr_species[e]
                x, y, z, inv = state[0, q], state[1, q], state[2, q], state[3, q]
                for lm in range(h):
                    y_re[lm] = blk[Y_RE, lm, q]
                    y_im[lm] = blk[Y_IM, lm, q]
                for n in range(nrad):
                    lm = 0
                    for l in range(n_l):
                        r = radial[e, n, l]
                        for m in range(l + 1):
                            acc_re[mu, n, lm] += r * y_re[lm]
                            acc_im[mu, n, lm] += r * y_im[lm]
                            lm += 1
                for kk in range(n_k):
                    ux = np.float64(u[kk, e, 0])
                    uy = np.float64(u[kk, e, 1])
                    uz = np.float64(u[kk, e, 2])
                    dr = x * ux + y * uy + z * uz
                    tx = (ux - x * dr) * inv
                    ty = (uy - y * dr) * inv
                    tz = (uz - z * dr) * inv
                    for lm in range(h):
                        u1r = blk[U1_RE, lm, q]
                        u1i = blk[U1_IM, lm, q]
                        gu_re[lm] = u1r * tx - u1i * ty + blk[GZ_RE, lm, q] * tz
                        gu_im[lm] = u1i * tx + u1r * ty + blk[GZ_IM, lm, q] * tz
                    for n in range(nrad):
                        lm = 0
                        for l in range(n_l):
                            r = radial[e, n, l]
                            dr_n = dradial[e, n, l] * dr
                            for m in range(l + 1):
                                dacc_re[kk, mu, n, lm] += dr_n * y_re[lm] + r * gu_re[lm]
                                dacc_im[kk, mu, n, lm] += dr_n * y_im[lm] + r * gu_im[lm]
                                lm += 1
        for mu in range(nspecies):
            for n in range(nrad):
                for lm in range(h):
                    a_re[i, mu, n, lm] = acc_re[mu, n, lm]
                    a_im[i, mu, n, lm] = acc_im[mu, n, lm]
                    for kk in range(n_k):
                        da_re[kk, i, mu, n, lm] = dacc_re[kk, mu, n, lm]
                        da_im[kk, i, mu, n, lm] = dacc_im[kk, mu, n, lm]


def _tangent_edge_kernel(ga_re, ga_im, dga_re, dga_im, offsets, nbr_species, radial, dradial, d2radial, vectors, u,
                         lmax, diag, sub, a, b, out):
    n_atoms, _, nrad, h = ga_re.shape
    n_k = u.shape[0]
    n_l = radial.shape[2]
    for i in numba.prange(n_atoms):
        state = np.empty((24, EDGE_BLOCK))
        blk = np.empty((12, h, EDGE_BLOCK))
        rr = np.empty((3, nrad, h))  # R, R', R'' of one edge spread over the lm columns
        w = np.empty((6, h))  # W, W', W'' (re, im) of one edge
        dw = np.empty((4, h))  # dW, dW' (re, im) of one edge and vector
        for e0 in range(offsets[i], offsets[i + 1], EDGE_BLOCK):
            nb = min(EDGE_BLOCK, offsets[i + 1] - e0)
            tangent_block(vectors, e0, nb, lmax, diag, sub, a, b, True, state, blk)
            for q in range(nb):
                e = e0 + q
                mu = nbr_species[e]
                x, y, z, inv = state[0, q], state[1, q], state[2, q], state[3, q]
                for n in range(nrad):
                    lm = 0
                    for l in range(n_l):
                        r0 = radial[e, n, l]
                        r1 = dradial[e, n, l]
                        r2 = d2radial[e, n, l]
                        for m in range(l + 1):
                            rr[0, n, lm] = r0
                            rr[1, n, lm] = r1
                            rr[2, n, lm] = r2
                            lm += 1
                for j in range(6):
                    for lm in range(h):
                        w[j, lm] = 0.0
                for n in range(nrad):
                    for lm in range(h):
                        gr = ga_re[i, mu, n, lm]
                        gi = ga_im[i, mu, n, lm]
                        w[0, lm] += gr * rr[0, n, lm]
                        w[1, lm] += gi * rr[0, n, lm]
                        w[2, lm] += gr * rr[1, n, lm]
                        w[3, lm] += gi * rr[1, n, lm]
                        w[4, lm] += gr * rr[2, n, lm]
                        w[5, lm] += gi * rr[2, n, lm]
                v0 = 0.0
                v1 = 0.0
                g0x = g0y = g0z = 0.0
                g1x = g1y = g1z = 0.0
                mxx = mxy = mxz = myz = mzz = 0.0
                for lm in range(h):
                    yr, yi = blk[Y_RE, lm, q], blk[Y_IM, lm, q]
                    u1r, u1i = blk[U1_RE, lm, q], blk[U1_IM, lm, q]
                    gzr, gzi = blk[GZ_RE, lm, q], blk[GZ_IM, lm, q]
                    wr, wi, w1r, w1i = w[0, lm], w[1, lm], w[2, lm], w[3, lm]
                    v1 += w1r * yr + w1i * yi
                    v0 += w[4, lm] * yr + w[5, lm] * yi
                    g0x += wr * u1r + wi * u1i
                    g0y += wi * u1r - wr * u1i  # Re-pair(W, i U1)
                    g0z += wr * gzr + wi * gzi
                    g1x += w1r * u1r + w1i * u1i
                    g1y += w1i * u1r - w1r * u1i
                    g1z += w1r * gzr + w1i * gzi
                    u2r, u2i = blk[U2_RE, lm, q], blk[U2_IM, lm, q]
                    uzr, uzi = blk[U1Z_RE, lm, q], blk[U1Z_IM, lm, q]
                    mxx += wr * u2r + wi * u2i
                    mxy += wi * u2r - wr * u2i
                    mxz += wr * uzr + wi * uzi
                    myz += wi * uzr - wr * uzi
                    mzz += wr * blk[GZZ_RE, lm, q] + wi * blk[GZZ_IM, lm, q]
                myy = -mxx
                d0 = x * g0x + y * g0y + z * g0z  # r_hat . Gs0
                d1 = x * g1x + y * g1y + z * g1z
                p0x, p0y, p0z = g0x - x * d0, g0y - y * d0, g0z - z * d0  # P Gs0
                p1x, p1y, p1z = g1x - x * d1, g1y - y * d1, g1z - z * d1
                for kk in range(n_k):
                    for j in range(4):
                        for lm in range(h):
                            dw[j, lm] = 0.0
                    for n in range(nrad):
                        for lm in range(h):
                            gr = dga_re[kk, i, mu, n, lm]
                            gi = dga_im[kk, i, mu, n, lm]
                            dw[0, lm] += gr * rr[0, n, lm]
                            dw[1, lm] += gi * rr[0, n, lm]
                            dw[2, lm] += gr * rr[1, n, lm]
                            dw[3, lm] += gi * rr[1, n, lm]
                    dv1 = 0.0
                    h0x = h0y = h0z = 0.0
                    for lm in range(h):
                        u1r, u1i = blk[U1_RE, lm, q], blk[U1_IM, lm, q]
                        dv1 += dw[2, lm] * blk[Y_RE, lm, q] + dw[3, lm] * blk[Y_IM, lm, q]
                        h0x += dw[0, lm] * u1r + dw[1, lm] * u1i
                        h0y += dw[1, lm] * u1r - dw[0, lm] * u1i
                        h0z += dw[0, lm] * blk[GZ_RE, lm, q] + dw[1, lm] * blk[GZ_IM, lm, q]
                    hd = x * h0x + y * h0y + z * h0z
                    ux = np.float64(u[kk, e, 0])
                    uy = np.float64(u[kk, e, 1])
                    uz = np.float64(u[kk, e, 2])
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
                    radial_part = dv1 + v0 * dr + t_g1
                    out[kk, e, 0] = (radial_part * x + v1 * tx + (h0x - x * hd) * inv + dr * inv * p1x
                                     + inv * (mtx - x * md - tx * d0 - x * t_g0) - dr * inv * inv * p0x)
                    out[kk, e, 1] = (radial_part * y + v1 * ty + (h0y - y * hd) * inv + dr * inv * p1y
                                     + inv * (mty - y * md - ty * d0 - y * t_g0) - dr * inv * inv * p0y)
                    out[kk, e, 2] = (radial_part * z + v1 * tz + (h0z - z * hd) * inv + dr * inv * p1z
                                     + inv * (mtz - z * md - tz * d0 - z * t_g0) - dr * inv * inv * p0z)


_tangent_base = compile_pair(_tangent_base_kernel)
_tangent_edge = compile_pair(_tangent_edge_kernel)


@functools.lru_cache(maxsize=None)
def harmonics_args(n_l: int):
    """The recursion constants for lmax = n_l - 1 (built once per lmax)."""
    lmax = n_l - 1
    diag, sub, a, b = (np.asarray(c, dtype=np.float64) for c in plm_coefficients(max(lmax, 0)))
    return lmax, diag, sub, a, b


def tangent_atomic_base(radial, dradial, vectors, u, offsets, nbr_species, nspecies):
    """``(a_re, a_im (N, S, nrad, H), da_re, da_im (K, N, S, nrad, H))``: the atomic base and its
    tangents along the per-edge displacements ``u (K, E, 3)``. float64 numpy arrays in and out."""
    n = offsets.shape[0] - 1
    e, nrad, n_l = radial.shape
    h = n_l * (n_l + 1) // 2
    k = u.shape[0]
    a_re = np.empty((n, nspecies, nrad, h))
    a_im = np.empty_like(a_re)
    da_re = np.empty((k, n, nspecies, nrad, h))
    da_im = np.empty_like(da_re)
    kernel = pick(_tangent_base, e * nrad * h * (1 + k))
    kernel(radial, dradial, vectors, u, *harmonics_args(n_l), offsets, nbr_species, a_re, a_im, da_re, da_im)
    return a_re, a_im, da_re, da_im


def tangent_edge_grads(ga_re, ga_im, dga_re, dga_im, offsets, nbr_species, radial, dradial, d2radial, vectors, u):
    """``(K, E, 3)``: the tangent along ``u`` of the edge gradients sum Re-pair(dE/dA, d(R Y)/dr_e),
    given dE/dA ``ga (N, S, nrad, H)`` and its tangents ``dga (K, N, S, nrad, H)``."""
    e, nrad, n_l = radial.shape
    h = n_l * (n_l + 1) // 2
    k = u.shape[0]
    out = np.empty((k, e, 3))
    kernel = pick(_tangent_edge, e * nrad * h * (2 + k))
    kernel(ga_re, ga_im, dga_re, dga_im, offsets, nbr_species, radial, dradial, d2radial, vectors, u,
           *harmonics_args(n_l), out)
    return out
