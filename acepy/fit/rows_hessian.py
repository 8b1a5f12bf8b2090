"""Hessian rows of a linear basis: d2B_k/dx dx per structure, or its products with probe vectors.

The site value B_if depends on atom i's edge vectors through the variables z (atomic base A, A1):
by the chain rule (as for the model's Hessian, :mod:`acepy.models.ace_hessian`)

    d2B_if / dr_s dr_t = J_s^T K_f J_t + delta_st D_f(s),   K_f = d2B_f/dz2,  D_f(s) = G_f . d2z/dr_s2

with J = dz/dr per neighbour slot, G = dB/dz. D comes for every function at once from G and the
per-edge second derivatives of z; K_f is non-zero only among the variables of f's own factors, so
it is built tuple group by tuple group (:class:`~acepy.fit.rows_columns.TupleGroup`) on those few
variables: for each pair of factors u != v of a term, d2 Re(prod)/d(x|y)_u d(x|y)_v = Re(Q d_u d_v)
with Q the product of the other factors and d = 1 (real part) or i sigma (imaginary part).
The site blocks go into the position Hessian with r_ij = x_j - x_i + S cell (an edge to the atom's
own image drops out at fixed cell), as :class:`acepy.models.hessian._Assembler` does. Dense rows fold
J from neighbour slots to the structure's atoms first (a small periodic cell has fewer atoms than
slots) and run the groups once per structure; products with probes run per chunk on the slots
(their cost per atom does not grow with the structure), applying the K_f to J u group by group and
J^T once per chunk for every function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from acepy.errors import UnsupportedInputError


@dataclass
class _HGroup:
    mu0: int
    rank: int
    col: torch.Tensor  # (S, r)
    conj: torch.Tensor
    sign: torch.Tensor
    pairs: list  # [(u, v)] factor pairs u < v
    re_w: torch.Tensor  # (8, npairs, S) weight of Re Q in each (variable, variable) entry
    im_w: torch.Tensor  # (8, npairs, S) weight of Im Q
    target: torch.Tensor  # (8 * npairs * S,) flat (V+1) x (V+1) entry
    variables: torch.Tensor  # (V,) global variable indices
    coupling: torch.Tensor  # (F, S)
    functions: torch.Tensor  # (F,)


def _groups(basis, plan) -> list[_HGroup]:
    cached = getattr(plan, "_hessian_groups", None)
    if cached is not None:
        return cached
    zx = np.full(max(plan.width, 1), -1, dtype=np.int64)
    zx[plan.x_cols] = np.arange(len(plan.x_cols))
    zy = np.full(max(plan.width, 1), -1, dtype=np.int64)
    zy[plan.y_cols] = len(plan.x_cols) + np.arange(len(plan.y_cols))
    dt, dev = plan.dtype, plan.device
    out = []
    for g in basis._table.groups:
        if g.rank < 2:
            continue
        ms = g.ms_combs
        cols = np.array([[plan._half_column(int(g.mus[k]), int(g.ns[k]) - 1, int(g.ls[k]), int(m))
                          for k, m in enumerate(row)] for row in ms], dtype=np.int64).reshape(ms.shape)
        gx, gy = zx[cols], np.where(ms != 0, zy[cols], -1)
        variables = np.unique(np.concatenate([gx.ravel(), gy[gy >= 0]]))
        local = {int(v): i for i, v in enumerate(variables)}
        nv = len(variables)
        lx = np.vectorize(lambda v: local[int(v)])(gx).reshape(ms.shape)
        ly = np.vectorize(lambda v: local.get(int(v), nv))(gy).reshape(ms.shape)
        sigma = np.where(ms < 0, -1.0, 1.0)
        pairs = [(u, v) for u in range(g.rank) for v in range(u + 1, g.rank)]
        size = nv + 1  # one discarded slot for Im A of m = 0
        re_w, im_w, target = [], [], []
        for u, v in pairs:
            su, sv = sigma[:, u], sigma[:, v]
            one, zero = np.ones_like(su), np.zeros_like(su)
            # d2 Re(prod) / d(x|y)_u d(x|y)_v = Re(Q d_u d_v), d = 1 (x) or i sigma (y); both orders
            entries = [(lx[:, u], lx[:, v], one, zero), (lx[:, u], ly[:, v], zero, -sv),
                       (ly[:, u], lx[:, v], zero, -su), (ly[:, u], ly[:, v], -su * sv, zero)]
            entries += [(j, i, a, b) for i, j, a, b in entries]
            re_w.append(np.stack([e[2] for e in entries]))
            im_w.append(np.stack([e[3] for e in entries]))
            target.append(np.stack([e[0] * size + e[1] for e in entries]))
        t = lambda a, **k: torch.as_tensor(a, device=dev, **k)  # noqa: E731
        out.append(_HGroup(
            g.mu0, g.rank, t(cols), t(ms < 0), t(np.where((ms < 0) & (ms % 2 == 1), -1.0, 1.0), dtype=dt), pairs,
            t(np.stack(re_w, axis=1), dtype=dt), t(np.stack(im_w, axis=1), dtype=dt),
            t(np.stack(target, axis=1).reshape(-1)), t(variables), t(g.coupling, dtype=dt), t(g.functions)))
    plan._hessian_groups = out
    return out


def _curvature(grp: _HGroup, a: torch.Tensor) -> torch.Tensor:
    """K_f (ng, F, V, V) of the group's functions at the sites with atomic base ``a (ng, W)``."""
    ng, nf, nv = a.shape[0], grp.coupling.shape[0], int(grp.variables.numel())
    size = nv + 1
    zs = a[:, grp.col]
    zs = torch.where(grp.conj, zs.conj(), zs) * grp.sign
    qs = []
    for u, v in grp.pairs:
        q = (grp.sign[:, u] * grp.sign[:, v]).to(zs.dtype).expand(ng, -1)
        for x in range(grp.rank):
            if x not in (u, v):
                q = q * zs[:, :, x]
        qs.append(q)
    q = torch.stack(qs, dim=1)  # (ng, npairs, S)
    vals = q.real[:, None] * grp.re_w + q.imag[:, None] * grp.im_w  # (ng, 8, npairs, S)
    w = vals[:, None] * grp.coupling[None, :, None, None, :]  # (ng, F, 8, npairs, S)
    k = a.real.new_zeros((ng * nf, size * size))
    k.index_add_(1, grp.target, w.reshape(ng * nf, -1))
    return k.reshape(ng, nf, size, size)[:, :, :nv, :nv]


