"""Numba complex spherical harmonics in PACE's convention (contract: ``reference/sph_harm.py``).

The recursion of one edge is a chain of dependent multiply-adds (P_lm from the two previous l),
so one edge at a time runs at the latency of that chain. :func:`ylm_block` runs it for a block of
``EDGE_BLOCK`` edges at once, with the edge as the innermost (contiguous) axis: independent
chains that the CPU overlaps and the compiler vectorises. It is shared by the harmonics kernel and
the fused atomic-base kernels, which keep the block in small scratch arrays or contract the
harmonics with their weights as they are made.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from ..reference.sph_harm import plm_coefficients
from ._compile import compile_pair, pick

# edges per block of the recursion (a multiple of the SIMD width)
EDGE_BLOCK = 16


# what ylm_block does with each harmonic (a compile-time constant at every call site)
STORE = 0  # values into re, im (H, B)
STORE_WITH_GRADIENTS = 1  # and gradients into g_re, g_im (H, 3, B)
CONTRACT = 2  # sum them against weights, storing nothing per harmonic (see below)


def _ylm_block(vectors, e0, nb, lmax, diag, sub, a, b, mode, state, re, im, g_re, g_im, value, grad):
    """The harmonics of edges ``e0 .. e0+nb-1`` (column ``q`` of every block array is edge
    ``e0 + q``): the reference's recursion in float64, m outer carrying (x+iy)^m and (x+iy)^(m-1),
    l inner from m carrying P_lm and dP_lm/dz of the two previous l. ``state (16, B)`` is scratch.

    ``mode`` STORE / STORE_WITH_GRADIENTS write ``re, im`` (and ``g_re, g_im``). CONTRACT reads
    weights instead: ``re, im (H, B)`` weigh the values and ``g_re[:, 0, :], g_im[:, 0, :]`` the
    gradients, and it writes ``value[q] = sum re Y_re + im Y_im`` and ``grad[:, q] = sum
    g_re grad Y_re + g_im grad Y_im``; the tangential projection and 1/|r| of the gradients are
    linear, so they are applied once, to the summed unprojected gradient."""
    x, y, z, inv = state[0], state[1], state[2], state[3]
    c_re, c_im, cm1_re, cm1_im = state[4], state[5], state[6], state[7]
    p, dp, p1, dp1, p2, dp2 = state[8], state[9], state[10], state[11], state[12], state[13]
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
        cm1_re[q] = 0.0
        cm1_im[q] = 0.0
        if mode == CONTRACT:
            value[q] = 0.0
            grad[0, q] = 0.0
            grad[1, q] = 0.0
            grad[2, q] = 0.0
    for m in range(lmax + 1):
        if m > 0:
            for q in range(nb):
                cm1_re[q] = c_re[q]
                cm1_im[q] = c_im[q]
                c_re[q] = cm1_re[q] * x[q] - cm1_im[q] * y[q]
                c_im[q] = cm1_re[q] * y[q] + cm1_im[q] * x[q]
        for q in range(nb):  # p1, p2: P of the previous two l (and their z-derivatives)
            p1[q] = diag[m]
            dp1[q] = 0.0
            p2[q] = 0.0
            dp2[q] = 0.0
        for l in range(m, lmax + 1):
            if l == m:
                for q in range(nb):
                    p[q] = p1[q]
                    dp[q] = dp1[q]
            elif l == m + 1:
                s = sub[m]
                for q in range(nb):
                    p[q] = s * z[q] * p1[q]
                    dp[q] = s * p1[q]
            else:
                al = a[l, m]
                bl = b[l, m]
                for q in range(nb):
                    p[q] = al * (z[q] * p1[q] + bl * p2[q])
                    dp[q] = al * (p1[q] + z[q] * dp1[q] + bl * dp2[q])
            k = l * (l + 1) // 2 + m
            if mode == CONTRACT:
                for q in range(nb):
                    value[q] += (re[k, q] * c_re[q] + im[k, q] * c_im[q]) * p[q]
                    # unprojected G = (m c_{m-1} P, i m c_{m-1} P, c_m dP/dz), weighted
                    gx_re = m * cm1_re[q] * p[q]
                    gx_im = m * cm1_im[q] * p[q]
                    wr = g_re[k, 0, q]
                    wi = g_im[k, 0, q]
                    grad[0, q] += wr * gx_re + wi * gx_im
                    grad[1, q] += wi * gx_re - wr * gx_im
                    grad[2, q] += (wr * c_re[q] + wi * c_im[q]) * dp[q]
            else:
                for q in range(nb):
                    re[k, q] = c_re[q] * p[q]
                    im[k, q] = c_im[q] * p[q]
            if mode == STORE_WITH_GRADIENTS:
                # G as above, projected tangentially, over |r|
                for q in range(nb):
                    gx_re = m * cm1_re[q] * p[q]
                    gx_im = m * cm1_im[q] * p[q]
                    gy_re = -gx_im
                    gy_im = gx_re
                    gz_re = c_re[q] * dp[q]
                    gz_im = c_im[q] * dp[q]
                    dot_re = x[q] * gx_re + y[q] * gy_re + z[q] * gz_re
                    dot_im = x[q] * gx_im + y[q] * gy_im + z[q] * gz_im
                    g_re[k, 0, q] = (gx_re - x[q] * dot_re) * inv[q]
                    g_re[k, 1, q] = (gy_re - y[q] * dot_re) * inv[q]
                    g_re[k, 2, q] = (gz_re - z[q] * dot_re) * inv[q]
                    g_im[k, 0, q] = (gx_im - x[q] * dot_im) * inv[q]
                    g_im[k, 1, q] = (gy_im - y[q] * dot_im) * inv[q]
                    g_im[k, 2, q] = (gz_im - z[q] * dot_im) * inv[q]
            if l > m:  # at l == m the carried values already are P_mm
                for q in range(nb):
                    p2[q] = p1[q]
                    dp2[q] = dp1[q]
                    p1[q] = p[q]
                    dp1[q] = dp[q]
    if mode == CONTRACT:
        for q in range(nb):  # tangential projection, over |r|
            dot = x[q] * grad[0, q] + y[q] * grad[1, q] + z[q] * grad[2, q]
            grad[0, q] = (grad[0, q] - x[q] * dot) * inv[q]
            grad[1, q] = (grad[1, q] - y[q] * dot) * inv[q]
            grad[2, q] = (grad[2, q] - z[q] * dot) * inv[q]


ylm_block = numba.njit(inline="always", cache=True)(_ylm_block)


def _sph_harm_kernel(vectors, lmax, diag, sub, a, b, gradients, re, im, g_re, g_im):
    """One block of edges per iteration (``g_re`` / ``g_im`` only written when ``gradients``)."""
    n_edges = vectors.shape[0]
    h = re.shape[1]
    nblocks = (n_edges + EDGE_BLOCK - 1) // EDGE_BLOCK
    for blk in numba.prange(nblocks):
        state = np.empty((16, EDGE_BLOCK))
        b_re = np.empty((h, EDGE_BLOCK))
        b_im = np.empty((h, EDGE_BLOCK))
        gb = 3 if gradients else 0
        bg_re = np.empty((h if gradients else 0, 3, EDGE_BLOCK))
        bg_im = np.empty((h if gradients else 0, 3, EDGE_BLOCK))
        no_value = np.empty(0)
        no_grad = np.empty((3, 0))
        e0 = blk * EDGE_BLOCK
        nb = min(EDGE_BLOCK, n_edges - e0)
        mode = STORE_WITH_GRADIENTS if gradients else STORE
        ylm_block(vectors, e0, nb, lmax, diag, sub, a, b, mode, state, b_re, b_im, bg_re, bg_im, no_value, no_grad)
        for q in range(nb):
            for k in range(h):
                re[e0 + q, k] = b_re[k, q]
                im[e0 + q, k] = b_im[k, q]
                for c in range(gb):
                    g_re[e0 + q, k, c] = bg_re[k, c, q]
                    g_im[e0 + q, k, c] = bg_im[k, c, q]


_sph_harm = compile_pair(_sph_harm_kernel)


def spherical_harmonics(vectors, lmax, gradients):
    """``(re, im, grad_re, grad_im)``: ``(E, L)``, ``(E, L)``, ``(E, L, 3)``, ``(E, L, 3)`` (gradients ``None`` if not asked)."""
    e = vectors.shape[0]
    n_cols = (lmax + 1) * (lmax + 2) // 2
    diag, sub, a, b = (np.asarray(c, dtype=np.float64) for c in plm_coefficients(lmax))
    re = torch.empty((e, n_cols), dtype=vectors.dtype)
    im = torch.empty((e, n_cols), dtype=vectors.dtype)
    if gradients:
        g_re = torch.empty((e, n_cols, 3), dtype=vectors.dtype)
        g_im = torch.empty((e, n_cols, 3), dtype=vectors.dtype)
        g_arrays = (g_re.numpy(), g_im.numpy())
    else:
        g_re = g_im = None
        dummy = np.empty((0, 0, 0), dtype=re.numpy().dtype)  # stands in for the gradients not asked for
        g_arrays = (dummy, dummy)
    kernel = pick(_sph_harm, e * n_cols)
    kernel(vectors.numpy(), int(lmax), diag, sub, a, b, bool(gradients), re.numpy(), im.numpy(), *g_arrays)
    return re, im, g_re, g_im
