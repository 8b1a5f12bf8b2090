"""Second derivatives of the ACE site energies: per-site Hessian blocks and their products.

The site energy of atom i is a function of its own edge vectors only, through per-atom sums
(ACE_SPEC.md 2.10-2.12):

    z_i = sum_j phi(r_ij) = [Re A, Im A, A1, rho_core, f_zbl],   E_i = G(z_i)

(f_zbl, the zbl switch, is a function of one edge, the nearest one: it is written as a feature of
that edge alone). By the chain rule the Hessian of E_i in its edge vectors r_j, r_k is

    d2E_i / dr_j dr_k = J_j^T K_i J_k + delta_jk D_j,     J_j = dphi/dr (r_j),  K_i = d2G/dz2,
    D_j = d2/dr2 [ w_i . phi(r) ] at r_j,               w_i = dG/dz.

``J`` is analytic (radial values and derivatives, harmonics and their gradients). ``K`` has two
parts, with G = Phi(rho, rho_core, f_zbl) and rho linear in A1 and multilinear in A:

    K = U^T Phi'' U + sum_p Phi'_p d2rho_p/dA2,     U = d(rho, rho_core, f_zbl)/dz

``U`` comes from the product-basis adjoint (one call per density), Phi' and Phi'' from autograd of
the embedding on P + 2 variables per atom, and the second derivatives of the products from the
factor codes directly (:func:`_product_curvature`: for each term, each pair of its factors times
the product of the others). ``D`` is autograd of the scalar w . phi per edge (three backward
passes for all edges at once: the edges are independent variables). Nothing here loops over atoms
or over neighbours: the cost per atom does not grow with the number of atoms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from acepy.kernels import product_basis, product_basis_adjoint, spherical_harmonics

from .component import BatchGraph
from .hessian_routes import SiteBlocks

# Bytes of work arrays per chunk of atoms (K, J, the blocks): bounds the memory of a Hessian call.
CHUNK_BYTES = 256 * 2**20
# Atoms per chunk at most. A few dozen atoms amortise the per-chunk Python and op overhead; larger
# chunks only make larger work arrays, and arrays past glibc's mmap threshold (at most 32 MB) are
# fresh mappings on every allocation: their page faults (kernel time) grew the cost per atom of a
# small potential 1.7x from 64 to 1000 atoms (AlTi-synthetic-linear: 0 faults per atom at 64 atoms,
# ~800 at 1000 with 388-atom chunks).
CHUNK_ATOMS = 64


@dataclass
class _Curvature:
    """What one chunk of atoms needs for blocks and products: per slot J (n, Z, M, 3), K (n, Z, Z),
    the per-edge D (n, M, 3, 3), the neighbour of each slot and the slot mask (n, M)."""

    centers: torch.Tensor
    neighbors: torch.Tensor
    mask: torch.Tensor
    jac: torch.Tensor
    k: torch.Tensor
    diag: torch.Tensor


class ProductCurvaturePlan:
    """The factor codes of an ACE's product basis regrouped by (species, rank) for second derivatives."""

    def __init__(self, plan, width: int):
        codes = plan.codes.cpu().numpy()
        coeff = plan.coeff
        offsets = plan.group_offsets.cpu().numpy()
        self.width = width
        self.groups: list[list[tuple]] = []
        for g in range(len(offsets) - 1):
            s0, s1 = int(offsets[g]), int(offsets[g + 1])
            ranks = (codes[s0:s1] >= 0).sum(axis=1)
            parts = []
            for r in sorted(set(int(x) for x in ranks)):
                if r < 2:
                    continue
                rows = s0 + np.nonzero(ranks == r)[0]
                c = codes[rows, :r]
                dev = plan.codes.device
                col = torch.as_tensor(c >> 2, device=dev)
                # dz/dIm A = +i for a plain factor, -i for a conjugated one: sigma = +1 / -1
                sigma = torch.as_tensor(np.where((c >> 1) & 1, -1.0, 1.0), dtype=coeff.dtype, device=dev)
                sign = torch.as_tensor(np.where(c & 1, -1.0, 1.0), dtype=coeff.dtype, device=dev)
                conj = torch.as_tensor(((c >> 1) & 1).astype(bool), device=dev)
                parts.append((r, col, conj, sigma, sign, coeff[torch.as_tensor(rows, device=dev)]))
            self.groups.append(parts)


