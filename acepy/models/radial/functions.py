"""PACE's analytic radial basis g_k(r), its polynomial switch, and the contraction to R_nl.

PACE does not evaluate these functions on every call: at load time it tabulates them on a uniform
grid and then evaluates only the cubic Hermite tables (ACE_SPEC.md 2.6, checklist item 6.3);
:class:`~acepy.models.radial.pace.PaceRadial` does the same, with these functions as the node values.

Every analytic function here is plain torch code in the dtype of ``r``, returns its values and its
analytic derivative d/dr, and is differentiable by autograd (so it can also serve an exact path).
Masked-out branches are computed on a harmless stand-in distance, so that ``torch.where`` never
sees NaN or inf and gradients stay finite.

The quirks of the C++ code are reproduced on purpose; each is marked "quirk" with its spec section.
"""

from __future__ import annotations

import math

import torch

from acepy.kernels import chebyshev

__all__ = ["cutoff_func_poly", "pace_radial_basis", "contract_radial"]


# ---------------------------------------------------------------------------------------------
# small helpers


def _where(mask: torch.Tensor, a: torch.Tensor, b) -> torch.Tensor:
    """``torch.where`` that broadcasts an (E,) mask over trailing function axes."""
    while mask.ndim < a.ndim:
        mask = mask.unsqueeze(-1)
    return torch.where(mask, a, b)


def _stand_in(r: torch.Tensor, mask: torch.Tensor, value: float) -> torch.Tensor:
    """``r`` where ``mask`` holds, ``value`` elsewhere: a distance at which every formula is finite,
    used for the entries that a branch does not own (their result is discarded)."""
    return torch.where(mask, r, torch.full_like(r, value))


def cutoff_func_poly(r: torch.Tensor, r_in, delta):
    """PACE's polynomial switch ``cutoff_func_poly`` (ACE_SPEC.md 2.3): 1 for r <= r_in - delta,
    0 for r >= r_in, a C2 quintic in between. Returns ``(f, df/dr)``.

    ``r_in`` and ``delta`` are floats or tensors broadcasting with ``r`` (the zbl energy-level
    cutoff of the ACE component switches with a per-atom width)."""
    one = torch.ones_like(r)
    zero = torch.zeros_like(r)
    r_in = torch.as_tensor(r_in, dtype=r.dtype, device=r.device)
    delta = torch.as_tensor(delta, dtype=r.dtype, device=r.device)
    low = r <= r_in - delta
    high = r >= r_in
    mid = ~(low | high)  # empty where delta <= 0, so the division below never sees delta = 0 live
    d = torch.where(delta > 0, delta, torch.ones_like(delta))
    rm = torch.where(mid, r, r_in - 0.5 * d)  # a finite stand-in where the quintic is not used
    x = 1 - 2 * (1 + (rm - r_in) / d)
    f = 0.5 + 7.5 / 2.0 * (x / 4.0 - x**3 / 6.0 + x**5 / 20.0)
    df = -7.5 / d * (0.25 - x * x / 2.0 + x**4 / 4.0)
    f = torch.where(mid, f, torch.where(low, one, zero))
    df = torch.where(mid, df, zero)
    return f, df


# ---------------------------------------------------------------------------------------------
# PACE radial basis g_k (ACE_SPEC.md 2.2, 2.3)


def _cheb_exp_cos(r, lam, rcut, dcut, nradbase):
    """ChebExpCos: g_0 = 1, g_k = (1 - T_k(x))/2, times the cos envelope to rcut, times a second
    cos envelope on [rcut - dcut, rcut] (quirk: two envelopes, ACE_SPEC.md 2.2, 6.8)."""
    t, dt, _ = chebyshev(r, nradbase - 1, transform="exp_cos", lam=lam, rcut=rcut, order=1, backend="torch")
    g = torch.cat([t[:, :1], 0.5 - 0.5 * t[:, 1:]], dim=1)  # T_0 = 1 and dT_0 = 0 already
    dg = torch.cat([dt[:, :1], -0.5 * dt[:, 1:]], dim=1)
    env = (0.5 * (1.0 + torch.cos(math.pi * r / rcut))).unsqueeze(-1)
    denv = (-0.5 * torch.sin(math.pi * r / rcut) * math.pi / rcut).unsqueeze(-1)
    g, dg = g * env, g * denv + dg * env
    start = rcut - dcut
    tail = r > start
    dc = dcut if dcut != 0 else 1.0
    rt = _stand_in(r, tail, start)
    fcut = (0.5 * (1.0 + torch.cos(math.pi * (rt - start) / dc))).unsqueeze(-1)
    dfcut = (-0.5 * torch.sin(math.pi * (rt - start) / dc) * math.pi / dc).unsqueeze(-1)
    return _where(tail, g * fcut, g), _where(tail, g * dfcut + dg * fcut, dg)


def _cheb_shifted(r, transform, lam, rcut, nradbase):
    """ChebPow / ChebLinear: g_k = (1 - T_{k+1}(x))/2, k = 0..nradbase-1, no envelope."""
    t, dt, _ = chebyshev(r, nradbase, transform=transform, lam=lam, rcut=rcut, order=1, backend="torch")
    return 0.5 - 0.5 * t[:, 1:], -0.5 * dt[:, 1:]


