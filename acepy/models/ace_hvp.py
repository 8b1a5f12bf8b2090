"""The matrix-free ACE Hessian-vector product: forward mode (tangents) of the fast path.

H v is the tangent of the forces along v: with the edge gradients g_e = dE/dr_e of the fast path
(:meth:`ACE.energies_and_edge_grads`), H v = sum_e dg_e (scattered as the forces are: plus at the
neighbour, minus at the centre), dg_e = d/de g_e(r + e u) with u_e = v_j - v_i. Each step of the
fast path gets its tangent, none forms a Hessian block (nor J or K of :mod:`ace_hessian`):

1. the radial functions and their first two d/dr by column (the spline tables' own piecewise
   cubic, as the exact route differentiates it); the atomic base and its tangent dA = sum_e R' dr Y
   + R grad Y . u, with the rank-1 base and rho_core and theirs in the same pass over the edges
   (``kernels/numba_cpu/ace_tangent_base.py``); the zbl switch's edge here;
2. the densities and their tangent (the product-basis jvp on the prefix plan,
   ``ace_tangent_product.py``), then the tangents of dE/drho, dE/drho_core, dE/df_zbl from the
   closed-form second derivatives of the outer function (``ace_tangent_outer.py``);
3. dE/dA and its tangent: the product adjoint's passes on tangent arguments;
4. the tangent of the edge gradients, the radial-only terms (rank 1, core repulsion, zbl switch)
   included, scattered into H v (``ace_tangent_edges.py``; the harmonics' second derivatives
   analytically, by one more line of their recursion).

Only per-atom arrays pass between the kernels in numpy (a few small einsums over densities);
nothing per edge is made in torch.

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
from acepy.kernels.numba_cpu.ace_tangent_base import RadialColumns, tangent_atomic_base
from acepy.kernels.numba_cpu.ace_tangent_edges import tangent_edge_hvp
from acepy.kernels.numba_cpu.ace_tangent_outer import outer_derivatives
from acepy.kernels.numba_cpu.ace_tangent_product import dual_adjoint, product_jvp

# Vectors per call up to which the tangent route runs (more: the per-site route, which forms each
# site's curvature once for all vectors). Measured (1 thread, CPU time, rattled fcc, bundled Cu-shaped
# and AlTi, 64 and 256 atoms, in force calls): tangent x16 11-17, x32 25-30, x48 33-45; per-site
# 37-61 whatever the count. They cross at about 40 vectors (AlTi, 64 atoms: x48 44.6 against 36.7);
# 32 is on the cheaper side everywhere measured.
MAX_VECTORS = 32
# Edges per chunk: bounds the per-edge arrays (three orders of the radial columns [g_k | R_nl | core],
# the tangents of the edge gradients). Measured (1 thread, Cu-shaped 256 atoms, 46 columns): the
# radial step took 8 ms a call with 8192 edges a chunk and 24 ms with 32768 (its 36 MB of fresh
# arrays a chunk, page faults included), the rest alike.
EDGE_CHUNK = 1 << 13


def applies(ace, vectors: torch.Tensor, backend: str | None) -> bool:
    """Whether :meth:`ACE.hessian_vector_products` takes this route (see the module docstring)."""
    return (backend == "numba" and vectors.device.type == "cpu" and ace.device.type == "cpu"
            and vectors.shape[0] <= MAX_VECTORS)


def ace_hvp_tangent(ace, inputs, vectors: torch.Tensor) -> torch.Tensor:
    """H v of the ACE energy for ``vectors (K, N, 3)``: ``(K, N, 3)`` (forward mode, no Hessian)."""
    from .ace import _chunk_bounds

    edges_all = ace._prepare(inputs)
    offsets = edges_all.offsets.cpu().numpy()
    v64 = vectors.detach().to(torch.float64).contiguous()
    out = torch.zeros_like(v64)
    n_edges = int(offsets[-1])
    bounds = [0, offsets.shape[0] - 1] if n_edges <= EDGE_CHUNK else _chunk_bounds(offsets, EDGE_CHUNK)
    for a0, a1 in zip(bounds[:-1], bounds[1:]):
        e0, e1 = int(offsets[a0]), int(offsets[a1])
        if e1 > e0:
            _chunk(ace, inputs.species[a0:a1], edges_all.slice(a0, a1, e0, e1), a0, v64, out)
    return out.to(vectors.dtype)


def _radial_columns(ace, r, mu_i, mu_j) -> RadialColumns:
    """The radial functions of the edges and their first two d/dr, by column, in float64: spline
    tables by their kernel (order 2: the second derivative of the piecewise cubic) read in place
    (the fused kernel's columns, :meth:`ACE._fused_layout`); analytic kinds (SHIPs) by forward-mode
    autograd of their torch formulas (each edge's values depend on its own r only: one jvp with a
    tangent of ones gives every edge's second derivative), laid out as PACE's ``[g_k | R_nl | core]``."""
    rb = ace.radial
    nb, nrad, n_l = ace.nradbase, ace.nradmax, ace.lmax + 1
    if ace._fused is not None:
        t = rb._table_index(mu_i, mu_j)
        table, rnl_col, core_col, _ = ace._fused
        orders = spline_eval(table, r.to(table.coeffs.dtype), t, order=2, backend="numba", check=False)
        return RadialColumns(tuple(o.double().numpy() for o in orders), rnl_col, nb, core_col)

    def first(rr):
        rad = rb.evaluate(rr, mu_i, mu_j, backend="torch", check=False)
        return rad.dgk, rad.drnl, rad.dcr

    rad = rb.evaluate(r, mu_i, mu_j, backend="torch", check=False)
    d1, d2 = torch.func.jvp(first, (r,), (torch.ones_like(r),))
    e = r.shape[0]
    cols = tuple(torch.cat([gk, rnl.reshape(e, nrad * n_l), cr[:, None]], dim=1).detach().double().contiguous().numpy()
                 for gk, rnl, cr in ((rad.gk, rad.rnl, rad.cr), d1, d2))
    n, l = np.meshgrid(np.arange(nrad), np.arange(n_l), indexing="ij")
    return RadialColumns(cols, np.ascontiguousarray(nb + n * n_l + l, dtype=np.int64), nb, nb + nrad * n_l)


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
    nel, p_max = ace.nelements, ace.max_ndensity
    vec = edges.vectors.detach().double().contiguous()
    v_np, vec_np = v.numpy(), vec.numpy()
    offsets, neighbors = edges.offsets.cpu().numpy(), edges.neighbors.cpu().numpy()
    mu_j, sp = edges.mu_j.cpu().numpy(), species.cpu().numpy()
    radial = _radial_columns(ace, edges.r, edges.mu_i, edges.mu_j)
    # ---- the atomic base, the radial-only sums (A1, rho_core) and their tangents -----------------
    with_base = ace.nradmax > 0 and ace.plan.n_terms > 0
    a_re, a_im, da_re, da_im, a1, core, da1, dcore = tangent_atomic_base(radial, vec_np, v_np, neighbors, a0, offsets,
                                                                         mu_j, nel, with_base)
    # ---- the zbl switch (one edge per atom) and its tangent ---------------------------------------
    f_zbl = None
    dfz = np.zeros((n_k, n))
    if ace.inner_cutoff_type == "zbl":
        r = torch.linalg.vector_norm(vec, dim=1)
        f_zbl, df_zbl, zedge = ace._zbl_switch(n, replace(edges, r=r))
        f_zbl, df_zbl = f_zbl.double(), df_zbl.double()
        has = zedge >= 0
        ze = torch.where(has, zedge, torch.zeros_like(zedge))
        rhat = vec[ze] / r[ze, None]
        u = v[:, edges.neighbors[ze]] - v[:, a0 + torch.arange(n)]  # (K, n, 3): the zbl edges' moves
        dfz_t = torch.where(has, df_zbl * (u * rhat).sum(-1), 0.0)
        dfz = dfz_t.numpy()
    # ---- the densities, the outer function's derivatives, their tangents --------------------------
    if with_base:
        shape = (n, nel * ace.nradmax * ace.n_half)
        a_re, a_im = a_re.reshape(shape), a_im.reshape(shape)
        da_re, da_im = da_re.reshape((n_k,) + shape), da_im.reshape((n_k,) + shape)
        rho_hi, drho_hi = product_jvp(a_re, a_im, da_re, da_im, sp, ace.plan)
    else:
        rho_hi, drho_hi = np.zeros((n, p_max)), np.zeros((n_k, n, p_max))
    rank1 = ace._rank1_host.astype(np.float64)
    d1, d2 = outer_derivatives(rho_hi, a1, rank1, core, sp, ace._embedding_tables,
                               None if f_zbl is None else f_zbl.numpy())
    r1 = rank1[sp]  # (n, S * nb, P)
    drho = drho_hi + np.einsum("kia,iap->kip", da1, r1)
    dx = np.concatenate([drho, dcore[..., None], dfz[..., None]], axis=2)  # (K, n, P + 2)
    dd1 = np.einsum("ipq,kiq->kip", d2, dx)
    w_rho, dw_rho = np.ascontiguousarray(d1[:, :p_max]), np.ascontiguousarray(dd1[..., :p_max])
    d_a1 = np.einsum("ip,iap->ia", w_rho, r1)
    dd_a1 = np.einsum("kip,iap->kia", dw_rho, r1)
    zbl = (np.full(n, -1, dtype=np.int64), np.zeros(n), np.zeros(n), np.zeros((n_k, n)))
    if f_zbl is not None:
        d_f, dd_f = torch.from_numpy(d1[:, p_max + 1]), torch.from_numpy(dd1[..., p_max + 1])
        zbl = (zedge.numpy(), torch.where(has, d_f * df_zbl, 0.0).numpy(),
               torch.where(has, d_f * _zbl_second(ace, edges, r, zedge), 0.0).numpy(),
               torch.where(has, dd_f * df_zbl, 0.0).numpy())
    # ---- dE/dA and its tangent, then the tangent of the edge gradients, scattered into H v -------
    if with_base:
        ga_re, ga_im, dga_re, dga_im = dual_adjoint(a_re, a_im, da_re, da_im, sp, ace.plan, w_rho, dw_rho)
        shape = (n, nel, ace.nradmax, ace.n_half)
        ga_re, ga_im = ga_re.reshape(shape), ga_im.reshape(shape)
        dga_re, dga_im = dga_re.reshape((n_k,) + shape), dga_im.reshape((n_k,) + shape)
    else:
        ga_re = ga_im = np.zeros((n, nel, 0, 1))
        dga_re = dga_im = np.zeros((n_k, n, nel, 0, 1))
    tangent_edge_hvp(ga_re, ga_im, dga_re, dga_im, offsets, mu_j, radial, vec_np, v_np, neighbors, a0, with_base,
                     d_a1, dd_a1, np.ascontiguousarray(d1[:, p_max]), np.ascontiguousarray(dd1[..., p_max]), zbl,
                     out.numpy())
