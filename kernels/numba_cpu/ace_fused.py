"""The whole ACE fast path of one call in one Numba kernel: site energies and edge gradients.

Per central atom (one parallel iteration each, owner computes, nothing shared), the staged
pipeline of ``acepy/models/ace.py`` (radial tables -> atomic base -> product basis -> embedding
-> adjoint -> edge gradients) runs start to end on the atom's own edges:

1. the radial table of every edge (values and d/dr of all columns ``[g_k | R_nl | core]``) into
   the atom's scratch, and the harmonics block by block (``ylm_block``), summed into the atom's
   A, A1 and rho_core (and the zbl switch's nearest edge);
2. the densities, the embedding with its derivatives and the product-basis adjoint of that one
   atom (the same per-atom functions as the staged kernels: ``_atom_densities``,
   ``atom_site_energy``, ``_atom_adjoint``);
3. the edge gradients from the harmonics recomputed block by block and contracted as they are
   made (``ylm_block`` CONTRACT), plus the radial-only terms.

What this saves over the staged kernels: no per-edge arrays of radial values and derivatives
(0.7 kB per edge, written by one kernel and read by two others), no per-atom A and dE/dA rows in
memory, and one launch and no torch glue per call instead of a dozen kernels and some forty
tensor operations (the per-call cost that dominates a call on a small cell). The arithmetic is the
staged kernels', in float64, in the same order per atom: results agree with them to rounding.

Radial kinds with tables (PACE's own bases and ACEpotentials' splines) run here; the column of
each R_nl in the table is given (``rnl_col``; for splines R_nl = g_n), ``core_col < 0`` means no
core repulsion. Contract for the torch reference: ``ACE.energies_and_edge_grads``.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ._compile import compile_pair, pick
from .atomic_base import _harmonics_args
from .embedding import _switch, atom_site_energy
from .product_basis import (_atom_adjoint_jit, _atom_densities_jit, _fold_gradient_jit, _load_signed_row_jit,
                            _max_triples_jit, triple_plan)
from .sph_harm import CONTRACT, EDGE_BLOCK, STORE, ylm_block


# flags of an atom (``flags`` output): the caller raises the named error (acepy/models/ace.py)
OUT_OF_TABLE = 1  # a kept edge below its radial table's first node, or not finite
NOT_FINITE = 2  # the site energy or an edge gradient is not finite


def _spread(values, q, rnl_col, out):
    """Row ``q`` of the radial values, R_nl spread over the lm columns: ``out[n, lm] = R_{n,l(lm)}``."""
    n_l = rnl_col.shape[1]
    for n in range(rnl_col.shape[0]):
        lm = 0
        for l in range(n_l):
            v = values[q, rnl_col[n, l]]
            for m in range(l + 1):
                out[n, lm] = v
                lm += 1


_spread_jit = numba.njit(inline="always", cache=True)(_spread)


def _ace_kernel(vectors, r, offsets, neighbors, species, pair_cutoff, coeffs, rscale, nlut, rnl_col, nb, core_col, use_zbl,
                r_in, d_in, lmax, diag, sub, a, b, has_products, nspecies, nrad,
                tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes, term_length, coeff,
                rank1, ndensity, kind, weights, exponents, rho_cut, drho_cut, energies, grads, flags):
    n_atoms = species.shape[0]
    n_cols = coeffs.shape[3]
    n_seg = coeffs.shape[1]
    n_l = rnl_col.shape[1]
    h = n_l * (n_l + 1) // 2
    width = nspecies * nrad * h
    n_p = coeff.shape[1]
    rmax = codes.shape[1]
    max_triples = _max_triples_jit(tri_offsets)
    for i in numba.prange(n_atoms):
        mu_i = species[i]
        first = offsets[i]
        n_e = offsets[i + 1] - first
        # ---- 1. radial values of the atom's edges, A, A1, rho_core, the zbl switch's edge ----
        fv = np.empty((n_e, n_cols))
        fd = np.empty((n_e, n_cols))
        a1 = np.zeros(nspecies * nb)
        core = 0.0
        d_min = np.inf
        zbl_edge = -1
        nbr_species = np.empty(n_e, dtype=np.int64)
        kept = np.empty(n_e, dtype=np.bool_)
        flag = 0
        for q in range(n_e):
            e = first + q
            mu_j = species[neighbors[e]]
            nbr_species[q] = mu_j
            tab = mu_i * nspecies + mu_j
            re = np.float64(r[e])
            s = rscale[tab]
            x = re * s
            fl = np.floor(x)
            # PACE: a neighbour iff r < its pair's cutoff (in the model's dtype, as the torch path)
            kept[q] = r[e] < pair_cutoff[mu_i, mu_j]
            if kept[q] and not (x >= 1.0 and np.isfinite(x)):
                flag |= OUT_OF_TABLE  # below the table's first node: refused by the caller, naming the pair
            if not kept[q] or fl >= nlut[tab]:  # dropped, or at or beyond the last node: every column is zero
                for k in range(n_cols):
                    fv[q, k] = 0.0
                    fd[q, k] = 0.0
            else:
                t = x - fl
                n = 0
                if fl >= 1.0:  # below the first node is refused before the kernel runs
                    n = min(int(fl), n_seg - 1)
                for k in range(n_cols):
                    c0 = np.float64(coeffs[tab, n, 0, k])
                    c1 = np.float64(coeffs[tab, n, 1, k])
                    c2 = np.float64(coeffs[tab, n, 2, k])
                    c3 = np.float64(coeffs[tab, n, 3, k])
                    fv[q, k] = c0 + t * (c1 + t * (c2 + t * c3))
                    fd[q, k] = (c1 + t * (2.0 * c2 + 3.0 * c3 * t)) * s
            for k in range(nb):
                a1[mu_j * nb + k] += fv[q, k]
            if core_col >= 0:
                core += fv[q, core_col]
            if use_zbl and kept[q]:  # ACE_SPEC.md 2.12: the smallest r - (r_in - delta_in), first wins
                d = re - (r_in[mu_i, mu_j] - d_in[mu_i, mu_j])
                if d < d_min:
                    d_min = d
                    zbl_edge = e
        acc_re = np.zeros((1, width))
        acc_im = np.zeros((1, width))
        state = np.empty((16, EDGE_BLOCK))
        r_lm = np.empty((nrad, h))  # one edge's R_nl (and R'_nl) spread over the lm columns
        dr_lm = np.empty((nrad, h))
        if has_products:
            blk_re = np.empty((h, EDGE_BLOCK))
            blk_im = np.empty((h, EDGE_BLOCK))
            no_grad = np.empty((0, 3, EDGE_BLOCK))
            no_value = np.empty(0)
            no_sum = np.empty((3, 0))
            y_re = np.empty(h)
            y_im = np.empty(h)
            for e0 in range(first, first + n_e, EDGE_BLOCK):
                nblk = min(EDGE_BLOCK, first + n_e - e0)
                ylm_block(vectors, e0, nblk, lmax, diag, sub, a, b, STORE, state, blk_re, blk_im, no_grad, no_grad,
                          no_value, no_sum)
                for q in range(nblk):
                    e = e0 + q
                    base = nbr_species[e - first] * nrad * h
                    _spread_jit(fv, e - first, rnl_col, r_lm)
                    for lm in range(h):  # this edge's harmonics, contiguous
                        y_re[lm] = blk_re[lm, q]
                        y_im[lm] = blk_im[lm, q]
                    for n in range(nrad):  # contiguous rows: the loop over lm vectorises
                        o = base + n * h
                        for lm in range(h):
                            acc_re[0, o + lm] += r_lm[n, lm] * y_re[lm]
                            acc_im[0, o + lm] += r_lm[n, lm] * y_im[lm]
        # ---- 2. densities, embedding, adjoint of this atom --------------------------------------
        rho_hi = np.zeros(n_p)
        row_re = np.empty(4 * width)
        row_im = np.empty(4 * width)
        if has_products:
            _load_signed_row_jit(acc_re, acc_im, 0, row_re, row_im)
            products = np.empty(max_triples)
            _atom_densities_jit(row_re, row_im, mu_i, tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes,
                                term_length, coeff, products, rho_hi)
        f_zbl = 1.0
        df_zbl = 0.0
        if use_zbl and zbl_edge >= 0:
            delta = d_in[mu_i, nbr_species[zbl_edge - first]]
            f_zbl, df_dt = _switch(delta - d_min, delta, delta)  # t = delta - d, dt/dr = -1
            df_zbl = -df_dt
        d_rho = np.empty(n_p)
        d_a1 = np.empty(nspecies * nb)
        energy, d_core, d_f = atom_site_energy(mu_i, rho_hi, a1, rank1, core, ndensity, kind, weights, exponents,
                                               rho_cut, drho_cut, f_zbl, use_zbl, d_rho, d_a1)
        energies[i] = energy
        ga_re = np.zeros((1, width))
        ga_im = np.zeros((1, width))
        if has_products:
            grad_re = np.zeros(4 * width)
            grad_im = np.zeros(4 * width)
            weights_s = np.empty(max_triples)
            f_re = np.empty(max(rmax, 1))
            f_im = np.empty(max(rmax, 1))
            pre_re = np.empty(rmax + 1)
            pre_im = np.empty(rmax + 1)
            _atom_adjoint_jit(row_re, row_im, mu_i, tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes,
                              term_length, coeff, d_rho, weights_s, f_re, f_im, pre_re, pre_im, grad_re, grad_im)
            _fold_gradient_jit(grad_re, grad_im, ga_re, ga_im, 0)
        # ---- 3. edge gradients ------------------------------------------------------------------
        s_re = np.empty((h, 1, EDGE_BLOCK))  # weights of grad Y: sum_n dE/dA R
        s_im = np.empty((h, 1, EDGE_BLOCK))
        t_re = np.empty((h, EDGE_BLOCK))  # weights of Y: sum_n dE/dA R'
        t_im = np.empty((h, EDGE_BLOCK))
        value = np.empty(EDGE_BLOCK)
        grad = np.empty((3, EDGE_BLOCK))
        row_s_re = np.empty(h)  # one edge's weights, contiguous while they are summed over n
        row_s_im = np.empty(h)
        row_t_re = np.empty(h)
        row_t_im = np.empty(h)
        for e0 in range(first, first + n_e, EDGE_BLOCK):
            nblk = min(EDGE_BLOCK, first + n_e - e0)
            if has_products:
                for q in range(nblk):
                    e = e0 + q
                    base = nbr_species[e - first] * nrad * h
                    _spread_jit(fv, e - first, rnl_col, r_lm)
                    _spread_jit(fd, e - first, rnl_col, dr_lm)
                    for lm in range(h):
                        row_s_re[lm] = 0.0
                        row_s_im[lm] = 0.0
                        row_t_re[lm] = 0.0
                        row_t_im[lm] = 0.0
                    for n in range(nrad):  # contiguous rows: the loop over lm vectorises
                        o = base + n * h
                        for lm in range(h):
                            gr = ga_re[0, o + lm]
                            gi = ga_im[0, o + lm]
                            row_s_re[lm] += gr * r_lm[n, lm]
                            row_s_im[lm] += gi * r_lm[n, lm]
                            row_t_re[lm] += gr * dr_lm[n, lm]
                            row_t_im[lm] += gi * dr_lm[n, lm]
                    for lm in range(h):  # into the block layout of the recursion (edge innermost)
                        s_re[lm, 0, q] = row_s_re[lm]
                        s_im[lm, 0, q] = row_s_im[lm]
                        t_re[lm, q] = row_t_re[lm]
                        t_im[lm, q] = row_t_im[lm]
                ylm_block(vectors, e0, nblk, lmax, diag, sub, a, b, CONTRACT, state, t_re, t_im, s_re, s_im, value,
                          grad)
            else:
                for q in range(nblk):
                    value[q] = 0.0
                    grad[0, q] = 0.0
                    grad[1, q] = 0.0
                    grad[2, q] = 0.0
            for q in range(nblk):
                e = e0 + q
                if not kept[e - first]:
                    grads[e, 0] = 0.0
                    grads[e, 1] = 0.0
                    grads[e, 2] = 0.0
                    continue
                mu_j = nbr_species[e - first]
                # radial-only terms: dE/dA1 . dg_k/dr, dE/drho_core . dcr/dr, the zbl switch
                radial = 0.0
                for k in range(nb):
                    radial += d_a1[mu_j * nb + k] * fd[e - first, k]
                if core_col >= 0:
                    radial += d_core * fd[e - first, core_col]
                if e == zbl_edge:
                    radial += d_f * df_zbl
                vx = np.float64(vectors[e, 0])
                vy = np.float64(vectors[e, 1])
                vz = np.float64(vectors[e, 2])
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


_ace = compile_pair(_ace_kernel)


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
    kernel(vectors.numpy(), r.numpy(), offsets.numpy(), neighbors.numpy(), species.numpy(), pair_cutoff,
           table.coeffs.numpy(), table.rscale.numpy(), table.nlut.numpy(), rnl_col, int(nb), int(core_col), use_zbl,
           r_in, d_in, *_harmonics_args(n_l), bool(has_products), int(nspecies), int(nrad), *triple_plan(plan), rank1,
           *embedding_tables, energies.numpy(), grads.numpy(), flags)
    return energies, grads, flags
