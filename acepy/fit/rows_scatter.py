"""From basis-function values and per-slot gradients to the columns of one rows call, and from
there to energies, forces, virials and per-atom rows; the coefficient-free reference part.

Per edge ``g_ij = dE/dr_ij`` with ``r_ij = x_j - x_i + S cell``: ``F_i += g_ij``, ``F_j -= g_ij`` and
``virial -= r_ij (x) g_ij`` (DESIGN.md "Conventions"; the same scatter as ``Stack.evaluate``).
"""

from __future__ import annotations

import numpy as np
import torch

from acepy.kernels import scatter_forces_virials
from acepy.models.embedding import embedding_energy


def columns_of_chunk(basis, chunk, c: torch.Tensor | None):
    """``(values (n, K), gradients (n, M, 3, K))`` of the columns at the chunk's atoms.

    Linear: column k = w s B_f. Jacobian (``c (Kf, P)`` the current coefficients): column (f, p) =
    d E_i / d c_fp = s F'_p(rho_i) B_if, differentiated by the product rule (F'' couples the
    densities: drho_q = sum_f c_fq dB_f)."""
    sp = chunk.species
    f_of = torch.as_tensor(basis._col_function)
    identity = f_of.numel() == chunk.b.shape[1] and bool((f_of == torch.arange(f_of.numel())).all())
    bf = chunk.b if identity else chunk.b[:, f_of]
    dbf = chunk.db if identity else chunk.db[..., f_of]  # (n, M, 3, K); the chunk's own: scaled in place
    s, ds = chunk.scale, chunk.dscale
    has_ds = bool((ds != 0).any())
    if c is None:
        w = torch.as_tensor([float(e.fs_parameters[0]) for e in basis.embeddings], dtype=bf.dtype)[sp]
        vals = (w * s)[:, None] * bf
        grads = dbf.mul_((w * s)[:, None, None, None])
        if has_ds:
            grads += ds[..., None] * (w[:, None] * bf)[:, None, None, :]
        return vals, grads
    p_of = torch.as_tensor(basis._col_density)
    rho = chunk.b @ c  # (n, P)
    drho = torch.einsum("nmaf,fp->nmap", chunk.db, c)
    d1, d2 = _embedding_derivatives(basis, sp, rho)
    d1c = d1[:, p_of]  # (n, K)
    vals = s[:, None] * d1c * bf
    coupled = torch.einsum("npq,nmaq->nmap", d2, drho)[..., p_of]  # (n, M, 3, K)
    grads = dbf * (s[:, None] * d1c)[:, None, None, :] + coupled * (s[:, None] * bf)[:, None, None, :]
    if has_ds:
        grads += ds[..., None] * (d1c * bf)[:, None, None, :]
    return vals, grads


def _embedding_derivatives(basis, species, rho):
    """F'(rho) (n, P) and F''(rho) (n, P, P) per atom, by autograd of the embedding (small)."""
    n, p_max = rho.shape
    d1, d2 = rho.new_zeros((n, p_max)), rho.new_zeros((n, p_max, p_max))
    for mu, emb in enumerate(basis.embeddings):
        atoms = torch.nonzero(species == mu).squeeze(1)
        if atoms.numel() == 0:
            continue
        p = emb.ndensity
        x = rho[atoms, :p].detach().requires_grad_(True)
        with torch.enable_grad():
            e = embedding_energy(x, emb.fs_parameters, emb.npoti)
            (g,) = torch.autograd.grad(e.sum(), x, create_graph=True)
            rows = []
            for q in range(p):
                h = torch.autograd.grad(g[:, q].sum(), x, retain_graph=True, allow_unused=True)[0] \
                    if g.requires_grad else None
                rows.append(torch.zeros_like(x) if h is None else h)
        d1[atoms, :p] = g.detach()
        d2[atoms, :p, :p] = torch.stack(rows, dim=1).detach()
    return d1, d2


def scatter_chunk(out, chunk, vals, grads, system_idx) -> None:
    a0, a1 = chunk.a0, chunk.a1
    sys = system_idx[a0:a1]
    if out.per_atom is not None:
        out.per_atom[a0:a1] = vals
    if out.energy is not None:
        out.energy.index_add_(0, sys, vals)
    n, m, _, k = grads.shape
    if out.forces is not None and m:
        out.forces.index_add_(0, chunk.neighbors.reshape(-1), grads.reshape(n * m, 3, k), alpha=-1.0)
        out.forces[a0:a1] += grads.sum(1)
    if out.virial is not None and m:
        out.virial.index_add_(0, sys, torch.einsum("nma,nmbk->nabk", chunk.vec, grads), alpha=-1.0)


def reference_values(basis, batch, rows, full: bool, pvec) -> dict:
    """The coefficient-free part (linear), or the model's values at the current coefficients
    (Jacobian): energies, forces and virials by the fast path, Hessians by the exact one."""
    stack = basis._reference_model() if basis.is_linear else basis.model(basis.coefficients)
    species = stack.species_of(batch.numbers, batch)
    graphs = stack.graph_cache.graphs(batch)
    shared: dict = {}
    n, b = batch.n_atoms, batch.n_systems
    energies = torch.zeros(n, dtype=torch.float64)
    forces = torch.zeros((n, 3), dtype=torch.float64)
    virials = torch.zeros((b, 3, 3), dtype=torch.float64)
    for comp in stack.components:
        inputs = stack._inputs(batch, species, graphs, comp.cutoff, shared, detach=True)
        if comp.cutoff is None:
            energies += comp.site_energies(inputs)
            continue
        e, g = comp.energies_and_edge_grads(inputs, backend=stack.backend)
        f, v = scatter_forces_virials(g, inputs.vectors, inputs.centers, inputs.neighbors, inputs.edge_system,
                                      n, b, backend=stack.backend)
        energies, forces, virials = energies + e, forces + f, virials + v
    ref: dict = {}
    if rows.energy is not None:
        ref["energy"] = energies.new_zeros(b).index_add(0, batch.system_idx, energies).numpy()
    if rows.per_atom is not None:
        ref["per_atom"] = energies.numpy()
    if rows.forces is not None:
        ref["forces"] = forces.numpy()
    if rows.virial is not None:
        ref["virial"] = virials.numpy()
    if full:
        ref["hessian"] = [np.asarray(h) for h in stack.hessian(batch)]
    if pvec is not None:
        ref["hvp"] = stack.hessian_vector_product(batch, pvec).numpy()
    return ref
