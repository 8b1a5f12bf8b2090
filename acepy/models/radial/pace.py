"""PACE's own radial bases (ChebExpCos, ChebPow, ChebLinear, SBessel, TEST_*): ``radial_kind == "pace"``.

PACE does not evaluate them directly: at load time it tabulates them on a uniform grid and then
evaluates only the cubic Hermite tables (ACE_SPEC.md 2.6, checklist item 6.3). :class:`PaceRadial`
does the same, with the analytic functions of :mod:`.functions` and :mod:`.core` as the node
values, so energies agree with PACE to rounding. The table build is two functions:
:func:`pace_node_values` (one pair's node values and slopes) and :func:`build_pace_table` (all
pairs into one :class:`SplineTable`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from acepy.errors import PotentialFileError
from acepy.kernels import SplineGrid, SplineTable, build_spline_table, spline_eval
from acepy.spec import ACEPotentialSpec, PaceBond

from .base import RadialBasis, RadialValues
from .core import pace_core_repulsion, zbl_atomic_number, zbl_core_repulsion
from .functions import contract_radial, pace_radial_basis

__all__ = ["PaceBondRadial", "PaceRadial", "pace_node_values", "build_pace_table"]


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
# the tables (ACE_SPEC.md 2.6): the one place where node values are computed and tabulated


def pace_node_values(radial: PaceBondRadial, grid: SplineGrid) -> tuple[np.ndarray, np.ndarray]:
    """Values and d/dr of one pair's radial functions at the nodes of ``grid``, in float64, as
    ``(nlut, ncols)`` arrays with the columns ``[g_k | R_nl flattened [n][l] (as PACE's fr) | cr]``."""
    nodes = torch.as_tensor(grid.nodes(), dtype=torch.float64)
    v = radial(nodes)
    n = len(nodes)
    values = np.concatenate([v.gk.numpy(), v.rnl.reshape(n, -1).numpy(), v.cr.numpy()[:, None]], axis=1)
    slopes = np.concatenate([v.dgk.numpy(), v.drnl.reshape(n, -1).numpy(), v.dcr.numpy()[:, None]], axis=1)
    return values, slopes


def build_pace_table(spec: ACEPotentialSpec, radials: dict[tuple[int, int], PaceBondRadial],
                     dtype: torch.dtype, device: torch.device) -> SplineTable:
    """One table for every pair (in the order of ``radials``), exactly as PACE's
    setuplookupRadspline builds them: the grid of spacing deltaSplineBins up to the bond's rcut.

    The columns [g_k | R_nl | core repulsion] share a grid per pair, so one evaluation locates each
    edge's segment once for all of them. Values that give no table (a grid without nodes, node
    values that overflow) raise :class:`PotentialFileError` naming the source and the bond.
    """
    grids, values, slopes = [], [], []
    for pair, radial in radials.items():
        try:
            grid = SplineGrid.from_spacing(radial.bond.rcut, spec.delta_spline_bins)
            v, d = pace_node_values(radial, grid)
            if not (np.isfinite(v).all() and np.isfinite(d).all()):
                bad = np.argwhere(~(np.isfinite(v) & np.isfinite(d)))[0]
                raise ValueError(f"the radial functions are not finite at r = {grid.nodes()[bad[0]]:.6g} "
                                 f"(column {bad[1]} of [g_k | R_nl | core]): check radcoefficients, prehc, "
                                 "lambdahc and radparameters")
        except ValueError as err:
            raise PotentialFileError(spec.source or "potential", _bond_key(spec, pair), str(err)) from err
        grids.append(grid)
        values.append(v)
        slopes.append(d)
    return build_spline_table(grids, values, slopes, dtype=dtype, device=device)


def _bond_key(spec: ACEPotentialSpec, pair) -> str:
    i, j = pair
    return f"bonds[{i}, {j}] ({spec.elements[i]}-{spec.elements[j]})"


# ---------------------------------------------------------------------------------------------
# the model-facing object


class PaceRadial(RadialBasis):
    """PACE radial bases, evaluated from the tables; ``pace_table`` holds [g_k | R_nl | core]
    per pair, ``bond_radials[(i, j)]`` the analytic :class:`PaceBondRadial` of each pair."""

    kind = "pace"

    def __init__(self, spec: ACEPotentialSpec, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu"):
        super().__init__(spec, dtype, device)
        if spec.delta_spline_bins is None:
            raise PotentialFileError(spec.source or "potential", "deltaSplineBins",
                                     "a PACE radial basis needs deltaSplineBins")
        z = [0] * self.nelements
        if self.inner_cutoff_type == "zbl":
            z = []
            for el in spec.elements:
                try:
                    z.append(zbl_atomic_number(el))
                except ValueError as err:
                    raise PotentialFileError(spec.source or "potential", "elements", str(err)) from None
        self.bond_radials: dict[tuple[int, int], PaceBondRadial] = {}
        for pair, bond in self._bonds(spec, PaceBond, "a PACE"):
            self.rcut_in[pair] = bond.rcut_in
            self.dcut_in[pair] = bond.dcut_in
            self.bond_radials[pair] = PaceBondRadial(bond, self.nradbase, self.nradmax, self.lmax,
                                                     self.inner_cutoff_type, z[pair[0]], z[pair[1]])
        self.pace_table: SplineTable = build_pace_table(spec, self.bond_radials, self.dtype, self.device)

    def _lookup_table(self) -> SplineTable:
        return self.pace_table

    def _evaluate(self, r, mu_i, mu_j, backend, check):
        t = self._table_index(mu_i, mu_j)
        v, dv, _ = spline_eval(self.pace_table, r, t, order=1, backend=backend, check=check)
        shape = (r.shape[0], self.nradmax, self.lmax + 1)
        nb, nf = self.nradbase, self.nradmax * (self.lmax + 1)
        rnl, drnl = v[:, nb:nb + nf].reshape(shape), dv[:, nb:nb + nf].reshape(shape)
        return RadialValues(v[:, :nb], dv[:, :nb], rnl, drnl, v[:, nb + nf], dv[:, nb + nf])

    def _evaluate_analytic(self, r, mu_i, mu_j):
        """The bases from their analytic formulas instead of the tables (torch, differentiable).
        Energies from PACE use the tables; the two differ by the interpolation error: about 1e-14
        in values and 1e-10 in derivatives for smooth bases (ACE_SPEC.md 2.6), much more inside
        narrow inner-cutoff switches (FitSNAP's 0.01 A is ten table bins) and next to kinks and jumps.
        """
        out = [x.clone() for x in self._empty(r)]
        mi, mj = mu_i.long(), mu_j.long()
        for (i, j), radial in self.bond_radials.items():
            sel = torch.nonzero((mi == i) & (mj == j)).flatten()
            if sel.numel() == 0:
                continue
            v = radial(r[sel])
            for o, x in zip(out, v):
                o[sel] = x.to(r.dtype)
        return RadialValues(*out)
