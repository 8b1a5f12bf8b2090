"""The neighbour search of large batches on their device, with vesin on torch tensors (issue 21).

The host search (``acepy.kernels.numba_cpu.neighbors``: one Numba call for the whole batch, CSR
order) serves CPU batches and batches of small structures. For a CUDA batch of large structures
copying the positions down and the graph back costs more than the search: vesin (>= 0.6) searches
torch CUDA tensors on the device (one call per structure: vesin has no batched API). Its pairs are
put in the graph's order (sorted by ``(i, j, S)``) by one device sort of packed keys, and the
final ``r < cutoff`` test, in the batch's dtype from the given positions, is done on the device
with :func:`acepy.graph.edge_vectors`, as the host search does (module docstring of acepy.graph).

The caller (``acepy.graph.GraphCache``) decides on the host, from the host copy of the batch:
only fully periodic structures whose cell vectors are reduced already (the host search's
"simple" case) come here; the pair-count estimate ran before.

What still reads the device: vesin's pair count per structure (the size of its output), and the
filter's nonzero (the size of the graph).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .batch import Batch
from .graph import Graph, csr_offsets, edge_vectors

# Atoms per structure from which a CUDA batch is searched on the device (below: the host search,
# whose one call for the whole batch beats one vesin call per structure). A first guess, to be
# timed on the GPU (profiling/gpu_check's vesin step times both).
DEVICE_SEARCH_MIN_ATOMS = 4096


def use_device_search(batch: Batch, host: Batch, simple: np.ndarray) -> bool:
    """Whether ``batch`` (on its device) is searched there: a CUDA batch whose structures are all
    fully periodic with reduced cells (``simple`` (B,), from the host) and large on average."""
    if batch.device.type != "cuda" or host.n_systems == 0 or not bool(simple.all()):
        return False
    return host.n_atoms >= DEVICE_SEARCH_MIN_ATOMS * host.n_systems


def device_graph(batch: Batch, host: Batch, cutoff: float, pad: float) -> Graph:
    """The graph of ``batch`` at ``cutoff`` on its device (see :func:`acepy.graph.neighbor_graph`)."""
    i, j, s = device_pairs(batch, host, cutoff, pad)
    superset = Graph(centers=i, neighbors=j, shifts=s, edge_system=batch.system_idx.index_select(0, i),
                     offsets=csr_offsets(i, batch.n_atoms), cutoff=float(cutoff), n_atoms=batch.n_atoms,
                     n_systems=batch.n_systems)
    keep = edge_vectors(batch.positions.detach(), batch.cell.detach(), superset).norm(dim=1) < cutoff
    return superset.select(keep, cutoff)  # one read: the graph's size


def device_pairs(batch: Batch, host: Batch, cutoff: float, pad: float):
    """``(centers, neighbors, shifts)`` int64 on ``batch``'s device, sorted by ``(i, j, S)``: every
    pair with float64 distance below ``cutoff + pad`` (a superset; the caller filters), by vesin
    on ``batch``'s tensors (CPU tensors work too: the tests check this path without a GPU)."""
    from vesin import NeighborList

    starts = host.atom_offsets.numpy()
    cells = host.cell.detach().double().numpy()
    dev = batch.device
    search = NeighborList(cutoff=float(cutoff + pad), full_list=True)
    periodic = torch.ones(3, dtype=torch.bool, device=dev)
    parts_i, parts_j, parts_s = [], [], []
    positions = batch.positions.detach().double()
    cell = batch.cell.detach().double()
    for b in range(host.n_systems):
        a0, a1 = int(starts[b]), int(starts[b + 1])
        if a1 == a0:
            continue
        i, j, s = search.compute(positions[a0:a1].contiguous(), cell[b].contiguous(), periodic=periodic,
                                 quantities="ijS", copy=True)
        parts_i.append(i.to(torch.int64) + a0)
        parts_j.append(j.to(torch.int64) + a0)
        parts_s.append(s.to(torch.int64))
    if not parts_i:
        empty = torch.zeros(0, dtype=torch.int64, device=dev)
        return empty, empty.clone(), torch.zeros((0, 3), dtype=torch.int64, device=dev)
    i, j, s = torch.cat(parts_i), torch.cat(parts_j), torch.cat(parts_s)
    order = _device_order(i, j, s, host.n_atoms, _max_shift(cells, cutoff + pad))
    return i[order], j[order], s[order]


def _max_shift(cells: np.ndarray, reach: float) -> int:
    """A bound on |S_k| of any pair within ``reach``, from the cells' plane spacings (host numbers,
    so the device sort needs no read of the shifts)."""
    volume = np.abs(np.linalg.det(cells))
    cross = np.linalg.norm(np.cross(cells[:, [1, 2, 0]], cells[:, [2, 0, 1]]), axis=2)  # (B, 3)
    spacing = volume[:, None] / np.maximum(cross, 1e-300)
    return int(math.ceil(float((reach / spacing).max()))) + 1


def _device_order(i, j, s, n_atoms: int, m: int) -> torch.Tensor:
    """The permutation sorting edges by (i, j, S0, S1, S2), on their device: one sort of a packed
    int64 key when N^2 (2m+1)^3 < 2^62 (as acepy.graph._lexicographic_order), else stable sorts
    from the last key to the first."""
    width = 2 * m + 1
    if float(n_atoms) ** 2 * float(width) ** 3 < 2.0**62:
        key = i * n_atoms + j
        for k in range(3):
            key = key * width + (s[:, k] + m)
        return torch.sort(key, stable=True).indices
    order = torch.arange(i.shape[0], device=i.device)
    for column in (s[:, 2], s[:, 1], s[:, 0], j, i):
        order = order[torch.sort(column[order], stable=True).indices]
    return order
