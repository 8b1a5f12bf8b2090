"""Basis-function values and their per-edge gradients, chunk by chunk of atoms.

For each chunk: the edges of its atoms (inside their pair's cutoff, checked against the radial
tables by :meth:`ACE._prepare`), the radial values and harmonics on the torch reference, the
atomic bases A and A1, the functions' values ``B (n, Kf)`` and gradients ``G = dB/dz (n, Kf, Z)``
(:class:`~acepy.fit.rows_plan.RowPlan`), the edge Jacobian ``J = dz/dr (E, Z, 3)`` and their
contraction ``dB/dr_ij = G_i J_ij``, laid out per neighbour slot ``(n, M, 3, Kf)`` (one batched
matrix product per chunk). With ``hessian`` also the second derivatives of the variables per edge,
d2z/dr2 (forward-over-reverse: three double-backward passes for all edges at once, the edges being
independent variables), which the Hessian rows need.

The site scale ``s_i`` (the energy-level inner cutoff: f(rho_core) of the density type, f_zbl of the
zbl type; ACE_SPEC.md 2.12) multiplies the embedding; its per-slot gradient comes along.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from acepy.kernels import spherical_harmonics
from acepy.models.embedding import density_inner_cutoff

# Work-array bytes per chunk of atoms (the default of ``chunk_atoms``): with the outputs and
# torch's temporaries the peak stays well under 1 GB.
CHUNK_BYTES = 192 * 2**20


@dataclass
class Chunk:
    a0: int
    a1: int
    species: torch.Tensor  # (n,)
    neighbors: torch.Tensor  # (n, M) neighbour atom per slot (the centre itself in empty slots)
    vec: torch.Tensor  # (n, M, 3) edge vectors per slot (zero in empty slots)
    b: torch.Tensor  # (n, Kf)
    db: torch.Tensor  # (n, M, 3, Kf)
    scale: torch.Tensor  # (n,)
    dscale: torch.Tensor  # (n, M, 3)
    g: torch.Tensor | None = None  # (n, Kf, Z) with hessian
    jac: torch.Tensor | None = None  # (n, Z, M, 3) with hessian
    hphi: torch.Tensor | None = None  # (n, Z, M, 3, 3) with hessian
    a: torch.Tensor | None = None  # (n, W) complex, with hessian


def chunk_size(plan, max_neighbors: int, hessian: bool, chunk_atoms: int | None) -> int:
    if chunk_atoms is not None:
        if isinstance(chunk_atoms, bool) or not isinstance(chunk_atoms, (int, np.integer)) or chunk_atoms < 1:
            raise ValueError(f"rows: chunk_atoms must be a positive integer or None, got {chunk_atoms!r}")
        return int(chunk_atoms)
    kf, z, m = plan.nfunctions, plan.n_z, max(1, max_neighbors)
    per_atom = 8 * (kf * z + 3 * kf * 3 * m + 2 * z * 3 * m + 2 * m * 3 * (kf + z))
    if hessian:
        per_atom += 8 * (z * 9 * m + 2 * kf * 9 * m)
    return max(1, CHUNK_BYTES // per_atom)


def chunks(ace, plan, inputs, chunk_atoms: int | None, hessian: bool = False) -> Iterator[Chunk]:
    edges_all = ace._prepare(inputs)
    offsets = edges_all.offsets.cpu().numpy()
    counts = np.diff(offsets)
    step = chunk_size(plan, int(counts.max()) if counts.size else 0, hessian, chunk_atoms)
    for a0 in range(0, inputs.n_atoms, step):
        a1 = min(inputs.n_atoms, a0 + step)
        e0, e1 = int(offsets[a0]), int(offsets[a1])
        yield _chunk(ace, plan, inputs.species[a0:a1], edges_all.slice(a0, a1, e0, e1), a0, a1, hessian)


def _chunk(ace, plan, species, edges, a0: int, a1: int, hessian: bool) -> Chunk:
    n, n_e = a1 - a0, edges.centers.shape[0]
    vec = edges.vectors.detach()
    if hessian:
        vec = vec.clone().requires_grad_(True)
    with torch.enable_grad() if hessian else torch.no_grad():
        r = torch.linalg.vector_norm(vec, dim=1)
        rad = ace.radial.evaluate(r, edges.mu_i, edges.mu_j, backend="torch", check=False)
        ys = spherical_harmonics(vec, plan.lmax, gradients=True, backend="torch") if plan.width else (None,) * 4
        jac = plan.edge_jacobian(vec, edges.mu_j, rad, *ys)
    hphi = _feature_hessians(jac, vec) if hessian else None
    jac = jac.detach()
    a1_base, a = atomic_bases(plan, edges, rad, ys[0], ys[1], n)
    b, g = plan.values_and_gradients(a, a1_base, species)
    # per-slot layout
    offsets = edges.offsets
    counts = offsets[1:] - offsets[:-1]
    m = int(counts.max()) if n and n_e else 0
    slot = torch.arange(n_e, device=vec.device) - offsets[edges.centers]
    centers = torch.arange(a0, a1, device=vec.device)
    neighbors = centers[:, None].expand(n, m).clone()
    neighbors[edges.centers, slot] = edges.neighbors
    vpad = vec.new_zeros((n, m, 3))
    vpad[edges.centers, slot] = vec.detach()
    jpad = vec.new_zeros((n, plan.n_z, m, 3))
    jpad[edges.centers, :, slot, :] = jac
    # dB/dr per slot, slots first: the force scatter then needs no transposed copy
    db = torch.bmm(jpad.reshape(n, plan.n_z, 3 * m).transpose(1, 2), g.transpose(1, 2))
    db = db.reshape(n, m, 3, plan.nfunctions)
    scale, dscale_e = _site_scale(ace, species, edges, rad, r.detach(), n)
    dscale = vec.new_zeros((n, m, 3))
    dscale[edges.centers, slot] = dscale_e
    out = Chunk(a0, a1, species, neighbors, vpad, b, db, scale, dscale)
    if hessian:
        hpad = vec.new_zeros((n, plan.n_z, m, 3, 3))
        hpad[edges.centers, :, slot] = hphi
        out.g, out.jac, out.hphi, out.a = g, jpad, hpad, a
    return out


def atomic_bases(plan, edges, rad, y_re, y_im, n: int):
    """The rank-1 base ``A1 (n, nel * nradbase)`` and the complex atomic base ``A (n, W)`` (None
    when the plan reads none) of ``n`` centres from their edges' radial values and harmonics
    (detached: the rows differentiate through the edge Jacobian, not through these)."""
    nel, nrad, nh = plan.nel, plan.nrad, plan.nh
    n_e = edges.centers.shape[0]
    rows = edges.centers * nel + edges.mu_j
    gk = rad.gk.detach()
    a1_base = gk.new_zeros((n * nel, plan.nb)).index_add(0, rows, gk).reshape(n, nel * plan.nb)
    if not plan.width:
        return a1_base, None
    rnl = rad.rnl.detach()[:, :, plan_l_of(plan, gk.device)]  # (E, nrad, nh)
    re = (rnl * y_re.detach()[:, None, :]).reshape(n_e, nrad * nh)
    im = (rnl * y_im.detach()[:, None, :]).reshape(n_e, nrad * nh)
    a_re = gk.new_zeros((n * nel, nrad * nh)).index_add(0, rows, re).reshape(n, plan.width)
    a_im = gk.new_zeros((n * nel, nrad * nh)).index_add(0, rows, im).reshape(n, plan.width)
    return a1_base, torch.complex(a_re, a_im)


def plan_l_of(plan, device) -> torch.Tensor:
    return torch.as_tensor([l for l in range(plan.lmax + 1) for _ in range(l + 1)], device=device)


def _feature_hessians(jac: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """``d jac[e, z, a] / d vec[e, b]`` as ``(E, Z, 3, 3)``: forward mode by the double-backward
    trick (the vector-Jacobian product is linear in its cotangent u; differentiating it in u along
    a tangent gives the Jacobian-vector product), one pass per axis b for every edge at once."""
    if jac.numel() == 0 or not jac.requires_grad:
        return jac.new_zeros(jac.shape + (3,)).detach()
    u = torch.zeros_like(jac, requires_grad=True)
    with torch.enable_grad():
        (gv,) = torch.autograd.grad(jac, vec, grad_outputs=u, create_graph=True)
        out = []
        for axis in range(3):
            tangent = torch.zeros_like(vec)
            tangent[:, axis] = 1.0
            (h,) = torch.autograd.grad(gv, u, grad_outputs=tangent, retain_graph=axis < 2, allow_unused=True)
            out.append(torch.zeros_like(jac) if h is None else h)
    return torch.stack(out, dim=-1).detach()


def _site_scale(ace, species, edges, rad, r, n: int):
    """``(s (n,), ds/dr per edge (E, 3))`` of the energy-level inner cutoff (ACE_SPEC.md 2.12)."""
    rhat = edges.vectors.detach() / r[:, None]
    if ace.inner_cutoff_type == "zbl":
        f, df_dr, zedge = ace._zbl_switch(n, edges)
        ds = torch.zeros_like(rhat)
        has = zedge >= 0
        ds[zedge[has]] = df_dr[has, None] * rhat[zedge[has]]
        return f, ds
    core = r.new_zeros(n).index_add(0, edges.centers, rad.cr.detach())
    scale = torch.ones_like(core)
    dscale_atom = torch.zeros_like(core)
    for mu, emb in enumerate(ace._embeddings):
        atoms = torch.nonzero(species == mu).squeeze(1)
        if atoms.numel():
            f, df = density_inner_cutoff(core[atoms], emb.rho_cut, emb.drho_cut)
            scale[atoms], dscale_atom[atoms] = f, df
    return scale, (dscale_atom[edges.centers] * rad.dcr.detach())[:, None] * rhat
