"""Reference scatter of per-edge gradients into forces and virials (see ``kernels/scatter.py``)."""

from __future__ import annotations

import torch


def scatter_forces_virials(edge_grads, edge_vectors, centers, neighbors, edge_system, n_atoms, n_systems):
    """F_i += g_ij, F_j -= g_ij; virial_b = -sum over edges of b of r_ij (x) g_ij."""
    forces = torch.zeros((n_atoms, 3), dtype=edge_grads.dtype, device=edge_grads.device)
    forces = forces.index_add(0, centers, edge_grads).index_add(0, neighbors, -edge_grads)
    outer = edge_vectors.unsqueeze(-1) * edge_grads.unsqueeze(-2)  # (E, 3, 3): r_a g_b
    virials = torch.zeros((n_systems, 3, 3), dtype=edge_grads.dtype, device=edge_grads.device)
    virials = virials.index_add(0, edge_system, -outer)
    return forces, virials
