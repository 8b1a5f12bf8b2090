"""Scatter per-edge gradients into forces and per-structure virials for a batch.

For an edge ``(i, j)`` with vector ``r_ij = x_j - x_i`` and gradient ``g_ij = dE/dr_ij``:
``F_i += g_ij``, ``F_j -= g_ij`` and ``virial_b -= r_ij (x) g_ij`` (element ``[a, b] = r_a g_b``)
for the structure ``b`` the edge belongs to. The stress (ASE sign, positive under tension) is
``-virial / volume``: see :func:`stress_from_virials`.
"""

from __future__ import annotations

import torch

from .backend import check_same_device, implementation, resolve_backend


def scatter_forces_virials(
    edge_grads: torch.Tensor,
    edge_vectors: torch.Tensor,
    centers: torch.Tensor,
    neighbors: torch.Tensor,
    edge_system: torch.Tensor,
    n_atoms: int,
    n_systems: int,
    backend: str | None = None,
):
    """``(forces (N, 3), virials (B, 3, 3))`` from ``(E, 3)`` gradients and vectors.

    ``centers``, ``neighbors`` and ``edge_system`` are ``(E,)`` integer indices; the Triton kernel
    is fastest when ``edge_system`` is sorted (it always is for a CSR batch), but any order is correct.
    """
    e = edge_grads.shape[0]
    for name_, t in (("edge_grads", edge_grads), ("edge_vectors", edge_vectors)):
        if t.shape != (e, 3):
            raise ValueError(f"{name_} must be (E, 3) with E={e}, got {tuple(t.shape)}")
    for name_, t in (("centers", centers), ("neighbors", neighbors), ("edge_system", edge_system)):
        if t.shape != (e,):
            raise ValueError(f"{name_} must be (E,) with E={e}, got {tuple(t.shape)}")
    device = check_same_device(edge_grads, edge_vectors, centers, neighbors, edge_system)
    name = resolve_backend(backend, device)
    forces = edge_grads.new_zeros((n_atoms, 3))
    virials = edge_grads.new_zeros((n_systems, 3, 3))
    if e == 0:
        return forces, virials
    for name_, t, bound in (("centers", centers, n_atoms), ("neighbors", neighbors, n_atoms), ("edge_system", edge_system, n_systems)):
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= bound:
            bad = int(torch.nonzero((t < 0) | (t >= bound))[0])
            raise IndexError(f"{name_}[{bad}] = {int(t[bad])} is outside [0, {bound})")
    impl = implementation(name, "scatter")
    args = (centers.long(), neighbors.long(), edge_system.long(), int(n_atoms), int(n_systems))
    if name == "torch":
        return impl.scatter_forces_virials(edge_grads, edge_vectors, *args)
    args = tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)
    return impl.scatter_forces_virials(edge_grads.contiguous(), edge_vectors.contiguous(), *args)


def stress_from_virials(virials: torch.Tensor, volumes: torch.Tensor) -> torch.Tensor:
    """``stress_b = -virial_b / V_b`` (B, 3, 3), ASE's sign."""
    return -virials / volumes.to(virials.dtype).reshape(-1, 1, 1)
