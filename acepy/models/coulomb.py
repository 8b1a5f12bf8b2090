"""Point-charge electrostatics as a stack component: ``Coulomb(charges, method=...)``.

A :class:`Coulomb` goes into a stack like any component (``Stack([Coulomb(...)], elements)``,
``acepy.load(path, coulomb=Coulomb(...))``); the stack replaces it by its parts
(:meth:`Coulomb.stack_parts`), each one an ordinary component of the contract:

===========  ==========================================  ===========================================
method       graph part (cutoff, on the stack's graph)   structure-level part
===========  ==========================================  ===========================================
``"dsf"``    :class:`~.coulomb_pairs.CoulombDSF`         none
``"ewald"``  :class:`~.coulomb_pairs.CoulombRealSpace`   :class:`~.coulomb_reciprocal.CoulombReciprocal`
``"pme"``    :class:`~.coulomb_pairs.CoulombRealSpace`   :class:`~.coulomb_reciprocal.CoulombReciprocal`
``"direct"`` none                                        :class:`~.coulomb_reciprocal.CoulombDirect`
===========  ==========================================  ===========================================

The graph part shares the per-cutoff graph cache with ACE and pair terms: one neighbour search
per call serves them all. Energies in eV with charges in e and lengths in A (Coulomb constant
:data:`~acepy.models.coulomb_params.COULOMB_CONSTANT`).
"""

from __future__ import annotations

import torch

from .coulomb_params import (
    COULOMB_CONSTANT,
    DEFAULT_ACCURACY,
    DEFAULT_CUTOFF,
    DEFAULT_DSF_ALPHA,
    DSF_SELF_ENERGIES,
    METHODS,
    ChargeTable,
    ewald_parameters,
)

__all__ = ["Coulomb", "find_coulomb"]


