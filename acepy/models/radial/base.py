"""The interface every radial kind implements, and the values it returns.

A :class:`RadialBasis` holds all radial functions of one potential, ready to evaluate on an edge
list. Pair ``(mu_i, mu_j)`` (centre, neighbour) is table ``t = mu_i * nelements + mu_j``. The base
class keeps what every kind shares (sizes, cutoffs, shape checks, the empty case); a subclass
builds its tables in ``__init__`` and implements :meth:`RadialBasis._evaluate` for non-empty input.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Iterator, NamedTuple

import numpy as np
import torch

from acepy.errors import PotentialFileError
from acepy.kernels import SplineTable
from acepy.kernels.spline import check_spline_range, spline_range_flag
from acepy.spec import ACEPotentialSpec


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


class RadialBasis(ABC):
    """All radial functions of one potential (build one with :func:`acepy.models.radial.radial_basis`).

    Attributes: ``kind`` ('pace' | 'spline' | 'ships', for messages), ``elements``, ``nelements``,
    ``nradbase``, ``nradmax``, ``lmax``, ``inner_cutoff_type``, ``dtype``, ``device``, ``cutoffs``
    (nelements, nelements) float64 numpy: the neighbour cutoff of each ordered pair, and
    ``rcut_in`` / ``dcut_in`` (nelements, nelements): the bonds' raw inner-cutoff values, for the
    energy-level zbl cutoff of ACE_SPEC.md 2.12 (zero for kinds without them).
    """

    kind: ClassVar[str]

    def __init__(self, spec: ACEPotentialSpec, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu"):
        n = spec.nelements
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

    # -- construction helpers -----------------------------------------------------------------

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The ordered pairs in table order."""
        return [(i, j) for i in range(self.nelements) for j in range(self.nelements)]

    def _bonds(self, spec: ACEPotentialSpec, bond_type: type, what: str) -> Iterator[tuple[tuple[int, int], object]]:
        """``(pair, bond)`` in table order, each bond checked to be a ``bond_type`` (lazily, so an
        error comes when the loop reaches the offending pair)."""
        for pair in self.pairs:
            bond = spec.bonds[pair]
            if not isinstance(bond, bond_type):
                raise PotentialFileError(spec.source or "potential", f"bonds[{pair[0]}, {pair[1]}]",
                                         f"expected {what} bond, got {type(bond).__name__}")
            yield pair, bond

    # -- queries ------------------------------------------------------------------------------

    @property
    def cutoffmax(self) -> float:
        return float(self.cutoffs.max())

    def cutoff(self, mu_i: int, mu_j: int) -> float:
        """Neighbour cutoff of the ordered pair: a neighbour counts iff r < cutoff (strict)."""
        return float(self.cutoffs[mu_i, mu_j])

    # -- evaluation ---------------------------------------------------------------------------

    def _empty(self, r: torch.Tensor) -> RadialValues:
        e = r.shape[0]
        g = r.new_zeros((e, self.nradbase))
        f = r.new_zeros((e, self.nradmax, self.lmax + 1))
        c = r.new_zeros((e,))
        return RadialValues(g, g.clone(), f, f.clone(), c, c.clone())

    @staticmethod
    def _check_edges(r: torch.Tensor, mu_i: torch.Tensor, mu_j: torch.Tensor) -> None:
        if r.ndim != 1 or mu_i.shape != r.shape or mu_j.shape != r.shape:
            raise ValueError(f"r, mu_i, mu_j must all be (E,), got {tuple(r.shape)}, {tuple(mu_i.shape)}, "
                             f"{tuple(mu_j.shape)}")

    def _table_index(self, mu_i: torch.Tensor, mu_j: torch.Tensor) -> torch.Tensor:
        return mu_i.long() * self.nelements + mu_j.long()

    def evaluate(self, r: torch.Tensor, mu_i: torch.Tensor, mu_j: torch.Tensor,
                 backend: str | None = None, check: bool = True) -> RadialValues:
        """Radial values and d/dr for every edge.

        ``r (E,)`` the distances, ``mu_i, mu_j (E,)`` the species indices of centre and neighbour.
        Tabulated kinds evaluate through ``spline_eval`` with ``backend``. With ``check`` (default)
        an index out of range raises ``IndexError`` and, for a tabulated kind, a distance below the
        first node of its table :class:`SplineRangeError` (PACE stops with "Encountered very small
        distance"); ``check=False`` reads no tensor values (no host sync on a GPU), for callers that
        ran :meth:`check_distances` once per call already.
        """
        self._check_edges(r, mu_i, mu_j)
        if r.shape[0] == 0:
            return self._empty(r)
        return self._evaluate(r, mu_i, mu_j, backend, check)

    def evaluate_analytic(self, r: torch.Tensor, mu_i: torch.Tensor, mu_j: torch.Tensor) -> RadialValues:
        """Like :meth:`evaluate`, but from the analytic formulas where the kind has them (torch,
        differentiable). The base falls back to ``evaluate(..., backend="torch")``: spline bonds
        have no analytic form and SHIPs are analytic already."""
        self._check_edges(r, mu_i, mu_j)
        if r.shape[0] == 0:
            return self._empty(r)
        return self._evaluate_analytic(r, mu_i, mu_j)

    @abstractmethod
    def _evaluate(self, r: torch.Tensor, mu_i: torch.Tensor, mu_j: torch.Tensor,
                  backend: str | None, check: bool) -> RadialValues:
        """The kind-specific part of :meth:`evaluate`: ``r`` is (E,) with E > 0, shapes checked."""

    def _evaluate_analytic(self, r: torch.Tensor, mu_i: torch.Tensor, mu_j: torch.Tensor) -> RadialValues:
        return self._evaluate(r, mu_i, mu_j, "torch", True)

    # -- value checks (they read tensor values: a host sync on a GPU) -------------------------

    def _lookup_table(self) -> SplineTable | None:
        """The spline table that :meth:`evaluate` reads (None for an analytic kind)."""
        return None

    def _check_species(self, mu_i: torch.Tensor, mu_j: torch.Tensor) -> None:
        bad = (mu_i < 0) | (mu_i >= self.nelements) | (mu_j < 0) | (mu_j >= self.nelements)
        if bool(bad.any()):
            k = int(torch.nonzero(bad)[0])
            raise IndexError(f"edge {k}: species pair ({int(mu_i[k])}, {int(mu_j[k])}) outside "
                             f"0..{self.nelements - 1}")

    def check_distances(self, r: torch.Tensor, mu_i: torch.Tensor, mu_j: torch.Tensor) -> None:
        """Once per call, the checks :meth:`evaluate` skips with ``check=False``: every species index
        in range (``IndexError``) and, for a tabulated kind, every distance finite and at or above
        the first node of its pair's table (:class:`SplineRangeError` with the first offending
        ``edge``; PACE stops with "Encountered very small distance"); the caller names the atoms."""
        self._check_edges(r, mu_i, mu_j)
        if r.shape[0] == 0:
            return
        self._check_species(mu_i, mu_j)
        table = self._lookup_table()
        if table is None:
            return
        check_spline_range(table, r, self._table_index(mu_i, mu_j))

    def distance_flag(self, r: torch.Tensor, mu_i: torch.Tensor, mu_j: torch.Tensor) -> torch.Tensor | None:
        """The range test of :meth:`check_distances` as a 0-d bool tensor on ``r``'s device (true:
        some distance is below its table or not finite), without reading it: the caller reads it
        with its other checks in one host read and calls :meth:`check_distances` for the details.
        None for an analytic kind (nothing to test); the species indices are the caller's to vouch for."""
        table = self._lookup_table()
        if table is None or r.shape[0] == 0:
            return None
        return spline_range_flag(table, r, self._table_index(mu_i, mu_j))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(elements={self.elements}, nradbase={self.nradbase}, "
                f"nradmax={self.nradmax}, lmax={self.lmax}, cutoffmax={self.cutoffmax})")
