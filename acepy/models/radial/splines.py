"""ACEpotentials v0.6 spline bonds (``radial_kind == "spline"``): tables straight from the file
(ACE_SPEC.md 1.6, 2.7)."""

from __future__ import annotations

import numpy as np
import torch

from acepy.errors import PotentialFileError
from acepy.kernels import SplineGrid, SplineTable, build_spline_table, spline_eval
from acepy.spec import ACEPotentialSpec, SplineBond

from .base import RadialBasis, RadialValues

__all__ = ["SplineRadial"]


class SplineRadial(RadialBasis):
    """Spline bonds: ``gk`` is the :class:`SplineTable` of g_k per pair; R_nl = g_n for every l and
    there is no core repulsion.

    nlut = nbins, rscale = nbins/rcut, nodes n = 1..nbins straight from the file (node 0 is never
    used: r below the first node is an error). Bonds with fewer functions than the global count are
    zero-padded.
    """

    kind = "spline"

    def __init__(self, spec: ACEPotentialSpec, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu"):
        super().__init__(spec, dtype, device)
        grids, vals, ders = [], [], []
        k = self.nradbase
        for pair, bond in self._bonds(spec, SplineBond, "a spline"):
            if bond.nbins < 1:
                raise PotentialFileError(spec.source or "potential", f"bonds[{pair[0]}, {pair[1]}].nbins",
                                         "must be >= 1")
            v = np.zeros((bond.nbins, k))
            d = np.zeros((bond.nbins, k))
            v[:, : bond.nradial] = bond.values[:, 1:].T
            d[:, : bond.nradial] = bond.derivatives[:, 1:].T
            grids.append(SplineGrid(float(bond.rcut), int(bond.nbins)))
            vals.append(v)
            ders.append(d)
        self.gk: SplineTable = build_spline_table(grids, vals, ders, dtype=self.dtype, device=self.device)

    def _lookup_table(self) -> SplineTable:
        return self.gk

    def _evaluate(self, r, mu_i, mu_j, backend, check):
        t = self._table_index(mu_i, mu_j)
        g, dg, _ = spline_eval(self.gk, r, t, order=1, backend=backend, check=check)
        # ACE.jl splines: R_nl = g_n for every l, no core repulsion.
        shape = (r.shape[0], self.nradmax, self.lmax + 1)
        zero = r.new_zeros((r.shape[0],))
        f = g[:, : self.nradmax, None].expand(shape)
        df = dg[:, : self.nradmax, None].expand(shape)
        return RadialValues(g, dg, f, df, zero, zero.clone())
