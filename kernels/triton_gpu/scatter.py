"""Triton scatter of per-edge gradients into forces and virials (contract: ``reference/scatter.py``)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _scatter_kernel(
    g_ptr, r_ptr, c_ptr, nb_ptr, sys_ptr, f_ptr, vir_ptr, E,
    BLOCK_E: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    e = pid * BLOCK_E + tl.arange(0, BLOCK_E).to(tl.int64)
    emask = e < E

    # forces: F[i] += g, F[j] -= g, one atomic per edge and component (addresses mostly distinct)
    c3 = tl.arange(0, 4).to(tl.int64)
    m3 = emask[:, None] & (c3 < 3)[None, :]
    g = tl.load(g_ptr + e[:, None] * 3 + c3[None, :], mask=m3, other=0.0)
    ci = tl.load(c_ptr + e, mask=emask, other=0)
    nj = tl.load(nb_ptr + e, mask=emask, other=0)
    tl.atomic_add(f_ptr + ci[:, None] * 3 + c3[None, :], g, mask=m3, sem="relaxed")
    tl.atomic_add(f_ptr + nj[:, None] * 3 + c3[None, :], -g, mask=m3, sem="relaxed")

    # virials: V[b, a, c] -= r_a g_c, component q = 3a + c of a 16-wide tile. Every edge of a
    # structure hits the same 9 addresses, so per-edge atomics would serialise on them: reduce the
    # block over the structure of its first edge and over that of its last edge (one atomic per
    # component each), and fall back to per-edge atomics only for the edges of any structure in
    # between (none when the block lies inside a sorted batch's structure or spans a boundary).
    q = tl.arange(0, 16).to(tl.int64)
    qmask = q < 9
    m9 = emask[:, None] & qmask[None, :]
    ra = tl.load(r_ptr + e[:, None] * 3 + (q // 3)[None, :], mask=m9, other=0.0)
    gc = tl.load(g_ptr + e[:, None] * 3 + (q % 3)[None, :], mask=m9, other=0.0)
    w = -(ra * gc)
    b = tl.load(sys_ptr + e, mask=emask, other=-1)
    last = tl.minimum(pid * BLOCK_E + BLOCK_E, E) - 1
    b_first = tl.load(sys_ptr + pid * BLOCK_E)
    b_last = tl.load(sys_ptr + last)
    in_first = emask & (b == b_first)
    in_last = emask & (b == b_last) & (b != b_first)
    zero = tl.zeros_like(w)
    w_first = tl.sum(tl.where(in_first[:, None], w, zero), axis=0)
    tl.atomic_add(vir_ptr + b_first * 9 + q, w_first, mask=qmask, sem="relaxed")
    w_last = tl.sum(tl.where(in_last[:, None], w, zero), axis=0)
    # skipped when the block has one structure; (q < 9 or 0) rather than qmask & scalar, which the
    # interpreter turns into a non-boolean mask
    n_last = tl.where(b_last != b_first, 9, 0)
    tl.atomic_add(vir_ptr + b_last * 9 + q, w_last, mask=q < n_last, sem="relaxed")
    rest = emask & (b != b_first) & (b != b_last)
    tl.atomic_add(vir_ptr + b[:, None] * 9 + q[None, :], w, mask=rest[:, None] & qmask[None, :], sem="relaxed")


def scatter_forces_virials(edge_grads, edge_vectors, centers, neighbors, edge_system, n_atoms: int, n_systems: int):
    """``(forces (N, 3), virials (B, 3, 3))``."""
    e = edge_grads.shape[0]
    forces = torch.zeros((n_atoms, 3), dtype=edge_grads.dtype, device=edge_grads.device)
    virials = torch.zeros((n_systems, 3, 3), dtype=edge_grads.dtype, device=edge_grads.device)
    block_e = 128
    _scatter_kernel[(triton.cdiv(e, block_e),)](
        edge_grads, edge_vectors, centers, neighbors, edge_system, forces, virials, e,
        BLOCK_E=block_e,
    )
    return forces, virials
