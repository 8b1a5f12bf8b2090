"""The ACE many-body component with PACE semantics (ACE_SPEC.md 2.10-2.13).

For each central atom i: the atomic base A[mu][n][l][m] = sum over neighbours j of species mu of
R_nl(r_ij) Y_lm(r_ij), the rank-1 base A1[mu][k] = sum_j g_k(r_ij), the densities
rho_p = sum over C-tilde functions of c_p Re(prod_t A_t), the embedding F(rho), the core
repulsion rho_core = sum_j cr(r_ij) with the energy-level inner cutoff, so that
E_i = F f_rho + rho_core (or the zbl blend). E0 is not added here: it is the one-body component.

Both paths take the stack's :class:`~acepy.models.component.BatchGraph` (DESIGN.md, "The component
contract"). The edges beyond their pair's cutoff are dropped and the distances checked against the
radial tables once per call, at the boundary; the chunks of the fast path run without value checks.

One pipeline, two ways through it:

- the exact path (:meth:`ACE.site_energies`, torch reference kernels): plain torch, twice
  differentiable in the edge vectors; the stack takes forces from autograd;
- the fast path (:meth:`ACE.energies_and_edge_grads`, Numba or Triton kernels): no autograd. The
  forward pass keeps A and the densities; the adjoint ("weights") pass turns dE/drho into dE/dA
  (``product_basis_adjoint``) and dE/dA into per-edge gradients (``atomic_base_edge_grads``), plus
  the radial-only terms (rank 1, core repulsion, zbl switch) per edge.

The C-tilde functions are compiled once into factor codes over the m >= 0 half of A (an m < 0
entry is ``(-1)^m conj(A_{l|m|})``), shared by every backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from acepy.spec import ACEPotentialSpec
from acepy.graph import csr_offsets
from acepy.kernels import (
    ProductBasisPlan,
    atomic_base,
    atomic_base_edge_grads,
    encode_factor,
    product_basis,
    product_basis_adjoint,
    segment_sum,
)

from acepy.kernels.numba_cpu.ace_fused import ace_energies_and_edge_grads
from acepy.kernels.numba_cpu.embedding import embedding_tables, site_energies_and_derivatives

from .ace_errors import check_finite, raise_range
from .component import BatchGraph, Component

from .embedding import density_inner_cutoff, embedding_energy, embedding_energy_and_derivative
from .radial import RadialValues, cutoff_func_poly, radial_basis

# Edges per chunk of the fast path: bounds the per-edge work arrays (radial values and their
# derivatives, about 0.7 kB per edge for nradmax 5, lmax 6; harmonics with gradients, 1.8 kB more
# on the backends that do not fuse them) to tens of MB. Smaller chunks measured no faster (the
# Python work per chunk grows), larger ones no faster either (2048 Cu atoms, 287k edges).
EDGE_CHUNK = 1 << 15
# On a GPU a chunk costs a host read of the CSR offsets (its bounds) and a few dozen launches: 2^20
# edges (about 2.5 GB of work arrays) keep a 32k-atom cell to a couple of chunks.
EDGE_CHUNK_CUDA = 1 << 20


@dataclass
class _SpeciesEmbedding:
    ndensity: int
    fs_parameters: np.ndarray
    npoti: str
    rho_cut: float
    drho_cut: float


@dataclass
class _Edges:
    """The edges an ACE evaluation uses (inside their pair's cutoff), sorted by centre."""

    centers: torch.Tensor
    neighbors: torch.Tensor
    mu_i: torch.Tensor
    mu_j: torch.Tensor
    vectors: torch.Tensor
    r: torch.Tensor
    offsets: torch.Tensor  # (N+1,) CSR of the edges by centre
    kept: torch.Tensor | None  # indices of the kept input edges, None when all are kept
    # with _prepare(defer=True): a 0-d bool tensor, true when some distance is outside the radial
    # tables (read once with the call's other checks); None when checked already or nothing to check
    bad_range: torch.Tensor | None = None

    def slice(self, a0: int, a1: int, e0: int, e1: int) -> "_Edges":
        """The edges of atoms a0..a1-1 (edges e0..e1-1), with centres and offsets local to the chunk."""
        return _Edges(self.centers[e0:e1] - a0, self.neighbors[e0:e1], self.mu_i[e0:e1], self.mu_j[e0:e1],
                      self.vectors[e0:e1], self.r[e0:e1], self.offsets[a0:a1 + 1] - e0, None)


class ACE(Component):
    """The many-body term of a C-tilde ACE potential (no E0: see :class:`OneBody`)."""

    def __init__(self, spec: ACEPotentialSpec, dtype: torch.dtype = torch.float64, device="cpu"):
        self.spec = spec
        self.elements = list(spec.elements)
        self.dtype = dtype
        self.device = torch.device(device)
        self.radial = radial_basis(spec, dtype=dtype, device=self.device)
        nel = len(self.elements)
        self.nelements = nel
        self.lmax = int(spec.lmax)
        self.nradmax = int(spec.nradmax)
        self.nradbase = int(spec.nradbase)
        self.n_half = (self.lmax + 1) * (self.lmax + 2) // 2
        self.inner_cutoff_type = spec.inner_cutoff_type
        # per ordered pair (from the radial basis): r < rc makes a neighbour; the zbl energy-level cutoff
        self._pair_cutoffs = torch.as_tensor(self.radial.cutoffs, dtype=dtype, device=self.device)
        self.cutoff = self.radial.cutoffmax
        # a graph at or inside this cutoff holds no edge beyond its pair's cutoff: nothing to drop
        self._min_pair_cutoff = float(np.min(self.radial.cutoffs))
        if self.inner_cutoff_type == "zbl":
            self._r_in = torch.as_tensor(self.radial.rcut_in, dtype=dtype, device=self.device)
            self._d_in = torch.as_tensor(self.radial.dcut_in, dtype=dtype, device=self.device)
        self._embeddings = [
            _SpeciesEmbedding(e.ndensity, np.asarray(e.fs_parameters, dtype=np.float64), e.npoti,
                              float(e.rho_core_cutoff), float(e.drho_core_cutoff))
            for e in (spec.embeddings[mu] for mu in range(nel))
        ]
        self.max_ndensity = max(e.ndensity for e in self._embeddings)
        self._embedding_tables = embedding_tables(self._embeddings, self.max_ndensity)
        self._compile_functions()
        self._fused = self._fused_layout()
        self._pair_cutoffs_host = self._pair_cutoffs.cpu().numpy()

    # ---- construction -------------------------------------------------------------------------
    def _half_column(self, mu: int, n: int, l: int, m: int) -> int:
        """Column of A[mu][n][l][|m|] in one atom's flattened m >= 0 atomic base."""
        return (mu * self.nradmax + n) * self.n_half + l * (l + 1) // 2 + abs(m)

    def _compile_functions(self):
        """Factor codes and coefficients of every rank >= 2 function, grouped by central species,
        and the rank-1 coefficients as a dense (species, nel * nradbase, P) map on A1."""
        nel, p_max = self.nelements, self.max_ndensity
        codes, coeff, group_offsets = [], [], [0]
        rank1 = np.zeros((nel, nel * self.nradbase, p_max))
        rmax = 1
        for mu0 in range(nel):
            p = self._embeddings[mu0].ndensity
            for fn in self.spec.functions[mu0]:
                c = np.asarray(fn.ctildes, dtype=np.float64).reshape(-1, p)
                if fn.rank == 1:
                    rank1[mu0, int(fn.mus[0]) * self.nradbase + int(fn.ns[0]) - 1, :p] += c[0]
                    continue
                rmax = max(rmax, int(fn.rank))
                for s in range(fn.ms_combs.shape[0]):
                    term = []
                    for t in range(fn.rank):
                        m = int(fn.ms_combs[s, t])
                        col = self._half_column(int(fn.mus[t]), int(fn.ns[t]) - 1, int(fn.ls[t]), m)
                        term.append(encode_factor(col, conj=m < 0, neg=(m < 0 and m % 2 == 1)))
                    codes.append(term)
                    row = np.zeros(p_max)
                    row[:p] = c[s]
                    coeff.append(row)
            group_offsets.append(len(codes))
        # within each species, terms sorted by rank: the kernels' per-rank branches then run in
        # long predictable stretches (the sum does not depend on the order)
        order = []
        for g in range(nel):
            block = range(group_offsets[g], group_offsets[g + 1])
            order.extend(sorted(block, key=lambda s: len(codes[s])))
        codes = [codes[s] for s in order]
        coeff = [coeff[s] for s in order]
        padded = np.full((len(codes), rmax), -1, dtype=np.int64)
        for s, term in enumerate(codes):
            padded[s, : len(term)] = term
        dev = self.device
        self.plan = ProductBasisPlan(
            codes=torch.as_tensor(padded, device=dev),
            coeff=torch.as_tensor(np.array(coeff).reshape(len(coeff), p_max), dtype=self.dtype, device=dev),
            group_offsets=torch.as_tensor(np.array(group_offsets, dtype=np.int64), device=dev),
        )
        self.plan.validate(nel * self.nradmax * self.n_half)  # once: the chunks skip value checks
        self._rank1 = torch.as_tensor(rank1, dtype=self.dtype, device=dev)
        self._rank1_host = self._rank1.cpu().numpy()  # the Numba fast path's copy

    def _fused_layout(self):
        """What the fused Numba kernel (``kernels/numba_cpu/ace_fused.py``) needs to read the radial
        table: ``(table, rnl_col, core_col, zbl)``, or None for a radial kind without a table
        (SHIPs: the staged kernels run it)."""
        kind = self.radial.kind
        if kind not in ("pace", "spline"):
            return None
        n_l, nb = self.lmax + 1, self.nradbase
        n, l = np.meshgrid(np.arange(self.nradmax), np.arange(n_l), indexing="ij")
        if kind == "pace":  # columns [g_k | R_nl as [n][l] | core] (radial/pace.py)
            rnl_col, core_col = nb + n * n_l + l, nb + self.nradmax * n_l
        else:  # ACEpotentials splines: R_nl = g_n for every l, no core repulsion
            rnl_col, core_col = n + 0 * l, -1
        zbl = None
        if self.inner_cutoff_type == "zbl":
            zbl = (np.ascontiguousarray(self.radial.rcut_in, dtype=np.float64),
                   np.ascontiguousarray(self.radial.dcut_in, dtype=np.float64))
        return self.radial._lookup_table(), np.ascontiguousarray(rnl_col, dtype=np.int64), int(core_col), zbl

    # ---- shared steps -------------------------------------------------------------------------
    def _prepare(self, inputs: BatchGraph, defer: bool = False) -> _Edges:
        """Once per call: keep the edges inside their pair's cutoff (PACE: r < rcut) and check every
        kept distance against the radial tables (too-close atoms raise :class:`TooCloseError`
        naming them). The graph's CSR offsets are reused when no edge is dropped: always when no
        pair cutoff is below the graph's (then nothing is read). ``defer``: the range check is
        left as the device flag ``bad_range`` for the caller to read with its others
        (:meth:`_raise_range`); the species are the stack's, in range."""
        species, centers, neighbors = inputs.species, inputs.centers, inputs.neighbors
        vectors, r = inputs.vectors, inputs.distances
        mu_i, mu_j = species[centers], species[neighbors]
        kept, offsets = None, inputs.offsets
        graph_cutoff = getattr(inputs.graph, "cutoff", None)
        if graph_cutoff is None or graph_cutoff > self._min_pair_cutoff:
            keep = r.detach() < self._pair_cutoffs[mu_i, mu_j]
            if not bool(keep.all()):
                kept = torch.nonzero(keep).squeeze(1)
                centers, neighbors, vectors, r, mu_i, mu_j = (t.index_select(0, kept)
                                                              for t in (centers, neighbors, vectors, r, mu_i, mu_j))
                offsets = csr_offsets(centers, inputs.n_atoms)
        if defer:
            return _Edges(centers, neighbors, mu_i, mu_j, vectors, r, offsets, kept,
                          self.radial.distance_flag(r.detach(), mu_i, mu_j))
        raise_range(self, inputs, centers, mu_i, mu_j, r, kept)
        return _Edges(centers, neighbors, mu_i, mu_j, vectors, r, offsets, kept)

    def _densities(self, species, edges: _Edges, rad: RadialValues, backend):
        """Forward pass: rho (N, P) of the rank >= 2 functions, A1 (N, nel*nradbase), rho_core (N,),
        and the atomic base (which the adjoint pass needs). No value checks (done by _prepare)."""
        n_atoms, nel = species.shape[0], self.nelements
        if nel == 1:  # the edges are sorted by centre: a segment sum
            a1 = segment_sum(rad.gk, edges.offsets, backend=backend, check=False)
        else:
            rows = edges.centers * nel + edges.mu_j
            a1 = edges.r.new_zeros((n_atoms * nel, self.nradbase)).index_add(0, rows, rad.gk)
            a1 = a1.reshape(n_atoms, nel * self.nradbase)
        core = segment_sum(rad.cr, edges.offsets, backend=backend, check=False)
        a_re, a_im = None, None
        if self.nradmax > 0 and self.plan.n_terms > 0:
            # the harmonics come from the vectors inside the kernel (Numba fuses them per edge)
            a_re, a_im = atomic_base(rad.rnl, None, None, edges.offsets, edges.mu_j, nel, backend=backend,
                                     vectors=edges.vectors, check=False)
            width = nel * self.nradmax * self.n_half
            a_re, a_im = a_re.reshape(n_atoms, width), a_im.reshape(n_atoms, width)
            rho = product_basis(a_re, a_im, species, self.plan, backend=backend, check=False)
        else:
            rho = edges.r.new_zeros((n_atoms, self.max_ndensity))
        return rho, a1, core, a_re, a_im

    def _zbl_switch(self, n_atoms, edges: _Edges):
        """f_rho of the zbl inner cutoff (ACE_SPEC.md 2.12) from each atom's neighbour with the
        smallest d = r - (r_in - delta_in): ``(f (N,), df/dr of that edge (N,), that edge (N,))``;
        atoms without neighbours get f = 1 and edge -1."""
        centers, r = edges.centers, edges.r
        ones = r.new_ones(n_atoms)
        none = torch.full((n_atoms,), -1, dtype=torch.long, device=r.device)
        if r.numel() == 0:
            return ones, r.new_zeros(n_atoms), none
        r_in = self._r_in[edges.mu_i, edges.mu_j]
        d_in = self._d_in[edges.mu_i, edges.mu_j]
        d = r - (r_in - d_in)
        big = torch.full((n_atoms,), float("inf"), dtype=r.dtype, device=r.device)
        d_min = big.scatter_reduce(0, centers, d.detach(), reduce="amin")
        # the first edge of each atom that attains its minimum
        is_min = d.detach() == d_min[centers]
        edge_ids = torch.arange(d.numel(), device=r.device)
        first = torch.full((n_atoms,), d.numel(), dtype=torch.long, device=r.device)
        # no boolean-mask gather (its size depends on values: a host sync on a GPU)
        first = first.scatter_reduce(0, centers, torch.where(is_min, edge_ids, d.numel()), reduce="amin")
        has = first < d.numel()
        safe = torch.where(has, first, torch.zeros_like(first))
        delta = d_in[safe]
        f, df_dt = cutoff_func_poly(delta - d[safe], delta, delta)  # t = delta - d, dt/dr = -1
        f = torch.where(has, f, ones)
        df_dr = torch.where(has, -df_dt, torch.zeros_like(df_dt))
        return f, df_dr, torch.where(has, first, none)

    def _site_energies_from(self, species, rho_hi, a1, core, f_zbl, derivatives: bool):
        """E_i from the densities; with ``derivatives``, also dE/drho (N, P), dE/dcore (N,) and
        dE/df_zbl (N,) (analytic: the fast path uses no autograd)."""
        n_atoms = species.shape[0]
        rho = rho_hi + torch.einsum("ik,ikp->ip", a1, self._rank1[species])
        if derivatives and self.nelements > 1:  # the fast path (no autograd): masks, no nonzero
            return self._site_energies_masked(species, rho, core, f_zbl)
        energies = rho.new_zeros(n_atoms)
        d_rho = torch.zeros_like(rho) if derivatives else None
        d_core = rho.new_zeros(n_atoms) if derivatives else None
        d_f = rho.new_zeros(n_atoms) if derivatives else None
        for mu, emb in enumerate(self._embeddings):
            if self.nelements == 1:  # every atom: no index to find (a nonzero is a host sync on a GPU)
                atoms = slice(None)
            else:
                atoms = torch.nonzero(species == mu).squeeze(1)
                if atoms.numel() == 0:
                    continue
            rho_mu = rho[atoms, : emb.ndensity]
            c = core[atoms]
            if derivatives:
                f_emb, df_emb = embedding_energy_and_derivative(rho_mu, emb.fs_parameters, emb.npoti)
            else:
                f_emb = embedding_energy(rho_mu, emb.fs_parameters, emb.npoti)
            if self.inner_cutoff_type == "zbl":
                f = f_zbl[atoms]
                e = f_emb * f + c * (1.0 - f)
                if derivatives:
                    d_core[atoms] = 1.0 - f
                    d_f[atoms] = f_emb - c
            else:
                f, df = density_inner_cutoff(c, emb.rho_cut, emb.drho_cut)
                e = f_emb * f + c
                if derivatives:
                    d_core[atoms] = f_emb * df + 1.0
            if derivatives:
                d_rho[atoms, : emb.ndensity] = df_emb * f[:, None]
            energies = e if self.nelements == 1 else energies.index_put((atoms,), e)
        return energies, d_rho, d_core, d_f

    def _site_energies_masked(self, species, rho, core, f_zbl):
        """:meth:`_site_energies_from` with derivatives for several species, by masks: each
        species' embedding is evaluated on every atom and kept where the atom has that species
        (a nonzero per species and chunk is a host sync on a GPU; the embedding is cheap next to
        the product basis). Values of the other atoms are discarded by ``torch.where``, even if
        not finite. Not for autograd (a discarded NaN would reach the gradient)."""
        energies = rho.new_zeros(species.shape[0])
        d_rho = torch.zeros_like(rho)
        d_core = torch.zeros_like(energies)
        d_f = torch.zeros_like(energies)
        for mu, emb in enumerate(self._embeddings):
            mask = species == mu
            p = emb.ndensity
            f_emb, df_emb = embedding_energy_and_derivative(rho[:, :p], emb.fs_parameters, emb.npoti)
            if self.inner_cutoff_type == "zbl":
                f = f_zbl
                e = f_emb * f + core * (1.0 - f)
                d_core = torch.where(mask, 1.0 - f, d_core)
                d_f = torch.where(mask, f_emb - core, d_f)
            else:
                f, df = density_inner_cutoff(core, emb.rho_cut, emb.drho_cut)
                e = f_emb * f + core
                d_core = torch.where(mask, f_emb * df + 1.0, d_core)
            energies = torch.where(mask, e, energies)
            d_rho[:, :p] = torch.where(mask[:, None], df_emb * f[:, None], d_rho[:, :p])
        return energies, d_rho, d_core, d_f

    # ---- the exact path -----------------------------------------------------------------------
    def site_energies(self, inputs: BatchGraph, backend: str | None = "torch") -> torch.Tensor:
        """E_i (without E0) for every atom of ``inputs`` (N,).

        With the torch backend everything here is differentiable twice in ``inputs.vectors``.
        Edges at or beyond their pair's cutoff are dropped (PACE accepts r < rcut).
        """
        species = inputs.species
        edges = self._prepare(inputs)
        rad = self.radial.evaluate(edges.r, edges.mu_i, edges.mu_j, backend=backend, check=False)
        rho, a1, core, _, _ = self._densities(species, edges, rad, backend)
        f_zbl = self._zbl_switch(species.shape[0], edges)[0] if self.inner_cutoff_type == "zbl" else None
        energies = self._site_energies_from(species, rho, a1, core, f_zbl, derivatives=False)[0]
        check_finite(self, inputs, energies)
        return energies

    # ---- the fast path ------------------------------------------------------------------------
    def energies_and_edge_grads(self, inputs: BatchGraph, backend: str | None = None):
        """``(E_i (N,), g (E, 3))`` with ``g_e = dE/dr_e``, without autograd, in chunks of atoms
        whose edges fit :data:`EDGE_CHUNK`."""
        if backend == "numba" and self._fused is not None:
            return self._fused_energies_and_edge_grads(inputs)
        species, vectors = inputs.species, inputs.vectors.detach()
        n_atoms = species.shape[0]
        edges = self._prepare(inputs, defer=True)
        n_edges = edges.r.shape[0]
        energies = vectors.new_zeros(n_atoms)
        grads = vectors.new_zeros((n_edges, 3))
        chunk = EDGE_CHUNK_CUDA if vectors.device.type == "cuda" else EDGE_CHUNK
        if n_edges <= chunk:  # one chunk: no bounds to read
            bounds, offsets = [0, n_atoms], None
        else:
            offsets = edges.offsets.cpu().numpy()  # chunk boundaries on the host, read once
            # as many chunks as the size needs, of even size (no small last chunk paying the per-chunk cost)
            n_chunks = -(-n_edges // chunk)
            bounds = _chunk_bounds(offsets, -(-n_edges // n_chunks))
        for a0, a1 in zip(bounds[:-1], bounds[1:]):
            e0, e1 = (0, n_edges) if offsets is None else (int(offsets[a0]), int(offsets[a1]))
            energies[a0:a1], grads[e0:e1] = self._fast_chunk(species[a0:a1], edges.slice(a0, a1, e0, e1), backend)
        if edges.kept is not None:
            out = vectors.new_zeros(vectors.shape)
            out[edges.kept] = grads
            grads = out
        # one host read for every check of the call: distances in the tables, finite results
        bad = ~(torch.isfinite(energies).all() & torch.isfinite(grads).all())
        if edges.bad_range is not None:
            bad = bad | edges.bad_range
        if bool(bad):
            if edges.bad_range is not None:
                raise_range(self, inputs, edges.centers, edges.mu_i, edges.mu_j, edges.r, edges.kept)
            check_finite(self, inputs, energies, grads)
        return energies, grads

    def _fused_energies_and_edge_grads(self, inputs: BatchGraph):
        """The Numba fast path in one kernel (``kernels/numba_cpu/ace_fused.py``), straight from the
        graph: the kernel drops the edges beyond their pair's cutoff and flags distances outside the
        tables and results that are not finite; only then are the named errors built (by the
        staged path's checks, which name the atoms)."""
        energies, grads, flags = self.fused_terms(inputs.vectors.detach(), inputs.distances.detach(), inputs.offsets,
                                                  inputs.neighbors, inputs.species)
        if flags.any():
            self._prepare(inputs)  # raises TooCloseError naming the pair
            check_finite(self, inputs, energies, grads)
        return energies, grads

    def fused_terms(self, vectors: torch.Tensor, distances: torch.Tensor, offsets: torch.Tensor,
                    neighbors: torch.Tensor, species: torch.Tensor):
        """``(E_i, dE/dr_e, flags)`` of the fused Numba kernel on a graph's CPU tensors (CSR by
        centre), nothing raised: a set flag means the caller must name the error (see
        ``kernels/numba_cpu/ace_fused.py``). Only for a model whose ``_fused`` layout exists."""
        table, rnl_col, core_col, zbl = self._fused
        return ace_energies_and_edge_grads(
            vectors, distances, offsets, neighbors, species, self._pair_cutoffs_host, table, rnl_col, self.nradbase,
            core_col, zbl, self.plan, self.nradmax > 0 and self.plan.n_terms > 0, self.nelements, self.nradmax,
            self._rank1_host, self._embedding_tables)

    def _fast_chunk(self, species, edges: _Edges, backend):
        n_atoms = species.shape[0]
        rad = self.radial.evaluate(edges.r, edges.mu_i, edges.mu_j, backend=backend, check=False)
        rho, a1_base, core, a_re, a_im = self._densities(species, edges, rad, backend)
        if self.inner_cutoff_type == "zbl":
            f_zbl, df_zbl, zbl_edge = self._zbl_switch(n_atoms, edges)
        else:
            f_zbl = df_zbl = zbl_edge = None
        if backend == "numba":  # one kernel instead of a per-species loop of small tensor ops
            energies, d_rho, d_core, d_f, d_a1 = site_energies_and_derivatives(
                rho, a1_base, self._rank1_host, core, species, self._embedding_tables, f_zbl)
        else:
            energies, d_rho, d_core, d_f = self._site_energies_from(species, rho, a1_base, core, f_zbl,
                                                                    derivatives=True)
            d_a1 = torch.einsum("ip,ikp->ik", d_rho, self._rank1[species])
        # radial-only terms: dE/dA1 (rank 1) . dg_k/dr, dE/drho_core . dcr/dr, the zbl switch
        d_a1 = d_a1.reshape(n_atoms * self.nelements, self.nradbase)
        rows = edges.centers * self.nelements + edges.mu_j
        radial_scalar = (d_a1[rows] * rad.dgk).sum(1) + d_core[edges.centers] * rad.dcr
        if zbl_edge is not None and radial_scalar.numel():
            has = zbl_edge >= 0  # no boolean-mask gather: atoms without an edge add 0 to edge 0
            radial_scalar = radial_scalar.index_add(0, torch.where(has, zbl_edge, 0),
                                                    torch.where(has, d_f * df_zbl, 0.0))
        g = radial_scalar[:, None] * edges.vectors / edges.r[:, None]
        if a_re is not None:
            ga_re, ga_im = product_basis_adjoint(a_re, a_im, species, self.plan, d_rho, backend=backend, check=False)
            shape = (n_atoms, self.nelements, self.nradmax, self.n_half)
            g = g + atomic_base_edge_grads(ga_re.reshape(shape), ga_im.reshape(shape), edges.offsets, edges.mu_j,
                                           rad.rnl, rad.drnl, None, None, None, None, edges.vectors,
                                           backend=backend, check=False)
        return energies, g

    # ---- second derivatives (acepy/models/ace_hessian.py) --------------------------------------
    hessian_route = "chain rule per site (J^T K J + D)"

    def site_hessian_blocks(self, inputs: BatchGraph, backend: str | None = None):
        """Second derivatives of the site energies in their edge vectors, chunk by chunk (exact)."""
        from .ace_hessian import ace_site_blocks

        return ace_site_blocks(self, inputs, backend or "torch")

    def hvp_route(self, vectors: torch.Tensor, backend: str | None) -> str:
        """The route :meth:`hessian_vector_products` takes for these vectors (K, N, 3)."""
        from . import ace_hvp as tangent

        return "forward-mode tangent (Numba)" if tangent.applies(self, vectors, backend) else "per-site J^T K J u + D u"

    def hessian_vector_products(self, inputs: BatchGraph, vectors: torch.Tensor, backend: str | None = None):
        """H v for ``vectors (K, N, 3)`` (exact, no Hessian block formed). On the Numba backend with
        at most ``ace_hvp.MAX_VECTORS`` vectors: forward mode of the fast path (:mod:`.ace_hvp`, a
        few force calls per vector); otherwise the per-site J^T K (J u) + D u of :mod:`.ace_hessian`
        (its curvatures formed once for all vectors; every backend)."""
        from . import ace_hvp as tangent

        if tangent.applies(self, vectors, backend):
            return tangent.ace_hvp_tangent(self, inputs, vectors)
        from .ace_hessian import ace_hvp

        return ace_hvp(self, inputs, vectors, backend or "torch")


def _chunk_bounds(offsets: np.ndarray, max_edges: int) -> list[int]:
    """Atom boundaries ``0 = b_0 < ... < b_k = N`` with at most ``max_edges`` edges per chunk
    (or one atom, if a single atom has more)."""
    n = offsets.shape[0] - 1
    bounds = [0]
    while bounds[-1] < n:
        a = bounds[-1]
        b = int(np.searchsorted(offsets, offsets[a] + max_edges, side="right")) - 1
        bounds.append(min(n, max(b, a + 1)))
    return bounds