def hessian_chunk(out, basis, plan, chunk, batch) -> None:
    """Add the chunk's site blocks (dense rows) or their products with the probes (hvp rows)."""
    bad = (chunk.scale != 1.0) | (chunk.dscale != 0.0).any(dim=(1, 2))
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0]) + chunk.a0
        b = int(batch.system_idx[i])
        raise UnsupportedInputError(
            f"rows: structure {b}, atom {i - int(batch.atom_offsets[b])} is inside the energy-level inner cutoff "
            f"(rho_core or zbl switch below 1): Hessian rows there are not supported")
    w_species = torch.as_tensor([float(e.fs_parameters[0]) for e in basis.embeddings], dtype=chunk.b.dtype)
    w_atom = w_species[chunk.species]
    n, m = chunk.neighbors.shape
    if m == 0:
        return
    kf = chunk.b.shape[1]
    atoms_all = torch.arange(n)
    # D for every function: G . d2z/dr2 per slot (n, Kf, M, 3, 3), slot-diagonal
    d = torch.einsum("nkz,nzmab->nkmab", chunk.g, chunk.hphi) * w_atom[:, None, None, None, None]
    groups = _groups(basis, plan)
    if out.hessian is not None:
        _add_diagonal(out, chunk, atoms_all, torch.arange(kf), d)
        _fold_into(out, chunk)
    if out.hvp is None:
        return
    # products: y_s = J_s^T (sum_f K_f (J u)) + D_s u_s, with J u over all variables once per chunk and
    # the curvature applied group by group into Y (P, n, Kf, Z)
    u = _slot_displacements(out.pvec, chunk, atoms_all)  # (P, n, M, 3)
    ju = torch.einsum("nzma,pnma->pnz", chunk.jac, u)
    ju = ju.permute(1, 2, 0)  # (n, Z, P)
    y_z = ju.new_zeros((n, kf, ju.shape[1], ju.shape[2]))
    for grp in groups:
        atoms = torch.nonzero(chunk.species == grp.mu0).squeeze(1)
        if atoms.numel() == 0:
            continue
        kmat = _curvature(grp, chunk.a[atoms]) * float(w_species[grp.mu0])
        kju = kmat @ ju[atoms[:, None], grp.variables[None, :]][:, None]  # (ng, F, V, P)
        y_z.index_put_((atoms[:, None, None], grp.functions[None, :, None], grp.variables[None, None, :]),
                       kju, accumulate=True)
    y = torch.einsum("nzma,nfzp->pnfma", chunk.jac, y_z) + torch.einsum("nfmab,pnmb->pnfma", d, u)
    _add_products(out, chunk, atoms_all, torch.arange(kf), y)


