"""The component contract (DESIGN.md, "The component contract").

A stack is a sum of components. Every component receives one :class:`BatchGraph`, the batch with
the species of its atoms and, for a component with a cutoff, the neighbour graph at that cutoff
with its edge vectors. It gives energies in one or more of three forms:

- ``site_energies(inputs, backend="torch") -> (N,)``: per-atom energies, differentiable in
  ``inputs.vectors`` (and so in positions and cell) on the exact path (torch reference kernels);
- ``energies_and_edge_grads(inputs, backend) -> (N,), (E, 3)``: the fast path, per-atom energies
  and per-edge gradients ``g_ij = dE/dr_ij`` without autograd (Numba on CPU, Triton on CUDA);
- ``structure_energies(inputs) -> (B,)``: for components that need the whole structure (the
  reciprocal part of Ewald/PME), differentiable in ``inputs.batch.positions`` and ``.cell``.

A component declares ``cutoff`` (``None``: it needs no graph), ``dtype`` and ``device`` (the
stack checks they agree), ``elements`` (the species order it was built for, or ``None`` when it
does not care) and ``per_atom_data`` (names of per-atom batch fields it reads, e.g.
``("charges",)``; the stack checks the batch carries them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from acepy.batch import Batch
from acepy.graph import Graph

__all__ = ["BatchGraph", "Component"]


@dataclass
class BatchGraph:
    """The batch, the species of its atoms and (for a graph component) one graph with its vectors.

    ``vectors (E, 3)`` are ``r_ij = x_j - x_i + S @ cell``; on the exact path they carry the
    autograd graph back to positions and cell. ``offsets`` (the CSR of the edges by centre) come
    from the graph, computed once there. Components with the same cutoff share one BatchGraph, so
    ``distances`` (|r_ij|, made on first use) is computed once per graph.
    """

    batch: Batch
    species: torch.Tensor  # (N,) int64, index into the stack's elements
    graph: Graph | None = None
    vectors: torch.Tensor | None = None  # (E, 3)
    _distances: torch.Tensor | None = field(default=None, repr=False)

    @property
    def n_atoms(self) -> int:
        return self.batch.n_atoms

    @property
    def n_systems(self) -> int:
        return self.batch.n_systems

    @property
    def system_idx(self) -> torch.Tensor:
        return self.batch.system_idx

    @property
    def centers(self) -> torch.Tensor:
        return self.graph.centers

    @property
    def neighbors(self) -> torch.Tensor:
        return self.graph.neighbors

    @property
    def offsets(self) -> torch.Tensor:
        return self.graph.offsets

    @property
    def edge_system(self) -> torch.Tensor:
        return self.graph.edge_system

    @property
    def n_edges(self) -> int:
        return 0 if self.graph is None else self.graph.n_edges

    def describe_atom(self, i: int) -> str:
        """``structure b, atom k`` for the batch-wide atom index ``i`` (k counts within structure b)."""
        b = int(self.batch.system_idx[i])
        return f"structure {b}, atom {i - int(self.batch.atom_offsets[b])}"

    def describe_edge(self, e: int) -> str:
        """The atoms of graph edge ``e`` in their structure's numbering; a periodic image says so
        and gives its shift (``atoms 0 and 0`` alone would not say which pair is meant)."""
        i, j = int(self.graph.centers[e]), int(self.graph.neighbors[e])
        b = int(self.batch.system_idx[i])
        first = int(self.batch.atom_offsets[b])
        shift = tuple(int(x) for x in self.graph.shifts[e])
        if i == j:
            return f"structure {b}: atom {i - first} and its own periodic image shifted by cell vectors {shift}"
        if any(shift):
            return (f"structure {b}: atoms {i - first} and {j - first} (the periodic image of {j - first} "
                    f"shifted by cell vectors {shift})")
        return f"structure {b}: atoms {i - first} and {j - first}"

    @property
    def distances(self) -> torch.Tensor:
        """``|r_ij|`` (E,), differentiable where ``vectors`` are; computed once."""
        if self._distances is None:
            self._distances = torch.linalg.vector_norm(self.vectors, dim=1)
        return self._distances


class Component:
    """Base of the stack's components: the attributes every one declares (see module docstring).

    Subclasses implement ``site_energies`` and, for the fast path, ``energies_and_edge_grads``;
    structure-level components implement ``structure_energies`` instead.
    """

    cutoff: float | None = None
    elements: list[str] | None = None
    per_atom_data: tuple[str, ...] = ()
    dtype: torch.dtype = torch.float64
    device: torch.device = torch.device("cpu")

    def site_energies(self, inputs: BatchGraph, backend: str | None = "torch") -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} gives no per-atom energies")

    def energies_and_edge_grads(self, inputs: BatchGraph, backend: str | None = None):
        raise TypeError(f"{type(self).__name__} has no fast path (per-edge gradients)")

    @property
    def is_structure_level(self) -> bool:
        return callable(getattr(self, "structure_energies", None))
