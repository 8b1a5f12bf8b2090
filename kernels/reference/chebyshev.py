"""Reference Chebyshev polynomials of a transformed distance (see ``kernels/chebyshev.py``)."""

from __future__ import annotations

import torch

# transform codes shared by every backend
IDENTITY, EXP_COS, POW, LINEAR, AENET = 0, 1, 2, 3, 4


def distance_transform(r, code: int, lam: float, rcut: float, rmin: float):
    """x(r), dx/dr, d2x/dr2 for the distance maps of ACE_SPEC.md 2.2 and 5."""
    one = torch.ones_like(r)
    if code == IDENTITY:
        return r, one, torch.zeros_like(r)
    if code == EXP_COS:  # ChebExpCos: x = 1 - 2 (e^{-lam r/rc} - e^{-lam}) / (1 - e^{-lam})
        y1 = torch.exp(-lam * r / rcut)
        y2 = torch.exp(torch.tensor(-lam, dtype=r.dtype))
        x = 1.0 - 2.0 * (y1 - y2) / (1.0 - y2)
        dx = 2.0 * (lam / rcut) * y1 / (1.0 - y2)
        return x, dx, -(lam / rcut) * dx
    if code == POW:  # ChebPow: x = 1 - 2 (1 - r/rc)^lam, constant beyond rc
        base = torch.clamp(1.0 - r / rcut, min=0.0)
        live = base > 0
        safe = torch.where(live, base, one)
        x = 1.0 - 2.0 * safe**lam
        dx = 2.0 * lam / rcut * safe ** (lam - 1.0)
        d2x = -2.0 * lam * (lam - 1.0) / (rcut * rcut) * safe ** (lam - 2.0)
        zero = torch.zeros_like(r)
        return torch.where(live, x, one), torch.where(live, dx, zero), torch.where(live, d2x, zero)
    if code == LINEAR:  # ChebLinear: x = 1 - r/rc
        return 1.0 - r / rcut, -one / rcut, torch.zeros_like(r)
    if code == AENET:  # aenet: x = (2r - r0 - r1)/(r1 - r0) on [r0, r1] = [rmin, rcut]
        width = rcut - rmin
        return (2.0 * r - rmin - rcut) / width, 2.0 * one / width, torch.zeros_like(r)
    raise ValueError(f"unknown distance transform code {code}")


def chebyshev(r, n_max: int, kind: int, code: int, lam: float, rcut: float, rmin: float, order: int):
    """P_n(x(r)) for n = 0..n_max with P = T (kind 1) or U (kind 2), and d/dr, d2/dr2.

    The derivatives in x come from the differentiated three-term recurrence
    P'_{n+1} = 2 P_n + 2x P'_n - P'_{n-1} and P''_{n+1} = 4 P'_n + 2x P''_n - P''_{n-1}, which,
    unlike n U_{n-1}, stays exact at x = +-1; the chain rule maps them to r.
    """
    x, dx, d2x = distance_transform(r, code, lam, rcut, rmin)
    p = [torch.ones_like(x)]
    dp = [torch.zeros_like(x)]
    d2p = [torch.zeros_like(x)]
    if n_max >= 1:
        p.append(x * kind)  # T_1 = x, U_1 = 2x
        dp.append(torch.full_like(x, float(kind)))
        d2p.append(torch.zeros_like(x))
    for n in range(1, n_max):
        p.append(2.0 * x * p[n] - p[n - 1])
        dp.append(2.0 * p[n] + 2.0 * x * dp[n] - dp[n - 1])
        d2p.append(4.0 * dp[n] + 2.0 * x * d2p[n] - d2p[n - 1])
    values = torch.stack(p, dim=-1)
    if order == 0:
        return values, None, None
    dpx = torch.stack(dp, dim=-1)
    d1 = dpx * dx.unsqueeze(-1)
    if order == 1:
        return values, d1, None
    d2 = torch.stack(d2p, dim=-1) * (dx * dx).unsqueeze(-1) + dpx * d2x.unsqueeze(-1)
    return values, d1, d2
