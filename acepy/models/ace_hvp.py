"""The matrix-free ACE Hessian-vector product: forward mode (tangents) of the fast path.

H v is the tangent of the forces along v: with the edge gradients g_e = dE/dr_e of the fast path
(:meth:`ACE.energies_and_edge_grads`), H v = sum_e dg_e (scattered as the forces are: plus at the
neighbour, minus at the centre), dg_e = d/de g_e(r + e u) with u_e = v_j - v_i. Each step of the
fast path gets its tangent, none forms a Hessian block (nor J or K of :mod:`ace_hessian`):

1. the atomic base and its tangent dA = sum_e R' dr Y + R grad Y . u, the rank-1 base, rho_core
   and the zbl switch with theirs (``kernels/numba_cpu/ace_tangent_base.py``);
2. the densities' tangent (product-basis jvp, ``ace_tangent_product.py``), then the tangents of
   dE/drho, dE/drho_core, dE/df_zbl from the closed-form second derivatives of the outer function
   (``ace_tangent_outer.py``);
3. dE/dA and its tangent in one pass of the product adjoint on dual numbers;
4. the tangent of the edge gradients: the harmonics' second derivatives analytically (one more
   line of their recursion), the radial ones from the spline tables' second derivative (the same
   piecewise cubic the exact route differentiates), the radial-only terms (rank 1, core
   repulsion, zbl switch) in closed form here.

Exact to rounding, like the per-site route; it costs a few force calls per vector. The route is
chosen by the caller's setting, never silently between *Hessian* methods: :func:`applies` takes
it on the Numba backend (CPU tensors) for at most :data:`MAX_VECTORS` vectors, where it is the
cheaper; the per-site route (J and K once, any number of vectors) serves more vectors and the
other backends (torch reference, Triton, CUDA tensors). Computed in float64 (cast back).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from acepy.kernels import spline_eval
from acepy.kernels.numba_cpu.ace_tangent_base import tangent_atomic_base, tangent_edge_grads
from acepy.kernels.numba_cpu.ace_tangent_outer import outer_derivatives
from acepy.kernels.numba_cpu.ace_tangent_product import dual_adjoint, product_jvp
from acepy.kernels.numba_cpu.product_basis import product_basis as numba_product_basis

# Vectors per call up to which the tangent route runs (more: the per-site route, which forms each
# site's curvature once for all vectors). Measured (1 thread, CPU time, rattled fcc): the tangent
# route costs 2-3 force calls for one vector and about one more per vector; the per-site route
# 20-50 force calls whatever the count. They cross between 24 (AlTi, 1000 atoms: x16 15.6, x32 37,
# per-site 27 force calls) and 55 vectors (256 atoms): 16 is on the cheaper side everywhere measured.
MAX_VECTORS = 16
# Edges per chunk (bounds the per-edge radial arrays: three orders of [g_k | R_nl | core]).
EDGE_CHUNK = 1 << 15


def applies(ace, vectors: torch.Tensor, backend: str | None) -> bool:
    """Whether :meth:`ACE.hessian_vector_products` takes this route (see the module docstring)."""
    return (backend == "numba" and vectors.device.type == "cpu" and ace.device.type == "cpu"
            and vectors.shape[0] <= MAX_VECTORS)


def ace_hvp_tangent(ace, inputs, vectors: torch.Tensor) -> torch.Tensor:
    """H v of the ACE energy for ``vectors (K, N, 3)``: ``(K, N, 3)`` (forward mode, no Hessian)."""
    from .ace import _chunk_bounds

    edges_all = ace._prepare(inputs)
    offsets = edges_all.offsets.cpu().numpy()
    v64 = vectors.detach().to(torch.float64)
    out = torch.zeros_like(v64)
    n_edges = int(offsets[-1])
    bounds = [0, offsets.shape[0] - 1] if n_edges <= EDGE_CHUNK else _chunk_bounds(offsets, EDGE_CHUNK)
    for a0, a1 in zip(bounds[:-1], bounds[1:]):
        e0, e1 = int(offsets[a0]), int(offsets[a1])
        if e1 > e0:
            _chunk(ace, inputs.species[a0:a1], edges_all.slice(a0, a1, e0, e1), a0, v64, out)
    return out.to(vectors.dtype)


def _radial_orders(ace, r, mu_i, mu_j):
    """``[(gk, rnl, cr), (d/dr ...), (d2/dr2 ...)]`` in float64: spline tables by their kernel
    (order 2: the second derivative of the piecewise cubic), analytic kinds (SHIPs) by forward-mode
    autograd of their torch formulas (each edge's values depend on its own r only: one jvp with a
    tangent of ones gives every edge's second derivative)."""
    rb = ace.radial
    e, nb, nrad, n_l = r.shape[0], ace.nradbase, ace.nradmax, ace.lmax + 1
    if rb.kind in ("pace", "spline"):
        t = rb._table_index(mu_i, mu_j)
        table = rb.pace_table if rb.kind == "pace" else rb.gk
        orders = spline_eval(table, r.to(table.coeffs.dtype), t, order=2, backend="numba", check=False)
        out = []
        for v in orders:
            v = v.double()
            if rb.kind == "pace":
                nf = nrad * n_l
                out.append((v[:, :nb], v[:, nb:nb + nf].reshape(e, nrad, n_l), v[:, nb + nf]))
            else:  # ACE.jl splines: R_nl = g_n for every l, no core repulsion
                out.append((v, v[:, :nrad, None].expand(e, nrad, n_l), v.new_zeros(e)))
        return out

    def first(rr):
        rad = rb.evaluate(rr, mu_i, mu_j, backend="torch", check=False)
        return rad.dgk, rad.drnl, rad.dcr

    rad = rb.evaluate(r, mu_i, mu_j, backend="torch", check=False)
    d1, d2 = torch.func.jvp(first, (r,), (torch.ones_like(r),))
    return [tuple(x.detach().double() for x in o) for o in ((rad.gk, rad.rnl, rad.cr), d1, d2)]


def _zbl_second(ace, edges, r, zedge):
    """d2 f_zbl / dr2 at each atom's zbl edge (0 without one): the switch is PACE's quintic in
    t = delta - (r - (r_in - delta)) on (0, delta), so d2f/dr2 = d2f/dt2 = 15 (x^3 - x) / delta^2
    with x = 1 - 2 t / delta (ACE_SPEC.md 2.12; ``ace_tangent_outer.py``)."""
    has = zedge >= 0
    ze = torch.where(has, zedge, torch.zeros_like(zedge))
    mi, mj = edges.mu_i[ze], edges.mu_j[ze]
    delta = ace._d_in[mi, mj].double()
    t = delta - (r[ze] - (ace._r_in[mi, mj].double() - delta))
    mid = has & (t > 0) & (t < delta)
    d = torch.where(mid, delta, torch.ones_like(delta))
    x = 1.0 - 2.0 * torch.where(mid, t, 0.5 * d) / d
    return torch.where(mid, 15.0 * (x ** 3 - x) / (d * d), torch.zeros_like(x))


def _chunk(ace, species, edges, a0: int, v: torch.Tensor, out: torch.Tensor) -> None:
    """Adds the chunk's H v to ``out (K, N, 3)`` (float64)."""
    n, n_k = species.shape[0], v.shape[0]
    nel, nb, nrad, nh, p_max = ace.nelements, ace.nradbase, ace.nradmax, ace.n_half, ace.max_ndensity
    centers, mu_j = edges.centers, edges.mu_j
    centers_global = centers + a0
    vec = edges.vectors.detach().double().contiguous()
    r = torch.linalg.vector_norm(vec, dim=1)
    rhat = vec / r[:, None]
    u = (v[:, edges.neighbors] - v[:, centers_global]).contiguous()  # (K, E, 3)
    dr = (u * rhat).sum(-1)  # (K, E)
    (gk, rnl, cr), (dgk, drnl, dcr), (d2gk, d2rnl, d2cr) = _radial_orders(ace, edges.r, edges.mu_i, mu_j)
    # ---- the radial-only sums and their tangents: A1, rho_core, the zbl switch -------------------
    rows = centers * nel + mu_j
    a1 = gk.new_zeros((n * nel, nb)).index_add(0, rows, gk).reshape(n, nel * nb)
    core = cr.new_zeros(n).index_add(0, centers, cr)
    da1 = gk.new_zeros((n_k, n * nel, nb)).index_add(1, rows, dgk[None] * dr[..., None]).reshape(n_k, n, nel * nb)
    dcore = cr.new_zeros((n_k, n)).index_add(1, centers, dcr[None] * dr)
    zbl = ace.inner_cutoff_type == "zbl"
    f_zbl = None
    dfz = cr.new_zeros((n_k, n))
    if zbl:
        f_zbl, df_zbl, zedge = ace._zbl_switch(n, replace(edges, r=r))
        f_zbl, df_zbl = f_zbl.double(), df_zbl.double()
        has = zedge >= 0
        ze = torch.where(has, zedge, torch.zeros_like(zedge))
        d2f_zbl = _zbl_second(ace, edges, r, zedge)
        dfz = torch.where(has, df_zbl * dr[:, ze], 0.0)
    # ---- the atomic base, the densities and their tangents ---------------------------------------
    sp = species.cpu().numpy()
    width = nel * nrad * nh if (nrad > 0 and ace.plan.n_terms > 0) else 0
    offsets = edges.offsets.cpu().numpy()
    mu_j_np = mu_j.cpu().numpy()
    if width:
        rnl_np, drnl_np = np.ascontiguousarray(rnl.numpy()), np.ascontiguousarray(drnl.numpy())
        a_re, a_im, da_re, da_im = tangent_atomic_base(rnl_np, drnl_np, vec.numpy(), u.numpy(), offsets, mu_j_np, nel)
        a_re, a_im = a_re.reshape(n, width), a_im.reshape(n, width)
        da_re, da_im = da_re.reshape(n_k, n, width), da_im.reshape(n_k, n, width)
        rho_hi = numba_product_basis(torch.from_numpy(a_re), torch.from_numpy(a_im), species.cpu(), ace.plan).numpy()
        drho_hi = product_jvp(a_re, a_im, da_re, da_im, sp, ace.plan)
    else:
        rho_hi, drho_hi = np.zeros((n, p_max)), np.zeros((n_k, n, p_max))
    rank1 = ace._rank1_host.astype(np.float64)
    d1, d2 = outer_derivatives(rho_hi, a1.numpy(), rank1, core.numpy(), sp, ace._embedding_tables,
                               None if f_zbl is None else f_zbl.numpy())
    d1, d2, r1 = torch.from_numpy(d1), torch.from_numpy(d2), torch.from_numpy(rank1)[species]
    drho = torch.from_numpy(drho_hi) + torch.einsum("kia,iap->kip", da1, r1)
    dx = torch.cat([drho, dcore[..., None], dfz[..., None]], dim=2)  # (K, n, P + 2)
    dd1 = torch.einsum("ipq,kiq->kip", d2, dx)
    w_rho, d_core, d_f = d1[:, :p_max], d1[:, p_max], d1[:, p_max + 1]
    dw_rho, dd_core, dd_f = dd1[..., :p_max], dd1[..., p_max], dd1[..., p_max + 1]
    # ---- the tangent of the edge gradients ------------------------------------------------------
    d_a1 = torch.einsum("ip,iap->ia", w_rho, r1).reshape(n * nel, nb)[rows]  # (E, nb)
    dd_a1 = torch.einsum("kip,iap->kia", dw_rho, r1).reshape(n_k, n * nel, nb)[:, rows]
    # the radial-only part of g_e is s'(r) r_hat, s = dE/dA1 . g + dE/dcore cr (+ dE/df f_zbl)
    s1 = (d_a1 * dgk).sum(1) + d_core[centers] * dcr
    s2 = (d_a1 * d2gk).sum(1) + d_core[centers] * d2cr
    ds1 = (dd_a1 * dgk).sum(-1) + dd_core[:, centers] * dcr
    if zbl:
        s1 = s1.index_add(0, ze, torch.where(has, d_f * df_zbl, 0.0))
        s2 = s2.index_add(0, ze, torch.where(has, d_f * d2f_zbl, 0.0))
        ds1 = ds1.index_add(1, ze, torch.where(has, dd_f * df_zbl, 0.0))
    ut = (u - rhat * dr[..., None]) / r[:, None]  # the tangent of r_hat
    dg = (ds1 + s2 * dr)[..., None] * rhat + s1[:, None] * ut
    if width:
        ga_re, ga_im, dga_re, dga_im = dual_adjoint(a_re, a_im, da_re, da_im, sp, ace.plan, w_rho.numpy(),
                                                    np.ascontiguousarray(dw_rho.numpy()))
        shape = (n, nel, nrad, nh)
        dg += torch.from_numpy(tangent_edge_grads(
            ga_re.reshape(shape), ga_im.reshape(shape), dga_re.reshape((n_k,) + shape),
            dga_im.reshape((n_k,) + shape), offsets, mu_j_np, rnl_np, drnl_np,
            np.ascontiguousarray(d2rnl.numpy()), vec.numpy(), u.numpy()))
    out.index_add_(1, edges.neighbors, dg)
    out.index_add_(1, centers_global, -dg)
