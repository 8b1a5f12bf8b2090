"""Reference complex spherical harmonics in PACE's convention (see ``kernels/sph_harm.py``)."""

from __future__ import annotations

import math

import torch


def lm_index(l: int, m: int) -> int:
    return l * (l + 1) // 2 + m


def plm_coefficients(lmax: int):
    """The constants of the normalised associated-Legendre recursion of ACE_SPEC.md 2.9.

    Returns ``(diag, sub, a, b)``: P_mm = diag[m] (a constant: the sin^m factor lives in
    (x+iy)^m), P_{m+1,m} = sub[m] z P_mm and P_lm = a[l][m] (z P_{l-1,m} + b[l][m] P_{l-2,m}).
    """
    diag = [1.0]
    for m in range(1, lmax + 1):
        diag.append(-math.sqrt(1.0 + 1.0 / (2.0 * m)) * diag[-1])
    sub = [math.sqrt(2.0 * m + 3.0) for m in range(lmax + 1)]
    a = [[0.0] * (lmax + 1) for _ in range(lmax + 1)]
    b = [[0.0] * (lmax + 1) for _ in range(lmax + 1)]
    for l in range(2, lmax + 1):
        for m in range(0, l - 1):
            a[l][m] = math.sqrt((4.0 * l * l - 1.0) / (l * l - m * m))
            b[l][m] = -math.sqrt(((l - 1.0) ** 2 - m * m) / (4.0 * (l - 1.0) ** 2 - 1.0))
    return diag, sub, a, b


def spherical_harmonics(vectors, lmax: int, gradients: bool):
    """Y_lm(r/|r|) for 0 <= m <= l <= lmax, and their gradients with respect to the vector r.

    Returns ``(re, im, grad_re, grad_im)`` with shapes ``(E, L)``, ``(E, L)``, ``(E, L, 3)``,
    ``(E, L, 3)`` (the gradients ``None`` when not asked), ``L = (lmax+1)(lmax+2)/2``, column
    ``l(l+1)/2 + m``. Y_lm = (x + iy)^m Pbar_lm(z) on the unit sphere; the gradient is the tangential
    projection of the polynomial gradient G, divided by |r|.
    """
    diag, sub, a, b = plm_coefficients(lmax)
    rnorm = torch.linalg.vector_norm(vectors, dim=-1)
    inv = 1.0 / rnorm
    x, y, z = (vectors * inv.unsqueeze(-1)).unbind(-1)
    L = (lmax + 1) * (lmax + 2) // 2
    re = [None] * L
    im = [None] * L
    g_re = [None] * L
    g_im = [None] * L
    zero = torch.zeros_like(z)
    # (x + iy)^m and (x + iy)^(m-1), carried across m
    c_re, c_im = torch.ones_like(z), zero
    cm1_re, cm1_im = zero, zero
    for m in range(lmax + 1):
        if m > 0:
            cm1_re, cm1_im = c_re, c_im
            c_re, c_im = c_re * x - c_im * y, c_re * y + c_im * x
        p_prev2 = dp_prev2 = None
        p_prev = torch.full_like(z, diag[m])
        dp_prev = zero
        for l in range(m, lmax + 1):
            if l == m:
                p, dp = p_prev, dp_prev
            elif l == m + 1:
                p = sub[m] * z * p_prev
                dp = sub[m] * p_prev
            else:
                p = a[l][m] * (z * p_prev + b[l][m] * p_prev2)
                dp = a[l][m] * (p_prev + z * dp_prev + b[l][m] * dp_prev2)
            k = lm_index(l, m)
            re[k] = c_re * p
            im[k] = c_im * p
            if gradients:
                # G = (m c_{m-1} P, i m c_{m-1} P, c_m dP/dz)
                gx_re, gx_im = m * cm1_re * p, m * cm1_im * p
                gy_re, gy_im = -gx_im, gx_re
                gz_re, gz_im = c_re * dp, c_im * dp
                dot_re = x * gx_re + y * gy_re + z * gz_re
                dot_im = x * gx_im + y * gy_im + z * gz_im
                g_re[k] = torch.stack(
                    [(gx_re - x * dot_re) * inv, (gy_re - y * dot_re) * inv, (gz_re - z * dot_re) * inv], -1
                )
                g_im[k] = torch.stack(
                    [(gx_im - x * dot_im) * inv, (gy_im - y * dot_im) * inv, (gz_im - z * dot_im) * inv], -1
                )
            if l > m:
                p_prev2, dp_prev2 = p_prev, dp_prev
                p_prev, dp_prev = p, dp
            # at l == m the carried values are already P_mm
    out_re = torch.stack(re, -1)
    out_im = torch.stack(im, -1)
    if not gradients:
        return out_re, out_im, None, None
    return out_re, out_im, torch.stack(g_re, -2), torch.stack(g_im, -2)
