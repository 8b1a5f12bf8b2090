"""Triton complex spherical harmonics with Cartesian gradients (contract: ``reference/sph_harm.py``).

One edge per lane. Triton cannot index register arrays, so the kernel follows the reference's
m-major recursion carrying only per-lane scalars: per m, (x+iy)^m and (x+iy)^(m-1); per l, the last
two P_lm(z) and dP_lm/dz. Column l(l+1)/2 + m is stored as soon as it is known.

The loops over m and l are ordinary (not unrolled) loops with the recursion constants read from a
small float64 table: fully unrolled, the gradient kernel has O(lmax^2) straight-line code and
took 6 s to compile for sm_90 at lmax 8 and 5 to 9 minutes at lmax 20.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from ..reference.sph_harm import plm_coefficients


@triton.jit
def _store_lm(re_ptr, im_ptr, gre_ptr, gim_ptr, row, grow, k, mask, x, y, z, inv, mf,
              c_re, c_im, cm1_re, cm1_im, p, dp, GRADIENTS: tl.constexpr):
    """Store Y_lm = c_m P_lm (column k) and, if asked, its gradient."""
    tl.store(re_ptr + row + k, c_re * p, mask=mask)
    tl.store(im_ptr + row + k, c_im * p, mask=mask)
    if GRADIENTS:
        # polynomial gradient G = (m c_{m-1} P, i m c_{m-1} P, c_m dP/dz), then its tangential
        # part (G - r (r.G)) / |r|
        gx_re = mf * cm1_re * p
        gx_im = mf * cm1_im * p
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


@triton.jit
def _sph_harm_kernel(
    v_ptr, coef_ptr, re_ptr, im_ptr, gre_ptr, gim_ptr, E,
    LMAX: tl.constexpr, GRADIENTS: tl.constexpr, BLOCK_E: tl.constexpr,
):
    L1: tl.constexpr = LMAX + 1
    L: tl.constexpr = L1 * (LMAX + 2) // 2
    # slots of the float64 coefficient table (see _coefficient_list)
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
    # m < LMAX has l = m, m + 1, ..., LMAX; m = LMAX (only l = m) follows the loop
    for m in range(0, LMAX):
        mf = zero + m  # m as a float, for the gradient
        # l = m: P_mm = diag[m]
        p_prev2 = zero + tl.load(coef_ptr + m).to(dt)
        dp_prev2 = zero
        _store_lm(re_ptr, im_ptr, gre_ptr, gim_ptr, row, grow, m * (m + 1) // 2 + m, mask, x, y, z, inv, mf,
                  c_re, c_im, cm1_re, cm1_im, p_prev2, dp_prev2, GRADIENTS)
        # l = m + 1: P = sub[m] z P_mm
        s = tl.load(coef_ptr + SUB + m).to(dt)
        p_prev = s * z * p_prev2
        dp_prev = s * p_prev2
        _store_lm(re_ptr, im_ptr, gre_ptr, gim_ptr, row, grow, (m + 1) * (m + 2) // 2 + m, mask,
                  x, y, z, inv, mf, c_re, c_im, cm1_re, cm1_im, p_prev, dp_prev, GRADIENTS)
        # l >= m + 2: P_lm = a (z P_{l-1,m} + b P_{l-2,m})
        for l in range(m + 2, L1):
            a = tl.load(coef_ptr + A + l * L1 + m).to(dt)
            b = tl.load(coef_ptr + B + l * L1 + m).to(dt)
            p = a * (z * p_prev + b * p_prev2)
            dp = a * (p_prev + z * dp_prev + b * dp_prev2)
            _store_lm(re_ptr, im_ptr, gre_ptr, gim_ptr, row, grow, l * (l + 1) // 2 + m, mask,
                      x, y, z, inv, mf, c_re, c_im, cm1_re, cm1_im, p, dp, GRADIENTS)
            p_prev2 = p_prev
            dp_prev2 = dp_prev
            p_prev = p
            dp_prev = dp
        # (x + iy)^(m+1) for the next m
        cm1_re = c_re
        cm1_im = c_im
        c_re = cm1_re * x - cm1_im * y
        c_im = cm1_re * y + cm1_im * x
    # l = m = LMAX
    _store_lm(re_ptr, im_ptr, gre_ptr, gim_ptr, row, grow, L - 1, mask, x, y, z, inv, zero + LMAX,
              c_re, c_im, cm1_re, cm1_im, zero + tl.load(coef_ptr + LMAX).to(dt), zero, GRADIENTS)


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
