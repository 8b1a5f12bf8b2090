"""Radial part of the ACE model: g_k(r), R_nl(r) and the pair core repulsion cr(r), with d/dr.

Three kinds of radial basis exist in the files (``ACEPotentialSpec.radial_kind``):

* ``"pace"``: PACE's own bases (ChebExpCos, ChebPow, ChebLinear, SBessel, TEST_*). PACE does not
  evaluate them directly: at load time it tabulates them on a uniform grid and then evaluates only
  the cubic Hermite tables (ACE_SPEC.md 2.6, checklist item 6.3). ``RadialTables`` does the same,
  with the analytic functions below as the node values, so energies agree with PACE to rounding.
* ``"spline"``: ACEpotentials v0.6 spline bonds, tables straight from the file (ACE_SPEC.md 1.6, 2.7).
* ``"ships"``: ACE.jl SHIPs polynomials, evaluated analytically on every call as PACE does
  (ACE_SPEC.md 1.5, 2.7), plus the optional SHIPs pair potential, which enters as cr = V/2 (2.8).

Every analytic function here is plain torch code in the dtype of ``r``, returns its values and its
analytic derivative d/dr, and is differentiable by autograd (so it can also serve an exact path).
Masked-out branches are computed on a harmless stand-in distance, so that ``torch.where`` never
sees NaN or inf and gradients stay finite.

The quirks of the C++ code are reproduced on purpose; each is marked "quirk" with its spec section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from acepy.spec import ACEPotentialSpec, PaceBond, ShipsBond, SplineBond
from acepy.kernels import SplineGrid, SplineTable, build_spline_table, chebyshev, spline_eval

__all__ = [
    "ZBL_K",
    "RadialValues",
    "RadialTables",
    "PaceBondRadial",
    "cutoff_func_poly",
    "pace_radial_basis",
    "contract_radial",
    "pace_core_repulsion",
    "zbl_core_repulsion",
    "zbl_atomic_number",
    "ships_polynomials",
    "ships_pair_potential",
]

# Coulomb constant e^2/(4 pi eps0) in eV*Angstrom, exactly as PACE writes it (ACE_SPEC.md 2.5).
ZBL_K = 14.399645351950543
# ZBL universal screening function phi(x) = sum_k C_k exp(E_k x) (ACE_SPEC.md 2.5).
_ZBL_PHI_COEFS = (0.18175, 0.50986, 0.28022, 0.02817)
_ZBL_PHI_EXPS = (-3.19980, -0.94229, -0.40290, -0.20162)
# PACE's own element table for ZBL stops at Lr (Z = 103); anything else is "not recognized".
_ZBL_ZMAX = 103


class RadialValues(NamedTuple):
    """Per-edge radial values and their derivatives with respect to r.

    ``gk (E, nradbase)``: the basis functions (rank-1 functions use these, ACE_SPEC.md 2.10);
    ``rnl (E, nradmax, lmax + 1)``: the radial functions R_nl; ``cr (E,)``: the pair core
    repulsion summed into rho_core. ``d*`` are the d/dr of each, with the same shapes.
    """

    gk: torch.Tensor
    dgk: torch.Tensor
    rnl: torch.Tensor
    drnl: torch.Tensor
    cr: torch.Tensor
    dcr: torch.Tensor


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


# ---------------------------------------------------------------------------------------------
# core repulsion (ACE_SPEC.md 2.5)


def pace_core_repulsion(
    r: torch.Tensor,
    prehc: float,
    lambdahc: float,
    rcut: float,
    rcut_in: float,
    dcut_in: float,
    inner_cutoff_type: str,
):
    """PACE's ``radcore`` for inner_cutoff_type density/distance: ``(cr, dcr/dr)``, each ``(E,)``.

    cr = |prehc| exp(-|lambdahc| r^2)/r * (1 + cos(pi r/rcut))/2 where |lambdahc| r^2 < 50, else 0;
    for ``distance`` also multiplied by f(r; r_in, delta_in), so it acts only below r_in. Zero for
    r >= rcut (where PACE's table is zero; the C++ formula itself is never used there).
    """
    a, b = abs(prehc), abs(lambdahc)
    live = (b * r * r < 50.0) & (r < rcut) & (r > 0)
    rs = _stand_in(r, live, 0.5 * rcut)
    r2 = rs * rs
    lr2 = b * r2
    y = torch.exp(-lr2)
    cr = a * y / rs
    dcr = -a * y * (2.0 * lr2 + 1.0) / r2
    x0 = rs / rcut
    env = 0.5 * (1.0 + torch.cos(math.pi * x0))
    denv = -0.5 * torch.sin(math.pi * x0) * math.pi / rcut
    cr, dcr = cr * env, cr * denv + dcr * env
    if inner_cutoff_type == "distance":
        f, df = cutoff_func_poly(rs, rcut_in, dcut_in)
        cr, dcr = cr * f, dcr * f + cr * df
    return torch.where(live, cr, 0.0), torch.where(live, dcr, 0.0)


def zbl_atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol for the ZBL core repulsion (PACE knows H..Lr)."""
    from ase.data import atomic_numbers

    z = atomic_numbers.get(symbol, -1)
    if not 1 <= z <= _ZBL_ZMAX:
        raise ValueError(
            f"Element `{symbol}` is not recognized: the zbl inner cutoff takes the nuclear charge "
            f"from the element symbol, which must be a chemical symbol H..Lr (Z = 1..{_ZBL_ZMAX})"
        )
    return z


def _zbl_energy(r, a):
    """E(r) = phi(r/a)/r and its first two derivatives (r may be a tensor or a float)."""
    exp = torch.exp if isinstance(r, torch.Tensor) else math.exp
    phi = dphi = d2phi = 0.0
    for c, k in zip(_ZBL_PHI_COEFS, _ZBL_PHI_EXPS):
        t = c * exp(k * (r / a))
        phi = phi + t
        t = t * k
        dphi = dphi + t
        t = t * k
        d2phi = d2phi + t
    e = 1 / r * phi
    de = (-1 / (r * r)) * phi + 1 / r * dphi / a
    d2e = (2 / (r * r * r)) * phi + 2 * (-1 / (r * r)) * dphi / a + (1 / r) * d2phi / (a * a)
    return e, de, d2e


def zbl_core_repulsion(r: torch.Tensor, z_i: int, z_j: int, cut_out: float, cut_in: float, prefactor: float):
    """PACE's ``ZBL`` for inner_cutoff_type zbl (ACE_SPEC.md 2.5): ``(cr, dcr/dr)``, each ``(E,)``.

    cr = prefactor K/2 Z_i Z_j (E_ij(r) + S(r)), with S the cubic-quartic shift that makes the
    ZBL energy and its first two derivatives vanish at cut_out, times f(r; cut_out, cut_out -
    cut_in); 0 for r >= cut_out. PACE calls it with cut_out = rcut and cut_in = rcut - dcut.
    """
    a = 0.46850 / (z_i**0.23 + z_j**0.23)
    ec, dec, d2ec = _zbl_energy(float(cut_out), a)
    drcut = cut_out - cut_in
    if drcut > 0:
        A = (-3 * dec + drcut * d2ec) / (drcut * drcut)
        B = (2 * dec - drcut * d2ec) / (drcut * drcut * drcut)
    else:  # dcut = 0: S = C for every r < cut_out, A and B are never used (inf/nan in C++)
        A = B = 0.0
    C = -ec + 1.0 / 2 * drcut * dec - 1.0 / 12 * (drcut * drcut) * d2ec
    live = (r < cut_out) & (r > 0)
    rs = _stand_in(r, live, 0.5 * cut_out)
    e, de, _ = _zbl_energy(rs, a)
    ramp = rs > cut_in  # r < cut_out already holds on live entries
    u = torch.where(ramp, rs - cut_in, torch.zeros_like(rs))
    s = torch.where(ramp, A / 3 * u**3 + B / 4 * u**4 + C, torch.full_like(rs, C))
    ds = torch.where(ramp, A * u**2 + B * u**3, torch.zeros_like(rs))
    pre = prefactor * ZBL_K / 2 * z_i * z_j
    cr = pre * (e + s)
    dcr = pre * (de + ds)
    f, df = cutoff_func_poly(rs, cut_out, cut_out - cut_in)
    cr, dcr = cr * f, dcr * f + cr * df
    return torch.where(live, cr, 0.0), torch.where(live, dcr, 0.0)


# ---------------------------------------------------------------------------------------------
# one PACE bond, analytically


@dataclass(frozen=True)
class PaceBondRadial:
    """The analytic radial functions of one ordered pair of a PACE-radial potential.

    Holds the bond parameters plus the potential-wide context PACE uses (global nradbase, nradmax,
    lmax, the single global inner_cutoff_type and, for zbl, the nuclear charges).
    """

    bond: PaceBond
    nradbase: int
    nradmax: int
    lmax: int
    inner_cutoff_type: str
    z_i: int = 0
    z_j: int = 0

    def padded_crad(self) -> np.ndarray:
        """crad[n, l, k] padded with zeros to (nradmax, lmax + 1, nradbase)."""
        c = np.zeros((self.nradmax, self.lmax + 1, self.nradbase))
        b = self.bond.crad
        c[: b.shape[0], : b.shape[1], : b.shape[2]] = b
        return c

    def gk(self, r: torch.Tensor):
        b = self.bond
        return pace_radial_basis(r, b.radbasename, float(b.radparameters[0]), b.rcut, b.dcut, b.rcut_in,
                                 b.dcut_in, self.nradbase, self.inner_cutoff_type)

    def core(self, r: torch.Tensor):
        b = self.bond
        if self.inner_cutoff_type == "zbl":
            # The OUTER cutoff: ZBL acts at full strength by itself; ACE is switched off inside.
            return zbl_core_repulsion(r, self.z_i, self.z_j, b.rcut, b.rcut - b.dcut, b.prehc)
        return pace_core_repulsion(r, b.prehc, b.lambdahc, b.rcut, b.rcut_in, b.dcut_in, self.inner_cutoff_type)

    def __call__(self, r: torch.Tensor) -> RadialValues:
        g, dg = self.gk(r)
        f, df = contract_radial(g, dg, torch.as_tensor(self.padded_crad(), dtype=r.dtype, device=r.device))
        cr, dcr = self.core(r)
        return RadialValues(g, dg, f, df, cr, dcr)


# ---------------------------------------------------------------------------------------------
# ACE.jl SHIPs polynomials and pair potential (ACE_SPEC.md 2.7, 2.8)


def ships_polynomials(r, r0, p, xl, xr, pl, pr, A, B, C):
    """P_n(r), n = 0..N-1, and dP_n/dr for the SHIPs basis (ACE_SPEC.md 2.7): ``(E, N)`` each.

    x = ((1 + r0)/(1 + r))^p, envelope (x - xl)^pl (x - xr)^pr (0 where x < xl with pl > 0 or
    x > xr with pr > 0), P_0 = A_0 f, P_1 = (A_1 x + B_1) P_0, P_n = (A_n x + B_n) P_{n-1} + C_n P_{n-2}.
    The scalar parameters may be floats or per-edge ``(E,)`` tensors, ``A, B, C`` are ``(N,)`` or
    ``(E, N)``; zero-padded coefficients give P_n = 0, which is how bonds with fewer functions
    than the global count are padded.
    """
    def per_edge(v):
        return torch.as_tensor(v, dtype=r.dtype, device=r.device)

    r0, p, xl, xr, pl, pr = (per_edge(v) for v in (r0, p, xl, xr, pl, pr))
    A, B, C = (per_edge(v) for v in (A, B, C))
    A, B, C = (v.expand(r.shape[0], -1) if v.ndim == 1 else v for v in (A, B, C))
    n = A.shape[1]
    x = ((1 + r0) / (1 + r)) ** p
    dx = -p * ((1 + r) / (1 + r0)) ** (-p - 1) / (1 + r0)
    off = ((x < xl) & (pl > 0)) | ((x > xr) & (pr > 0))
    ul, ur = x - xl, x - xr
    f = ul**pl * ur**pr
    # pl * (x - xl)^(pl - 1) is 0 * inf at x = xl when pl = 0: take the term as 0 there.
    dl = torch.where(pl > 0, pl * ul ** (pl - 1), torch.zeros_like(x)) * ur**pr
    drr = torch.where(pr > 0, ul**pl * pr * ur ** (pr - 1), torch.zeros_like(x))
    f = torch.where(off, torch.zeros_like(x), f)
    df = torch.where(off, torch.zeros_like(x), dl + drr)
    ps = [A[:, 0] * f]
    dps = [A[:, 0] * df * dx]
    if n > 1:
        ps.append((A[:, 1] * x + B[:, 1]) * ps[0])
        dps.append(A[:, 1] * dx * ps[0] + (A[:, 1] * x + B[:, 1]) * dps[0])
    for k in range(2, n):
        a = A[:, k] * x + B[:, k]
        ps.append(a * ps[k - 1] + C[:, k] * ps[k - 2])
        dps.append(A[:, k] * dx * ps[k - 1] + a * dps[k - 1] + C[:, k] * dps[k - 2])
    return torch.stack(ps, dim=-1), torch.stack(dps, dim=-1)


def _ships_params(b: ShipsBond):
    return (b.r0, b.p, b.xl, b.xr, b.pl, b.pr)


def ships_pair_potential(r, basis: ShipsBond, coefficients, ri, e0, A, B):
    """The SHIPs pair potential V(r) and dV/dr (ACE_SPEC.md 2.8), per edge.

    ``coefficients (E, maxn)`` of the edge's pair; ``ri, e0, A, B (E,)`` its repulsive core
    (ri = 0 where the file has none, so the polynomial branch is always taken there).
    V = sum_n c_n P_n(r) for r > ri, else e0 + B exp(-A (r/ri - 1)) ri/r.
    """
    P, dP = ships_polynomials(r, *_ships_params(basis), basis.A, basis.B, basis.C)
    c = torch.as_tensor(coefficients, dtype=r.dtype, device=r.device)
    v = torch.zeros_like(r)
    dv = torch.zeros_like(r)
    for n in range(P.shape[1]):  # in order, as the C++ loop
        v = v + c[:, n] * P[:, n]
        dv = dv + c[:, n] * dP[:, n]
    core = r <= ri  # never true where ri = 0 (no core), as distances are positive
    ris = torch.where(core, ri, torch.ones_like(ri))
    rs = torch.where(core & (r > 0), r, ris)  # stand-in distance where the branch is not taken
    ex = torch.exp(-A * (rs / ris - 1))
    vc = e0 + B * ex * (ris / rs)
    dvc = B * ex * ris * (-A / ris / rs - 1 / (rs * rs))
    return torch.where(core, vc, v), torch.where(core, dvc, dv)


# ---------------------------------------------------------------------------------------------
# the model-facing object


class RadialTables:
    """All radial functions of one potential, ready to evaluate on an edge list.

    Build with :meth:`from_spec`; evaluate with :meth:`evaluate`. Pair ``(mu_i, mu_j)`` (centre,
    neighbour) is table ``t = mu_i * nelements + mu_j``.

    Attributes: ``kind`` ('pace' | 'spline' | 'ships'), ``elements``, ``nelements``, ``nradbase``,
    ``nradmax``, ``lmax``, ``inner_cutoff_type``, ``cutoffs`` (nelements, nelements) float64 numpy,
    ``rcut_in`` / ``dcut_in`` (nelements, nelements, the bonds' raw values, for the energy-level zbl
    cutoff of ACE_SPEC.md 2.12), and the tables ``gk``, ``rnl``, ``hc`` (:class:`SplineTable` or
    None where a kind has no such table).
    """

    def __init__(self):
        raise TypeError("use RadialTables.from_spec(spec, dtype, device)")

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: ACEPotentialSpec, dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> "RadialTables":
        self = object.__new__(cls)
        n = spec.nelements
        self.kind = spec.radial_kind
        self.elements = list(spec.elements)
        self.nelements = n
        self.nradbase = spec.nradbase
        self.nradmax = spec.nradmax
        self.lmax = spec.lmax
        self.inner_cutoff_type = spec.inner_cutoff_type
        self.dtype = dtype
        self.device = torch.device(device)
        self.cutoffs = np.array([[spec.cutoff(i, j) for j in range(n)] for i in range(n)], dtype=np.float64)
        self.rcut_in = np.zeros((n, n))
        self.dcut_in = np.zeros((n, n))
        self.gk: SplineTable | None = None  # spline bonds (ACE.jl): g_k only
        self.pace_table: SplineTable | None = None  # PACE bases: [g_k | R_nl | core repulsion]
        self.bond_radials: dict[tuple[int, int], PaceBondRadial] = {}
        self.ships = None
        self.pair = None
        pairs = [(i, j) for i in range(n) for j in range(n)]
        if self.kind == "pace":
            self._build_pace(spec, pairs)
        elif self.kind == "spline":
            self._build_spline(spec, pairs)
        elif self.kind == "ships":
            self._build_ships(spec, pairs)
        else:
            raise ValueError(f"{spec.source}: unknown radial kind {self.kind!r}")
        return self

    def _where(self, spec, pair) -> str:
        i, j = pair
        return f"{spec.source or 'potential'}: bond [{i}, {j}] ({spec.elements[i]}-{spec.elements[j]})"

    def _build_pace(self, spec: ACEPotentialSpec, pairs):
        """Tables exactly as PACE's setuplookupRadspline builds them (ACE_SPEC.md 2.6)."""
        if spec.delta_spline_bins is None:
            raise ValueError(f"{spec.source}: a PACE radial basis needs deltaSplineBins")
        z = [0] * self.nelements
        if self.inner_cutoff_type == "zbl":
            z = []
            for el in spec.elements:
                try:
                    z.append(zbl_atomic_number(el))
                except ValueError as err:
                    raise ValueError(f"{spec.source}: {err}") from None
        grids, gv, gd, rv, rd, hv, hd = [], [], [], [], [], [], []
        for pair in pairs:
            bond = spec.bonds[pair]
            if not isinstance(bond, PaceBond):
                raise ValueError(f"{self._where(spec, pair)}: expected a PACE bond, got {type(bond).__name__}")
            self.rcut_in[pair] = bond.rcut_in
            self.dcut_in[pair] = bond.dcut_in
            radial = PaceBondRadial(bond, self.nradbase, self.nradmax, self.lmax, self.inner_cutoff_type,
                                    z[pair[0]], z[pair[1]])
            self.bond_radials[pair] = radial
            try:
                grid = SplineGrid.from_spacing(bond.rcut, spec.delta_spline_bins)
                nodes = torch.as_tensor(grid.nodes(), dtype=torch.float64)
                v = radial(nodes)
            except ValueError as err:
                raise ValueError(f"{self._where(spec, pair)}: {err}") from err
            grids.append(grid)
            gv.append(v.gk.numpy())
            gd.append(v.dgk.numpy())
            rv.append(v.rnl.reshape(len(nodes), -1).numpy())  # flattened [n][l], as PACE's fr
            rd.append(v.drnl.reshape(len(nodes), -1).numpy())
            hv.append(v.cr.numpy())
            hd.append(v.dcr.numpy())
        # one table with the columns [g_k | R_nl flattened [n][l] | core repulsion]: the three share
        # a grid per pair, so one evaluation locates each edge's segment once for all of them
        values = [np.concatenate([g, f, h[:, None]], axis=1) for g, f, h in zip(gv, rv, hv)]
        slopes = [np.concatenate([g, f, h[:, None]], axis=1) for g, f, h in zip(gd, rd, hd)]
        self.pace_table = build_spline_table(grids, values, slopes, dtype=self.dtype, device=self.device)

    def _build_spline(self, spec: ACEPotentialSpec, pairs):
        """ACEpotentials v0.6 spline bonds (ACE_SPEC.md 1.6, 2.7): nlut = nbins, rscale = nbins/rcut,
        nodes n = 1..nbins straight from the file (node 0 is never used: r below the first node is
        an error). Bonds with fewer functions than the global count are zero-padded."""
        grids, vals, ders = [], [], []
        k = self.nradbase
        for pair in pairs:
            bond = spec.bonds[pair]
            if not isinstance(bond, SplineBond):
                raise ValueError(f"{self._where(spec, pair)}: expected a spline bond, got {type(bond).__name__}")
            if bond.nbins < 1:
                raise ValueError(f"{self._where(spec, pair)}: nbins must be >= 1")
            v = np.zeros((bond.nbins, k))
            d = np.zeros((bond.nbins, k))
            v[:, : bond.nradial] = bond.values[:, 1:].T
            d[:, : bond.nradial] = bond.derivatives[:, 1:].T
            grids.append(SplineGrid(float(bond.rcut), int(bond.nbins)))
            vals.append(v)
            ders.append(d)
        self.gk = build_spline_table(grids, vals, ders, dtype=self.dtype, device=self.device)

    def _build_ships(self, spec: ACEPotentialSpec, pairs):
        """Per-pair SHIPs parameters as (T,) / (T, nradbase) tensors, gathered per edge at evaluation."""
        nb = self.nradbase
        t_count = len(pairs)
        scal = np.zeros((6, t_count))
        rec = np.zeros((3, t_count, nb))
        for t, pair in enumerate(pairs):
            bond = spec.bonds[pair]
            if not isinstance(bond, ShipsBond):
                raise ValueError(f"{self._where(spec, pair)}: expected a SHIPs bond, got {type(bond).__name__}")
            scal[:, t] = _ships_params(bond)
            for q, arr in enumerate((bond.A, bond.B, bond.C)):
                rec[q, t, : bond.maxn] = arr
        as_t = lambda a: torch.as_tensor(a, dtype=self.dtype, device=self.device)  # noqa: E731
        self.ships = {"params": [as_t(s) for s in scal], "A": as_t(rec[0]), "B": as_t(rec[1]), "C": as_t(rec[2])}
        if spec.pair is not None:
            pp = spec.pair
            coef = np.zeros((t_count, pp.basis.maxn))
            core = np.zeros((4, t_count))  # ri, e0, A, B; ri = 0: no repulsive core for that pair
            for t, pair in enumerate(pairs):
                coef[t] = pp.coefficients[pair]
                if pair in pp.reppot:
                    core[:, t] = tuple(pp.reppot[pair])
            self.pair = {"basis": pp.basis, "coefficients": as_t(coef), "core": [as_t(c) for c in core]}

    # -- queries ----------------------------------------------------------------------------

    @property
    def cutoffmax(self) -> float:
        return float(self.cutoffs.max())

    def cutoff(self, mu_i: int, mu_j: int) -> float:
        """Neighbour cutoff of the ordered pair: a neighbour counts iff r < cutoff (strict)."""
        return float(self.cutoffs[mu_i, mu_j])

    def cutoff_matrix(self, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
        return torch.as_tensor(self.cutoffs, dtype=dtype, device=device if device is not None else self.device)

    # -- evaluation -------------------------------------------------------------------------

    def _empty(self, r: torch.Tensor) -> RadialValues:
        e = r.shape[0]
        g = r.new_zeros((e, self.nradbase))
        f = r.new_zeros((e, self.nradmax, self.lmax + 1))
        c = r.new_zeros((e,))
        return RadialValues(g, g.clone(), f, f.clone(), c, c.clone())

    def evaluate(self, r: torch.Tensor, mu_i: torch.Tensor, mu_j: torch.Tensor,
                 backend: str | None = None) -> RadialValues:
        """Radial values and d/dr for every edge, from the tables (PACE and spline bonds, through
        ``spline_eval`` with ``backend``) or analytically (SHIPs, always torch).

        ``r (E,)`` the distances, ``mu_i, mu_j (E,)`` the species indices of centre and neighbour.
        A distance below the first node of its table raises :class:`SplineRangeError` (PACE stops
        with "Encountered very small distance"); the caller names the atoms.
        """
        if r.ndim != 1 or mu_i.shape != r.shape or mu_j.shape != r.shape:
            raise ValueError(f"r, mu_i, mu_j must all be (E,), got {tuple(r.shape)}, {tuple(mu_i.shape)}, "
                             f"{tuple(mu_j.shape)}")
        if r.shape[0] == 0:
            return self._empty(r)
        t = mu_i.long() * self.nelements + mu_j.long()
        e = r.shape[0]
        shape = (e, self.nradmax, self.lmax + 1)
        if self.kind == "ships":
            bad = (mu_i < 0) | (mu_i >= self.nelements) | (mu_j < 0) | (mu_j >= self.nelements)
            if bool(bad.any()):
                k = int(torch.nonzero(bad)[0])
                raise IndexError(f"edge {k}: species pair ({int(mu_i[k])}, {int(mu_j[k])}) outside "
                                 f"0..{self.nelements - 1}")
            return self._evaluate_ships(r, t)
        if self.kind == "pace":
            v, dv, _ = spline_eval(self.pace_table, r, t, order=1, backend=backend)
            nb, nf = self.nradbase, self.nradmax * (self.lmax + 1)
            rnl, drnl = v[:, nb:nb + nf].reshape(shape), dv[:, nb:nb + nf].reshape(shape)
            return RadialValues(v[:, :nb], dv[:, :nb], rnl, drnl, v[:, nb + nf], dv[:, nb + nf])
        g, dg, _ = spline_eval(self.gk, r, t, order=1, backend=backend)
        if self.kind == "spline":
            # ACE.jl splines: R_nl = g_n for every l, no core repulsion.
            zero = r.new_zeros((e,))
            f = g[:, : self.nradmax, None].expand(shape)
            df = dg[:, : self.nradmax, None].expand(shape)
            return RadialValues(g, dg, f, df, zero, zero.clone())
        raise AssertionError(f"unknown radial kind {self.kind!r}")

    def _evaluate_ships(self, r: torch.Tensor, t: torch.Tensor) -> RadialValues:
        s = self.ships
        params = [p.to(r.dtype)[t] for p in s["params"]]
        A, B, C = (s[k].to(r.dtype)[t] for k in "ABC")
        P, dP = ships_polynomials(r, *params, A, B, C)
        e = r.shape[0]
        shape = (e, self.nradmax, self.lmax + 1)
        # R_nl = P_n for every l (nradmax == nradbase for SHIPs)
        f = P[:, : self.nradmax, None].expand(shape)
        df = dP[:, : self.nradmax, None].expand(shape)
        if self.pair is None:
            cr = torch.zeros_like(r)
            dcr = torch.zeros_like(r)
        else:
            pp = self.pair
            ri, e0, a, b = (c.to(r.dtype)[t] for c in pp["core"])
            v, dv = ships_pair_potential(r, pp["basis"], pp["coefficients"].to(r.dtype)[t], ri, e0, a, b)
            # "fix double-counting": every ordered pair carries half of V (ACE_SPEC.md 2.8, 6.12)
            cr, dcr = 0.5 * v, 0.5 * dv
        return RadialValues(P, dP, f, df, cr, dcr)

    def evaluate_analytic(self, r: torch.Tensor, mu_i: torch.Tensor, mu_j: torch.Tensor) -> RadialValues:
        """Like :meth:`evaluate`, but the PACE bases from their analytic formulas instead of the
        tables (torch, differentiable). Energies from PACE use the tables; the two differ by the
        interpolation error: about 1e-14 in values and 1e-10 in derivatives for smooth bases
        (ACE_SPEC.md 2.6), much more inside narrow inner-cutoff switches (FitSNAP's 0.01 A is
        ten table bins) and next to kinks and jumps.
        Spline bonds have no analytic form and SHIPs are analytic already: both use :meth:`evaluate`.
        """
        if self.kind != "pace":
            return self.evaluate(r, mu_i, mu_j, backend="torch")
        out = [x.clone() for x in self._empty(r)]
        if r.shape[0] == 0:
            return RadialValues(*out)
        mi, mj = mu_i.long(), mu_j.long()
        for (i, j), radial in self.bond_radials.items():
            sel = torch.nonzero((mi == i) & (mj == j)).flatten()
            if sel.numel() == 0:
                continue
            v = radial(r[sel])
            for o, x in zip(out, v):
                o[sel] = x.to(r.dtype)
        return RadialValues(*out)
