"""A stack of components summed into energies, forces and stresses for a batch of structures.

Each graph component returns per-atom energies from the edges of its graph; the per-edge
gradients g_ij = dE/dr_ij of the components sharing a graph are summed and go through one scatter
per graph into forces (F_i += g, F_j -= g)
and virials (-sum r (x) g), and stress = -virial / volume (ACE_SPEC.md 2.13, DESIGN.md).

Two paths (DESIGN.md): with ``backend="torch"`` every component runs the exact path (torch
reference kernels, per-edge gradients by autograd on the edge vectors, twice differentiable); with
Numba (CPU) or Triton (CUDA) every component runs its fast path, ``energies_and_edge_grads``,
which returns per-atom energies and per-edge gradients without autograd. ``backend=None`` picks
by device (``resolve_backend``).

A component has ``cutoff`` (``None``: it needs no graph, like the one-body term) and, when it
has a cutoff, ``site_energies(species, centers, neighbors, vectors, backend)`` (exact) and
``energies_and_edge_grads(species, centers, neighbors, vectors, backend)`` (fast).
"""

from __future__ import annotations

import contextlib
import time
from typing import Sequence

import torch

from acepy.batch import Batch, batch_from_atoms
from acepy.graph import GraphCache, edge_vectors
from acepy.kernels import resolve_backend, scatter_forces_virials


class Stack:
    """Sum of components sharing one species map and one per-cutoff graph cache."""

    def __init__(self, components: Sequence, elements: Sequence[str], dtype=torch.float64, device="cpu",
                 backend: str | None = None, skin: float = 0.0):
        self.components = list(components)
        self.elements = list(elements)
        self.dtype = dtype
        self.device = torch.device(device)
        self.backend = resolve_backend(backend, self.device)
        self.graph_cache = GraphCache([c.cutoff for c in self.components], skin=skin)
        self._species_map = next((c for c in self.components if hasattr(c, "species_of")), None)

    @property
    def cutoff(self) -> float:
        cuts = [c.cutoff for c in self.components if c.cutoff is not None]
        return max(cuts) if cuts else 0.0

    def species_of(self, numbers: torch.Tensor) -> torch.Tensor:
        return self._species_map.species_of(numbers)

    def evaluate(self, structures, compute_forces: bool = True, compute_stress: bool | None = None,
                 timings: dict | None = None) -> dict:
        """Energies, forces and stresses of one ``ase.Atoms``, a list of them, or a :class:`Batch`.

        Returns a dict of tensors: ``energy (B,)``, ``energies (N,)``, ``forces (N, 3)``,
        ``virials (B, 3, 3)``, ``stress (B, 3, 3)`` (ASE sign) and ``system_idx (N,)``. Stress is
        computed when every structure has a cell of non-zero volume (``compute_stress=None``), or
        on request, which raises for a structure without one.

        ``timings``: a dict that receives the seconds spent in each phase (``neighbours``, one entry
        per component class, ``scatter``), synchronising the GPU around each phase (for profiling).
        """
        clock = _Clock(timings, self.device)
        batch = structures if isinstance(structures, Batch) else batch_from_atoms(structures, self.device, self.dtype)
        batch = batch.to(self.device, self.dtype)
        volumes = batch.volumes()
        if compute_stress is None:
            compute_stress = bool((volumes > 0).all()) and batch.n_systems > 0
        elif compute_stress and bool((volumes <= 0).any()):
            b = int(torch.nonzero(volumes <= 0)[0])
            raise ValueError(f"structure {b}: stress needs a cell of non-zero volume")
        species = self.species_of(batch.numbers)
        n, b = batch.n_atoms, batch.n_systems
        energies = torch.zeros(n, dtype=self.dtype, device=self.device)
        forces = torch.zeros((n, 3), dtype=self.dtype, device=self.device)
        virials = torch.zeros((b, 3, 3), dtype=self.dtype, device=self.device)
        with clock("neighbours"):
            graphs = self.graph_cache.graphs(batch)
        need_grad = compute_forces or compute_stress
        per_graph: dict = {}  # cutoff -> [vectors, summed edge gradients]: one scatter per graph
        for comp in self.components:
            name = type(comp).__name__.lower()
            if comp.cutoff is None:
                with clock(name):
                    energies = energies + comp.site_energies(species)
                continue
            graph = graphs[comp.cutoff]
            with clock(name):
                if comp.cutoff not in per_graph:
                    per_graph[comp.cutoff] = [edge_vectors(batch.positions, batch.cell, graph).detach(), None]
                entry = per_graph[comp.cutoff]
                if self.backend == "torch":
                    e_i, g = self._exact(comp, species, graph, entry[0], need_grad)
                elif not need_grad:  # energies only: the forward pass on the fast kernels, no adjoint
                    e_i, g = comp.site_energies(species, graph.centers, graph.neighbors, entry[0],
                                                backend=self.backend), None
                else:
                    e_i, g = comp.energies_and_edge_grads(species, graph.centers, graph.neighbors, entry[0],
                                                          backend=self.backend)
                energies = energies + e_i.detach()
                if g is not None:
                    entry[1] = g if entry[1] is None else entry[1] + g
        if need_grad:
            with clock("scatter"):
                for cutoff, (vectors, g) in per_graph.items():
                    graph = graphs[cutoff]
                    f, v = scatter_forces_virials(g, vectors, graph.centers, graph.neighbors, graph.edge_system,
                                                  n, b, backend=self.backend)
                    forces, virials = forces + f, virials + v
        energy = torch.zeros(b, dtype=self.dtype, device=self.device).index_add(0, batch.system_idx, energies)
        out = {"energy": energy, "energies": energies, "system_idx": batch.system_idx}
        if compute_forces:
            out["forces"] = forces
        if compute_stress:
            out["virials"] = virials
            out["stress"] = -virials / volumes.reshape(-1, 1, 1)
        return out

    def _exact(self, comp, species, graph, vectors, need_grad):
        """Site energies on the torch reference and per-edge gradients by autograd."""
        vectors = vectors.detach().requires_grad_(need_grad)
        with torch.enable_grad():
            e_i = comp.site_energies(species, graph.centers, graph.neighbors, vectors, backend="torch")
            if need_grad and vectors.shape[0] > 0 and e_i.requires_grad:
                (g,) = torch.autograd.grad(e_i.sum(), vectors)
            else:
                g = torch.zeros_like(vectors)
        return e_i.detach(), g


class _Clock:
    """Adds the wall time of each ``with clock(name)`` block to ``timings[name]`` (no-op without a dict)."""

    def __init__(self, timings: dict | None, device: torch.device):
        self.timings = timings
        self.cuda = device.type == "cuda"

    @contextlib.contextmanager
    def __call__(self, name: str):
        if self.timings is None:
            yield
            return
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        yield
        if self.cuda:
            torch.cuda.synchronize()
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
