"""The aenet Chebyshev ("AUC", Artrith-Urban-Ceder, PRB 96, 014112 (2017)) descriptor.

Definition, feature order and type spins as in aenet's Fortran ``sfbasis.f90`` (ACE_SPEC.md 5),
whose reference tables it reproduces (``tests/data/expected/aenet/``). For every atom
``i``, with ``f_c(d; Rc) = (cos(pi d/Rc) + 1)/2`` and ``s(t)`` the type spin of species ``t``:

* radial, ``n = 0..rad_order``: ``sum_j T_n(2 d_ij/rad_Rc - 1) f_c(d_ij; rad_Rc)``, over
  neighbours ``j`` (every periodic image) with ``d_ij < rad_Rc``;
* angular, ``n = 0..ang_order``: ``sum_{j<k} T_n(cos theta_ijk) f_c(d_ij) f_c(d_ik)`` with
  ``f_c(.; ang_Rc)``, over unordered pairs of neighbours closer than ``ang_Rc``;
* with more than one species, the same two blocks again with each neighbour weighted by its type
  spin (``s(t_j)``, ``s(t_j) s(t_k)``).

Feature order per atom: ``[radial, angular]`` for one species, ``[radial, angular,
radial (type spin), angular (type spin)]`` otherwise, so ``F = (1 or 2) * (rad_order + ang_order + 2)``.
The species list defines the type spins (its order matters): 2 species -> (-1, 1), 3 -> (-1, 0, 1),
4 -> (-2, -1, 1, 2), 5 -> (-2, ..., 2). The central atom's own species does not enter its
features (aenet fits one network per central species). Features are not normalised.

Differences from aenet: aenet's Fortran takes the angular block's type spin of a neighbour beyond
``rad_Rc`` (possible when ``ang_Rc > rad_Rc``) from the previous neighbour, a bug; here every
neighbour has its own. Fortran's truncated pi (3.14159265358979) moves features by ~1e-15
relative. aenet-python drops neighbours closer than 0.55 A by default, Fortran those closer than
1e-12 A; here no neighbour is dropped, and two atoms (or an atom and an image) at the same place
raise ``ValueError``.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch

import acepy.kernels as K
from acepy.batch import Batch, batch_from_atoms
from acepy.graph import Graph, GraphCache, edge_vectors

from . import _blocks as B

__all__ = ["ChebyshevDescriptor", "EdgeJacobian", "EdgeGrads", "VJP", "type_spins"]

# gradients() refuses a dense (N, F, N, 3) result with more elements than this (8 GB in float64)
MAX_DENSE_ELEMENTS = 1 << 30


def type_spins(n_species: int) -> list[int]:
    """aenet's type spins of ``n_species`` species in list order (``sfbasis.f90``, ``new_SFBasis``)."""
    spins, s = [], math.trunc(-n_species / 2)
    for _ in range(n_species):
        if s == 0 and n_species % 2 == 0:
            s += 1
        spins.append(s)
        s += 1
    return spins


class EdgeJacobian(NamedTuple):
    """The per-edge Jacobian on the graph at the larger cutoff (the sparse form of the gradients).

    ``values[e, f] = dG[centers[e], f] / d r_e`` (E, F, 3), with ``r_e = x[neighbors[e]] -
    x[centers[e]] + shift @ cell`` the edge vector (``vectors``). Feature ``f`` of atom ``i``
    depends only on the vectors of the edges of ``i``, so ``dG[i, f]/dx_a = sum over edges e of i
    of values[e, f] (delta(a, neighbors[e]) - delta(a, i))``: what :meth:`ChebyshevDescriptor.gradients`
    assembles densely. Edges beyond a block's cutoff have zero columns for that block.
    """

    centers: torch.Tensor  # (E,)
    neighbors: torch.Tensor  # (E,)
    edge_system: torch.Tensor  # (E,)
    vectors: torch.Tensor  # (E, 3)
    values: torch.Tensor  # (E, F, 3)


class EdgeGrads(NamedTuple):
    """``grads[e] = dL/d r_e`` (E, 3) of ``L = sum cotangent * G`` on the graph at the larger cutoff."""

    centers: torch.Tensor
    neighbors: torch.Tensor
    edge_system: torch.Tensor
    vectors: torch.Tensor
    grads: torch.Tensor


