"""The ACE many-body component with PACE semantics (ACE_SPEC.md 2.10-2.12).

For each central atom i: the atomic base A[mu][n][l][m] = sum over neighbours j of species mu of
R_nl(r_ij) Y_lm(r_ij), the rank-1 base A1[mu][k] = sum_j g_k(r_ij), the densities
rho_p = sum over C-tilde functions of c_p Re(prod_t A_t), the embedding F(rho), the core
repulsion rho_core = sum_j cr(r_ij) with the energy-level inner cutoff, so that
E_i = F f_rho + rho_core (or the zbl blend). E0 is not added here: it is the one-body component.

This module is the exact path: plain torch (through the torch reference kernels), twice
differentiable. Per-edge gradients dE/dr_ij come from autograd on the edge vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from acepy.io.spec import ACEPotentialSpec
from acepy.kernels import SplineRangeError, spherical_harmonics

from .embedding import density_inner_cutoff, embedding_energy
from .radial import RadialTables, cutoff_func_poly

# Atoms per chunk of the product basis: bounds the (atoms x m-tuples) complex work arrays.
ATOM_CHUNK = 256


class TooCloseError(ValueError):
    """Two atoms are closer than the potential's radial tables reach (PACE stops there too)."""


@dataclass
class _RankBlock:
    """All m-tuples of one rank for one central species: flat A indices and coefficients."""

    index: torch.Tensor  # (S, rank) int64 into the flattened A of one atom
    coeff: torch.Tensor  # (S, P) real


@dataclass
class _SpeciesBasis:
    rank1_index: torch.Tensor  # (S1,) into the flattened A1 of one atom
    rank1_coeff: torch.Tensor  # (S1, P)
    blocks: list  # [_RankBlock] for ranks >= 2
    ndensity: int
    fs_parameters: np.ndarray
    npoti: str
    rho_cut: float
    drho_cut: float


