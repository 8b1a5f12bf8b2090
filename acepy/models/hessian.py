"""Hessians and Hessian-vector products of a stack: d2E / dx dx at fixed cell, in eV/A^2.

Routes (``method``), each chosen by the caller and reported back, never switched silently:

- ``"sites"`` (``"auto"`` means this): every graph component gives the second derivatives of its
  site energies in their own edge vectors, block by block (ACE: the chain rule of
  :mod:`acepy.models.ace_hessian`; a pair potential: one 3 x 3 block per edge; any other site
  component: autograd columns per neighbour slot); structure-level components (and components
  without a graph whose energy moves with the atoms) by autograd on the positions. The blocks are
  summed into the position Hessian with r_ij = x_j - x_i + S cell: an edge to an atom's own
  periodic image moves with neither end and drops out, as it must at fixed cell.
- ``"autograd"``: plain dense autograd of :meth:`Stack.energy` in the positions (3 backward passes
  per atom): the reference, slow.
- ``"fd"``: central differences of the fast forces, ``-(F(x + h e) - F(x - h e)) / 2h`` with step
  ``h`` in A (6 N force evaluations, batched), accurate to O(h^2) and to the forces' rounding / h.

The exact routes run on the exact path in the stack's dtype: float64 Hessians are exact to
rounding (about 1e-12 relative); float32 ones to about 1e-4 relative of max|H|.
"""

from __future__ import annotations

import time

import torch

from acepy.batch import Batch
from acepy.graph import edge_vectors

from .component import BatchGraph
from .hessian_routes import (
    edge_hvp_autograd,
    edge_local_blocks,
    position_hessian_autograd,
    position_hvp_autograd,
    slot_blocks,
)

METHODS = ("auto", "sites", "autograd", "fd")
FD_STEP = 1e-3  # A: central differences of the forces (ASE's Vibrations uses 1e-2)
FD_MAX_ATOMS = 1 << 14  # atoms per force call of the finite-difference routes


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"hessian: method must be one of {METHODS}, got {method!r}")
    return "sites" if method == "auto" else method


def _check_step(step, default: float) -> float:
    if step is None:
        return default
    step = float(step)
    if not step > 0 or step != step or step == float("inf"):
        raise ValueError(f"hessian: the finite-difference step must be a positive number of A, got {step!r}")
    return step


def _route_name(comp) -> str:
    if comp.is_structure_level:
        return getattr(comp, "hessian_route", "positions autograd")
    if comp.cutoff is None:
        return "positions autograd (no graph)"
    if callable(getattr(comp, "site_hessian_blocks", None)):
        return getattr(comp, "hessian_route", "component's own site blocks")
    return "edge autograd" if getattr(comp, "edge_local", False) else "slot autograd"


def _component_energy_fn(comp, batch: Batch, species, graph):
    """positions -> (B,) energy of one component at fixed cell, on the exact path."""

    def fn(positions):
        local = Batch(positions=positions, numbers=batch.numbers, cell=batch.cell, pbc=batch.pbc,
                      system_idx=batch.system_idx, charges=batch.charges)
        if comp.is_structure_level:
            return comp.structure_energies(BatchGraph(local, species))
        vectors = None if graph is None else edge_vectors(positions, batch.cell, graph)
        e = comp.site_energies(BatchGraph(local, species, graph, vectors), backend="torch")
        return e.new_zeros(batch.n_systems).index_add(0, batch.system_idx, e)

    return fn


def _stack_energy_fn(stack, batch: Batch):
    def fn(positions):
        local = Batch(positions=positions, numbers=batch.numbers, cell=batch.cell, pbc=batch.pbc,
                      system_idx=batch.system_idx, charges=batch.charges)
        return stack.energy(local)

    return fn