def _sbessel(r, rcut, nradbase):
    """Simplified spherical Bessel basis with its orthogonalising recursion (ACE_SPEC.md 2.2).

    lambda and dcut are unused. The prefactors are computed in Python floats in the same order as
    the C++ code, so that node values agree with PACE to the last bit or so.
    """
    def aux(n):
        pre = (-1) ** n * math.sqrt(2) * math.pi / rcut**1.5 * (n + 1) * (n + 2) / math.sqrt(
            (n + 1) ** 2 + (n + 2) ** 2)
        f = torch.zeros_like(r)
        df = torch.zeros_like(r)
        for m in (n + 1, n + 2):
            z = r * m * math.pi / rcut
            nz = z != 0
            zs = torch.where(nz, z, torch.ones_like(z))
            sinc = torch.where(nz, torch.sin(zs) / zs, torch.ones_like(z))
            dsinc = torch.where(nz, (torch.cos(zs) * zs - torch.sin(zs)) / (zs * zs), torch.zeros_like(z))
            f = f + sinc
            df = df + dsinc * m * math.pi / rcut
        return pre * f, pre * df

    gs, dgs = [], []
    if nradbase >= 1:
        g, dg = aux(0)
        gs.append(g)
        dgs.append(dg)
    d_prev = 1.0
    for n in range(1, nradbase):
        en = n**2 * (n + 2) ** 2 / (4 * (n + 1) ** 4 + 1)
        dn = 1 - en / d_prev
        f, df = aux(n)
        s = math.sqrt(en / d_prev)
        gs.append(1 / math.sqrt(dn) * (f + s * gs[-1]))
        dgs.append(1 / math.sqrt(dn) * (df + s * dgs[-1]))
        d_prev = dn
    return torch.stack(gs, dim=-1), torch.stack(dgs, dim=-1)


def pace_radial_basis(
    r: torch.Tensor,
    radbasename: str,
    lam: float,
    rcut: float,
    dcut: float,
    rcut_in: float,
    dcut_in: float,
    nradbase: int,
    inner_cutoff_type: str,
):
    """PACE's ``radbase`` (ACE_SPEC.md 2.2-2.3): ``(g, dg/dr)``, each ``(E, nradbase)``.

    ``nradbase`` is the **global** number of basis functions: PACE computes all of them for every
    pair, whatever the bond's own ``nradbasemax``. ``inner_cutoff_type`` is the potential's single
    global value.
    """
    e = r.shape[0]
    if nradbase == 0:
        z = r.new_zeros((e, 0))
        return z, z.clone()
    if inner_cutoff_type == "zbl":
        # Quirk (ACE_SPEC.md 2.2, 6.7): the C++ code does `cut_in = dcut_in == 0`, so r_in is 1.0
        # when dcut_in == 0 and 0.0 otherwise; the file's rcut_in is ignored here.
        rcut_in = 1.0 if dcut_in == 0 else 0.0
    # Range gate: all g_k = 0 for r <= r_in - delta_in or r >= r_c.
    live = (r > rcut_in - dcut_in) & (r < rcut)
    rs = _stand_in(r, live, 0.5 * max(rcut_in - dcut_in, 0.0) + 0.5 * rcut)
    if radbasename == "ChebExpCos":
        g, dg = _cheb_exp_cos(rs, lam, rcut, dcut, nradbase)
    elif radbasename == "ChebPow":
        g, dg = _cheb_shifted(rs, "pow", lam, rcut, nradbase)
    elif radbasename == "ChebLinear":
        g, dg = _cheb_shifted(rs, "linear", lam, rcut, nradbase)
    elif radbasename in ("SBessel", "TEST_SBessel"):
        g, dg = _sbessel(rs, rcut, nradbase)
    elif radbasename.startswith("TEST_"):  # PACE's stub: every g_k = 0
        g, dg = rs.new_zeros((e, nradbase)), rs.new_zeros((e, nradbase))
    else:
        raise ValueError(f"Unknown radial basis function name: {radbasename!r}")
    if inner_cutoff_type in ("distance", "zbl"):
        # ACE is switched off below r_in - delta_in and fully on above r_in: multiply by 1 - f
        # (ACE_SPEC.md 2.3; the source comment about a shifted range is stale).
        f, df = cutoff_func_poly(rs, rcut_in, dcut_in)
        fc, dfc = (1 - f).unsqueeze(-1), (-df).unsqueeze(-1)
        g, dg = g * fc, dg * fc + g * dfc
    return _where(live, g, 0.0), _where(live, dg, 0.0)


def contract_radial(g: torch.Tensor, dg: torch.Tensor, crad: torch.Tensor):
    """R_nl = sum_k crad[n, l, k] g_k and likewise R'_nl (ACE_SPEC.md 2.4).

    ``crad (nradmax, lmax + 1, nradbase)`` is already padded to the global sizes. The sum runs over
    k in order, starting from zero, as PACE's ``radfunc`` does (rounding-level agreement).
    """
    e = g.shape[0]
    nr, nl, nk = crad.shape
    c = crad.to(dtype=g.dtype, device=g.device)
    f = g.new_zeros((e, nr, nl))
    df = g.new_zeros((e, nr, nl))
    for k in range(nk):
        f = f + c[:, :, k] * g[:, k, None, None]
        df = df + c[:, :, k] * dg[:, k, None, None]
    return f, df