def _product_curvature_into(out: torch.Tensor, cplan: ProductCurvaturePlan, a: torch.Tensor,
                            species: torch.Tensor, weights: torch.Tensor, kept_of: torch.Tensor, nk: int) -> None:
    """Add sum_p weights_p d2rho_p / dz dz, z = [Re A, Im A], to the per-atom K in ``out``.

    ``out (n, nk * nk + 1)``: each atom's K over the kept variables, row-major, plus one slot that
    collects the entries of variables that are identically zero (Im A of m = 0), dropped.
    ``kept_of (2H,)``: the kept index of each A variable, or -1.

    rho_p = sum_t c_tp Re(prod_k z_k), z_k = s_k A_col or s_k conj(A_col). For factors u != v of a
    term, d2 Re(prod) / d(x|y)_u d(x|y)_v = Re(Q d_u d_v) with Q = s_u s_v prod_{k != u, v} z_k,
    d = 1 for the real part x and i sigma for the imaginary part y (sigma = -1 when conjugated).
    Both orders (u, v) and (v, u) are written: K comes out symmetric without a transpose pass.
    """
    h = a.shape[1]
    trash = nk * nk

    def target(i, j):
        ki, kj = kept_of[i], kept_of[j]
        return torch.where((ki >= 0) & (kj >= 0), ki * nk + kj, trash)

    for g, parts in enumerate(cplan.groups):
        atoms = torch.nonzero(species == g).squeeze(1)
        if atoms.numel() == 0:
            continue
        rows = a[atoms]
        base = (atoms * (trash + 1))[:, None]
        for r, col, conj, sigma, sign, coeff in parts:
            w = weights[atoms] @ coeff.T  # (n_g, T)
            zs = rows[:, col]  # (n_g, T, r)
            zs = torch.where(conj, zs.conj(), zs) * sign
            for u in range(r):
                for v in range(u + 1, r):
                    others = [k for k in range(r) if k not in (u, v)]
                    q = w * (sign[:, u] * sign[:, v])
                    if others:
                        prod = zs[:, :, others[0]]
                        for k in others[1:]:
                            prod = prod * zs[:, :, k]
                        q = q * prod
                    else:
                        q = torch.complex(q, torch.zeros_like(q))
                    su, sv = sigma[:, u], sigma[:, v]
                    xu, xv, yu, yv = col[:, u], col[:, v], h + col[:, u], h + col[:, v]
                    xx, xy, yx, yy = q.real, -sv * q.imag, -su * q.imag, -su * sv * q.real
                    idx = torch.cat([target(xu, xv), target(xu, yv), target(yu, xv), target(yu, yv),
                                     target(xv, xu), target(yv, xu), target(xv, yu), target(yv, yu)])
                    vals = torch.cat([xx, xy, yx, yy, xx, xy, yx, yy], dim=1)
                    out.view(-1).index_add_(0, (base + idx[None, :]).reshape(-1), vals.reshape(-1))


def _curvature_plan(ace) -> ProductCurvaturePlan:
    cplan = getattr(ace, "_curvature_plan", None)
    if cplan is None:
        cplan = ProductCurvaturePlan(ace.plan, ace.nelements * ace.nradmax * ace.n_half)
        ace._curvature_plan = cplan
    return cplan


