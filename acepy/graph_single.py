"""One structure's neighbour edges as NumPy arrays, for the lean single-structure pass
(:mod:`acepy.models.single_structure`).

The same search, edge vectors and filter as :func:`acepy.graph.neighbor_graph` (the same Numba
kernels and the same torch norm, so the same edges and values bit for bit), without the
:class:`~acepy.batch.Batch` and :class:`~acepy.graph.Graph` objects around them: on a cell of 8-64
atoms their torch glue (some forty small tensor operations per call) costs more than the search.
:meth:`acepy.graph.GraphCache.single` keeps these per thread with the cache's reuse rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from acepy.kernels.numba_cpu.neighbors import batch_pairs, edge_vectors

from .graph import _EPS, EdgeValues, Graph, _map_back_shifts, _rounding_pad
from .graph_checks import search_boxes


@dataclass(frozen=True)
class SingleEdges:
    """The edges of one structure with ``|r_ij| < cutoff`` in CSR order by centre (the module
    docstring of :mod:`acepy.graph`), with their vectors and distances as the search computed them.
    Shared between calls, never written."""

    centers: np.ndarray  # (E,) int64, sorted
    neighbors: np.ndarray  # (E,) int64
    shifts: np.ndarray  # (E, 3) int64
    offsets: np.ndarray  # (N + 1,) int64
    vectors: torch.Tensor  # (E, 3) float64
    distances: torch.Tensor  # (E,) float64
    cutoff: float
    edge_system: np.ndarray | None = None  # (E,) int64 zeros: every edge is in structure 0

    @property
    def n_edges(self) -> int:
        return self.centers.shape[0]


def search_single(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float,
                  max_pairs: int | None) -> SingleEdges:
    """The edges of one structure (``positions (N, 3)``, ``cell (1, 3, 3)`` float64, ``pbc (1, 3)``)
    within ``cutoff``: :func:`acepy.graph.neighbor_graph`'s CPU search, step for step (pair
    estimate, reduced box, the padded search, the shifts mapped back, the final ``r < cutoff``)."""
    n = positions.shape[0]
    starts = np.array([0, n], dtype=np.int64)
    boxes, inverses, unimodular, _ = search_boxes(positions, cell, pbc, starts, cutoff, max_pairs)
    pad = _rounding_pad(positions, cell, _EPS[torch.float64], cutoff)
    i, j, s, offsets = batch_pairs(positions, boxes, pbc, starts, cutoff + pad, inverses=inverses)
    if unimodular:
        _map_back_shifts(i, j, s, offsets, starts, unimodular, n)
    return within(SingleEdges(i, j, s, offsets, None, None, cutoff + pad), positions, cell, cutoff)


def within(edges: SingleEdges, positions: np.ndarray, cell: np.ndarray, cutoff: float) -> SingleEdges:
    """The edges of ``edges`` (a search at a cutoff >= ``cutoff``) with ``|r_ij| < cutoff`` at
    ``positions``: vectors by the Numba pass of :func:`acepy.graph.edge_vectors`, distances by
    ``torch.linalg.vector_norm`` (as :class:`~acepy.models.component.BatchGraph`), same order."""
    n = positions.shape[0]
    vectors = np.empty((edges.n_edges, 3))
    system = edges.edge_system if edges.edge_system is not None else np.zeros(edges.n_edges, dtype=np.int64)
    edge_vectors(positions, cell, system, edges.centers, edges.neighbors, edges.shifts, vectors)
    vectors = torch.from_numpy(vectors)
    distances = torch.linalg.vector_norm(vectors, dim=1)
    keep = (distances < cutoff).numpy()
    if keep.all():
        return SingleEdges(edges.centers, edges.neighbors, edges.shifts, edges.offsets, vectors, distances,
                           float(cutoff), system)
    idx = np.flatnonzero(keep)
    centers = edges.centers[idx]
    index = torch.from_numpy(idx)
    return SingleEdges(centers, edges.neighbors[idx], edges.shifts[idx],
                       np.searchsorted(centers, np.arange(n + 1, dtype=np.int64)), vectors.index_select(0, index),
                       distances.index_select(0, index), float(cutoff), system[:idx.size])


def as_graph(edges: SingleEdges, positions: torch.Tensor, cell: torch.Tensor) -> Graph:
    """The :class:`~acepy.graph.Graph` of one structure's ``edges`` (the same arrays, shared), with
    its edge values for ``positions (N, 3)`` and ``cell (1, 3, 3)`` (float64 CPU tensors, copied):
    what :func:`~acepy.graph.neighbor_graph` would have made of the same search."""
    n = edges.offsets.shape[0] - 1
    return Graph(centers=torch.from_numpy(edges.centers), neighbors=torch.from_numpy(edges.neighbors),
                 shifts=torch.from_numpy(edges.shifts), edge_system=torch.from_numpy(edges.edge_system),
                 offsets=torch.from_numpy(edges.offsets), cutoff=edges.cutoff, n_atoms=n, n_systems=1,
                 values=EdgeValues(positions.clone(), cell.clone(), edges.vectors, edges.distances))


def adopt(entry, ref, positions: torch.Tensor, topology: tuple, skin: float):
    """``(search Graph, its positions, {cutoff: Graph})`` from a :meth:`GraphCache.single` entry when
    the batch ``ref`` (its ``positions`` and ``topology`` = cell, pbc, numbers, system_idx) is that
    one structure on the CPU in float64 with exactly equal values; else None."""
    if ref.n_systems != 1 or ref.device.type != "cpu" or positions.dtype != torch.float64:
        return None
    cell, pbc, numbers = (t.detach().numpy() for t in topology[:3])
    if not (np.array_equal(positions.numpy(), entry.positions) and np.array_equal(cell, entry.cell)
            and np.array_equal(pbc, entry.pbc) and np.array_equal(numbers, entry.numbers)):
        return None
    cell_t = topology[0].detach()
    search = as_graph(entry.search, positions, cell_t)
    view = search if skin == 0 else as_graph(entry.edges, positions, cell_t)
    return search, torch.from_numpy(entry.search_positions.copy()), {entry.edges.cutoff: view}
