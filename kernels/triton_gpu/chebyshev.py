"""Triton Chebyshev polynomials of a transformed distance (contract: ``reference/chebyshev.py``)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..reference.chebyshev import AENET, EXP_COS, IDENTITY, LINEAR, POW

# slots of the float64 parameter vector (Python float kernel arguments would be passed as float32)
_LAM, _RCUT, _RMIN, _K1, _K2, _LAM1, _LAM2, _WIDTH = range(8)


@triton.jit
def _chebyshev_kernel(
    r_ptr, par_ptr, v_ptr, d1_ptr, d2_ptr, E,
    N_MAX: tl.constexpr, KIND: tl.constexpr, CODE: tl.constexpr, ORDER: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    e = tl.program_id(0).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E).to(tl.int64)
    mask = e < E
    r = tl.load(r_ptr + e, mask=mask, other=0.0)
    dt = r.dtype
    zero = tl.zeros_like(r)
    one = zero + 1.0

    # x(r), dx/dr, d2x/dr2 as distance_transform, computed in float64 whatever r's dtype and then
    # cast: x = 1 - 2(...) cancels near x = -1, and the recurrence amplifies an error in x by up to
    # n^2 (T'_n(+-1) = n^2), which in float32 alone would cost ~1e-5 at n_max ~ 12. The cost is a
    # few float64 operations per edge; for float64 input this is exactly the reference's arithmetic.
    r64 = r.to(tl.float64)
    zero64 = tl.zeros_like(r64)
    one64 = zero64 + 1.0
    HAS_D2X: tl.constexpr = (CODE == 1) or (CODE == 2)  # d2x is 0 for the affine maps
    d2x64 = zero64
    if CODE == 0:  # identity
        x64 = r64
        dx64 = one64
    elif CODE == 1:  # exp_cos
        lam = tl.load(par_ptr + 0)
        rcut = tl.load(par_ptr + 1)
        k1 = tl.load(par_ptr + 3)  # 2 lam/rcut
        k2 = tl.load(par_ptr + 4)  # -lam/rcut
        y1 = tl.exp(-lam * r64 / rcut)
        y2 = tl.exp(-lam)  # a scalar
        x64 = 1.0 - 2.0 * (y1 - y2) / (1.0 - y2)
        dx64 = k1 * y1 / (1.0 - y2)
        d2x64 = k2 * dx64
    elif CODE == 2:  # pow, held at x = 1 where the base 1 - r/rcut is <= 0
        rcut = tl.load(par_ptr + 1)
        lam = tl.load(par_ptr + 0)
        k1 = tl.load(par_ptr + 3)  # 2 lam/rcut
        k2 = tl.load(par_ptr + 4)  # -2 lam (lam-1)/rcut^2
        lam1 = tl.load(par_ptr + 5)
        lam2 = tl.load(par_ptr + 6)
        base = 1.0 - r64 / rcut
        live = base > 0.0
        lb = tl.log(tl.where(live, base, one64))  # base^p = exp(p log base), base > 0
        x64 = tl.where(live, 1.0 - 2.0 * tl.exp(lam * lb), one64)
        dx64 = tl.where(live, k1 * tl.exp(lam1 * lb), zero64)
        d2x64 = tl.where(live, k2 * tl.exp(lam2 * lb), zero64)
    elif CODE == 3:  # linear
        rcut = tl.load(par_ptr + 1)
        k1 = tl.load(par_ptr + 3)  # -1/rcut
        x64 = 1.0 - r64 / rcut
        dx64 = zero64 + k1
    else:  # aenet
        rmin = tl.load(par_ptr + 2)
        rcut = tl.load(par_ptr + 1)
        k1 = tl.load(par_ptr + 3)  # 2/width
        width = tl.load(par_ptr + 7)
        x64 = (2.0 * r64 - rmin - rcut) / width
        dx64 = zero64 + k1
    x = x64.to(dt)
    dx = dx64.to(dt)
    d2x = d2x64.to(dt)
    dx2 = (dx64 * dx64).to(dt)

    NP1: tl.constexpr = N_MAX + 1
    row = e * NP1
    # P_0 = 1
    p_prev = one
    dp_prev = zero
    d2p_prev = zero
    tl.store(v_ptr + row, p_prev, mask=mask)
    if ORDER >= 1:
        tl.store(d1_ptr + row, zero, mask=mask)
    if ORDER >= 2:
        tl.store(d2_ptr + row, zero, mask=mask)
    if N_MAX >= 1:
        # P_1 = KIND x (T_1 = x, U_1 = 2x)
        p = x * KIND
        dp = zero + KIND
        d2p = zero
        tl.store(v_ptr + row + 1, p, mask=mask)
        if ORDER >= 1:
            tl.store(d1_ptr + row + 1, dp * dx, mask=mask)
        if ORDER >= 2:
            if HAS_D2X:
                tl.store(d2_ptr + row + 1, d2p * dx2 + dp * d2x, mask=mask)
            else:
                tl.store(d2_ptr + row + 1, d2p * dx2, mask=mask)
        for n in tl.static_range(1, N_MAX):
            # P_{n+1} = 2x P_n - P_{n-1}, and the recurrence differentiated once and twice in x
            p_next = 2.0 * x * p - p_prev
            tl.store(v_ptr + row + (n + 1), p_next, mask=mask)
            if ORDER >= 1:
                dp_next = 2.0 * p + 2.0 * x * dp - dp_prev
                tl.store(d1_ptr + row + (n + 1), dp_next * dx, mask=mask)
                if ORDER >= 2:
                    d2p_next = 4.0 * dp + 2.0 * x * d2p - d2p_prev
                    if HAS_D2X:
                        tl.store(d2_ptr + row + (n + 1), d2p_next * dx2 + dp_next * d2x, mask=mask)
                    else:
                        tl.store(d2_ptr + row + (n + 1), d2p_next * dx2, mask=mask)
                    d2p_prev = d2p
                    d2p = d2p_next
                dp_prev = dp
                dp = dp_next
            p_prev = p
            p = p_next


def _parameters(code: int, lam: float, rcut: float, rmin: float, device) -> torch.Tensor:
    """The float64 constants of the transform, derived on the host as the reference derives them."""
    par = [lam, rcut, rmin, 0.0, 0.0, lam - 1.0, lam - 2.0, rcut - rmin]
    if code == EXP_COS:
        par[_K1], par[_K2] = 2.0 * (lam / rcut), -(lam / rcut)
    elif code == POW:
        par[_K1], par[_K2] = 2.0 * lam / rcut, -2.0 * lam * (lam - 1.0) / (rcut * rcut)
    elif code == LINEAR:
        par[_K1] = -1.0 / rcut
    elif code == AENET:
        par[_K1] = 2.0 / (rcut - rmin)
    elif code != IDENTITY:
        raise ValueError(f"unknown distance transform code {code}")
    return torch.tensor(par, dtype=torch.float64, device=device)


def chebyshev(r, n_max: int, kind: int, code: int, lam: float, rcut: float, rmin: float, order: int):
    """``(values, d/dr, d2/dr2)``, each ``(E, n_max+1)`` in r's dtype (``None`` above ``order``)."""
    e = r.shape[0]
    v = torch.empty((e, n_max + 1), dtype=r.dtype, device=r.device)
    d1 = torch.empty_like(v) if order >= 1 else None
    d2 = torch.empty_like(v) if order >= 2 else None
    par = _parameters(code, lam, rcut, rmin, r.device)
    block_e = 128
    _chebyshev_kernel[(triton.cdiv(e, block_e),)](
        r, par, v, v if d1 is None else d1, v if d2 is None else d2, e,
        N_MAX=n_max, KIND=kind, CODE=code, ORDER=order, BLOCK_E=block_e,
    )
    return v, d1, d2