def _fold_into(out, chunk) -> None:
    """Keep the chunk's J folded from slots to its structure's atoms (dz_i/dx_p = sum_s J_s
    (delta_{p, nb_s} - delta_{p, i})) and its atomic base, for :func:`finish_dense`: a small
    periodic cell has far fewer atoms than neighbour slots, and one pass per structure over the
    tuple groups costs less than one per chunk."""
    if not hasattr(out, "folded"):
        out.folded, out.site_a = {}, {}
    system = out.batch.system_idx[chunk.a0:chunk.a1]
    for b in torch.unique(system).tolist():
        atoms = torch.nonzero(system == b).squeeze(1)
        first, nb = int(out.batch.atom_offsets[b]), int(out.n_b[b])
        jac = chunk.jac[atoms]  # (na, Z, M, 3)
        na, nz, m = jac.shape[0], jac.shape[1], jac.shape[2]
        folded = jac.new_zeros((na * nb, nz, 3))
        local = (chunk.neighbors[atoms] - first) + (torch.arange(na) * nb)[:, None]  # (na, M)
        folded.index_add_(0, local.reshape(-1), jac.permute(0, 2, 1, 3).reshape(na * m, nz, 3))
        centre = torch.arange(na) * nb + (atoms + chunk.a0 - first)
        folded.index_add_(0, centre, jac.sum(2), alpha=-1.0)
        folded = folded.reshape(na, nb, nz, 3).permute(0, 2, 1, 3).reshape(na, nz, 3 * nb)
        if b not in out.folded:
            out.folded[b] = folded.new_zeros((nb, nz, 3 * nb))
            out.site_a[b] = (chunk.a.new_zeros((nb, chunk.a.shape[1])), torch.zeros(nb, dtype=torch.long))
        idx = atoms + chunk.a0 - first
        out.folded[b][idx] = folded
        out.site_a[b][0][idx] = chunk.a[atoms]
        out.site_a[b][1][idx] = chunk.species[atoms]


def finish_dense(out, basis, plan) -> None:
    """sum_i J_i^T K_f J_i of every structure into its dense rows (after all chunks)."""
    if not hasattr(out, "folded"):
        return
    w_species = [float(e.fs_parameters[0]) for e in basis.embeddings]
    groups = _groups(basis, plan)
    for b, folded in out.folded.items():
        nb = int(out.n_b[b])
        target = out.structure_hessian(b).view(out.k, 3 * nb, 3 * nb)
        a, species = out.site_a[b]
        for grp in groups:
            sel = torch.nonzero(species == grp.mu0).squeeze(1)
            if sel.numel() == 0:
                continue
            kmat = _curvature(grp, a[sel]) * w_species[grp.mu0]
            jg = folded[sel[:, None], grp.variables[None, :]]  # (ng, V, 3 n_b)
            target.index_add_(0, grp.functions, torch.einsum("nvp,nfvw,nwq->fpq", jg, kmat, jg))
    del out.folded, out.site_a


def _slot_displacements(pvec, chunk, atoms):
    centers = atoms + chunk.a0
    return pvec[:, chunk.neighbors[atoms]] - pvec[:, centers][:, :, None, :]


def _add_diagonal(out, chunk, atoms, cols, d):
    """Slot-diagonal blocks ``d (n, F, M, 3, 3)`` into the dense rows."""
    if out.hessian is not None:
        centers = atoms + chunk.a0
        s = out.batch.system_idx[centers]
        first = out.batch.atom_offsets[:-1][s]
        size, base = out.n_b[s], out.base[s]
        il, nl = centers - first, chunk.neighbors[atoms] - first[:, None]

        def put(p, q, vals):  # vals (n, F, ..., 3, 3) at atoms (p, q) of each structure, columns cols
            extra = p.dim() - 1
            shape = (-1, 1) + (1,) * extra
            start = (base.reshape(shape) + cols.reshape((1, -1) + (1,) * extra) * (9 * size * size).reshape(shape)
                     + (p * 3 * size.reshape((-1,) + (1,) * extra) * 3 + q * 3)[:, None])
            row = torch.arange(3)[:, None] * (3 * size.reshape(shape + (1, 1))) + torch.arange(3)[None, :]
            out.hessian.index_add_(0, (start[..., None, None] + row).reshape(-1), vals.reshape(-1))

        put(nl, nl, d)
        put(il[:, None].expand_as(nl), nl, -d)
        put(nl, il[:, None].expand_as(nl), -d)
        put(il, il, d.sum(2))


def _add_products(out, chunk, atoms, cols, y):
    """Per-slot products ``y (P, ng, F, M, 3)`` = (site block u)_s into the hvp rows (P, N, 3, K)."""
    p, k = out.hvp.shape[0], out.hvp.shape[3]
    nodes = chunk.neighbors[atoms]  # (ng, M)
    centers = atoms + chunk.a0
    axis = torch.arange(3)
    flat = out.hvp.view(p, -1)
    idx = (nodes[:, None, :, None] * 3 + axis) * k + cols[None, :, None, None]  # (ng, F, M, 3)
    flat.index_add_(1, idx.reshape(-1), y.reshape(p, -1))
    idx = (centers[:, None, None] * 3 + axis) * k + cols[None, :, None]  # (ng, F, 3)
    flat.index_add_(1, idx.reshape(-1), -y.sum(3).reshape(p, -1))
