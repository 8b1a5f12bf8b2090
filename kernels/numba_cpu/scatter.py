"""Numba scatter of per-edge gradients into forces and virials (contract: ``reference/scatter.py``)."""

from __future__ import annotations

import numba
import numpy as np
import torch

from ._compile import compile_pair, use_parallel

# a chunk smaller than this is not worth a private (N, 3) + (B, 3, 3) buffer
MIN_EDGES_PER_CHUNK = 2048


def _scatter_kernel(g, r, centers, neighbors, edge_system, n_chunks, forces, virials, bad):
    """The neighbours are in no order, so rows cannot be owned: the edges are cut into ``n_chunks``
    contiguous chunks, each accumulating into its own float64 buffers, which are then summed in
    chunk order (deterministic for a fixed ``n_chunks``). An edge with an index out of range is
    skipped and counted in ``bad[chunk]``, so that the launcher can raise instead of writing
    outside the buffers."""
    n_edges = g.shape[0]
    n_atoms = forces.shape[0]
    n_systems = virials.shape[0]
    f_buf = np.zeros((n_chunks, n_atoms, 3))
    v_buf = np.zeros((n_chunks, n_systems, 3, 3))
    size = (n_edges + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        for e in range(c * size, min(n_edges, (c + 1) * size)):
            i = centers[e]
            j = neighbors[e]
            b = edge_system[e]
            if i < 0 or i >= n_atoms or j < 0 or j >= n_atoms or b < 0 or b >= n_systems:
                bad[c] += 1
                continue
            for a in range(3):
                ga = np.float64(g[e, a])
                f_buf[c, i, a] += ga
                f_buf[c, j, a] -= ga
            for a in range(3):
                ra = np.float64(r[e, a])
                for q in range(3):
                    v_buf[c, b, a, q] -= ra * np.float64(g[e, q])
    for i in numba.prange(n_atoms):
        for a in range(3):
            acc = 0.0
            for c in range(n_chunks):
                acc += f_buf[c, i, a]
            forces[i, a] = acc
    for s in numba.prange(n_systems):
        for a in range(3):
            for q in range(3):
                acc = 0.0
                for c in range(n_chunks):
                    acc += v_buf[c, s, a, q]
                virials[s, a, q] = acc


_scatter = compile_pair(_scatter_kernel)


def scatter_forces_virials(edge_grads, edge_vectors, centers, neighbors, edge_system, n_atoms, n_systems):
    """``(forces (N, 3), virials (B, 3, 3))``: ``F_i += g``, ``F_j -= g``, ``V_b -= r (x) g``."""
    e = edge_grads.shape[0]
    forces = torch.empty((n_atoms, 3), dtype=edge_grads.dtype)
    virials = torch.empty((n_systems, 3, 3), dtype=edge_grads.dtype)
    if use_parallel(e):
        kernel, n_chunks = _scatter[1], max(1, min(numba.get_num_threads(), e // MIN_EDGES_PER_CHUNK))
    else:
        kernel, n_chunks = _scatter[0], 1
    bad = np.zeros(n_chunks, dtype=np.int64)
    kernel(edge_grads.numpy(), edge_vectors.numpy(), centers.numpy(), neighbors.numpy(), edge_system.numpy(),
           n_chunks, forces.numpy(), virials.numpy(), bad)
    if bad.any():
        for name, idx, hi in (("centers", centers, n_atoms), ("neighbors", neighbors, n_atoms),
                              ("edge_system", edge_system, n_systems)):
            wrong = (idx < 0) | (idx >= hi)
            if bool(wrong.any()):
                k = int(torch.nonzero(wrong)[0])
                raise IndexError(f"edge {k}: {name} index {int(idx[k])} outside [0, {hi}); "
                                 f"{int(bad.sum())} edge(s) affected")
    return forces, virials