class VJP(NamedTuple):
    """What :meth:`ChebyshevDescriptor.vjp` returns for ``L = sum(cotangent * G)``.

    ``forces = -dL/dx (N, 3)`` and ``virial = -sum over edges of r_e (x) dL/dr_e (B, 3, 3)``
    (element ``[a, b] = r_a g_b``): if ``L`` is an energy, these are its forces and virial in the
    convention of ``Stack.evaluate`` (``stress = -virial / volume``, ASE's sign).
    """

    forces: torch.Tensor
    virial: torch.Tensor


@dataclass
class _Prepared:
    batch: Batch
    union: Graph  # the graph at the larger cutoff
    vectors: torch.Tensor  # the union graph's edge vectors
    radial: B.Block
    angular: B.Block


class ChebyshevDescriptor:
    """aenet's Chebyshev descriptor (module docstring) of one ``ase.Atoms``, a list, or a :class:`Batch`.

    ``species``: element symbols; their order sets the type spins. ``rad_order`` / ``ang_order``:
    the largest Chebyshev order (``N + 1`` functions each, as aenet's ``radial_N`` /
    ``angular_N``); ``rad_cutoff`` / ``ang_cutoff`` in Angstrom. ``backend``: ``None`` (Numba on
    CPU, Triton on CUDA), ``"numba"``, ``"triton"`` or ``"torch"`` (the reference: differentiable,
    :meth:`features` of a :class:`Batch` whose positions/cell require grad can be differentiated).
    ``dtype``: float64 (default) or float32 (features to ~1e-6 relative). ``num_threads``: CPU
    threads of the Numba kernels (None: acepy's default).

    One neighbour search per geometry serves both cutoffs (a :class:`~acepy.graph.GraphCache`,
    ``self.graph_cache``, reused across calls on the same geometry: ``features`` then ``vjp`` on
    the same structures search once).
    """

    def __init__(self, species: Sequence[str], rad_order: int, rad_cutoff: float, ang_order: int,
                 ang_cutoff: float, backend: str | None = None, dtype: torch.dtype = torch.float64,
                 device="cpu", num_threads: int | None = None):
        from ase.data import atomic_numbers

        if isinstance(species, str) or not isinstance(species, Sequence) or len(species) == 0:
            raise TypeError(f"species must be a non-empty list of element symbols, got {species!r}")
        species = list(species)
        bad = [s for s in species if not isinstance(s, str) or s not in atomic_numbers or s == "X"]
        if bad:
            raise ValueError(f"species: {bad} are not chemical element symbols (species {species})")
        dups = sorted({s for s in species if species.count(s) > 1})
        if dups:
            raise ValueError(f"species: {dups} appear more than once in {species}")
        self.rad_order = _order("rad_order", rad_order)
        self.ang_order = _order("ang_order", ang_order)
        self.rad_cutoff = _cutoff("rad_cutoff", rad_cutoff)
        self.ang_cutoff = _cutoff("ang_cutoff", ang_cutoff)
        if dtype not in (torch.float64, torch.float32):
            raise TypeError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                        or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
        self.species = species
        self.dtype = dtype
        self.device = torch.device(device)
        self.backend = K.resolve_backend(backend, self.device)
        self.num_threads = num_threads
        self.spins = type_spins(len(species))
        self.n_channels = 1 if len(species) == 1 else 2
        table = torch.full((119,), -1, dtype=torch.long)
        for k, s in enumerate(species):
            table[atomic_numbers[s]] = k
        self._table = table.to(self.device)
        self._spins = torch.tensor(self.spins, dtype=dtype, device=self.device) if self.n_channels == 2 else None
        self.graph_cache = GraphCache([self.rad_cutoff, self.ang_cutoff])

    # ---- description ----------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return self.n_channels * (self.rad_order + self.ang_order + 2)

    @property
    def cutoff(self) -> float:
        return max(self.rad_cutoff, self.ang_cutoff)

    @property
    def feature_names(self) -> list[str]:
        """``rad0 .. radN, ang0 .. angM`` and, with several species, ``rad_s0 ..``, ``ang_s0 ..``."""
        names = []
        for tag in ([""] if self.n_channels == 1 else ["", "_s"]):
            names += [f"rad{tag}{n}" for n in range(self.rad_order + 1)]
            names += [f"ang{tag}{n}" for n in range(self.ang_order + 1)]
        return names

    def __repr__(self) -> str:
        return (f"ChebyshevDescriptor(species={self.species}, rad_order={self.rad_order}, "
                f"rad_cutoff={self.rad_cutoff}, ang_order={self.ang_order}, ang_cutoff={self.ang_cutoff}, "
                f"n_features={self.n_features}, backend={self.backend!r}, dtype={self.dtype})")

    # ---- the public calls -------------------------------------------------------------------------
    def features(self, structures) -> torch.Tensor:
        """``(N, F)`` features of every atom of the batch, in the batch's atom order."""
        with self._threads():
            p = self._prepare(structures, keep_graph=self.backend == "torch")
            rad = B.radial_features(p.radial, self.rad_order, self.rad_cutoff, self.backend)
            ang = B.angular_features(p.angular, self.ang_order, self.backend)
            return torch.cat([rad, ang], dim=2).reshape(p.batch.n_atoms, self.n_features)

    def edge_jacobian(self, structures) -> EdgeJacobian:
        """The sparse per-edge Jacobian ``(E, F, 3)`` on the graph at the larger cutoff (:class:`EdgeJacobian`)."""
        with self._threads():
            return self._edge_jacobian(self._prepare(structures))

    def gradients(self, structures) -> torch.Tensor:
        """Dense ``dG[i, f]/dx[j, a]`` ``(N, F, N, 3)`` (aenet-python's layout), for small structures.

        Periodic images count for the atom they image. Structures of a batch are independent (the
        result is block-diagonal in the atoms). Refuses results above 2^30 elements: use
        :meth:`edge_jacobian` or :meth:`vjp`, which scale.
        """
        with self._threads():
            p = self._prepare(structures)
            n, f = p.batch.n_atoms, self.n_features
            if n * n * f * 3 > MAX_DENSE_ELEMENTS:
                raise ValueError(f"gradients: a dense ({n}, {f}, {n}, 3) result is too large; use edge_jacobian() "
                                 "or vjp(), which scale with the number of edges")
            jac = self._edge_jacobian(p)
        dense = jac.values.new_zeros((n * n, f, 3))
        dense = dense.index_add(0, jac.centers * n + jac.neighbors, jac.values)
        dense = dense.index_add(0, jac.centers * (n + 1), -jac.values)
        return dense.reshape(n, n, f, 3).permute(0, 2, 1, 3).contiguous()

    def edge_grads(self, structures, cotangent) -> EdgeGrads:
        """Per-edge gradients ``dL/dr_e`` of ``L = sum(cotangent * G)``, ``cotangent (N, F)``, on the
        graph at the larger cutoff, without forming the Jacobian (:class:`EdgeGrads`)."""
        with self._threads():
            return self._edge_grads(self._prepare(structures), cotangent)

    def vjp(self, structures, cotangent) -> VJP:
        """``(forces (N, 3), virial (B, 3, 3))`` of ``L = sum(cotangent * G)`` (:class:`VJP`):
        ``forces = -dL/dx``, ``virial = -sum_e r_e (x) dL/dr_e`` (``stress = -virial / volume``).

        One pass over the edges and one scatter (:func:`acepy.kernels.scatter_forces_virials`),
        as for every model component; the per-edge Jacobian is never formed.
        """
        with self._threads():
            p = self._prepare(structures)
            g = self._edge_grads(p, cotangent)
            forces, virial = K.scatter_forces_virials(g.grads, g.vectors, g.centers, g.neighbors, g.edge_system,
                                                      p.batch.n_atoms, p.batch.n_systems, backend=self.backend,
                                                      check=False)
        return VJP(forces, virial)

    def _edge_jacobian(self, p: _Prepared) -> EdgeJacobian:
        e = p.union.n_edges
        jr = B.radial_jacobian(p.radial, self.rad_order, self.rad_cutoff, self.backend)
        ja = B.angular_jacobian(p.angular, self.ang_order, self.backend)
        full = torch.cat([B.to_union(jr, p.radial, e), B.to_union(ja, p.angular, e)], dim=2)
        return EdgeJacobian(p.union.centers, p.union.neighbors, p.union.edge_system, p.vectors,
                            full.reshape(e, self.n_features, 3))

    def _edge_grads(self, p: _Prepared, cotangent) -> EdgeGrads:
        n, e = p.batch.n_atoms, p.union.n_edges
        cot = torch.as_tensor(cotangent, device=self.device)
        if not cot.is_floating_point():
            raise TypeError(f"cotangent must be a floating-point (N, F) tensor, got dtype {cot.dtype}")
        if tuple(cot.shape) != (n, self.n_features):
            raise ValueError(f"cotangent must be (N, F) = ({n}, {self.n_features}), got {tuple(cot.shape)}")
        cot = cot.detach().to(self.dtype).reshape(n, self.n_channels, -1)
        nr = self.rad_order + 1
        g = B.radial_edge_grads(p.radial, cot[:, :, :nr].contiguous(), self.rad_order, self.rad_cutoff, self.backend)
        g = B.to_union(g, p.radial, e)
        g = B.to_union(B.angular_edge_grads(p.angular, cot[:, :, nr:].contiguous(), self.backend), p.angular, e, out=g)
        return EdgeGrads(p.union.centers, p.union.neighbors, p.union.edge_system, p.vectors, g)

    # ---- inputs ---------------------------------------------------------------------------------
    def _threads(self):
        if self.device.type != "cpu":
            return contextlib.nullcontext()
        return K.num_threads(self.num_threads)

    def _batch(self, structures) -> Batch:
        if isinstance(structures, Batch):
            return structures.to(self.device, self.dtype)  # (values are validated by the neighbour search)
        return batch_from_atoms(structures, self.device, self.dtype)

    def species_of(self, batch: Batch) -> torch.Tensor:
        """Index into ``self.species`` of every atom; an element outside the list raises ``ValueError``
        naming the structure and atom."""
        from ase.data import chemical_symbols

        numbers = batch.numbers
        bad = (numbers < 0) | (numbers > 118)
        if not bool(bad.any()):
            idx = self._table.index_select(0, numbers)
            bad = idx < 0
            if not bool(bad.any()):
                return idx
        k = int(torch.nonzero(bad)[0])
        b = int(batch.system_idx[k])
        z = int(numbers[k])
        what = chemical_symbols[z] if 0 <= z <= 118 else f"atomic number {z}"
        raise ValueError(f"structure {b}, atom {k - int(batch.atom_offsets[b])} is {what}, which is not among "
                         f"the descriptor's species {self.species}")

    def _prepare(self, structures, keep_graph: bool = False) -> _Prepared:
        batch = self._batch(structures)
        species = self.species_of(batch)
        graphs = self.graph_cache.graphs(batch)
        big = max(graphs)
        union = graphs[big]
        vectors = edge_vectors(batch.positions, batch.cell, union)
        if not keep_graph:
            vectors = vectors.detach()
        d = torch.linalg.vector_norm(vectors.detach(), dim=1)
        if d.numel() and not bool((d > 0).all()):
            k = int(torch.nonzero(d <= 0)[0])
            i, j, s = int(union.centers[k]), int(union.neighbors[k]), int(union.edge_system[k])
            lo = int(batch.atom_offsets[s])
            raise ValueError(f"structure {s}: atoms {i - lo} and {j - lo} (or a periodic image) are at the same "
                             f"place (shift {union.shifts[k].tolist()}); the descriptor is undefined there")
        blocks = {}
        for name, rc in (("radial", self.rad_cutoff), ("angular", self.ang_cutoff)):
            graph = graphs[rc]
            if rc == big:
                blocks[name] = B.make_block(graph, vectors, rc, self._spins, species, None)
                continue
            rows = torch.nonzero(d < rc).squeeze(1)
            if rows.shape[0] != graph.n_edges:  # the cache filtered the same distances with the same test
                raise RuntimeError(f"internal: the {name} graph view does not match the union graph")
            blocks[name] = B.make_block(graph, vectors.index_select(0, rows), rc, self._spins, species, rows)
        return _Prepared(batch, union, vectors, blocks["radial"], blocks["angular"])


def _order(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 0 (the largest Chebyshev order), got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (the largest Chebyshev order), got {value}")
    return int(value)


def _cutoff(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number (Angstrom), got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0 (Angstrom), got {value}")
    return float(value)
