"""Scatter per-edge gradients into forces and per-structure virials for a batch.

For an edge ``(i, j)`` with vector ``r_ij = x_j - x_i`` and gradient ``g_ij = dE/dr_ij``:
``F_i += g_ij``, ``F_j -= g_ij`` and ``virial_b -= r_ij (x) g_ij`` (element ``[a, b] = r_a g_b``)
for the structure ``b`` the edge belongs to. The stress (ASE sign, positive under tension) is
``-virial / volume``: see :func:`stress_from_virials`.
"""

from __future__ import annotations

import torch

from .backend import check_range, prepare


def scatter_forces_virials(
    edge_grads: torch.Tensor,
    edge_vectors: torch.Tensor,
    centers: torch.Tensor,
    neighbors: torch.Tensor,
    edge_system: torch.Tensor,
    n_atoms: int,
    n_systems: int,
    backend: str | None = None,
    check: bool = True,
):
    """``(forces (N, 3), virials (B, 3, 3))`` from ``(E, 3)`` gradients and vectors.

    ``centers``, ``neighbors`` and ``edge_system`` are ``(E,)`` integer indices; the Triton kernel
    is fastest when ``edge_system`` is sorted (it always is for a CSR batch), but any order is correct.
    ``check=False`` skips the range checks of the indices (no host sync; the caller vouches for them).
    """
    fn = "scatter_forces_virials"
    call = prepare(fn, "scatter", backend, floats={"edge_grads": edge_grads, "edge_vectors": edge_vectors},
                   indices={"centers": centers, "neighbors": neighbors, "edge_system": edge_system})
    e = call.edge_grads.shape[0]
    for name in ("edge_grads", "edge_vectors"):
        t = call.tensors[name]
        if t.shape != (e, 3):
            raise ValueError(f"{fn}: {name} must be (E, 3) with E={e}, got {tuple(t.shape)}")
    for name in ("centers", "neighbors", "edge_system"):
        t = call.tensors[name]
        if t.shape != (e,):
            raise ValueError(f"{fn}: {name} must be (E,) with E={e}, got {tuple(t.shape)}")
    n_atoms, n_systems = int(n_atoms), int(n_systems)
    if e == 0:
        return call.zeros((n_atoms, 3)), call.zeros((n_systems, 3, 3))
    if check:
        for name, bound in (("centers", n_atoms), ("neighbors", n_atoms), ("edge_system", n_systems)):
            check_range(fn, name, call.tensors[name], bound)
    return call.impl.scatter_forces_virials(call.edge_grads, call.edge_vectors, call.centers, call.neighbors,
                                            call.edge_system, n_atoms, n_systems)


def stress_from_virials(virials: torch.Tensor, volumes: torch.Tensor) -> torch.Tensor:
    """``stress_b = -virial_b / V_b`` (B, 3, 3), ASE's sign."""
    return -virials / volumes.to(virials.dtype).reshape(-1, 1, 1)