class Coulomb:
    """Electrostatics of fixed point charges, summed by ``method``.

    ``charges``: ``{"Na": 1.0, "Cl": -1.0}`` (per element) or ``"initial_charges"`` (per atom,
    ``atoms.get_initial_charges()``, carried in the batch). ``method``: ``"ewald"`` (default),
    ``"pme"``, ``"dsf"`` or ``"direct"`` (clusters).

    Ewald / PME: ``cutoff`` (A, default 10) is the real-space cutoff; ``accuracy`` (default 1e-6,
    relative) sets ``alpha = sqrt(-ln accuracy) / cutoff`` and the reciprocal resolution (Ewald:
    ``k_cutoff = 2 alpha sqrt(-ln accuracy)``; PME: ``mesh_spacing`` for ``interpolation_nodes``
    (default 7) from a measured error law, see :mod:`.coulomb_params`); any of ``alpha``,
    ``k_cutoff``, ``mesh_spacing``, ``interpolation_nodes`` may be given instead.
    DSF: ``alpha`` (1/A, default 0.2) and ``cutoff`` (A, default 10); ``dsf_self_energy``
    ``"lammps"`` (default, what ``pair_style coul/dsf`` reports), ``"fennell-gezelter"`` or ``"none"``.

    Public attributes (read by deck writers): ``method``, ``charges`` (the dict, or
    ``"initial_charges"``), ``cutoff``, ``alpha``, ``accuracy``, ``smearing`` (torch-pme's sigma =
    1/(sqrt(2) alpha)), ``k_cutoff``, ``mesh_spacing``, ``interpolation_nodes``,
    ``dsf_self_energy``, ``coulomb_constant`` (eV A/e^2), ``dtype``, ``device``.
    Non-neutral periodic cells, Ewald/PME on structures that are not periodic in all three
    directions, 'direct' on periodic ones, and atoms of an element without a charge raise
    :class:`acepy.errors.StructureError` naming the structure (and atom).
    """

    def __init__(self, charges, method: str = "ewald", cutoff: float | None = None, alpha: float | None = None,
                 accuracy: float = DEFAULT_ACCURACY, k_cutoff: float | None = None, mesh_spacing: float | None = None,
                 interpolation_nodes: int | None = None, dsf_self_energy: str = "lammps",
                 coulomb_constant: float = COULOMB_CONSTANT, dtype=torch.float64, device="cpu"):
        self._arguments = dict(charges=charges, method=method, cutoff=cutoff, alpha=alpha, accuracy=accuracy,
                               k_cutoff=k_cutoff, mesh_spacing=mesh_spacing, interpolation_nodes=interpolation_nodes,
                               dsf_self_energy=dsf_self_energy, coulomb_constant=coulomb_constant)
        if method not in METHODS:
            raise ValueError(f"Coulomb: method must be one of {METHODS}, got {method!r}")
        if dsf_self_energy not in DSF_SELF_ENERGIES:
            raise ValueError(f"Coulomb: dsf_self_energy must be one of {DSF_SELF_ENERGIES}, got {dsf_self_energy!r}")
        self.method = method
        self.dtype = dtype
        self.device = torch.device(device)
        self._table = ChargeTable(charges, dtype, self.device)
        self.charges = self._table.charges
        self.coulomb_constant = float(coulomb_constant)
        self.accuracy = float(accuracy)
        self.dsf_self_energy = dsf_self_energy
        self.smearing = self.k_cutoff = self.mesh_spacing = self.interpolation_nodes = None
        if method == "direct":
            if cutoff is not None or alpha is not None:
                raise ValueError("Coulomb(method='direct') sums over all pairs: it takes no cutoff or alpha")
            self.cutoff = self.alpha = None
            return
        self.cutoff = float(DEFAULT_CUTOFF[method] if cutoff is None else cutoff)
        if not self.cutoff > 0:
            raise ValueError(f"Coulomb: cutoff must be positive (A), got {cutoff!r}")
        if method == "dsf":
            self.alpha = float(DEFAULT_DSF_ALPHA if alpha is None else alpha)
            if not self.alpha >= 0:
                raise ValueError(f"Coulomb: alpha must be >= 0 (1/A), got {alpha!r}")
            return
        params = ewald_parameters(method, self.cutoff, self.accuracy, alpha, k_cutoff, mesh_spacing,
                                  interpolation_nodes)
        self.alpha, self.smearing, self.k_cutoff = params.alpha, params.smearing, params.k_cutoff
        self.mesh_spacing, self.interpolation_nodes = params.mesh_spacing, params.interpolation_nodes

    def __repr__(self) -> str:
        keys = ["method", "charges", "cutoff", "alpha", "accuracy", "k_cutoff", "mesh_spacing",
                "interpolation_nodes"]
        if self.method == "dsf":
            keys = ["method", "charges", "cutoff", "alpha", "dsf_self_energy"]
        text = ", ".join(f"{k}={getattr(self, k)!r}" for k in keys if getattr(self, k) is not None)
        return f"Coulomb({text})"

    def to(self, dtype=None, device=None) -> "Coulomb":
        """The same component for another dtype / device (a new object; this one is unchanged)."""
        return Coulomb(**self._arguments, dtype=self.dtype if dtype is None else dtype,
                       device=self.device if device is None else device)

    def stack_parts(self, elements=None) -> list:
        """The components that the stack holds in place of this one; ``elements`` (the stack's)
        must all have a charge when charges are per element."""
        from .coulomb_pairs import CoulombDSF, CoulombRealSpace
        from .coulomb_reciprocal import CoulombDirect, CoulombReciprocal

        if elements is not None:
            missing = self._table.missing(elements)
            if missing:
                raise ValueError(f"Coulomb: no charge for element(s) {missing} of the stack's elements {list(elements)} "
                                 f"(charges given for {sorted(self.charges)})")
        if self.method == "dsf":
            return [CoulombDSF(self, self._table)]
        if self.method == "direct":
            return [CoulombDirect(self, self._table)]
        return [CoulombRealSpace(self, self._table), CoulombReciprocal(self, self._table)]


def find_coulomb(stack) -> Coulomb | None:
    """The :class:`Coulomb` a stack was built with (its parts point back to it), or None."""
    for comp in getattr(stack, "components", ()):
        parent = getattr(comp, "coulomb", None)
        if isinstance(parent, Coulomb):
            return parent
    return None