class _Assembler:
    """Sums site blocks into one dense ``(n_b, 3, n_b, 3)`` Hessian per structure, in place.

    The buffer is read as rows of 3 (the last axis): block (p, q) row a is row (3 p + a) n_b + q,
    so every block array is added in its own memory order and the result needs no transpose copy
    (the O(N^2) result is written twice, zeroed and summed into, instead of three times)."""

    def __init__(self, batch: Batch):
        self.n_b = batch.atom_offsets[1:] - batch.atom_offsets[:-1]
        sizes = 9 * self.n_b * self.n_b
        self.base = (torch.cumsum(sizes, 0) - sizes) // 3  # first row of each structure
        self.first = batch.atom_offsets[:-1]
        self.system_idx = batch.system_idx
        self.buffer = batch.positions.new_zeros((int(sizes.sum()) // 3, 3))

    def add(self, blocks) -> None:
        i, nb, b = blocks.centers, blocks.neighbors, blocks.blocks  # (n,), (n, M), (n, M, 3, M, 3)
        s = self.system_idx[i]
        first, base, size = self.first[s], self.base[s], self.n_b[s]
        il = i - first
        nl = nb - first[:, None]
        axis = torch.arange(3, device=nl.device)
        put = self.buffer.index_add_
        # H[p, q] = sum_st B[s, t] (d_{p, nb_s} - d_{p, i}) (d_{q, nb_t} - d_{q, i})
        size1, base1 = size[:, None, None, None], base[:, None, None, None]
        rows = base1 + (3 * nl[:, :, None, None] + axis[:, None]) * size1 + nl[:, None, None, :]  # (n, s, a, t)
        put(0, rows.reshape(-1), b.reshape(-1, 3))
        rows = base[:, None, None] + (3 * il[:, None, None] + axis[:, None]) * size[:, None, None] + nl[:, None, :]
        put(0, rows.reshape(-1), -b.sum(1).reshape(-1, 3))  # (n, a, t)
        rows = base[:, None, None] + (3 * nl[:, :, None] + axis) * size[:, None, None] + il[:, None, None]
        put(0, rows.reshape(-1), -b.sum(3).reshape(-1, 3))  # (n, s, a)
        put(0, (base[:, None] + (3 * il[:, None] + axis) * size[:, None] + il[:, None]).reshape(-1),
            b.sum((1, 3)).reshape(-1, 3))  # (n, a)

    def result(self) -> list[torch.Tensor]:
        out = [self.buffer[base:base + 3 * n * n].view(n, 3, n, 3)
               for base, n in zip(self.base.tolist(), self.n_b.tolist())]
        # one structure: the buffer itself; a batch: a tensor of its own each (a view would keep
        # the whole batch's buffer alive, and torch.save would write all of it)
        return out if len(out) == 1 else [h.clone() for h in out]


def stack_hessian(stack, batch: Batch, method: str, step: float | None):
    """Per-structure Hessians ``[(n_b, 3, n_b, 3)]`` of ``batch`` and the route record."""
    method = _check_method(method)
    start = time.perf_counter()
    info: dict = {"method": method}
    if method == "fd":
        info["step"] = _check_step(step, FD_STEP)
        out = _fd_hessian(stack, batch, info["step"])
    elif method == "autograd":
        out = position_hessian_autograd(_stack_energy_fn(stack, batch), batch)
    else:
        out, info["routes"] = _sites_hessian(stack, batch)
    info["seconds"] = time.perf_counter() - start
    return out, info


def _sites_hessian(stack, batch: Batch):
    species = stack.species_of(batch.numbers, batch)
    graphs = stack.graph_cache.graphs(batch, validated=True)  # the stack's _batch checked it
    shared: dict = {}
    assembler = _Assembler(batch)
    dense = None
    routes = {}
    for comp in stack.components:
        routes[type(comp).__name__] = _route_name(comp)
        if comp.is_structure_level or comp.cutoff is None:
            own = getattr(comp, "structure_hessians", None)  # a closed form, where the component has one
            parts = own(batch, species) if callable(own) else None
            if parts is None:
                parts = position_hessian_autograd(
                    _component_energy_fn(comp, batch, species, graphs.get(comp.cutoff)), batch)
            dense = parts if dense is None else [d.add_(p) for d, p in zip(dense, parts)]
            continue
        inputs = stack._inputs(batch, species, graphs, comp.cutoff, shared, detach=True)
        if callable(getattr(comp, "site_hessian_blocks", None)):
            blocks = comp.site_hessian_blocks(inputs, backend=stack.backend)
        elif getattr(comp, "edge_local", False):
            blocks = edge_local_blocks(comp, inputs)
        else:
            blocks = slot_blocks(comp, inputs)
        for sb in blocks:
            assembler.add(sb)
    out = assembler.result()  # views of one buffer, one per structure
    del assembler
    if dense is not None:
        out = [h.add_(d) for h, d in zip(out, dense)]  # in place: no third copy of each Hessian
    return out, routes


def _copies(batch: Batch, b: int, positions: torch.Tensor) -> Batch:
    """A batch of ``positions (C, n, 3)``: C copies of structure ``b`` of ``batch``."""
    c, n = positions.shape[0], positions.shape[1]
    lo, hi = int(batch.atom_offsets[b]), int(batch.atom_offsets[b + 1])
    charges = None if batch.charges is None else batch.charges[lo:hi].repeat(c)
    return Batch(positions=positions.reshape(c * n, 3), numbers=batch.numbers[lo:hi].repeat(c),
                 cell=batch.cell[b:b + 1].expand(c, 3, 3).contiguous(), pbc=batch.pbc[b:b + 1].expand(c, 3).contiguous(),
                 system_idx=torch.arange(c, device=positions.device).repeat_interleave(n), charges=charges)


def _fd_hessian(stack, batch: Batch, h: float) -> list[torch.Tensor]:
    """Central differences of the fast forces, batched: columns (j, a) of each structure."""
    out = []
    for b in range(batch.n_systems):
        lo, hi = int(batch.atom_offsets[b]), int(batch.atom_offsets[b + 1])
        n = hi - lo
        x = batch.positions[lo:hi].detach()
        hess = x.new_zeros((n, 3, n, 3))
        cols = [(j, a) for j in range(n) for a in range(3)]
        per_call = max(1, FD_MAX_ATOMS // max(1, 2 * n))
        for c0 in range(0, len(cols), per_call):
            chunk = cols[c0:c0 + per_call]
            disp = x.new_zeros((len(chunk), n, 3))
            for k, (j, a) in enumerate(chunk):
                disp[k, j, a] = h
            pos = torch.cat([x + disp, x - disp])
            forces = stack._evaluate(_copies(batch, b, pos), True, False, None)["forces"].reshape(2 * len(chunk), n, 3)
            diff = -(forces[:len(chunk)] - forces[len(chunk):]) / (2.0 * h)
            for k, (j, a) in enumerate(chunk):
                hess[:, :, j, a] = diff[k]
        out.append(hess)
    return out


def check_vectors(batch: Batch, vectors) -> tuple[torch.Tensor, bool]:
    """``vectors`` as ``(K, N, 3)`` in the batch's dtype, and whether the input had no K axis."""
    v = torch.as_tensor(vectors, dtype=batch.positions.dtype, device=batch.positions.device)
    n = batch.n_atoms
    if v.ndim == 2 and tuple(v.shape) == (n, 3):
        return v[None], True
    if v.ndim == 3 and tuple(v.shape[1:]) == (n, 3):
        return v, False
    raise ValueError(f"hessian_vector_product: vectors must have shape ({n}, 3) or (K, {n}, 3) for a batch of "
                     f"{n} atoms, got {tuple(v.shape)}")


def stack_hvp(stack, batch: Batch, vectors: torch.Tensor, method: str, step: float | None) -> tuple[torch.Tensor, dict]:
    """H v for ``vectors (K, N, 3)`` over the whole batch, without forming the Hessian, and what
    ran: ``{"method", "vectors", "routes" (per component, exact methods), "step" (fd), "seconds"}``."""
    start = time.perf_counter()
    method = _check_method(method)
    if not bool(torch.isfinite(vectors).all()):
        raise ValueError("hessian_vector_product: vectors contain NaN or inf")
    info: dict = {"method": method, "vectors": int(vectors.shape[0])}
    if method == "fd":
        info["step"] = _check_step(step, FD_STEP)
        out = _fd_hvp(stack, batch, vectors, info["step"])
    elif method == "autograd":
        out = position_hvp_autograd(_stack_energy_fn(stack, batch), batch, vectors)
    else:
        out, info["routes"] = _sites_hvp(stack, batch, vectors)
    info["seconds"] = time.perf_counter() - start
    return out, info


def _sites_hvp(stack, batch: Batch, vectors: torch.Tensor):
    species = stack.species_of(batch.numbers, batch)
    graphs = stack.graph_cache.graphs(batch, validated=True)  # the stack's _batch checked it
    shared: dict = {}
    out = torch.zeros_like(vectors)
    routes = {}
    for comp in stack.components:
        name = type(comp).__name__
        if comp.is_structure_level or comp.cutoff is None:
            routes[name] = "positions autograd"
            out = out + position_hvp_autograd(
                _component_energy_fn(comp, batch, species, graphs.get(comp.cutoff)), batch, vectors)
            continue
        inputs = stack._inputs(batch, species, graphs, comp.cutoff, shared, detach=True)
        if callable(getattr(comp, "hessian_vector_products", None)):
            route = getattr(comp, "hvp_route", None)
            routes[name] = route(vectors, stack.backend) if callable(route) else "component's own"
            out = out + comp.hessian_vector_products(inputs, vectors, backend=stack.backend)
        else:
            routes[name] = "edge autograd"
            out = out + edge_hvp_autograd(comp, inputs, vectors)
    return out, routes


def _fd_hvp(stack, batch: Batch, vectors: torch.Tensor, h: float) -> torch.Tensor:
    """-(F(x + h v) - F(x - h v)) / 2h per vector, with v scaled to a largest component of 1."""
    out = torch.zeros_like(vectors)
    x = batch.positions.detach()
    for k in range(vectors.shape[0]):
        scale = float(vectors[k].abs().max())
        if scale == 0.0:
            continue
        d = vectors[k] * (h / scale)
        f = []
        for sign in (1.0, -1.0):
            moved = Batch(positions=x + sign * d, numbers=batch.numbers, cell=batch.cell, pbc=batch.pbc,
                          system_idx=batch.system_idx, charges=batch.charges)
            f.append(stack._evaluate(moved, True, False, None)["forces"])
        out[k] = -(f[0] - f[1]) / (2.0 * h) * scale
    return out
