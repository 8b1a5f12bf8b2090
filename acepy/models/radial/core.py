"""The pair core repulsion cr(r) of PACE-radial potentials (ACE_SPEC.md 2.5): PACE's ``radcore``
for inner_cutoff_type density/distance, and ZBL for inner_cutoff_type zbl.

Plain torch, values and analytic d/dr, differentiable by autograd; masked-out branches use a
stand-in distance (see :mod:`acepy.models.radial.functions`). Quirks are marked with their spec section.
"""

from __future__ import annotations

import math

import torch

from .functions import _stand_in, cutoff_func_poly

__all__ = ["ZBL_K", "pace_core_repulsion", "zbl_core_repulsion", "zbl_atomic_number"]

# Coulomb constant e^2/(4 pi eps0) in eV*Angstrom, exactly as PACE writes it (ACE_SPEC.md 2.5).
ZBL_K = 14.399645351950543
# ZBL universal screening function phi(x) = sum_k C_k exp(E_k x) (ACE_SPEC.md 2.5).
_ZBL_PHI_COEFS = (0.18175, 0.50986, 0.28022, 0.02817)
_ZBL_PHI_EXPS = (-3.19980, -0.94229, -0.40290, -0.20162)
# PACE's own element table for ZBL stops at Lr (Z = 103); anything else is "not recognized".
_ZBL_ZMAX = 103


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

