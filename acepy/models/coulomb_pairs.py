"""The real-space parts of the Coulomb component: pair terms on the stack's neighbour graph.

Both are sums over edges of a function of that edge alone (``edge_local``: the Hessian code takes
one 3 x 3 block per edge), ``E_i = 1/2 sum_j V(r_ij) + E_self,i`` on the full neighbour list,
with ``k = 14.399645 eV A/e^2``:

- :class:`CoulombRealSpace` (Ewald, PME): ``V(r) = k q_i q_j erfc(alpha r) / r`` (Ewald 1921; e.g.
  Frenkel & Smit, *Understanding Molecular Simulation*, 2nd ed., eq. 12.1.25). The Gaussian self
  term and the reciprocal sum belong to :class:`~acepy.models.coulomb_reciprocal.CoulombReciprocal`.
- :class:`CoulombDSF`: the damped shifted force potential of Fennell & Gezelter, J. Chem. Phys.
  124, 234104 (2006), eq. 18:
  ``V(r) = k q_i q_j [erfc(a r)/r - erfc(a rc)/rc + (erfc(a rc)/rc^2 + 2a/sqrt(pi) exp(-a^2 rc^2)/rc)(r - rc)]``
  for ``r < rc``, so ``V(rc) = V'(rc) = 0``, plus a per-atom self energy (see
  :data:`~acepy.models.coulomb_params.DSF_SELF_ENERGIES`). This is LAMMPS ``pair_style coul/dsf``
  (``pair_coul_dsf.cpp``), which evaluates erfc by the Abramowitz-Stegun 7.1.26 polynomial
  (relative error ~1e-7); acepy uses the exact ``erfc``.

Fast path: closed-form ``V'(r)`` per edge, ``g_ij = V'(r) r_ij / (2 r)`` (each pair appears as two
edges). Exact path: plain torch, twice differentiable in the edge vectors.
"""

from __future__ import annotations

import math

import torch

from acepy.errors import TooCloseError

from .component import BatchGraph, Component
from .coulomb_params import ChargeTable, check_neutral

__all__ = ["CoulombRealSpace", "CoulombDSF"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_MIN_DISTANCE = 1e-8  # A: two atoms closer than this would make 1/r overflow


class _CoulombPairs(Component):
    edge_local = True

    def __init__(self, coulomb, table: ChargeTable):
        self.coulomb = coulomb  # the public Coulomb object this part belongs to
        self.charge_table = table
        self.cutoff = float(coulomb.cutoff)
        self.alpha = float(coulomb.alpha)
        self.k = float(coulomb.coulomb_constant)
        self.dtype, self.device = coulomb.dtype, coulomb.device
        self.per_atom_data = ("charges",) if table.per_atom else ()

    def _charges(self, inputs: BatchGraph) -> torch.Tensor:
        q = self.charge_table.of(inputs)
        check_neutral(inputs, q, self.coulomb.method)
        return q

    def _check_distances(self, inputs: BatchGraph, r: torch.Tensor) -> None:
        close = r.detach() < _MIN_DISTANCE
        if bool(close.any()):
            e = int(torch.nonzero(close)[0])
            raise TooCloseError(f"{inputs.describe_edge(e)} are {float(r[e]):.3g} A apart: point charges "
                                "cannot coincide (the Coulomb energy diverges)")

    # V(r) / (k q_i q_j) and its derivative in r, element-wise; subclasses define them
    def _shape(self, r):
        raise NotImplementedError

    def _shape_and_slope(self, r):
        raise NotImplementedError

    def _self_energy(self, q: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(q)

    def site_energies(self, inputs: BatchGraph, backend: str | None = "torch") -> torch.Tensor:
        q = self._charges(inputs)
        energies = self._self_energy(q)
        if inputs.n_edges == 0:
            return energies
        r = inputs.distances
        self._check_distances(inputs, r)
        qq = (0.5 * self.k) * q[inputs.centers] * q[inputs.neighbors]
        return energies.index_add(0, inputs.centers, qq * self._shape(r))

    @torch.no_grad()
    def energies_and_edge_grads(self, inputs: BatchGraph, backend: str | None = None):
        """Per-atom energies (N,) and g_ij = dE/dr_ij = 1/2 V'(r) r_ij / r (E, 3), closed form."""
        q = self._charges(inputs)
        energies = self._self_energy(q)
        vectors = inputs.vectors.detach()
        if inputs.n_edges == 0:
            return energies, torch.zeros_like(vectors)
        r = torch.linalg.vector_norm(vectors, dim=1)
        self._check_distances(inputs, r)
        qq = (0.5 * self.k) * q[inputs.centers] * q[inputs.neighbors]
        v, dv = self._shape_and_slope(r)
        energies = energies.index_add(0, inputs.centers, qq * v)
        return energies, (qq * dv / r)[:, None] * vectors


class CoulombRealSpace(_CoulombPairs):
    """Ewald's real-space sum ``1/2 sum_ij k q_i q_j erfc(alpha r_ij) / r_ij`` within the cutoff."""

    def _shape(self, r):
        return torch.special.erfc(self.alpha * r) / r

    def _shape_and_slope(self, r):
        a = self.alpha
        erfc = torch.special.erfc(a * r)
        v = erfc / r
        dv = -v / r - _TWO_OVER_SQRT_PI * a * torch.exp(-(a * r) ** 2) / r
        return v, dv


class CoulombDSF(_CoulombPairs):
    """Fennell-Gezelter damped shifted force pairs and their self energy (module docstring)."""

    def __init__(self, coulomb, table: ChargeTable):
        super().__init__(coulomb, table)
        a, rc = self.alpha, self.cutoff
        erfc_c = math.erfc(a * rc)
        gauss_c = math.exp(-(a * rc) ** 2)
        self.v_c = erfc_c / rc  # erfc(a rc) / rc
        self.slope_c = erfc_c / rc ** 2 + _TWO_OVER_SQRT_PI * a * gauss_c / rc  # -d/dr(erfc(a r)/r) at rc
        convention = coulomb.dsf_self_energy
        if convention == "lammps":
            # pair_coul_dsf.cpp: e_self = -(e_shift / 2 + alpha / sqrt(pi)) q^2 qqrd2e with
            # f_shift = -slope_c and e_shift = erfc(a rc)/rc - f_shift rc
            e_shift = self.v_c + self.slope_c * rc
            self.self_factor = -(0.5 * e_shift + a / math.sqrt(math.pi))
        elif convention == "fennell-gezelter":
            self.self_factor = -(0.5 * self.v_c + a / math.sqrt(math.pi))
        else:
            self.self_factor = 0.0

    def _self_energy(self, q):
        return (self.self_factor * self.k) * q * q

    def _shape(self, r):
        return torch.special.erfc(self.alpha * r) / r - self.v_c + self.slope_c * (r - self.cutoff)

    def _shape_and_slope(self, r):
        a = self.alpha
        erfc_over_r = torch.special.erfc(a * r) / r
        v = erfc_over_r - self.v_c + self.slope_c * (r - self.cutoff)
        dv = -erfc_over_r / r - _TWO_OVER_SQRT_PI * a * torch.exp(-(a * r) ** 2) / r + self.slope_c
        return v, dv
