"""The two blocks of the aenet Chebyshev descriptor on one graph each (ACE_SPEC.md 5).

Radial, on the graph at ``rad_cutoff``: ``G[i, c, n] = sum_j T_n(2 d_ij / Rc - 1) w_c(j)``;
angular, on the graph at ``ang_cutoff``: ``G[i, c, n] = sum_{j<k} T_n(cos theta_ijk) w_c(j) w_c(k)``,
with the channel weights ``w_0 = f_c(d)`` and (several species) ``w_1 = s(t_j) f_c(d)``,
``f_c(d) = (cos(pi d / Rc) + 1) / 2``. Every function here takes the edges of one block and
returns per-atom values or per-edge derivatives; the descriptor assembles the blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

import acepy.kernels as K
from acepy.graph import Graph


@dataclass
class Block:
    """The edges of one block: the graph, its vectors and lengths, the channel weights and their
    derivatives in the length, and each edge's row in the union graph (the larger cutoff's)."""

    graph: Graph
    vectors: torch.Tensor  # (E, 3)
    distances: torch.Tensor  # (E,)
    weights: torch.Tensor  # (E, C)
    dweights: torch.Tensor  # (E, C), d weights / d distance
    rows: torch.Tensor | None  # (E,) int64 rows in the union graph; None: this block is the union graph


def cosine_cutoff(d: torch.Tensor, rc: float):
    """``f_c = (cos(pi d/rc) + 1)/2`` and ``df_c/dd`` for ``d < rc`` (the graph holds no other edge)."""
    arg = (math.pi / rc) * d
    return 0.5 * (torch.cos(arg) + 1.0), (-0.5 * math.pi / rc) * torch.sin(arg)


def make_block(graph: Graph, vectors: torch.Tensor, rc: float, spins: torch.Tensor | None,
               species: torch.Tensor, rows) -> Block:
    """The block of ``graph``: ``spins`` (nspecies,) are the type spins (None for one species)."""
    d = torch.linalg.vector_norm(vectors, dim=1)
    fc, dfc = cosine_cutoff(d, rc)
    if spins is None:
        w, dw = fc[:, None], dfc[:, None]
    else:
        s = spins.index_select(0, species.index_select(0, graph.neighbors))
        w, dw = torch.stack([fc, s * fc], dim=1), torch.stack([dfc, s * dfc], dim=1)
    return Block(graph, vectors, d, w, dw, rows)


# Per-edge work arrays of the radial block are (E, C, n+1): chunks of atoms whose edges fit this
# many keep them to a few MB on the CPU (ten times more on a GPU, where launches cost more).
EDGE_CHUNK = {"cpu": 1 << 15, "cuda": 1 << 20}
# The torch reference materialises the pairs of the angular block: chunks of atoms with at most
# this many pairs bound its memory. The compiled kernels hold no pair list and run in one launch.
PAIR_CHUNK = 1 << 18


def atom_chunks(offsets: torch.Tensor, budget: int, pairs: bool = False) -> list[tuple[int, int, int, int]]:
    """``(a0, a1, e0, e1)``: consecutive atoms whose edges (or pairs of edges) fit ``budget``
    (or one atom, if a single atom has more). Reads the offsets on the host once."""
    off = offsets.cpu().numpy()
    deg = off[1:] - off[:-1]
    cost = np.cumsum(deg * (deg - 1) // 2 if pairs else deg)
    cost = np.concatenate([[0], cost])
    n, bounds = len(deg), [0]
    while bounds[-1] < n:
        a = bounds[-1]
        b = int(np.searchsorted(cost, cost[a] + budget, side="right")) - 1
        bounds.append(min(n, max(b, a + 1)))
    return [(a0, a1, int(off[a0]), int(off[a1])) for a0, a1 in zip(bounds[:-1], bounds[1:])]


def _edge_chunks(block: Block):
    return atom_chunks(block.graph.offsets, EDGE_CHUNK.get(block.vectors.device.type, EDGE_CHUNK["cuda"]))


def _local_offsets(block: Block, a0: int, a1: int, e0: int) -> torch.Tensor:
    return block.graph.offsets[a0:a1 + 1] - e0


def _radial_terms(block: Block, e0: int, e1: int, n_max: int, rc: float, backend: str, order: int):
    return K.chebyshev(block.distances[e0:e1], n_max, transform="aenet", rcut=rc, rmin=0.0, order=order,
                       backend=backend)


def _cat(parts: list, empty_shape, like: torch.Tensor) -> torch.Tensor:
    if not parts:
        return like.new_zeros(empty_shape)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def radial_features(block: Block, n_max: int, rc: float, backend: str) -> torch.Tensor:
    """``(N, C, n_max+1)``: per-edge ``T_n w_c`` (Chebyshev kernel) summed per centre (segment sum)."""
    parts = []
    for a0, a1, e0, e1 in _edge_chunks(block):
        t, _, _ = _radial_terms(block, e0, e1, n_max, rc, backend, 0)
        values = block.weights[e0:e1, :, None] * t[:, None, :]
        parts.append(K.segment_sum(values, _local_offsets(block, a0, a1, e0), backend=backend, check=False))
    return _cat(parts, (0, block.weights.shape[1], n_max + 1), block.vectors)


def radial_jacobian(block: Block, n_max: int, rc: float, backend: str) -> torch.Tensor:
    """``(E, C, n_max+1, 3)``: ``dG[centre, c, n]/dr_e = (T_n' w_c + T_n w_c') r_e / d_e``."""
    e = block.vectors.shape[0]
    t, dt, _ = _radial_terms(block, 0, e, n_max, rc, backend, 1)
    scalar = block.weights[:, :, None] * dt[:, None, :] + block.dweights[:, :, None] * t[:, None, :]
    unit = block.vectors / block.distances[:, None]
    return scalar[..., None] * unit[:, None, None, :]


def radial_edge_grads(block: Block, grad: torch.Tensor, n_max: int, rc: float, backend: str) -> torch.Tensor:
    """``(E, 3)``: ``d(sum grad * G)/dr_e`` for ``grad (N, C, n_max+1)``."""
    out = block.vectors.new_empty(block.vectors.shape)
    for _, _, e0, e1 in _edge_chunks(block):
        t, dt, _ = _radial_terms(block, e0, e1, n_max, rc, backend, 1)
        gam = grad.index_select(0, block.graph.centers[e0:e1])  # (e, C, n+1)
        p = (gam * t[:, None, :]).sum(2)  # (e, C)
        dp = (gam * dt[:, None, :]).sum(2)
        scalar = (dp * block.weights[e0:e1] + p * block.dweights[e0:e1]).sum(1)
        out[e0:e1] = (scalar / block.distances[e0:e1])[:, None] * block.vectors[e0:e1]
    return out


def _angular_chunks(block: Block, backend: str):
    """One chunk for the compiled kernels; chunks of :data:`PAIR_CHUNK` pairs for the reference."""
    if backend != "torch":
        n = block.graph.offsets.shape[0] - 1
        return [(0, n, 0, block.vectors.shape[0])]
    return atom_chunks(block.graph.offsets, PAIR_CHUNK, pairs=True)


def angular_features(block: Block, n_max: int, backend: str) -> torch.Tensor:
    parts = [K.angular_sum(block.vectors[e0:e1], block.weights[e0:e1], _local_offsets(block, a0, a1, e0), n_max,
                           backend=backend, check=False)
             for a0, a1, e0, e1 in _angular_chunks(block, backend)]
    return _cat(parts, (0, block.weights.shape[1], n_max + 1), block.vectors)


def angular_jacobian(block: Block, n_max: int, backend: str) -> torch.Tensor:
    parts = [K.angular_sum_jacobian(block.vectors[e0:e1], block.weights[e0:e1], block.dweights[e0:e1],
                                    _local_offsets(block, a0, a1, e0), n_max, backend=backend, check=False)
             for a0, a1, e0, e1 in _angular_chunks(block, backend)]
    return _cat(parts, (0, block.weights.shape[1], n_max + 1, 3), block.vectors)


def angular_edge_grads(block: Block, grad: torch.Tensor, backend: str) -> torch.Tensor:
    parts = [K.angular_sum_edge_grads(grad[a0:a1], block.vectors[e0:e1], block.weights[e0:e1],
                                      block.dweights[e0:e1], _local_offsets(block, a0, a1, e0), backend=backend,
                                      check=False)
             for a0, a1, e0, e1 in _angular_chunks(block, backend)]
    return _cat(parts, (0, 3), block.vectors)


def to_union(per_edge: torch.Tensor, block: Block, n_union: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Per-edge rows of a block placed on the union graph (adding to ``out`` if given)."""
    if block.rows is None:
        return per_edge if out is None else out + per_edge
    if out is None:
        out = per_edge.new_zeros((n_union,) + tuple(per_edge.shape[1:]))
    return out.index_add(0, block.rows, per_edge)
