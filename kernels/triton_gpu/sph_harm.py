"""Triton complex spherical harmonics with Cartesian gradients (contract: ``reference/sph_harm.py``).

One edge per lane. Triton cannot index register arrays, so the kernel follows the reference's
m-major recursion fully unrolled (LMAX is a constexpr): per m it carries (x+iy)^m and (x+iy)^(m-1),
per l the last two P_lm(z) and dP_lm/dz, and stores column l(l+1)/2 + m as soon as it is known.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ..reference.sph_harm import plm_coefficients


@triton.jit
def _sph_harm_kernel(
    v_ptr, coef_ptr, re_ptr, im_ptr, gre_ptr, gim_ptr, E,
    LMAX: tl.constexpr, GRADIENTS: tl.constexpr, BLOCK_E: tl.constexpr,
):
    L1: tl.constexpr = LMAX + 1
    L: tl.constexpr = L1 * (LMAX + 2) // 2
    # slots of the float64 coefficient table (see _coefficients)
    SUB: tl.constexpr = L1
    A: tl.constexpr = 2 * L1
    B: tl.constexpr = 2 * L1 + L1 * L1

    e = tl.program_id(0).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E).to(tl.int64)
    mask = e < E
    # masked lanes read the vector (1, 1, 1), so they never divide by zero
    vx = tl.load(v_ptr + e * 3, mask=mask, other=1.0)
    vy = tl.load(v_ptr + e * 3 + 1, mask=mask, other=1.0)
    vz = tl.load(v_ptr + e * 3 + 2, mask=mask, other=1.0)
    dt = vx.dtype
    inv = 1.0 / tl.sqrt(vx * vx + vy * vy + vz * vz)
    x = vx * inv
    y = vy * inv
    z = vz * inv
    zero = tl.zeros_like(z)
    row = e * L
    grow = e * (3 * L)

    c_re = zero + 1.0  # (x + iy)^m
    c_im = zero
    cm1_re = zero  # (x + iy)^(m-1)
    cm1_im = zero
    for m in tl.static_range(L1):
        if m > 0:
            cm1_re = c_re
            cm1_im = c_im
            c_re = cm1_re * x - cm1_im * y
            c_im = cm1_re * y + cm1_im * x
        p_prev = zero + tl.load(coef_ptr + m).to(dt)  # P_mm = diag[m]
        dp_prev = zero
        p_prev2 = zero
        dp_prev2 = zero
        for l in tl.static_range(m, L1):
            if l == m:
                p = p_prev
                dp = dp_prev
            elif l == m + 1:
                s = tl.load(coef_ptr + SUB + m).to(dt)
                p = s * z * p_prev
                dp = s * p_prev
            else:
                a = tl.load(coef_ptr + A + l * L1 + m).to(dt)
                b = tl.load(coef_ptr + B + l * L1 + m).to(dt)
                p = a * (z * p_prev + b * p_prev2)
                dp = a * (p_prev + z * dp_prev + b * dp_prev2)
            k = l * (l + 1) // 2 + m  # compile-time column
            tl.store(re_ptr + row + k, c_re * p, mask=mask)
            tl.store(im_ptr + row + k, c_im * p, mask=mask)
            if GRADIENTS:
                # polynomial gradient G = (m c_{m-1} P, i m c_{m-1} P, c_m dP/dz), then its
                # tangential part (G - r (r.G)) / |r|
                if m == 0:
                    gx_re = zero
                    gx_im = zero
                else:
                    gx_re = m * cm1_re * p
                    gx_im = m * cm1_im * p
                gy_re = -gx_im
                gy_im = gx_re
                gz_re = c_re * dp
                gz_im = c_im * dp
                dot_re = x * gx_re + y * gy_re + z * gz_re
                dot_im = x * gx_im + y * gy_im + z * gz_im
                g = grow + 3 * k
                tl.store(gre_ptr + g, (gx_re - x * dot_re) * inv, mask=mask)
                tl.store(gre_ptr + g + 1, (gy_re - y * dot_re) * inv, mask=mask)
                tl.store(gre_ptr + g + 2, (gz_re - z * dot_re) * inv, mask=mask)
                tl.store(gim_ptr + g, (gx_im - x * dot_im) * inv, mask=mask)
                tl.store(gim_ptr + g + 1, (gy_im - y * dot_im) * inv, mask=mask)
                tl.store(gim_ptr + g + 2, (gz_im - z * dot_im) * inv, mask=mask)
            if l > m:
                p_prev2 = p_prev
                dp_prev2 = dp_prev
                p_prev = p
                dp_prev = dp


@functools.lru_cache(maxsize=None)
def _coefficient_list(lmax: int) -> tuple[float, ...]:
    """diag[m], sub[m], a[l][m], b[l][m] flattened (a and b as (lmax+1)^2 row-major)."""
    diag, sub, a, b = plm_coefficients(lmax)
    return tuple(diag) + tuple(sub) + tuple(v for row in a for v in row) + tuple(v for row in b for v in row)


def _coefficients(lmax: int, device) -> torch.Tensor:
    # float64 whatever the data dtype: Python float kernel arguments would be rounded to float32
    return torch.tensor(_coefficient_list(lmax), dtype=torch.float64, device=device)


def spherical_harmonics(vectors, lmax: int, gradients: bool):
    """``(re, im, grad_re, grad_im)``: ``(E, L)``, ``(E, L)``, ``(E, L, 3)``, ``(E, L, 3)`` (gradients ``None`` if not asked)."""
    e = vectors.shape[0]
    n = (lmax + 1) * (lmax + 2) // 2
    re = torch.empty((e, n), dtype=vectors.dtype, device=vectors.device)
    im = torch.empty_like(re)
    gre = torch.empty((e, n, 3), dtype=vectors.dtype, device=vectors.device) if gradients else None
    gim = torch.empty_like(gre) if gradients else None
    block_e = 128
    _sph_harm_kernel[(triton.cdiv(e, block_e),)](
        vectors, _coefficients(lmax, vectors.device), re, im,
        re if gre is None else gre, im if gim is None else gim, e,
        LMAX=lmax, GRADIENTS=bool(gradients), BLOCK_E=block_e,
    )
    return re, im, gre, gim
