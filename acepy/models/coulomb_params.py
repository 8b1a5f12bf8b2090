"""Constants, charges and accuracy-derived parameters of the Coulomb component.

Units: eV, A, e. The Coulomb constant is LAMMPS's ``qqr2e`` of ``units metal`` (14.399645 eV A/e^2,
``src/update.cpp``); ASE's CODATA-2014 value ``ase.units.Hartree * ase.units.Bohr`` is
14.3996454784, the same to 3e-9 relative. We use LAMMPS's so that decks written for
``pair_style coul/dsf`` / ``coul/long`` reproduce acepy's energies to rounding.

Parameters from a requested ``accuracy`` ``eps`` (deterministic, no timing):

- Ewald splitting: ``erfc(alpha r_c) ~ exp(-alpha^2 r_c^2) = eps`` gives ``alpha = sqrt(-ln eps) / r_c``
  (Kolafa & Perram, Mol. Simul. 9, 351 (1992): the real-space error falls as exp(-alpha^2 r_c^2));
  the Gaussian width of torch-pme is ``smearing = 1 / (sqrt(2) alpha)``.
- Ewald reciprocal cutoff: the terms fall as ``exp(-k^2 / (4 alpha^2))``; ``= eps`` gives
  ``k_c = 2 alpha sqrt(-ln eps)``.
- PME mesh (torch-pme's Lagrange interpolation with ``p`` nodes): measured on rattled NaCl
  (acepy's tests/test_coulomb_pme.py keeps the measurement honest), the largest relative force error is
  about ``5e-4 (s / (0.35 sigma))^(p - 1)`` for a mesh spacing ``s``; torch-pme's mesh has
  at least ``2 L / h + 1`` points (a power of two) for its ``mesh_spacing`` ``h``, so ``s <= h / 2``
  and we pass ``h = 2 s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from acepy.errors import StructureError

__all__ = ["COULOMB_CONSTANT", "METHODS", "DSF_SELF_ENERGIES", "EwaldParameters", "ewald_parameters",
           "ChargeTable"]

COULOMB_CONSTANT = 14.399645  # eV A / e^2, LAMMPS units metal qqr2e
METHODS = ("dsf", "ewald", "pme", "direct")
# DSF self-energy conventions, per atom (k = Coulomb constant, rc = cutoff):
#   "lammps": -(e_shift / 2 + alpha / sqrt(pi)) k q_i^2 with LAMMPS's e_shift = erfc(a rc)/rc - f_shift rc
#             (pair_coul_dsf.cpp: the energy LAMMPS reports for pair_style coul/dsf);
#   "fennell-gezelter": -(erfc(alpha rc) / (2 rc) + alpha / sqrt(pi)) k q_i^2 (Fennell & Gezelter,
#             J. Chem. Phys. 124, 234104 (2006), the self term of their eq. 15 / 18);
#   "none": the pair sum alone.
DSF_SELF_ENERGIES = ("lammps", "fennell-gezelter", "none")
DEFAULT_ACCURACY = 1e-6
DEFAULT_CUTOFF = {"dsf": 10.0, "ewald": 10.0, "pme": 10.0}
DEFAULT_DSF_ALPHA = 0.2  # 1/A: Fennell & Gezelter's recommendation near 0.2 for cutoffs of 10-12 A
PME_NODES = 7  # torch-pme's Lagrange interpolation supports 3..7 nodes; 7 gives the fastest convergence


@dataclass(frozen=True)
class EwaldParameters:
    alpha: float  # 1/A, erfc(alpha r) in real space
    smearing: float  # A, torch-pme's sigma = 1 / (sqrt(2) alpha)
    k_cutoff: float | None  # 1/A, Ewald reciprocal cutoff |k| <= k_cutoff (None for PME)
    mesh_spacing: float | None  # A, torch-pme's PME mesh_spacing
    interpolation_nodes: int | None


def _check_accuracy(accuracy) -> float:
    accuracy = float(accuracy)
    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"Coulomb: accuracy must be in (0, 1), got {accuracy!r}")
    return accuracy


def ewald_parameters(method: str, cutoff: float, accuracy: float, alpha: float | None = None,
                     k_cutoff: float | None = None, mesh_spacing: float | None = None,
                     interpolation_nodes: int | None = None) -> EwaldParameters:
    """The splitting and reciprocal-space parameters for ``method`` ('ewald' or 'pme'), each
    derived from ``accuracy`` unless given."""
    accuracy = _check_accuracy(accuracy)
    log = math.sqrt(-math.log(accuracy))
    alpha = log / cutoff if alpha is None else float(alpha)
    if not alpha > 0:
        raise ValueError(f"Coulomb: alpha must be positive (1/A), got {alpha!r}")
    smearing = 1.0 / (math.sqrt(2.0) * alpha)
    k_cutoff = 2.0 * alpha * log if k_cutoff is None else float(k_cutoff)
    if method != "pme":
        return EwaldParameters(alpha, smearing, k_cutoff, None, None)
    nodes = PME_NODES if interpolation_nodes is None else int(interpolation_nodes)
    if nodes not in (3, 4, 5, 6, 7):
        raise ValueError(f"Coulomb(method='pme'): interpolation_nodes must be 3..7 (torch-pme), got {nodes}")
    if mesh_spacing is None:
        spacing = 0.35 * smearing * min(1.0, (accuracy / 5e-4) ** (1.0 / (nodes - 1)))
        mesh_spacing = 2.0 * spacing
    return EwaldParameters(alpha, smearing, None, float(mesh_spacing), nodes)  # PME has no k_cutoff


class ChargeTable:
    """Per-atom charges: fixed per element (``{"Na": 1.0}``) or ``"initial_charges"`` (the batch's).

    Fixed charges live in a table over atomic numbers (NaN where an element has none), so the
    component needs no species order; an atom of an element without a charge raises, naming it.
    """

    def __init__(self, charges, dtype, device):
        from ase.data import atomic_numbers

        self.per_atom = isinstance(charges, str)
        if self.per_atom:
            if charges != "initial_charges":
                raise ValueError(f"Coulomb: charges must be a dict {{element: charge}} or 'initial_charges', got "
                                 f"{charges!r}")
            self.charges = "initial_charges"
            self.table = None
            return
        if not isinstance(charges, dict) or not charges:
            raise ValueError(f"Coulomb: charges must be a non-empty dict {{element: charge}} or 'initial_charges', "
                             f"got {charges!r}")
        table = torch.full((119,), float("nan"), dtype=torch.float64)
        for el, q in charges.items():
            if el not in atomic_numbers or atomic_numbers[el] == 0:
                raise ValueError(f"Coulomb: {el!r} in charges is not a chemical element symbol")
            q = float(q)
            if not math.isfinite(q):
                raise ValueError(f"Coulomb: the charge of {el} is {q}")
            table[atomic_numbers[el]] = q
        self.charges = {el: float(q) for el, q in charges.items()}
        self.table = table.to(device=device, dtype=dtype)

    def missing(self, elements) -> list[str]:
        """The elements of ``elements`` without a fixed charge (none in 'initial_charges' mode)."""
        return [] if self.per_atom else [el for el in elements if el not in self.charges]

    def of(self, inputs) -> torch.Tensor:
        """Charges (N,) of the batch's atoms, in e."""
        batch = inputs.batch
        if self.per_atom:
            q = batch.charges
            if q is None:
                raise ValueError("Coulomb(charges='initial_charges') needs per-atom charges in the batch "
                                 "(acepy.batch_from_atoms(..., charges=True))")
            bad = ~torch.isfinite(q)
            if bool(bad.any()):
                raise StructureError(f"{inputs.describe_atom(int(torch.nonzero(bad)[0]))}: initial charge "
                                     f"{float(q[bad][0])} is not finite")
            return q
        q = self.table[batch.numbers]
        bad = torch.isnan(q)
        if bool(bad.any()):
            from ase.data import chemical_symbols

            i = int(torch.nonzero(bad)[0])
            raise StructureError(f"{inputs.describe_atom(i)} is {chemical_symbols[int(batch.numbers[i])]}, which has "
                                 f"no charge in the Coulomb component (charges for {sorted(self.charges)})")
        return q


def check_neutral(inputs, q: torch.Tensor, method: str, periodic_only: bool = True) -> None:
    """A periodic cell must be neutral (to 1e-8 e per atom of its charges' magnitude)."""
    batch = inputs.batch
    total = q.new_zeros(batch.n_systems).index_add(0, batch.system_idx, q)
    scale = q.new_zeros(batch.n_systems).index_add(0, batch.system_idx, q.abs())
    bad = total.abs() > 1e-8 * torch.clamp(scale, min=1.0)
    if periodic_only:
        bad = bad & batch.pbc.any(dim=1)
    if bool(bad.any()):
        b = int(torch.nonzero(bad)[0])
        raise StructureError(f"structure {b}: the periodic cell carries a net charge of {float(total[b]):.6g} e; "
                             f"Coulomb(method={method!r}) needs neutral cells (a charged cell's energy depends on "
                             "an arbitrary background)")
