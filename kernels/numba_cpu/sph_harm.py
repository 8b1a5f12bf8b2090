"""Numba complex spherical harmonics in PACE's convention (contract: ``reference/sph_harm.py``)."""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from ..reference.sph_harm import plm_coefficients
from ._compile import compile_pair, pick


def _ylm_row(vx, vy, vz, lmax, diag, sub, a, b, gradients, re, im, g_re, g_im):
    """The harmonics of one edge into ``re, im (L,)`` and, with ``gradients``, ``g_re, g_im (L, 3)``:
    the reference's recursion in float64 scalars, m outer, carrying (x+iy)^m and (x+iy)^(m-1); l
    inner from m, carrying P_lm and dP_lm/dz of the two previous l. Shared by the harmonics kernel
    and the fused atomic-base kernels (which keep the row in a scratch buffer)."""
    inv = 1.0 / math.sqrt(vx * vx + vy * vy + vz * vz)
    x = vx * inv
    y = vy * inv
    z = vz * inv
    c_re, c_im = 1.0, 0.0
    cm1_re, cm1_im = 0.0, 0.0
    for m in range(lmax + 1):
        if m > 0:
            cm1_re, cm1_im = c_re, c_im
            c_re, c_im = c_re * x - c_im * y, c_re * y + c_im * x
        p_prev2, dp_prev2 = 0.0, 0.0
        p_prev, dp_prev = diag[m], 0.0
        for l in range(m, lmax + 1):
            if l == m:
                p, dp = p_prev, dp_prev
            elif l == m + 1:
                p = sub[m] * z * p_prev
                dp = sub[m] * p_prev
            else:
                p = a[l, m] * (z * p_prev + b[l, m] * p_prev2)
                dp = a[l, m] * (p_prev + z * dp_prev + b[l, m] * dp_prev2)
            k = l * (l + 1) // 2 + m
            re[k] = c_re * p
            im[k] = c_im * p
            if gradients:
                # G = (m c_{m-1} P, i m c_{m-1} P, c_m dP/dz), projected tangentially, over |r|
                gx_re, gx_im = m * cm1_re * p, m * cm1_im * p
                gy_re, gy_im = -gx_im, gx_re
                gz_re, gz_im = c_re * dp, c_im * dp
                dot_re = x * gx_re + y * gy_re + z * gz_re
                dot_im = x * gx_im + y * gy_im + z * gz_im
                g_re[k, 0] = (gx_re - x * dot_re) * inv
                g_re[k, 1] = (gy_re - y * dot_re) * inv
                g_re[k, 2] = (gz_re - z * dot_re) * inv
                g_im[k, 0] = (gx_im - x * dot_im) * inv
                g_im[k, 1] = (gy_im - y * dot_im) * inv
                g_im[k, 2] = (gz_im - z * dot_im) * inv
            if l > m:  # at l == m the carried values already are P_mm
                p_prev2, dp_prev2 = p_prev, dp_prev
                p_prev, dp_prev = p, dp


ylm_row = numba.njit(inline="always", cache=True)(_ylm_row)


def _sph_harm_kernel(vectors, lmax, diag, sub, a, b, gradients, re, im, g_re, g_im):
    """One edge per iteration (``g_re`` / ``g_im`` are only written when ``gradients`` is true)."""
    n_edges = vectors.shape[0]
    for e in numba.prange(n_edges):
        if gradients:
            ylm_row(np.float64(vectors[e, 0]), np.float64(vectors[e, 1]), np.float64(vectors[e, 2]), lmax, diag, sub,
                    a, b, True, re[e], im[e], g_re[e], g_im[e])
        else:
            ylm_row(np.float64(vectors[e, 0]), np.float64(vectors[e, 1]), np.float64(vectors[e, 2]), lmax, diag, sub,
                    a, b, False, re[e], im[e], g_re, g_im)


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
