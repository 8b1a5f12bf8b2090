"""Numba tangents (forward mode) of the ACE atomic base, for the matrix-free Hessian-vector
product of ``acepy/models/ace_hvp.py`` (the edge gradients' tangent: ``ace_tangent_edges.py``).

For an edge vector r (length rho, direction r_hat) moved along u, with dr = r_hat . u and the
tangent of the direction ut = (u - r_hat dr) / rho:

    dA[mu, n, lm] = sum_e R'_nl dr Y_lm + R_nl grad Y_lm . u,     grad Y . u = G . ut,

where Y(r) = Ytilde(r / rho) and Ytilde = c_m(x, y) P_lm(z) is a polynomial (c_m = (x + iy)^m and
P_lm a polynomial in z: the recursion of ``sph_harm.ylm_block``), G its unprojected gradient
(m c_{m-1} P, i m c_{m-1} P, c_m P') and grad Y = (1 - r_hat r_hat^T) G / rho. The radial-only
sums (the rank-1 A1 = sum g_k, rho_core = sum cr) and their tangents (sum g' dr) come in the
same pass over the edges. :func:`tangent_block` also makes the harmonics' second derivatives
(one more line of the recursion) for the edge kernel.

The radial functions come as table columns (:class:`RadialColumns`, the fused kernel's layout):
``[g_k | R_nl | core]`` with the column of each R_nl given, so the spline tables' output is read
in place (no per-edge copies). As in the fused kernel, each atom's edges are taken in blocks of
one neighbour species (:func:`species_order`), edge innermost: A and dA are dot products over a
block's edges (vectorised; reassociated sums, equal to rounding), and so are the edge kernel's
sums.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numba
import numpy as np

from ..reference.sph_harm import plm_coefficients
from ._compile import compile_pair, pick
from .sph_harm import EDGE_BLOCK


class RadialColumns(NamedTuple):
    """The radial functions of a chunk's edges by column: ``f = (values, d/dr, d2/dr2)``, each
    ``(E, C)`` float64 (C-contiguous); R_nl in column ``rnl_col[n, l]``, g_k in columns ``0 .. nb - 1``,
    the core repulsion in ``core_col`` (-1: none)."""

    f: tuple
    rnl_col: np.ndarray
    nb: int
    core_col: int


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


def _species_order(first, n_e, species_of, nspecies, vectors):
    """The atom's edges in a local order grouped by neighbour species (a stable counting sort, as
    the fused kernel): ``(start (S+1,), perm (n_e,) local position -> edge offset, vloc (n_e, 3))``,
    so that a block of ``EDGE_BLOCK`` edges shares one row of dE/dA and the loops over a block's
    edges vectorise."""
    start = np.zeros(nspecies + 1, dtype=np.int64)
    for q in range(n_e):
        start[species_of[first + q] + 1] += 1
    for mu in range(nspecies):
        start[mu + 1] += start[mu]
    fill = start.copy()
    perm = np.empty(n_e, dtype=np.int64)
    vloc = np.empty((n_e, 3))
    for q in range(n_e):
        mu = species_of[first + q]
        perm[fill[mu]] = q
        for t in range(3):
            vloc[fill[mu], t] = np.float64(vectors[first + q, t])
        fill[mu] += 1
    return start, perm, vloc


species_order = numba.njit(inline="always", cache=True)(_species_order)


def _tangent_base_kernel(fv, fd, rnl_col, nb, core_col, vectors, v, neighbors, a0, lmax, diag, sub, a, b, offsets,
                         nbr_species, with_base, a_re, a_im, da_re, da_im, a1, core, da1, dcore):
    n_atoms = a1.shape[0]
    nspecies = a_re.shape[1]
    n_k = v.shape[0]
    nrad, n_l = rnl_col.shape
    h = n_l * (n_l + 1) // 2
    for i in numba.prange(n_atoms):
        first = offsets[i]
        n_e = offsets[i + 1] - first
        ci = a0 + i
        # ---- the radial-only sums, edge by edge: A1 (rank 1) and rho_core, with their tangents ----
        for k in range(a1.shape[1]):
            a1[i, k] = 0.0
        core[i] = 0.0
        for kk in range(n_k):
            for k in range(a1.shape[1]):
                da1[kk, i, k] = 0.0
            dcore[kk, i] = 0.0
        for e in range(first, first + n_e):
            mu = nbr_species[e]
            vx = np.float64(vectors[e, 0])
            vy = np.float64(vectors[e, 1])
            vz = np.float64(vectors[e, 2])
            inv = 1.0 / math.sqrt(vx * vx + vy * vy + vz * vz)
            for k in range(nb):
                a1[i, mu * nb + k] += fv[e, k]
            if core_col >= 0:
                core[i] += fv[e, core_col]
            for kk in range(n_k):
                j = neighbors[e]
                dr = (vx * (np.float64(v[kk, j, 0]) - np.float64(v[kk, ci, 0]))
                      + vy * (np.float64(v[kk, j, 1]) - np.float64(v[kk, ci, 1]))
                      + vz * (np.float64(v[kk, j, 2]) - np.float64(v[kk, ci, 2]))) * inv
                for k in range(nb):
                    da1[kk, i, mu * nb + k] += fd[e, k] * dr
                if core_col >= 0:
                    dcore[kk, i] += fd[e, core_col] * dr
        if not with_base:
            continue
        # ---- A and dA: per block of edges of one species, dot products over the block's edges ----
        start, perm, vloc = species_order(first, n_e, nbr_species, nspecies, vectors)
        state = np.empty((24, EDGE_BLOCK))
        blk = np.empty((12, h, EDGE_BLOCK))
        rt = np.empty((2, nrad, n_l, EDGE_BLOCK))  # R, R' of the block's edges, edge innermost
        rdr = np.empty((n_k, nrad, n_l, EDGE_BLOCK))  # R' dr per vector
        gu = np.empty((n_k, 2, h, EDGE_BLOCK))  # G . ut (re, im) per vector
        dr = np.empty(EDGE_BLOCK)
        ut = np.empty((3, EDGE_BLOCK))
        for mu in range(nspecies):
            for b0 in range(start[mu], start[mu + 1], EDGE_BLOCK):
                nblk = min(EDGE_BLOCK, start[mu + 1] - b0)
                tangent_block(vloc, b0, nblk, lmax, diag, sub, a, b, False, state, blk)
                for q in range(nblk):
                    e = first + perm[b0 + q]
                    for n in range(nrad):
                        for l in range(n_l):
                            col = rnl_col[n, l]
                            rt[0, n, l, q] = fv[e, col]
                            rt[1, n, l, q] = fd[e, col]
                for kk in range(n_k):
                    for q in range(nblk):
                        j = neighbors[first + perm[b0 + q]]
                        x, y, z, inv = state[0, q], state[1, q], state[2, q], state[3, q]
                        ux = np.float64(v[kk, j, 0]) - np.float64(v[kk, ci, 0])
                        uy = np.float64(v[kk, j, 1]) - np.float64(v[kk, ci, 1])
                        uz = np.float64(v[kk, j, 2]) - np.float64(v[kk, ci, 2])
                        d = x * ux + y * uy + z * uz
                        dr[q] = d
                        ut[0, q] = (ux - x * d) * inv
                        ut[1, q] = (uy - y * d) * inv
                        ut[2, q] = (uz - z * d) * inv
                    for n in range(nrad):
                        for l in range(n_l):
                            r1 = rt[1, n, l]
                            y1 = rdr[kk, n, l]
                            for q in range(nblk):
                                y1[q] = r1[q] * dr[q]
                    for lm in range(h):
                        u1r, u1i = blk[U1_RE, lm], blk[U1_IM, lm]
                        gzr, gzi = blk[GZ_RE, lm], blk[GZ_IM, lm]
                        g_re, g_im = gu[kk, 0, lm], gu[kk, 1, lm]
                        tx, ty, tz = ut[0], ut[1], ut[2]
                        for q in range(nblk):
                            g_re[q] = u1r[q] * tx[q] - u1i[q] * ty[q] + gzr[q] * tz[q]
                            g_im[q] = u1i[q] * tx[q] + u1r[q] * ty[q] + gzi[q] * tz[q]
                for n in range(nrad):
                    lm = 0
                    for l in range(n_l):
                        r0 = rt[0, n, l]
                        for m in range(l + 1):
                            yr, yi = blk[Y_RE, lm], blk[Y_IM, lm]
                            sr = 0.0
                            si = 0.0
                            for q in range(nblk):  # contiguous: a vectorised dot product
                                sr += r0[q] * yr[q]
                                si += r0[q] * yi[q]
                            a_re[i, mu, n, lm] += sr
                            a_im[i, mu, n, lm] += si
                            for kk in range(n_k):
                                y1 = rdr[kk, n, l]
                                g_re, g_im = gu[kk, 0, lm], gu[kk, 1, lm]
                                sr = 0.0
                                si = 0.0
                                for q in range(nblk):
                                    sr += y1[q] * yr[q] + r0[q] * g_re[q]
                                    si += y1[q] * yi[q] + r0[q] * g_im[q]
                                da_re[kk, i, mu, n, lm] += sr
                                da_im[kk, i, mu, n, lm] += si
                            lm += 1


# reassociation only (as the fused kernel): the dot products over a block's edges vectorise
# (measured 0.8x its time without)
_tangent_base = compile_pair(_tangent_base_kernel, fastmath={"reassoc"})


@functools.lru_cache(maxsize=None)
def harmonics_args(n_l: int):
    """The recursion constants for lmax = n_l - 1 (built once per lmax)."""
    lmax = n_l - 1
    diag, sub, a, b = (np.asarray(c, dtype=np.float64) for c in plm_coefficients(max(lmax, 0)))
    return lmax, diag, sub, a, b


def tangent_atomic_base(radial, vectors, v, neighbors, a0, offsets, nbr_species, nspecies, with_base):
    """The atomic base, the rank-1 sums and rho_core of the atoms of ``offsets`` (local edges,
    global ``neighbors``; the atoms are ``a0 ..`` of ``v``), with their tangents along
    ``v (K, N_all, 3)`` (an edge e = (i, j) moves by u = v_j - v_i). ``radial``: :class:`RadialColumns`.
    Returns ``(a_re, a_im (N, S, nrad, H), da_re, da_im (K, N, S, nrad, H), a1 (N, S * nb),
    core (N,), da1 (K, N, S * nb), dcore (K, N))``; A and dA are empty without ``with_base``.
    float64 numpy arrays in and out."""
    n = offsets.shape[0] - 1
    nrad, n_l = radial.rnl_col.shape
    h = n_l * (n_l + 1) // 2
    k = v.shape[0]
    shape = (n, nspecies, nrad if with_base else 0, h)
    a_re, a_im = np.zeros(shape), np.zeros(shape)
    da_re, da_im = np.zeros((k,) + shape), np.zeros((k,) + shape)
    a1, core = np.empty((n, nspecies * radial.nb)), np.empty(n)
    da1, dcore = np.empty((k, n, nspecies * radial.nb)), np.empty((k, n))
    kernel = pick(_tangent_base, vectors.shape[0] * (nrad * h * with_base + 1) * (1 + k))
    kernel(radial.f[0], radial.f[1], radial.rnl_col, radial.nb, radial.core_col, vectors, v, neighbors, a0,
           *harmonics_args(n_l), offsets, nbr_species, with_base, a_re, a_im, da_re, da_im, a1, core, da1, dcore)
    return a_re, a_im, da_re, da_im, a1, core, da1, dcore
