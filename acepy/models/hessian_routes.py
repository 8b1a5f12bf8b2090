"""Generic second-derivative routes of one component, by autograd of its exact path.

A graph component's site energy E_i depends on the edge vectors of atom i only, so its Hessian in
the edge vectors is block-diagonal by centre. Three routes follow from that, each exact:

- :func:`edge_local_blocks`, for components whose energy is a sum over edges of a function of
  that edge alone (a pair potential): every block is 3 x 3 on one edge; three backward passes
  give all of them;
- :func:`slot_blocks`, for any site component: one backward pass per (neighbour slot, axis), each
  giving that column of every atom's site block at once (3 M passes, M = the largest neighbour
  count: the cost per atom does not grow with N);
- :func:`position_hessian_autograd`, for structure-level components (and as the plain reference):
  one backward pass per (atom, axis) on the positions, seeding the same local atom of every
  structure of the batch together.

Products with vectors (:func:`edge_hvp_autograd`) need one backward pass per vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .component import BatchGraph


@dataclass
class SiteBlocks:
    """Second derivatives of the site energies of some atoms in their own edge vectors.

    ``centers (n,)``: the atoms; ``neighbors (n, M)``: the neighbour atom of each slot (slots past
    an atom's neighbour count hold the centre itself and zero blocks); ``blocks (n, M, 3, M, 3)``:
    d2E_i / dr_(i,s) dr_(i,t). The position Hessian follows from r_ij = x_j - x_i + S cell.
    """

    centers: torch.Tensor
    neighbors: torch.Tensor
    blocks: torch.Tensor


def _edge_gradient(comp, inputs: BatchGraph):
    """(vectors leaf, dE/dvectors with its graph) of a site component on the exact path."""
    vec = inputs.vectors.detach().requires_grad_(True)
    local = BatchGraph(inputs.batch, inputs.species, inputs.graph, vec)
    with torch.enable_grad():
        e = comp.site_energies(local, backend="torch")
        if not e.requires_grad:
            return vec, None
        (g,) = torch.autograd.grad(e.sum(), vec, create_graph=True)
    return vec, (g if g.requires_grad else None)


def edge_local_blocks(comp, inputs: BatchGraph):
    """Site blocks of a component whose energy is a sum of per-edge terms: one 3 x 3 block per edge."""
    vec, g = _edge_gradient(comp, inputs)
    if g is None or vec.shape[0] == 0:
        return []
    with torch.enable_grad():
        rows = [torch.autograd.grad(g[:, a].sum(), vec, retain_graph=a < 2, allow_unused=True)[0] for a in range(3)]
    rows = [torch.zeros_like(vec) if r is None else r for r in rows]
    d = torch.stack(rows, dim=1).detach()  # (E, a, b)
    return [SiteBlocks(inputs.centers, inputs.neighbors[:, None], d[:, None, :, None, :])]


def slot_blocks(comp, inputs: BatchGraph):
    """Site blocks of any site component: one backward pass per (slot, axis) for all atoms."""
    vec, g = _edge_gradient(comp, inputs)
    n, n_e = inputs.n_atoms, vec.shape[0]
    if g is None or n_e == 0:
        return []
    offsets = inputs.offsets
    centers = inputs.centers
    slot = torch.arange(n_e, device=vec.device) - offsets[centers]
    m = int((offsets[1:] - offsets[:-1]).max())
    blocks = vec.new_zeros((n, m, 3, m, 3))
    for s in range(m):
        at_s = slot == s
        for a in range(3):
            seed = torch.zeros_like(vec)
            seed[at_s, a] = 1.0
            with torch.enable_grad():
                (col,) = torch.autograd.grad(g, vec, seed, retain_graph=True, allow_unused=True)
            if col is not None:
                blocks[centers, s, a, slot, :] = col.detach()
    neighbors = torch.arange(n, device=vec.device)[:, None].expand(n, m).clone()
    neighbors[centers, slot] = inputs.neighbors
    return [SiteBlocks(torch.arange(n, device=vec.device), neighbors, blocks)]


def edge_hvp_autograd(comp, inputs: BatchGraph, vectors: torch.Tensor) -> torch.Tensor:
    """H v of a site component for ``vectors (K, N, 3)``: one double-backward pass per vector."""
    vec, g = _edge_gradient(comp, inputs)
    out = torch.zeros_like(vectors)
    if g is None or vec.shape[0] == 0:
        return out
    c, j = inputs.centers, inputs.neighbors
    for k in range(vectors.shape[0]):
        u = vectors[k, j] - vectors[k, c]
        with torch.enable_grad():
            (y,) = torch.autograd.grad(g, vec, u, retain_graph=k + 1 < vectors.shape[0], allow_unused=True)
        if y is None:
            continue
        out[k].index_add_(0, j, y.detach())
        out[k].index_add_(0, c, -y.detach())
    return out


def _position_gradient(energy_fn, batch):
    """(positions leaf, dE/dpositions with its graph, or None where E does not move with them)."""
    positions = batch.positions.detach().requires_grad_(True)
    with torch.enable_grad():
        e = energy_fn(positions)
        if not e.requires_grad:
            return positions, None
        (g,) = torch.autograd.grad(e.sum(), positions, create_graph=True)
    return positions, (g if g.requires_grad else None)


def position_hessian_autograd(energy_fn, batch) -> list[torch.Tensor]:
    """Per-structure ``(n_b, 3, n_b, 3)`` Hessians of ``energy_fn(positions) -> (B,)`` at fixed cell,
    by backward passes on the positions (3 per local atom index, all structures seeded together)."""
    positions, g = _position_gradient(energy_fn, batch)
    n_b = (batch.atom_offsets[1:] - batch.atom_offsets[:-1]).tolist()
    first = batch.atom_offsets[:-1]
    out = [positions.new_zeros((n, 3, n, 3)) for n in n_b]
    if g is None:
        return out
    for k in range(max(n_b, default=0)):
        has = torch.tensor([k < n for n in n_b], device=positions.device)
        atoms = (first + k)[has]
        for a in range(3):
            seed = torch.zeros_like(positions)
            seed[atoms, a] = 1.0
            with torch.enable_grad():
                (row,) = torch.autograd.grad(g, positions, seed, retain_graph=True, allow_unused=True)
            if row is None:
                continue
            row = row.detach()
            for b, n in enumerate(n_b):
                if k < n:
                    f = int(first[b])
                    out[b][k, a] = row[f:f + n]
    return out


def position_hvp_autograd(energy_fn, batch, vectors: torch.Tensor) -> torch.Tensor:
    """H v of ``energy_fn(positions) -> (B,)`` at fixed cell for ``vectors (K, N, 3)``."""
    positions, g = _position_gradient(energy_fn, batch)
    out = torch.zeros_like(vectors)
    if g is None:
        return out
    with torch.enable_grad():
        for k in range(vectors.shape[0]):
            (y,) = torch.autograd.grad(g, positions, vectors[k], retain_graph=k + 1 < vectors.shape[0],
                                       allow_unused=True)
            if y is not None:
                out[k] = y.detach()
    return out