def _chunks(offsets: np.ndarray, n_z: int) -> Iterator[tuple[int, int]]:
    """Atom ranges of at most :data:`CHUNK_ATOMS` atoms whose work arrays (K and the curvature of
    the products, J per slot twice, the blocks) fit :data:`CHUNK_BYTES`."""
    n = offsets.shape[0] - 1
    counts = np.diff(offsets)
    a0 = 0
    while a0 < n:
        a1, m = a0, 0
        while a1 < n:
            m_new = max(m, int(counts[a1]))
            per_atom = 8 * (2 * n_z * n_z + 3 * 3 * m_new * n_z + 9 * m_new * m_new)
            if a1 > a0 and ((a1 - a0 + 1) * per_atom > CHUNK_BYTES or a1 - a0 >= CHUNK_ATOMS):
                break
            a1, m = a1 + 1, m_new
        yield a0, a1
        a0 = a1


class _Layout:
    """Where each part of z = [Re A, Im A, A1, rho_core, f_zbl] sits, and which variables matter
    (``keep``): the columns of A that some product term reads (the others have no curvature and
    no gradient: a basis with fewer functions at high n and l leaves many unread), without Im A of
    m = 0 (identically zero, Y_l0 being real)."""

    def __init__(self, ace):
        nel, nrad, nh, nb = ace.nelements, ace.nradmax, ace.n_half, ace.nradbase
        self.width = nel * nrad * nh if (nrad > 0 and ace.plan.n_terms > 0) else 0
        self.zbl = ace.inner_cutoff_type == "zbl"
        w = self.width
        self.a1 = slice(2 * w, 2 * w + nel * nb)
        self.core = 2 * w + nel * nb
        self.n_z = self.core + 1 + int(self.zbl)
        keep = np.ones(self.n_z, dtype=bool)
        if w:
            m_of = np.array([m for l in range(ace.lmax + 1) for m in range(l + 1)])
            im_m0 = np.tile(m_of == 0, nel * nrad)
            codes = ace.plan.codes.cpu().numpy()
            read = np.zeros(w, dtype=bool)
            read[np.unique(codes[codes >= 0] >> 2)] = True
            keep[:w] = read
            keep[w:2 * w] = read & ~im_m0
        self.keep = torch.as_tensor(np.nonzero(keep)[0], device=ace.device)
        # A1, rho_core and f_zbl are always kept, in this order, after the kept columns of A
        # the kept columns of Re A and Im A: (species block, index in the block, its (l, m) index)
        size = max(1, nrad * nh)
        dev = ace.device
        self.re, self.im = ((self._species(nel, torch.as_tensor(c // size, device=dev)),
                             torch.as_tensor(c % size, device=dev), torch.as_tensor(c % size % nh, device=dev))
                            for c in (np.nonzero(keep[:w])[0], np.nonzero(keep[w:2 * w])[0]))
        self.lm_of = torch.as_tensor(np.tile(np.arange(nh), nrad), device=dev)  # index in a block -> (l, m)
        self.a1_blk = self._species(nel, torch.arange(nel, device=dev).repeat_interleave(nb))
        kept_of = np.full(self.n_z, -1)
        kept_of[keep] = np.arange(int(keep.sum()))
        self.kept_of = torch.as_tensor(kept_of[:2 * w], device=ace.device)  # A variables -> kept index
        self.l_of = torch.as_tensor([l for l in range(ace.lmax + 1) for _ in range(l + 1)], device=ace.device)

    @staticmethod
    def _species(nel: int, blk: torch.Tensor):
        return None if nel == 1 else blk


def site_curvatures(ace, inputs: BatchGraph, backend: str) -> Iterator[_Curvature]:
    """J, K and D of every atom of ``inputs``, chunk by chunk (exact; ``backend`` runs the forward
    kernels: product basis and its adjoint)."""
    edges_all = ace._prepare(inputs)
    offsets = edges_all.offsets.cpu().numpy()
    species = inputs.species
    nel, nrad, nh, nb = ace.nelements, ace.nradmax, ace.n_half, ace.nradbase
    lay = _Layout(ace)
    width, n_z, p_max = lay.width, lay.n_z, ace.max_ndensity
    cplan = _curvature_plan(ace) if width else None
    for a0, a1 in _chunks(offsets, int(lay.keep.numel())):
        e0, e1 = int(offsets[a0]), int(offsets[a1])
        edges = edges_all.slice(a0, a1, e0, e1)
        sp = species[a0:a1]
        n, n_e = a1 - a0, e1 - e0
        centers, mu_j = edges.centers, edges.mu_j
        vec = edges.vectors.detach().requires_grad_(True)
        with torch.enable_grad():  # the values stay differentiable for D below
            r = torch.linalg.vector_norm(vec, dim=1)
            rad = ace.radial.evaluate(r, edges.mu_i, mu_j, backend="torch", check=False)
            rhat = (vec / r[:, None]).detach()
            if width:
                y_re, y_im, dy_re, dy_im = spherical_harmonics(vec, ace.lmax, gradients=True, backend="torch")
            if lay.zbl:
                f, df_dr, zedge = ace._zbl_switch(n, _with_r(edges, r))
                has = zedge >= 0
                fz = r.new_zeros(n_e).index_put((zedge[has],), f[has])
        # ---- per-edge features phi, summed per atom, and the kept columns of J = dphi/dr --------
        # An edge's features sit in the block of z of its neighbour species; only the kept
        # columns of J are formed (AlTi-synthetic-linear keeps 105 of 561).
        sums, jacs = [], []
        if width:
            rnl = rad.rnl.detach()[:, :, lay.l_of].reshape(n_e, nrad * nh)  # (E, S)
            drnl = rad.drnl.detach()[:, :, lay.l_of].reshape(n_e, nrad * nh)
            parts = ((y_re.detach(), dy_re.detach(), lay.re), (y_im.detach(), dy_im.detach(), lay.im))
            for y, dy, (blk, loc, lm) in parts:
                sums.append(_species_sum(rnl * y[:, lay.lm_of], centers, mu_j, n, nel))
                j = (drnl[:, loc] * y[:, lm])[..., None] * rhat[:, None, :] + rnl[:, loc, None] * dy[:, lm, :]
                jacs.append(_own_species(j, blk, mu_j))
        sums.append(_species_sum(rad.gk.detach(), centers, mu_j, n, nel))
        jacs.append(_own_species((rad.dgk.detach()[..., None] * rhat[:, None, :]).repeat(1, nel, 1), lay.a1_blk, mu_j))
        sums.append(r.new_zeros((n, 1)).index_add(0, centers, rad.cr.detach()[:, None]))
        jacs.append((rad.dcr.detach()[:, None] * rhat)[:, None, :])
        if lay.zbl:
            dfz = r.new_zeros(n_e).index_put((zedge[has],), df_dr.detach()[has])
            sums.append(r.new_zeros((n, 1)).index_add(0, centers, fz.detach()[:, None]))
            jacs.append((dfz[:, None] * rhat)[:, None, :])
        jac = torch.cat(jacs, dim=1)  # (E, Z', 3): the kept columns, in the order of lay.keep
        # ---- per-atom sums and the outer function G --------------------------------------------
        zsum = torch.cat(sums, dim=1)  # (n, Z)
        if lay.zbl:  # atoms without neighbours have f_zbl = 1 (see ACE._zbl_switch)
            zsum[:, -1] = torch.where(torch.bincount(centers, minlength=n) > 0, zsum[:, -1], 1.0)
        core = zsum[:, lay.core]
        f_zbl = zsum[:, -1] if lay.zbl else None
        u = zsum.new_zeros((n, p_max + 2, n_z))  # d(rho, core, f_zbl)/dz
        rho = torch.einsum("ik,ikp->ip", zsum[:, lay.a1], ace._rank1[sp])
        u[:, :p_max, lay.a1] = ace._rank1[sp].transpose(1, 2)
        if width:
            a_re = zsum[:, :width].contiguous()
            a_im = zsum[:, width:2 * width].contiguous()
            rho = rho + product_basis(a_re, a_im, sp, ace.plan, backend=backend, check=False)
            for p in range(p_max):
                onehot = zsum.new_zeros((n, p_max))
                onehot[:, p] = 1.0
                g_re, g_im = product_basis_adjoint(a_re, a_im, sp, ace.plan, onehot, backend=backend, check=False)
                u[:, p, :width], u[:, p, width:2 * width] = g_re, g_im
        u[:, p_max, lay.core] = 1.0
        if lay.zbl:
            u[:, p_max + 1, -1] = 1.0
        d1, d2 = _outer_derivatives(ace, sp, rho, core, f_zbl)
        # K over the kept variables: the products' curvature scattered in place, then U^T Phi'' U
        nk = int(lay.keep.numel())
        flat = zsum.new_zeros((n, nk * nk + 1))
        if width:
            _product_curvature_into(flat, cplan, torch.complex(a_re, a_im), sp, d1[:, :p_max], lay.kept_of, nk)
        k = flat.as_strided((n, nk, nk), (nk * nk + 1, nk, 1))
        if bool((d2 != 0).any()):
            u_k = u[:, :, lay.keep]
            k = torch.baddbmm(k, u_k.transpose(1, 2), torch.bmm(d2, u_k))
        w = torch.einsum("iq,iqz->iz", d1, u)  # dG/dz
        # ---- D: the Hessian of w_i . phi(r) per edge, contracted before differentiating ----------
        with torch.enable_grad():
            s = (w[centers, lay.core] * rad.cr).sum()
            s = s + (w[:, lay.a1].reshape(n, nel, nb)[centers, mu_j] * rad.gk).sum()
            if width:
                w_re = w[:, :width].reshape(n, nel, nrad, nh)[centers, mu_j]
                w_im = w[:, width:2 * width].reshape(n, nel, nrad, nh)[centers, mu_j]
                q = w_re * y_re[:, None, :] + w_im * y_im[:, None, :]  # (E, nrad, nh)
                q = q.new_zeros((n_e, nrad, ace.lmax + 1)).index_add(2, lay.l_of, q)
                s = s + (q * rad.rnl).sum()
            if lay.zbl:
                s = s + (w[centers, -1] * fz).sum()
            diag = _edge_hessians(s, vec)
        yield _padded(a0, n, edges, jac, k, diag)


def _edge_hessians(s: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """d2 s / dr_e dr_e (E, 3, 3) of a scalar that is a sum of per-edge terms (three backward passes)."""
    if not s.requires_grad:
        return vec.new_zeros((vec.shape[0], 3, 3))
    (g,) = torch.autograd.grad(s, vec, create_graph=True)
    if not g.requires_grad:
        return vec.new_zeros((vec.shape[0], 3, 3))
    rows = [torch.autograd.grad(g[:, a].sum(), vec, retain_graph=a < 2, allow_unused=True)[0] for a in range(3)]
    rows = [torch.zeros_like(vec) if x is None else x for x in rows]
    return torch.stack(rows, dim=1).detach()


def _with_r(edges, r):
    """The chunk's edges with differentiable distances (for the zbl switch)."""
    from dataclasses import replace

    return replace(edges, r=r)


def _species_sum(values: torch.Tensor, centers: torch.Tensor, mu_j: torch.Tensor, n: int, nel: int) -> torch.Tensor:
    """Per-edge features ``(E, S)`` summed per centre into the block of the edge's neighbour
    species: ``(n, nel * S)``."""
    out = values.new_zeros((n * nel, values.shape[1]))
    return out.index_add_(0, centers * nel + mu_j, values).reshape(n, nel * values.shape[1])


def _own_species(jac: torch.Tensor, blk: torch.Tensor | None, mu_j: torch.Tensor) -> torch.Tensor:
    """Per-edge Jacobian columns ``(E, K, 3)`` of the species blocks ``blk (K,)``: zero where the
    block is not the edge's neighbour species (one species: every column is its own)."""
    if blk is None:
        return jac
    return torch.where((blk[None, :] == mu_j[:, None])[..., None], jac, 0.0)


def _outer_derivatives(ace, species, rho, core, f_zbl):
    """dPhi and d2Phi of E_i = Phi(rho, rho_core, f_zbl) per atom: ``(n, P+2)``, ``(n, P+2, P+2)``."""
    p = rho.shape[1]
    x = torch.cat([rho, core[:, None], (f_zbl if f_zbl is not None else torch.ones_like(core))[:, None]], dim=1)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        zeros_a1 = x.new_zeros((x.shape[0], ace.nelements * ace.nradbase))
        f = x[:, p + 1] if f_zbl is not None else None
        e = ace._site_energies_from(species, x[:, :p], zeros_a1, x[:, p], f, derivatives=False)[0]
        (d1,) = torch.autograd.grad(e.sum(), x, create_graph=True)
        rows = []
        for q in range(p + 2):
            if d1.requires_grad:
                (h,) = torch.autograd.grad(d1[:, q].sum(), x, retain_graph=True, allow_unused=True)
            else:
                h = None
            rows.append(torch.zeros_like(x) if h is None else h)
    return d1.detach(), torch.stack(rows, dim=1).detach()


def _padded(a0: int, n: int, edges, jac, k, diag) -> _Curvature:
    """Per-edge J and D regrouped into neighbour slots by centre: J as (n, Z, M, 3) (so that
    (n, Z, 3M) is a view), D as (n, M, 3, 3)."""
    offsets = edges.offsets
    counts = offsets[1:] - offsets[:-1]
    m = int(counts.max()) if n else 0
    slot = torch.arange(edges.centers.shape[0], device=jac.device) - offsets[edges.centers]
    mask = torch.zeros((n, m), dtype=torch.bool, device=jac.device)
    mask[edges.centers, slot] = True
    centers = torch.arange(a0, a0 + n, device=jac.device)
    neighbors = centers[:, None].expand(n, m).clone()
    neighbors[edges.centers, slot] = edges.neighbors
    jp = jac.new_zeros((n, jac.shape[1], m, 3))
    jp[edges.centers, :, slot, :] = jac
    dp = diag.new_zeros((n, m, 3, 3))
    dp[edges.centers, slot] = diag
    return _Curvature(centers, neighbors, mask, jp, k, dp)


def ace_site_blocks(ace, inputs: BatchGraph, backend: str) -> Iterator[SiteBlocks]:
    """The site Hessian blocks of :mod:`this module's <acepy.models.ace_hessian>` formula, chunk by chunk."""
    for c in site_curvatures(ace, inputs, backend):
        n, m = c.mask.shape
        if m == 0:
            continue
        jf = c.jac.reshape(n, c.k.shape[1], 3 * m)  # (n, Z, 3M), column 3 s + a
        blocks = jf.transpose(1, 2) @ (c.k @ jf)  # (n, 3M, 3M)
        blocks = blocks.reshape(n, m, 3, m, 3)
        idx = torch.arange(m, device=blocks.device)
        blocks[:, idx, :, idx, :] += c.diag.transpose(0, 1)
        yield SiteBlocks(c.centers, c.neighbors, blocks)


def ace_hvp(ace, inputs: BatchGraph, vectors: torch.Tensor, backend: str) -> torch.Tensor:
    """H v for ``vectors (K, N, 3)`` without forming any Hessian block: per site J^T K (J u) + D u
    with u the edge displacements v_j - v_i; returns ``(K, N, 3)``."""
    out = torch.zeros_like(vectors)
    for c in site_curvatures(ace, inputs, backend):
        n, m = c.mask.shape
        if m == 0:
            continue
        u = vectors[:, c.neighbors] - vectors[:, c.centers][:, :, None, :]  # (K, n, M, 3)
        ju = torch.einsum("izma,kima->kiz", c.jac, u)
        kju = torch.einsum("izy,kiy->kiz", c.k, ju)
        y = torch.einsum("izma,kiz->kima", c.jac, kju) + torch.einsum("imab,kimb->kima", c.diag, u)
        y = y * c.mask[None, :, :, None]
        kk = vectors.shape[0]
        out.index_add_(1, c.neighbors.reshape(-1), y.reshape(kk, -1, 3))
        out.index_add_(1, c.centers, -y.sum(2))
    return out
