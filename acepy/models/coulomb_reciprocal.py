"""The structure-level parts of the Coulomb component: Ewald / PME reciprocal sums (torch-pme) and
the direct sum over all pairs of a cluster.

:class:`CoulombReciprocal` calls torch-pme (Loche et al., J. Chem. Phys. 162, 142501 (2025);
https://github.com/lab-cosmo/torch-pme) with an *empty* neighbour list, so that its calculator
returns only its Fourier-space part: per-atom potentials ``phi_i`` whose ``sum_i q_i phi_i`` is the
reciprocal energy *including* the Gaussian self term ``-alpha/sqrt(pi) sum q_i^2`` and the
neutralising-background term (zero for the neutral cells we accept), in units of its potential's
``prefactor`` (1 here; we multiply by the Coulomb constant). Its ``CoulombPotential(smearing=s)``
splits ``1/r`` as ``erfc(r / (sqrt(2) s)) / r + erf(...) / r``, so ``s = 1 / (sqrt(2) alpha)``; the real-space
``erfc`` part is :class:`~acepy.models.coulomb_pairs.CoulombRealSpace` on the stack's graph.

Ewald: we pass torch-pme the k-vectors ourselves, every ``k = n B`` (B the reciprocal cell) with
``0 < |k| <= k_cutoff``: a sphere, so the energy is exactly invariant under rotations, unlike a box
of integer indices. The integer set is chosen on the detached cell; the vectors are computed from
the differentiable cell, so the sum is differentiable (twice) in positions and cell.

PME: torch-pme's ``PMECalculator`` (Lagrange interpolation of ``interpolation_nodes`` points on a
power-of-two mesh, Darden et al., J. Chem. Phys. 98, 10089 (1993)). Its mesh is fixed in space,
so a rigid translation changes the energy by the interpolation error: PME forces do not sum to
zero and its Hessian misses the acoustic sum rule by the same relative amount (~the requested
accuracy; measured in tests/test_coulomb_pme.py).

Position Hessians (:meth:`CoulombReciprocal.structure_hessians`) are exact second derivatives of
these energies without autograd, in :mod:`.coulomb_hessians`: Ewald as matrix products over
chunks of k-vectors, PME as a contraction of torch-pme's stencils with its mesh response (Numba).
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from acepy.errors import StructureError

from .component import BatchGraph, Component
from .coulomb_params import ChargeTable, check_neutral

__all__ = ["CoulombReciprocal", "CoulombDirect", "ewald_kvectors"]


def _torchpme():
    try:
        import torchpme
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("Coulomb(method='ewald'/'pme') needs torch-pme: pip install 'acepy[coulomb]' "
                          "(or pip install torch-pme)") from err
    return torchpme


def ewald_kvectors(cell: torch.Tensor, k_cutoff: float, half: bool = False) -> torch.Tensor:
    """All ``k = n @ (2 pi cell^-T)`` with integer ``n != 0`` and ``|k| <= k_cutoff`` (K, 3),
    differentiable in ``cell`` (rows are the cell vectors); ``half``: one of each pair ``+-k``
    (the first nonzero component of ``n`` positive)."""
    recip = 2.0 * math.pi * torch.linalg.inv(cell).transpose(0, 1)  # rows b_a, a_i . b_j = 2 pi d_ij
    plain = recip.detach()
    # |n_a| = |k . a_a| / (2 pi) <= k_cutoff |a_a| / (2 pi)
    n_max = torch.floor(k_cutoff * torch.linalg.vector_norm(cell.detach(), dim=1) / (2.0 * math.pi)).long()
    axes = [torch.arange(-int(m), int(m) + 1, device=cell.device, dtype=cell.dtype) for m in n_max]
    n = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    norm = torch.linalg.vector_norm(n @ plain, dim=1)
    keep = (norm <= k_cutoff) & (norm > 0)
    if half:
        n0, n1, n2 = n.unbind(dim=1)
        keep = keep & ((n0 > 0) | ((n0 == 0) & ((n1 > 0) | ((n1 == 0) & (n2 > 0)))))
    return n[keep] @ recip


class CoulombReciprocal(Component):
    """The Fourier-space sum (with the Gaussian self term) of Ewald or PME, per structure."""

    cutoff = None
    CHUNK_ELEMENTS = 1 << 21  # k-vectors x atoms per torch-pme call (its (K, n) matrices: 16 MB each in float64)

    def __init__(self, coulomb, table: ChargeTable):
        torchpme = _torchpme()
        self.coulomb = coulomb
        self.method = coulomb.method
        self.charge_table = table
        self.k = float(coulomb.coulomb_constant)
        self.k_cutoff = coulomb.k_cutoff
        self.dtype, self.device = coulomb.dtype, coulomb.device
        self.per_atom_data = ("charges",) if table.per_atom else ()
        potential = torchpme.CoulombPotential(smearing=float(coulomb.smearing))
        if self.method == "ewald":
            # lr_wavelength is unused: we give the k-vectors (ewald_kvectors) on every call
            calc = torchpme.EwaldCalculator(potential, lr_wavelength=2.0 * math.pi / self.k_cutoff)
        else:
            calc = torchpme.PMECalculator(potential, mesh_spacing=float(coulomb.mesh_spacing),
                                          interpolation_nodes=int(coulomb.interpolation_nodes))
        self.calculator = calc.to(device=self.device, dtype=self.dtype)

    @property
    def hessian_route(self) -> str:
        return "k-space matrix products" if self.method == "ewald" else "mesh stencil contraction (Numba)"

    def _check_structure(self, batch, b: int) -> None:
        if not bool(batch.pbc[b].all()):
            raise StructureError(f"structure {b}: Coulomb(method={self.method!r}) needs a structure periodic in "
                                 f"all three directions (pbc {batch.pbc[b].tolist()}); use method='direct' "
                                 "for clusters (or 'dsf')")
        if abs(float(torch.linalg.det(batch.cell[b].detach()))) < 1e-12:
            raise StructureError(f"structure {b}: the periodic cell is singular (zero volume)")

    def structure_hessians(self, batch, species) -> list[torch.Tensor]:
        """The position Hessian of the k-space sum per structure, exact and without autograd
        (:mod:`.coulomb_hessians`): Ewald as matrix products over chunks of k-vectors, PME as a
        contraction of its stencils with the mesh's response function (Numba, on the CPU)."""
        from .coulomb_hessians import ewald_hessian, pme_hessian

        q_all = self.charge_table.of(BatchGraph(batch, species))
        check_neutral(BatchGraph(batch, species), q_all, self.method)
        out = []
        with torch.no_grad():
            for b in range(batch.n_systems):
                self._check_structure(batch, b)
                lo, hi = int(batch.atom_offsets[b]), int(batch.atom_offsets[b + 1])
                cell, x, q = batch.cell[b], batch.positions[lo:hi], q_all[lo:hi]
                if self.method == "pme":
                    out.append(pme_hessian(self.calculator, cell, x, q, self.k))
                else:
                    half = ewald_kvectors(cell, self.k_cutoff, half=True)
                    out.append(ewald_hessian(cell, x, q, half, self.calculator.potential, self.k))
        return out

    def _kspace(self, charges, cell, positions, kvectors):
        empty_pairs = torch.zeros((0, 2), dtype=torch.long, device=positions.device)
        phi = self.calculator(charges, cell, positions, empty_pairs, positions.new_zeros(0), kvectors=kvectors)
        return (charges * phi).sum()

    def structure_energies(self, inputs: BatchGraph) -> torch.Tensor:
        batch = inputs.batch
        q = self.charge_table.of(inputs)
        check_neutral(inputs, q, self.method)
        out = []
        empty_pairs = torch.zeros((0, 2), dtype=torch.long, device=self.device)
        no_distances = batch.positions.new_zeros(0)
        for b in range(batch.n_systems):
            self._check_structure(batch, b)
            lo, hi = int(batch.atom_offsets[b]), int(batch.atom_offsets[b + 1])
            cell, positions, charges = batch.cell[b], batch.positions[lo:hi], q[lo:hi, None]
            if self.method == "pme":
                phi = self.calculator(charges, cell, positions, empty_pairs, no_distances)
                out.append(self.k * (charges * phi).sum())
                continue
            # Ewald in chunks of k-vectors (torch-pme forms (K, n) matrices): each call adds the
            # self and background terms once, so all calls but one have them taken off again
            # (what a call with no k-vectors returns)
            kvectors = ewald_kvectors(cell, self.k_cutoff)
            step = max(1, self.CHUNK_ELEMENTS // max(1, hi - lo))
            chunks = list(torch.split(kvectors, step)) or [kvectors]
            energy = 0.0
            for chunk in chunks:
                if len(chunks) == 1:
                    energy = energy + self._kspace(charges, cell, positions, chunk)
                else:  # recomputed in the backward pass: memory of one chunk, not of all (K, n)
                    energy = energy + checkpoint(self._kspace, charges, cell, positions, chunk, use_reentrant=False)
            if len(chunks) > 1:
                phi = self.calculator(charges, cell, positions, empty_pairs, no_distances, kvectors=kvectors[:0])
                energy = energy - (len(chunks) - 1) * (charges * phi).sum()
            out.append(self.k * energy)
        if not out:
            return batch.positions.new_zeros(0)
        return torch.stack(out)


class CoulombDirect(Component):
    """The plain Coulomb sum ``1/2 sum_(i != j) k q_i q_j / r_ij`` over all pairs of a cluster
    (no cutoff; O(n^2) per structure). Periodic structures raise: their sum converges only
    conditionally (use 'ewald' or 'pme')."""

    cutoff = None

    def __init__(self, coulomb, table: ChargeTable):
        self.coulomb = coulomb
        self.charge_table = table
        self.k = float(coulomb.coulomb_constant)
        self.dtype, self.device = coulomb.dtype, coulomb.device
        self.per_atom_data = ("charges",) if table.per_atom else ()

    def structure_energies(self, inputs: BatchGraph) -> torch.Tensor:
        batch = inputs.batch
        q = self.charge_table.of(inputs)
        out = []
        for b in range(batch.n_systems):
            if bool(batch.pbc[b].any()):
                raise StructureError(f"structure {b}: Coulomb(method='direct') sums over the atoms of a cluster; this "
                                     f"structure is periodic (pbc {batch.pbc[b].tolist()}): use 'ewald', 'pme' or 'dsf'")
            lo, hi = int(batch.atom_offsets[b]), int(batch.atom_offsets[b + 1])
            x, qb = batch.positions[lo:hi], q[lo:hi]
            i, j = torch.triu_indices(hi - lo, hi - lo, offset=1, device=x.device)
            r = torch.linalg.vector_norm(x[j] - x[i], dim=1)
            if r.numel() and float(r.detach().min()) < 1e-8:
                e = int(torch.argmin(r.detach()))
                raise StructureError(f"structure {b}: atoms {int(i[e])} and {int(j[e])} coincide; point charges "
                                     "cannot (the Coulomb energy diverges)")
            out.append(self.k * (qb[i] * qb[j] / r).sum())
        if not out:
            return batch.positions.new_zeros(0)
        return torch.stack(out)
