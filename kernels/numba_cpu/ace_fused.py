"""The whole ACE fast path of one call in one Numba kernel: site energies and edge gradients.

Per central atom (owner computes, nothing shared), the staged pipeline of ``acepy/models/ace.py``
(radial tables -> atomic base -> product basis -> embedding -> adjoint -> edge gradients) runs
start to end on the atom's own edges:

1. the atom's edges are put in a local order grouped by neighbour species (a counting sort), so
   that a block of ``EDGE_BLOCK`` edges shares one row of A; the radial table of every edge
   (values and d/dr of all columns ``[g_k | R_nl | core]``, a row per edge) into the atom's
   scratch, its R_nl and R'_nl also edge innermost (each species' edges from a multiple of
   ``EDGE_BLOCK``: a block is a contiguous row of every R_nl); then the harmonics block by block
   (``ylm_block``), summed into the atom's A as dot products over the block's edges (vectorised),
   and A1, rho_core, the zbl switch's nearest edge;
2. the densities, the embedding with its derivatives and the product-basis adjoint of that one
   atom (the same per-atom functions as the staged kernels: ``_atom_densities_prefix``,
   ``atom_site_energy``, ``_atom_adjoint_prefix``);
3. the edge gradients from the harmonics recomputed block by block and contracted as they are
   made (``ylm_block`` CONTRACT; their weights sum_n dE/dA R_nl are made for the whole block at
   once, lm outer, n in order, the block's edges innermost in one array per weight with a fixed
   count: the loop vectorises without runtime alias checks failing it), plus the radial-only
   terms, written back in the graph's edge order.

The parallel loop runs over chunks of atoms (one for the serial variant, a few per thread for the
parallel one); a chunk allocates its scratch once, sized for its atom with the most edges, and its
atoms reuse it (what an atom relies on being zero it zeroes itself): some thirty allocations per
atom cost a tenth of a call. The chunking changes no arithmetic, so no result depends on it
(serial = parallel bit for bit). The radial table rows of the next atom's edges are prefetched
while an atom computes: an edge reads one 1.8 kB row (56 columns) at random from a table of tens
of MB, mostly from memory.

What this saves over the staged kernels: no per-edge arrays of radial values and derivatives
(0.7 kB per edge, written by one kernel and read by two others), no per-atom A and dE/dA rows in
memory, and one launch and no torch glue per call instead of a dozen kernels and some forty
tensor operations (the per-call cost that dominates a call on a small cell). The arithmetic is the
staged kernels', in float64; sums over a block's edges are reassociated: results agree with them
to rounding (measured 1e-15 relative; the kernel is deterministic, serial = parallel bit for bit).

Radial kinds with tables (PACE's own bases and ACEpotentials' splines) run here; the column of
each R_nl in the table is given (``rnl_col``; for splines R_nl = g_n), ``core_col < 0`` means no
core repulsion. Contract for the torch reference: ``ACE.energies_and_edge_grads``.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from llvmlite import ir
from llvmlite.binding import llvm_version_info
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._compile import compile_pair, pick
from .atomic_base import _harmonics_args
from .embedding import _switch, atom_site_energy
from .product_basis import (_atom_adjoint_prefix_jit, _atom_densities_prefix_jit, _fold_gradient_jit,
                            _load_signed_row_jit, _prefix_width_jit, prefix_plan)
from .sph_harm import CONTRACT, EDGE_BLOCK, STORE, ylm_block
from .spline import hermite, table_row


FASTMATH = {"reassoc"}

# flags of an atom (``flags`` output): the caller raises the named error (acepy/models/ace.py)
OUT_OF_TABLE = 1  # a kept edge below its radial table's first node, or not finite
NOT_FINITE = 2  # the site energy or an edge gradient is not finite


# the intrinsic's name carries its pointer type: typed (i8*) before LLVM 17, opaque (ptr) since
_PREFETCH = "llvm.prefetch.p0" if llvm_version_info[0] >= 17 else "llvm.prefetch.p0i8"


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Ask the CPU to fetch the cache line of ``arr``'s element ``idx`` in its memory order (C
    contiguous ``arr``), without waiting for it: LLVM's ``llvm.prefetch`` (read, keep in all levels)."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        if signature.args[0].layout != "C":  # no flat index: a hint only, so none
            return context.get_dummy_value()
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            _PREFETCH)
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(arr, types.intp), codegen


def _prefetch_rows(i, offsets, neighbors, species, r, rscale, nlut, coeffs, nspecies):
    """Prefetch the radial table rows of atom ``i``'s edges (C-contiguous ``coeffs``)."""
    n_seg = coeffs.shape[1]
    row = 4 * coeffs.shape[3]
    line = max(1, 64 // coeffs.itemsize)  # elements per 64-byte cache line
    mu_i = species[i]
    for e in range(offsets[i], offsets[i + 1]):
        tab = mu_i * nspecies + species[neighbors[e]]
        x = np.float64(r[e]) * rscale[tab]
        if x >= 1.0 and x < nlut[tab]:  # in the table (NaN is not)
            flat = (tab * n_seg + table_row(np.floor(x), n_seg)) * row
            for j in range(0, row + line, line):  # every line of the row, aligned or not
                _prefetch(coeffs, flat + min(j, row - 1))


prefetch_rows = numba.njit(inline="always", cache=True)(_prefetch_rows)


def _ace_kernel(vectors, r, offsets, neighbors, species, pair_cutoff, coeffs, rscale, nlut, rnl_col, nb, core_col,
                use_zbl, r_in, d_in, lmax, diag, sub, a, b, has_products, nspecies, nrad,
                pp,
                rank1, ndensity, kind, weights, exponents, rho_cut, drho_cut, n_chunks, energies, grads, flags):
    n_atoms = species.shape[0]
    n_cols = coeffs.shape[3]
    n_seg = coeffs.shape[1]
    n_l = rnl_col.shape[1]
    h = n_l * (n_l + 1) // 2
    width = nspecies * nrad * h
    n_p = pp[7].shape[0]
    work_width = _prefix_width_jit(pp)
    per_chunk = (n_atoms + n_chunks - 1) // max(n_chunks, 1)
    for c in numba.prange(n_chunks):
        i0 = c * per_chunk
        i1 = min(n_atoms, i0 + per_chunk)
        # ---- the chunk's scratch, allocated once and reused by its atoms (sized for its most edges);
        # what an atom relies on being zero is zeroed per atom below ----------------------------
        max_e = 0
        for i in range(i0, i1):
            max_e = max(max_e, offsets[i + 1] - offsets[i])
        nbr = np.empty(max_e, dtype=np.int64)
        start = np.empty(nspecies + 1, dtype=np.int64)
        fill = np.empty(nspecies + 1, dtype=np.int64)
        perm = np.empty(max_e, dtype=np.int64)  # local position -> the edge's index within the atom
        vloc = np.empty((max_e, 3))
        fv = np.empty((max_e, n_cols))
        fd = np.empty((max_e, n_cols))
        kept = np.empty(max_e, dtype=np.bool_)
        a1 = np.empty(nspecies * nb)
        acc_re = np.empty((1, width))
        acc_im = np.empty((1, width))
        state = np.empty((16, EDGE_BLOCK))
        blk_re = np.empty((h, EDGE_BLOCK))
        blk_im = np.empty((h, EDGE_BLOCK))
        no_grad = np.empty((0, 3, EDGE_BLOCK))
        no_value = np.empty(0)
        no_sum = np.empty((3, 0))
        rho_hi = np.empty(n_p)
        row_re = np.empty(4 * width)
        row_im = np.empty(4 * width)
        work = np.empty((5, work_width))  # the densities' prefix products in it are reused by the adjoint
        d_rho = np.empty(n_p)
        d_a1 = np.empty(nspecies * nb)
        ga_re = np.zeros((1, width))
        ga_im = np.zeros((1, width))
        grad_re = np.empty(4 * width)
        grad_im = np.empty(4 * width)
        # weights of grad Y (sum_n dE/dA R: re, im) and of Y (sum_n dE/dA R': re, im)
        wts = np.empty((4, h, EDGE_BLOCK))
        s_re = wts[0].reshape((h, 1, EDGE_BLOCK))
        s_im = wts[1].reshape((h, 1, EDGE_BLOCK))
        t_re = wts[2]
        t_im = wts[3]
        # R_nl, R'_nl of the atom's edges, edge innermost, each species' edges from a multiple of
        # EDGE_BLOCK (``pad``): a block reads a whole row of EDGE_BLOCK (lanes past it stay finite)
        rt = np.zeros((2, nrad, n_l, max_e + nspecies * EDGE_BLOCK))
        pad = np.empty(nspecies, dtype=np.int64)
        rt_flat = rt.reshape((2, nrad * n_l, rt.shape[3]))
        cols = rnl_col.copy().reshape(nrad * n_l)
        value = np.zeros(EDGE_BLOCK)  # stay zero without products (no harmonics then)
        grad = np.zeros((3, EDGE_BLOCK))
        if i0 < i1:
            prefetch_rows(i0, offsets, neighbors, species, r, rscale, nlut, coeffs, nspecies)
        for i in range(i0, i1):
            mu_i = species[i]
            first = offsets[i]
            n_e = offsets[i + 1] - first
            # ---- the atom's edges in a local order grouped by neighbour species (stable): a block of
            # edges then shares one row of A, and the loops over a block's edges vectorise ----------
            for mu in range(nspecies + 1):
                start[mu] = 0
            for q in range(n_e):
                mu = species[neighbors[first + q]]
                nbr[q] = mu
                start[mu + 1] += 1
            for mu in range(nspecies):
                start[mu + 1] += start[mu]
            for mu in range(nspecies + 1):
                fill[mu] = start[mu]
            pad_end = 0
            for mu in range(nspecies):
                pad[mu] = pad_end
                pad_end += (start[mu + 1] - start[mu] + EDGE_BLOCK - 1) // EDGE_BLOCK * EDGE_BLOCK
            for q in range(n_e):
                perm[fill[nbr[q]]] = q
                fill[nbr[q]] += 1
            for p in range(n_e):
                e = first + perm[p]
                vloc[p, 0] = np.float64(vectors[e, 0])
                vloc[p, 1] = np.float64(vectors[e, 1])
                vloc[p, 2] = np.float64(vectors[e, 2])
            # ---- 1. radial values (a row per edge: the spline's stores are contiguous; R_nl, R'_nl also
            # edge innermost), A1, rho_core, zbl ----------------------------------------------------
            a1[:] = 0.0
            core = 0.0
            d_min = np.inf
            zbl_q = n_e  # the zbl switch's edge (within the atom): the first with the smallest d
            flag = 0
            for p in range(n_e):
                q = perm[p]
                e = first + q
                mu_j = nbr[q]
                tab = mu_i * nspecies + mu_j
                re = np.float64(r[e])
                s = rscale[tab]
                x = re * s
                fl = np.floor(x)
                # PACE: a neighbour iff r < its pair's cutoff (in the model's dtype, as the torch path)
                kept[p] = r[e] < pair_cutoff[mu_i, mu_j]
                if kept[p] and not (x >= 1.0 and np.isfinite(x)):
                    flag |= OUT_OF_TABLE  # below the table's first node: refused by the caller, naming the pair
                if not kept[p] or fl >= nlut[tab]:  # dropped, or at or beyond the last node: every column is zero
                    for k in range(n_cols):
                        fv[p, k] = 0.0
                        fd[p, k] = 0.0
                else:
                    t = x - fl
                    n = table_row(fl, n_seg)
                    for k in range(n_cols):
                        fv[p, k], fd[p, k], _ = hermite(coeffs, tab, n, k, t, s)
                if has_products:
                    u = pad[mu_j] + p - start[mu_j]
                    v_row = fv[p]
                    d_row = fd[p]
                    for j in range(nrad * n_l):
                        col = cols[j]
                        rt_flat[0, j, u] = v_row[col]
                        rt_flat[1, j, u] = d_row[col]
                for k in range(nb):
                    a1[mu_j * nb + k] += fv[p, k]
                if core_col >= 0:
                    core += fv[p, core_col]
                if use_zbl and kept[p]:  # ACE_SPEC.md 2.12: the smallest r - (r_in - delta_in), first wins
                    d = re - (r_in[mu_i, mu_j] - d_in[mu_i, mu_j])
                    if d < d_min or (d == d_min and q < zbl_q):
                        d_min = d
                        zbl_q = q
            if i + 1 < i1:  # the next atom's rows arrive while this one computes
                prefetch_rows(i + 1, offsets, neighbors, species, r, rscale, nlut, coeffs, nspecies)
            # ---- A: per block of edges of one species, sum_q R_nl(q) Y_lm(q) -----------------------
            if has_products:
                acc_re[:] = 0.0
                acc_im[:] = 0.0
                for mu in range(nspecies):
                    base = mu * nrad * h
                    for b0 in range(start[mu], start[mu + 1], EDGE_BLOCK):
                        nblk = min(EDGE_BLOCK, start[mu + 1] - b0)
                        ylm_block(vloc, b0, nblk, lmax, diag, sub, a, b, STORE, state, blk_re, blk_im, no_grad, no_grad,
                                  no_value, no_sum)
                        u0 = pad[mu] + b0 - start[mu]
                        for n in range(nrad):
                            lm = 0
                            for l in range(n_l):
                                rv = rt[0, n, l, u0:u0 + EDGE_BLOCK]
                                for m in range(l + 1):
                                    sr = 0.0
                                    si = 0.0
                                    for q in range(nblk):  # contiguous: a vectorised dot product
                                        sr += rv[q] * blk_re[lm, q]
                                        si += rv[q] * blk_im[lm, q]
                                    acc_re[0, base + n * h + lm] += sr
                                    acc_im[0, base + n * h + lm] += si
                                    lm += 1
            # ---- 2. densities, embedding, adjoint of this atom --------------------------------------
            rho_hi[:] = 0.0
            if has_products:
                _load_signed_row_jit(acc_re, acc_im, 0, row_re, row_im)
                _atom_densities_prefix_jit(row_re, row_im, mu_i, pp, work, rho_hi)
            f_zbl = 1.0
            df_zbl = 0.0
            if use_zbl and zbl_q < n_e:
                delta = d_in[mu_i, nbr[zbl_q]]
                f_zbl, df_dt = _switch(delta - d_min, delta, delta)  # t = delta - d, dt/dr = -1
                df_zbl = -df_dt
            energy, d_core, d_f = atom_site_energy(mu_i, rho_hi, a1, rank1, core, ndensity, kind, weights, exponents,
                                                   rho_cut, drho_cut, f_zbl, use_zbl, d_rho, d_a1)
            energies[i] = energy
            if has_products:  # ga_re, ga_im: every column written here, read only with products
                grad_re[:] = 0.0
                grad_im[:] = 0.0
                _atom_adjoint_prefix_jit(row_re, row_im, mu_i, pp, work, True, d_rho, grad_re, grad_im)
                _fold_gradient_jit(grad_re, grad_im, ga_re, ga_im, 0)
            # ---- 3. edge gradients, per block of one species ----------------------------------------
            for mu in range(nspecies):
                base = mu * nrad * h
                for b0 in range(start[mu], start[mu + 1], EDGE_BLOCK):
                    nblk = min(EDGE_BLOCK, start[mu + 1] - b0)
                    if has_products:
                        u0 = pad[mu] + b0 - start[mu]
                        lm = 0
                        for l in range(n_l):
                            for m in range(l + 1):
                                w0 = wts[0, lm]
                                w1 = wts[1, lm]
                                w2 = wts[2, lm]
                                w3 = wts[3, lm]
                                for q in range(EDGE_BLOCK):
                                    w0[q] = 0.0
                                    w1[q] = 0.0
                                    w2[q] = 0.0
                                    w3[q] = 0.0
                                for n in range(nrad):  # the sum over n in order
                                    gr = ga_re[0, base + n * h + lm]
                                    gi = ga_im[0, base + n * h + lm]
                                    rv = rt[0, n, l, u0:u0 + EDGE_BLOCK]
                                    dv = rt[1, n, l, u0:u0 + EDGE_BLOCK]
                                    for q in range(EDGE_BLOCK):  # a fixed count, one array each: it vectorises
                                        w0[q] += gr * rv[q]
                                        w1[q] += gi * rv[q]
                                        w2[q] += gr * dv[q]
                                        w3[q] += gi * dv[q]
                                lm += 1
                        ylm_block(vloc, b0, nblk, lmax, diag, sub, a, b, CONTRACT, state, t_re, t_im, s_re, s_im, value,
                                  grad)
                    for q in range(nblk):
                        p = b0 + q
                        e = first + perm[p]
                        if not kept[p]:
                            grads[e, 0] = 0.0
                            grads[e, 1] = 0.0
                            grads[e, 2] = 0.0
                            continue
                        # radial-only terms: dE/dA1 . dg_k/dr, dE/drho_core . dcr/dr, the zbl switch
                        radial = 0.0
                        for k in range(nb):
                            radial += d_a1[mu * nb + k] * fd[p, k]
                        if core_col >= 0:
                            radial += d_core * fd[p, core_col]
                        if perm[p] == zbl_q:
                            radial += d_f * df_zbl
                        vx = vloc[p, 0]
                        vy = vloc[p, 1]
                        vz = vloc[p, 2]
                        inv = 1.0 / np.sqrt(vx * vx + vy * vy + vz * vz)
                        over_r = radial / np.float64(r[e])
                        # d(R Y)/dr = R' r_hat Y + R grad Y; the radial terms along r_hat
                        grads[e, 0] = grad[0, q] + value[q] * vx * inv + over_r * vx
                        grads[e, 1] = grad[1, q] + value[q] * vy * inv + over_r * vy
                        grads[e, 2] = grad[2, q] + value[q] * vz * inv + over_r * vz
                        if not (np.isfinite(grads[e, 0]) and np.isfinite(grads[e, 1]) and np.isfinite(grads[e, 2])):
                            flag |= NOT_FINITE
            if not np.isfinite(energies[i]):
                flag |= NOT_FINITE
            flags[i] = flag


# reassociation only (no finite-math flags: the kernel tests isfinite; no contraction into FMAs, which
# would round the spline polynomials differently from the staged kernels): the sums over a block's
# edges vectorise; deterministic, and equal to the staged kernels to rounding
_ace = compile_pair(_ace_kernel, fastmath=FASTMATH)


def ace_energies_and_edge_grads(vectors: torch.Tensor, r: torch.Tensor, offsets: torch.Tensor,
                                neighbors: torch.Tensor, species: torch.Tensor, pair_cutoff: np.ndarray, table,
                                rnl_col: np.ndarray, nb: int, core_col: int, zbl: tuple | None, plan,
                                has_products: bool, nspecies: int, nrad: int, rank1: np.ndarray,
                                embedding_tables: tuple):
    """``(E_i (N,), dE/dr_e (E, 3), flags (N,) int8)`` of ACE on CPU tensors (the model's dtype;
    float64 inside), straight from a graph's edges (CSR by centre ``offsets``, ``neighbors``).

    Edges at or beyond their pair's cutoff (``pair_cutoff (S, S)``, the model's dtype) are
    dropped (gradient 0). ``table``: the radial :class:`~acepy.kernels.SplineTable` (pair
    ``mu_i * nspecies + mu_j``), ``rnl_col (nradmax, lmax + 1)`` the column of each R_nl, ``nb``
    the g_k columns (first), ``core_col`` the core repulsion's column or -1, ``zbl``: ``(r_in,
    d_in)`` (S, S) arrays for the zbl inner cutoff or None. Nothing is raised here: ``flags[i]``
    has :data:`OUT_OF_TABLE` set when a kept edge of atom i is below its table's first node (or not
    finite) and :data:`NOT_FINITE` when its energy or an edge gradient is not finite; the caller
    names them.
    """
    n = species.shape[0]
    n_e = r.shape[0]
    dtype = r.dtype
    energies = torch.empty(n, dtype=dtype)
    grads = torch.empty((n_e, 3), dtype=dtype)
    flags = np.empty(n, dtype=np.int8)
    n_l = rnl_col.shape[1]
    h = n_l * (n_l + 1) // 2
    use_zbl = zbl is not None
    r_in, d_in = zbl if use_zbl else (np.zeros((1, 1)), np.zeros((1, 1)))
    kernel = pick(_ace, n_e * max(1, nrad * h))
    n_chunks = 1 if kernel is _ace[0] else min(n, 4 * numba.get_num_threads())
    kernel(vectors.numpy(), r.numpy(), offsets.numpy(), neighbors.numpy(), species.numpy(), pair_cutoff,
           table.coeffs.numpy(), table.rscale.numpy(), table.nlut.numpy(), rnl_col, int(nb), int(core_col), use_zbl,
           r_in, d_in, *_harmonics_args(n_l), bool(has_products), int(nspecies), int(nrad), prefix_plan(plan), rank1,
           *embedding_tables, max(1, n_chunks), energies.numpy(), grads.numpy(), flags)
    return energies, grads, flags
