"""ACE.jl SHIPs polynomial bonds (``radial_kind == "ships"``), evaluated analytically on every call
as PACE does (ACE_SPEC.md 1.5, 2.7), plus the optional SHIPs pair potential, which enters as
cr = V/2 (2.8).

Plain torch, values and analytic d/dr, differentiable by autograd; masked-out branches use a
stand-in distance so that ``torch.where`` never sees NaN or inf.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from acepy.spec import ACEPotentialSpec, ShipsBond

from .base import RadialBasis, RadialValues

__all__ = ["ShipsRadial", "ships_polynomials", "ships_pair_potential"]


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


class _ShipsPair(NamedTuple):
    """The SHIPs pair potential, per pair table ``t``: ``coefficients (T, maxn)`` and the repulsive
    core ``ri, e0, A, B`` as four ``(T,)`` tensors (ri = 0: no core for that pair)."""

    basis: ShipsBond
    coefficients: torch.Tensor
    core: list[torch.Tensor]


class ShipsRadial(RadialBasis):
    """SHIPs bonds: per-pair parameters as (T,) / (T, nradbase) tensors, gathered per edge at
    evaluation; ``pair`` is the pair potential (None when the file has none)."""

    kind = "ships"

    def __init__(self, spec: ACEPotentialSpec, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu"):
        super().__init__(spec, dtype, device)
        nb = self.nradbase
        t_count = len(self.pairs)
        scal = np.zeros((6, t_count))
        rec = np.zeros((3, t_count, nb))
        for t, (_, bond) in enumerate(self._bonds(spec, ShipsBond, "a SHIPs")):
            scal[:, t] = _ships_params(bond)
            for q, arr in enumerate((bond.A, bond.B, bond.C)):
                rec[q, t, : bond.maxn] = arr
        self._params = [self._tensor(s) for s in scal]  # r0, p, xl, xr, pl, pr
        self._A, self._B, self._C = (self._tensor(x) for x in rec)
        self.pair: _ShipsPair | None = None
        if spec.pair is not None:
            pp = spec.pair
            coef = np.zeros((t_count, pp.basis.maxn))
            core = np.zeros((4, t_count))  # ri, e0, A, B; ri = 0: no repulsive core for that pair
            for t, pair in enumerate(self.pairs):
                coef[t] = pp.coefficients[pair]
                if pair in pp.reppot:
                    core[:, t] = tuple(pp.reppot[pair])
            self.pair = _ShipsPair(pp.basis, self._tensor(coef), [self._tensor(c) for c in core])

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=self.dtype, device=self.device)

    def _evaluate(self, r, mu_i, mu_j, backend, check):  # analytic, always torch: backend is not used
        if check:
            self._check_species(mu_i, mu_j)
        t = self._table_index(mu_i, mu_j)
        params = [p.to(r.dtype)[t] for p in self._params]
        A, B, C = (x.to(r.dtype)[t] for x in (self._A, self._B, self._C))
        P, dP = ships_polynomials(r, *params, A, B, C)
        shape = (r.shape[0], self.nradmax, self.lmax + 1)
        # R_nl = P_n for every l (nradmax == nradbase for SHIPs)
        f = P[:, : self.nradmax, None].expand(shape)
        df = dP[:, : self.nradmax, None].expand(shape)
        if self.pair is None:
            cr = torch.zeros_like(r)
            dcr = torch.zeros_like(r)
        else:
            pp = self.pair
            ri, e0, a, b = (c.to(r.dtype)[t] for c in pp.core)
            v, dv = ships_pair_potential(r, pp.basis, pp.coefficients.to(r.dtype)[t], ri, e0, a, b)
            # "fix double-counting": every ordered pair carries half of V (ACE_SPEC.md 2.8, 6.12)
            cr, dcr = 0.5 * v, 0.5 * dv
        return RadialValues(P, dP, f, df, cr, dcr)