class ACE:
    """The many-body term of a C-tilde ACE potential (no E0: see :class:`OneBody`)."""

    def __init__(self, spec: ACEPotentialSpec, dtype: torch.dtype = torch.float64, device="cpu"):
        self.spec = spec
        self.elements = list(spec.elements)
        self.dtype = dtype
        self.device = torch.device(device)
        self.radial = RadialTables.from_spec(spec, dtype=dtype, device=self.device)
        nel = len(self.elements)
        self.nelements = nel
        self.lmax = int(spec.lmax)
        self.nradmax = int(spec.nradmax)
        self.nradbase = int(spec.nradbase)
        self.inner_cutoff_type = spec.inner_cutoff_type
        cut = np.array([[spec.cutoff(i, j) for j in range(nel)] for i in range(nel)], dtype=np.float64)
        self.cutoff_matrix = torch.as_tensor(cut, dtype=dtype, device=self.device)
        self.cutoff = float(cut.max())
        if self.inner_cutoff_type == "zbl":
            r_in = np.array([[spec.bonds[(i, j)].rcut_in for j in range(nel)] for i in range(nel)])
            d_in = np.array([[spec.bonds[(i, j)].dcut_in for j in range(nel)] for i in range(nel)])
            self._r_in = torch.as_tensor(r_in, dtype=dtype, device=self.device)
            self._d_in = torch.as_tensor(d_in, dtype=dtype, device=self.device)
        self._species = [self._compile_species(mu) for mu in range(nel)]

    # ---- construction -------------------------------------------------------------------------
    def _a_index(self, mu: int, n: int, l: int, m: int) -> int:
        """Flat index of A[mu][n][l][m] (full m range, -l..l) within one atom's A."""
        lm = l * l + l + m
        return (mu * self.nradmax + n) * (self.lmax + 1) ** 2 + lm

    def _compile_species(self, mu0: int) -> _SpeciesBasis:
        emb = self.spec.embeddings[mu0]
        p = emb.ndensity
        r1_idx, r1_c = [], []
        by_rank: dict[int, tuple[list, list]] = {}
        for fn in self.spec.functions[mu0]:
            if fn.rank == 1:
                r1_idx.append(int(fn.mus[0]) * self.nradbase + int(fn.ns[0]) - 1)
                r1_c.append(np.asarray(fn.ctildes[0], dtype=np.float64))
                continue
            idx, coef = by_rank.setdefault(int(fn.rank), ([], []))
            for s in range(fn.ms_combs.shape[0]):
                idx.append([self._a_index(int(fn.mus[t]), int(fn.ns[t]) - 1, int(fn.ls[t]), int(fn.ms_combs[s, t]))
                            for t in range(fn.rank)])
                coef.append(np.asarray(fn.ctildes[s], dtype=np.float64))
        dev, dt = self.device, self.dtype
        blocks = [
            _RankBlock(torch.as_tensor(np.array(idx, dtype=np.int64), device=dev),
                       torch.as_tensor(np.array(coef).reshape(len(coef), p), dtype=dt, device=dev))
            for rank, (idx, coef) in sorted(by_rank.items())
        ]
        return _SpeciesBasis(
            rank1_index=torch.as_tensor(np.array(r1_idx, dtype=np.int64), device=dev),
            rank1_coeff=torch.as_tensor(np.array(r1_c).reshape(len(r1_c), p), dtype=dt, device=dev),
            blocks=blocks,
            ndensity=p,
            fs_parameters=np.asarray(emb.fs_parameters, dtype=np.float64),
            npoti=emb.npoti,
            rho_cut=float(emb.rho_core_cutoff),
            drho_cut=float(emb.drho_core_cutoff),
        )

    # ---- evaluation ---------------------------------------------------------------------------
    def species_of(self, numbers: torch.Tensor) -> torch.Tensor:
        """Species index of every atom; an element the potential lacks raises, naming it."""
        from ase.data import atomic_numbers, chemical_symbols

        table = torch.full((119,), -1, dtype=torch.long, device=numbers.device)
        for mu, el in enumerate(self.elements):
            table[atomic_numbers[el]] = mu
        if numbers.numel() and (int(numbers.min()) < 0 or int(numbers.max()) > 118):
            raise ValueError(f"atomic numbers must lie in 0..118, got {numbers.tolist()}")
        species = table[numbers]
        bad = species < 0
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            raise ValueError(
                f"atom {i} is {chemical_symbols[int(numbers[i])]}, which the potential does not have "
                f"(elements {self.elements})"
            )
        return species

    def site_energies(self, species: torch.Tensor, centers: torch.Tensor, neighbors: torch.Tensor,
                      vectors: torch.Tensor, backend: str | None = "torch") -> torch.Tensor:
        """E_i (without E0) for every atom, from the edges (i, j) with vectors r_ij.

        ``vectors`` may require grad: everything here is differentiable (twice, with the torch
        backend). Edges at or beyond their pair's cutoff are dropped (PACE accepts r < rcut).
        """
        n_atoms = species.shape[0]
        mu_i, mu_j = species[centers], species[neighbors]
        r = torch.linalg.vector_norm(vectors, dim=1)
        keep = r < self.cutoff_matrix[mu_i, mu_j]
        if not bool(keep.all()):
            sel = torch.nonzero(keep).squeeze(1)
            centers, neighbors, vectors, r, mu_i, mu_j = (t[sel] for t in (centers, neighbors, vectors, r, mu_i, mu_j))
        try:
            rad = self.radial.evaluate(r, mu_i, mu_j, backend=backend)
        except SplineRangeError as err:
            e = err.edge
            raise TooCloseError(
                f"atoms {int(centers[e])} and {int(neighbors[e])} are {float(r[e].detach()):.6g} A apart: closer than "
                f"the potential's radial tables reach for {self.elements[int(mu_i[e])]}-"
                f"{self.elements[int(mu_j[e])]} (PACE stops here too)"
            ) from None
        nel, nrad, lmax = self.nelements, self.nradmax, self.lmax
        L_full = (lmax + 1) ** 2
        # rank-1 base A1[i, mu, k]
        rows = centers * nel + mu_j
        a1 = torch.zeros((n_atoms * nel, self.nradbase), dtype=self.dtype, device=self.device)
        a1 = a1.index_add(0, rows, rad.gk).reshape(n_atoms, nel * self.nradbase)
        # A[i, mu, n, l, m >= 0], then the full m range via A_{l,-m} = (-1)^m conj(A_{lm})
        if nrad > 0:
            y_re, y_im, _, _ = spherical_harmonics(vectors, lmax, gradients=False, backend=backend)
            l_of = torch.as_tensor([l for l in range(lmax + 1) for m in range(l + 1)], device=self.device)
            rl = rad.rnl[:, :, l_of]  # (E, nrad, L_half)
            a_re = torch.zeros((n_atoms * nel, nrad, l_of.numel()), dtype=self.dtype, device=self.device)
            a_im = torch.zeros_like(a_re)
            a_re = a_re.index_add(0, rows, rl * y_re[:, None, :])
            a_im = a_im.index_add(0, rows, rl * y_im[:, None, :])
            a_half = torch.complex(a_re, a_im)
            cols, src, sign, conj = [], [], [], []
            for l in range(lmax + 1):
                for m in range(-l, l + 1):
                    cols.append(l * l + l + m)
                    src.append(l * (l + 1) // 2 + abs(m))
                    sign.append((-1.0) ** m if m < 0 else 1.0)
                    conj.append(m < 0)
            order = np.argsort(cols)
            src_t = torch.as_tensor(np.array(src)[order], device=self.device)
            sign_t = torch.as_tensor(np.array(sign)[order], dtype=self.dtype, device=self.device)
            conj_t = torch.as_tensor(np.array(conj)[order], device=self.device)
            gathered = a_half[:, :, src_t]
            a_full = torch.where(conj_t, gathered.conj(), gathered) * sign_t
            a_full = a_full.reshape(n_atoms, nel * nrad * L_full)
        rho_core = torch.zeros(n_atoms, dtype=self.dtype, device=self.device).index_add(0, centers, rad.cr)

        energies = torch.zeros(n_atoms, dtype=self.dtype, device=self.device)
        for mu, basis in enumerate(self._species):
            atoms = torch.nonzero(species == mu).squeeze(1)
            if atoms.numel() == 0:
                continue
            parts = []
            for start in range(0, atoms.numel(), ATOM_CHUNK):
                chunk = atoms[start:start + ATOM_CHUNK]
                rho = a1[chunk][:, basis.rank1_index] @ basis.rank1_coeff
                for block in basis.blocks:
                    a = a_full[chunk]
                    prod = a[:, block.index[:, 0]]
                    for t in range(1, block.index.shape[1]):
                        prod = prod * a[:, block.index[:, t]]
                    rho = rho + prod.real @ block.coeff
                parts.append(rho)
            rho = torch.cat(parts)
            f_emb = embedding_energy(rho, basis.fs_parameters, basis.npoti)
            core = rho_core[atoms]
            if self.inner_cutoff_type == "zbl":
                f_rho = self._zbl_switch(atoms, n_atoms, centers, r, mu_i, mu_j)
                e = f_emb * f_rho + core * (1.0 - f_rho)
            else:
                f_rho = density_inner_cutoff(core, basis.rho_cut, basis.drho_cut)
                e = f_emb * f_rho + core
            energies = energies.index_put((atoms,), e)
        return energies

    def _zbl_switch(self, atoms, n_atoms, centers, r, mu_i, mu_j):
        """f_rho of the zbl inner cutoff (ACE_SPEC.md 2.12): from the neighbour with the smallest
        d = r - (r_in - delta_in); 1 for atoms without neighbours."""
        r_in = self._r_in[mu_i, mu_j]
        d_in = self._d_in[mu_i, mu_j]
        d = r - (r_in - d_in)
        big = torch.full((n_atoms,), float("inf"), dtype=self.dtype, device=self.device)
        d_min = big.scatter_reduce(0, centers, d.detach(), reduce="amin")
        # the first edge of each atom that attains its minimum
        is_min = d.detach() == d_min[centers]
        edge_ids = torch.arange(d.numel(), device=self.device)
        first = torch.full((n_atoms,), d.numel(), dtype=torch.long, device=self.device)
        first = first.scatter_reduce(0, centers[is_min], edge_ids[is_min], reduce="amin")
        chosen = first[atoms]
        has = chosen < d.numel()
        safe = torch.where(has, chosen, torch.zeros_like(chosen))
        if d.numel() == 0:
            return torch.ones(atoms.numel(), dtype=self.dtype, device=self.device)
        delta = d_in[safe]
        t = delta - d[safe]
        f, _ = cutoff_func_poly(t, delta, delta)
        return torch.where(has, f, torch.ones_like(f))
