"""Numba sparse product contraction of the ACE basis and its adjoint (contract:
``reference/product_basis.py``).

One atom per parallel iteration (owner computes). Each iteration copies its row of ``a`` into
local arrays, in the four signed/conjugated variants the factor codes address directly, and
accumulates its gradient locally per variant (contiguous, alias-free, no decoding in the loops).

The kernels run the prefix plan (:func:`prefix_plan`), a one-level form of PACE's recursive
evaluator (shared partial products: Lysogorskiy et al., npj Comput. Mater. 7, 97 (2021)): each
term is its sorted factors, a prefix made once per atom times a last factor; the adjoint adds each
prefix's gradients once. :func:`triple_plan`, ``_atom_densities`` and ``_atom_adjoint`` are the
earlier form (the rank-3 terms sorted, the others one by one), kept for their callers. Only the
order of floating-point sums differs (results agree to rounding).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ._compile import compile_pair, pick


def _load_signed_row(a_re, a_im, i, row_re, row_im):
    """Row ``i`` in all four variants a factor code can ask for: ``row[4h + flags]`` is column
    ``h`` negated and/or conjugated, so that a factor is one load by its code, no decoding."""
    for h in range(a_re.shape[1]):
        x = a_re[i, h]
        y = a_im[i, h]
        # as is, negated, conjugated, negated and conjugated
        row_re[4 * h], row_re[4 * h + 1], row_re[4 * h + 2], row_re[4 * h + 3] = x, -x, x, -x
        row_im[4 * h], row_im[4 * h + 1], row_im[4 * h + 2], row_im[4 * h + 3] = y, -y, -y, y


_load_signed_row_jit = numba.njit(inline="always", cache=True)(_load_signed_row)


def _add_gradient(c, w, q_re, q_im, grad_re, grad_im):
    """Add w dRe(f q)/df for the factor of code ``c`` (d Re(f q) = q_re d f_re - q_im d f_im), by
    signed variant: :func:`_fold_gradient` undoes the signs and conjugations once per atom."""
    grad_re[c] += w * q_re
    grad_im[c] -= w * q_im


def _fold_gradient(grad_re, grad_im, ga_re, ga_im, i):
    for h in range(ga_re.shape[1]):
        ga_re[i, h] = grad_re[4 * h] - grad_re[4 * h + 1] + grad_re[4 * h + 2] - grad_re[4 * h + 3]
        ga_im[i, h] = grad_im[4 * h] - grad_im[4 * h + 1] - grad_im[4 * h + 2] + grad_im[4 * h + 3]


_fold_gradient_jit = numba.njit(inline="always", cache=True)(_fold_gradient)


_add_gradient_jit = numba.njit(inline="always", cache=True)(_add_gradient)


def _dot4(x, x0, y, y0, n):
    """``sum_k x[x0 + k] * y[y0 + k]`` for ``k < n`` in four interleaved partial sums: four
    independent add chains instead of one (a single sum waits for the previous add every term)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    k = 0
    while k + 4 <= n:
        s0 += x[x0 + k] * y[y0 + k]
        s1 += x[x0 + k + 1] * y[y0 + k + 1]
        s2 += x[x0 + k + 2] * y[y0 + k + 2]
        s3 += x[x0 + k + 3] * y[y0 + k + 3]
        k += 4
    while k < n:
        s0 += x[x0 + k] * y[y0 + k]
        k += 1
    return (s0 + s1) + (s2 + s3)


_dot4_jit = numba.njit(inline="always", cache=True)(_dot4)


def _max_triples(tri_offsets):
    """The most rank-3 terms of one group (the size of the per-atom scratch)."""
    m = 0
    for g in range(tri_offsets.shape[0] - 1):
        m = max(m, tri_offsets[g + 1] - tri_offsets[g])
    return m


_max_triples_jit = numba.njit(inline="always", cache=True)(_max_triples)


def _atom_densities(row_re, row_im, g, tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes, term_length,
                    coeff, products, acc):
    """rho_p of one atom of group ``g`` into ``acc (P,)`` from its signed row on the triple plan
    (``products``: scratch of at least the group's rank-3 term count)."""
    n_p = coeff.shape[1]
    # the sorted rank-3 terms: the product of the first two factors carries over while they repeat
    p0 = -1
    p1 = -1
    ab_r = 0.0
    ab_i = 0.0
    t0 = tri_offsets[g]
    for s in range(t0, tri_offsets[g + 1]):
        c0 = tri_codes[s, 0]
        c1 = tri_codes[s, 1]
        if c0 != p0 or c1 != p1:
            a_r, a_i = row_re[c0], row_im[c0]
            b_r, b_i = row_re[c1], row_im[c1]
            ab_r = a_r * b_r - a_i * b_i
            ab_i = a_r * b_i + a_i * b_r
            p0 = c0
            p1 = c1
        c2 = tri_codes[s, 2]
        d_r, d_i = row_re[c2], row_im[c2]
        products[s - t0] = ab_r * d_r - ab_i * d_i
    # then contracted with each density's coefficients (stored (P, T): contiguous per density)
    for p in range(n_p):
        acc[p] = _dot4_jit(tri_coeff_t[p], t0, products, 0, tri_offsets[g + 1] - t0)
    # every other term: the general loop
    for s in range(group_offsets[g], group_offsets[g + 1]):
        k = term_length[s]
        pr = 1.0
        pi = 0.0
        for t in range(k):
            c = codes[s, t]
            if c < 0:
                continue  # padding: the factor 1, wherever it sits
            fr, fi = row_re[c], row_im[c]
            pr, pi = pr * fr - pi * fi, pr * fi + pi * fr
        for p in range(n_p):
            acc[p] += coeff[s, p] * pr


_atom_densities_jit = numba.njit(inline="always", cache=True)(_atom_densities)


def _atom_adjoint(row_re, row_im, g, tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes, term_length,
                  coeff, w_row, weights, f_re, f_im, pre_re, pre_im, grad_re, grad_im):
    """Add sum_p w_row[p] drho_p/dA of one atom of group ``g`` to its signed gradient ``grad_re,
    grad_im (4H,)`` (zeroed by the caller; :func:`_fold_gradient` undoes the signs); ``weights`` (the
    group's rank-3 term count), ``f, pre`` (RMAX, RMAX + 1) are scratch. On the triple plan."""
    n_p = coeff.shape[1]
    # the sorted rank-3 terms a b d: per run of terms with the same prefix a b, D = sum w d;
    # the prefix's gradients (b D and a D) are added when the run ends
    t0 = tri_offsets[g]
    n_tri = tri_offsets[g + 1] - t0
    for k in range(n_tri):  # the weights first, density by density: contiguous, it vectorises
        weights[k] = 0.0
    for p in range(n_p):
        wp = w_row[p]
        for k in range(n_tri):
            weights[k] += wp * tri_coeff_t[p, t0 + k]
    p0 = -1
    p1 = -1
    a_r = a_i = b_r = b_i = ab_r = ab_i = 0.0
    dd_r = 0.0
    dd_i = 0.0
    for s in range(t0, t0 + n_tri):
        c0 = tri_codes[s, 0]
        c1 = tri_codes[s, 1]
        if c0 != p0 or c1 != p1:
            if p0 >= 0:
                _add_gradient_jit(p0, 1.0, b_r * dd_r - b_i * dd_i, b_r * dd_i + b_i * dd_r, grad_re, grad_im)
                _add_gradient_jit(p1, 1.0, a_r * dd_r - a_i * dd_i, a_r * dd_i + a_i * dd_r, grad_re, grad_im)
            a_r, a_i = row_re[c0], row_im[c0]
            b_r, b_i = row_re[c1], row_im[c1]
            ab_r = a_r * b_r - a_i * b_i
            ab_i = a_r * b_i + a_i * b_r
            dd_r = 0.0
            dd_i = 0.0
            p0 = c0
            p1 = c1
        w = weights[s - t0]
        c2 = tri_codes[s, 2]
        d_r, d_i = row_re[c2], row_im[c2]
        dd_r += w * d_r
        dd_i += w * d_i
        _add_gradient_jit(c2, w, ab_r, ab_i, grad_re, grad_im)
    if p0 >= 0:
        _add_gradient_jit(p0, 1.0, b_r * dd_r - b_i * dd_i, b_r * dd_i + b_i * dd_r, grad_re, grad_im)
        _add_gradient_jit(p1, 1.0, a_r * dd_r - a_i * dd_i, a_r * dd_i + a_i * dd_r, grad_re, grad_im)
    # every other term
    for s in range(group_offsets[g], group_offsets[g + 1]):
        w = 0.0
        for p in range(n_p):
            w += w_row[p] * coeff[s, p]
        if w == 0.0:
            continue
        k = term_length[s]
        if k == 2 and codes[s, 0] >= 0 and codes[s, 1] >= 0:
            c0, c1 = codes[s, 0], codes[s, 1]
            a_r, a_i = row_re[c0], row_im[c0]
            b_r, b_i = row_re[c1], row_im[c1]
            _add_gradient_jit(c0, w, b_r, b_i, grad_re, grad_im)
            _add_gradient_jit(c1, w, a_r, a_i, grad_re, grad_im)
            continue
        pre_re[0] = 1.0
        pre_im[0] = 0.0
        for t in range(k):
            c = codes[s, t]
            fr = 1.0  # padding: the factor 1, wherever it sits
            fi = 0.0
            if c >= 0:
                fr, fi = row_re[c], row_im[c]
            f_re[t] = fr
            f_im[t] = fi
            pre_re[t + 1] = pre_re[t] * fr - pre_im[t] * fi
            pre_im[t + 1] = pre_re[t] * fi + pre_im[t] * fr
        suf_re = 1.0  # f_{t+1} ... f_{k-1}
        suf_im = 0.0
        for t in range(k - 1, -1, -1):
            c = codes[s, t]
            if c >= 0:
                q_re = pre_re[t] * suf_re - pre_im[t] * suf_im
                q_im = pre_re[t] * suf_im + pre_im[t] * suf_re
                _add_gradient_jit(c, w, q_re, q_im, grad_re, grad_im)
            suf_re, suf_im = suf_re * f_re[t] - suf_im * f_im[t], suf_re * f_im[t] + suf_im * f_re[t]


_atom_adjoint_jit = numba.njit(inline="always", cache=True)(_atom_adjoint)


# ---- the prefix plan (:func:`prefix_plan`): what the staged kernels and the fused kernel run ----
# Codes are unsigned and the loops index views from 0 by their counter: no negative-index fix-up
# per access (a quarter of the instructions of these loops otherwise).

def _prefix_products(row_re, row_im, block_m, block_pre, pre_codes, b0, b1, q0, ab_re, ab_im):
    """The product of each prefix of blocks ``b0 .. b1 - 1`` into ``ab[q - q0]``, a loop per block
    (prefix length ``m``): no test of ``m`` per prefix."""
    for b in range(b0, b1):
        m = block_m[b]
        q1 = block_pre[b]
        n = block_pre[b + 1] - q1
        x_re = ab_re[q1 - q0:q1 - q0 + n]
        x_im = ab_im[q1 - q0:q1 - q0 + n]
        first = pre_codes[0, q1:q1 + n]
        if m == 1:
            for j in range(n):
                x_re[j] = row_re[first[j]]
                x_im[j] = row_im[first[j]]
        elif m == 2:
            second = pre_codes[1, q1:q1 + n]
            for j in range(n):
                c0 = first[j]
                c1 = second[j]
                x_re[j] = row_re[c0] * row_re[c1] - row_im[c0] * row_im[c1]
                x_im[j] = row_re[c0] * row_im[c1] + row_im[c0] * row_re[c1]
        else:  # the empty product 1 (m = 0), and the few longer ones
            for j in range(n):
                pr = 1.0
                pi = 0.0
                for t in range(m):
                    c = pre_codes[t, q1 + j]
                    pr, pi = pr * row_re[c] - pi * row_im[c], pr * row_im[c] + pi * row_re[c]
                x_re[j] = pr
                x_im[j] = pi


_prefix_products_jit = numba.njit(inline="always", cache=True)(_prefix_products)


def _atom_densities_prefix(row_re, row_im, g, pp, work, acc):
    """rho_p of one atom of group ``g`` into ``acc (P,)`` on the prefix plan ``pp`` from its signed
    row; ``work (5, W)`` is scratch (``W = _prefix_width(pp)``): its rows 0 and 1 keep the prefix
    products for :func:`_atom_adjoint_prefix` of the same row. The term products are contracted
    with each density's coefficients in one loop (vectorised where the caller allows reassociation,
    as the fused kernel and the staged kernels here do)."""
    _, block_m, block_pre, block_diag, diag_start, pre_codes, last_codes, coeff_t, const, _ = pp
    b0, b1 = pp[0][g], pp[0][g + 1]
    q0, t0 = block_pre[b0], diag_start[block_diag[b0]]
    n_t = diag_start[block_diag[b1]] - t0
    ab_re = work[0]
    ab_im = work[1]
    products = work[4]
    _prefix_products_jit(row_re, row_im, block_m, block_pre, pre_codes, b0, b1, q0, ab_re, ab_im)
    for b in range(b0, b1):
        j0 = block_pre[b] - q0
        for d in range(block_diag[b], block_diag[b + 1]):  # term j of diagonal d has the prefix j
            s0 = diag_start[d]
            n = diag_start[d + 1] - s0
            last = last_codes[s0:s0 + n]
            out = products[s0 - t0:s0 - t0 + n]
            x_re = ab_re[j0:j0 + n]
            x_im = ab_im[j0:j0 + n]
            for j in range(n):
                out[j] = x_re[j] * row_re[last[j]] - x_im[j] * row_im[last[j]]
    for p in range(coeff_t.shape[0]):
        cp = coeff_t[p, t0:t0 + n_t]
        s = 0.0
        for k in range(n_t):
            s += cp[k] * products[k]
        acc[p] = const[g, p] + s


_atom_densities_prefix_jit = numba.njit(inline="always", cache=True)(_atom_densities_prefix)


def _atom_adjoint_prefix(row_re, row_im, g, pp, work, ab_ready, w_row, grad_re, grad_im):
    """Add sum_p w_row[p] drho_p/dA of one atom of group ``g`` to its signed gradient ``grad_re,
    grad_im (4H,)`` on the prefix plan ``pp`` (``work`` as for :func:`_atom_densities_prefix`, whose
    prefix products of the same row it reuses if ``ab_ready``). A term ``c Q d`` (prefix Q, last
    factor d, w = sum_p w_p c_p) adds w Q to d's gradient and w d to its prefix's D = sum w d; each
    prefix then adds D times the product of its other factors to each of its factors, once."""
    _, block_m, block_pre, block_diag, diag_start, pre_codes, last_codes, coeff_t, const, _ = pp
    b0, b1 = pp[0][g], pp[0][g + 1]
    q0, t0 = block_pre[b0], diag_start[block_diag[b0]]
    n_t = diag_start[block_diag[b1]] - t0
    ab_re, ab_im, dd_re, dd_im, weights = work[0], work[1], work[2], work[3], work[4]
    weights[:n_t] = 0.0
    for p in range(coeff_t.shape[0]):  # density by density: contiguous, it vectorises
        wp = w_row[p]
        cp = coeff_t[p, t0:t0 + n_t]
        for k in range(n_t):
            weights[k] += wp * cp[k]
    if not ab_ready:
        _prefix_products_jit(row_re, row_im, block_m, block_pre, pre_codes, b0, b1, q0, ab_re, ab_im)
    dd_re[:block_pre[b1] - q0] = 0.0
    dd_im[:block_pre[b1] - q0] = 0.0
    for b in range(b0, b1):
        j0 = block_pre[b] - q0
        for d in range(block_diag[b], block_diag[b + 1]):
            s0 = diag_start[d]
            n = diag_start[d + 1] - s0
            last = last_codes[s0:s0 + n]
            ws = weights[s0 - t0:s0 - t0 + n]
            x_re = ab_re[j0:j0 + n]
            x_im = ab_im[j0:j0 + n]
            y_re = dd_re[j0:j0 + n]
            y_im = dd_im[j0:j0 + n]
            for j in range(n):  # no two terms of a diagonal share a prefix
                c = last[j]
                w = ws[j]  # every load before the stores (which the compiler cannot tell apart)
                d_re, d_im, q_re, q_im = row_re[c], row_im[c], x_re[j], x_im[j]
                y_re[j] += w * d_re
                y_im[j] += w * d_im
                grad_re[c] += w * q_re
                grad_im[c] -= w * q_im
    for b in range(b0, b1):
        m = block_m[b]
        q1 = block_pre[b]
        if m == 2:
            n = block_pre[b + 1] - q1
            first, second = pre_codes[0, q1:q1 + n], pre_codes[1, q1:q1 + n]
            y_re, y_im = dd_re[q1 - q0:q1 - q0 + n], dd_im[q1 - q0:q1 - q0 + n]
            for j in range(n):
                c0, c1, x_re, x_im = first[j], second[j], y_re[j], y_im[j]
                a_re, a_im, b_re, b_im = row_re[c0], row_im[c0], row_re[c1], row_im[c1]
                _add_gradient_jit(c0, 1.0, b_re * x_re - b_im * x_im, b_re * x_im + b_im * x_re, grad_re, grad_im)
                _add_gradient_jit(c1, 1.0, a_re * x_re - a_im * x_im, a_re * x_im + a_im * x_re, grad_re, grad_im)
        else:  # m = 1, and the few longer ones: D times the other factors, O(m^2)
            for q in range(q1, block_pre[b + 1]):
                for t in range(m):
                    x_re = dd_re[q - q0]
                    x_im = dd_im[q - q0]
                    for u in range(m):
                        if u != t:
                            c = pre_codes[u, q]
                            x_re, x_im = x_re * row_re[c] - x_im * row_im[c], x_re * row_im[c] + x_im * row_re[c]
                    _add_gradient_jit(pre_codes[t, q], 1.0, x_re, x_im, grad_re, grad_im)


_atom_adjoint_prefix_jit = numba.njit(inline="always", cache=True)(_atom_adjoint_prefix)


def _product_kernel(a_re, a_im, group, pp, rho):
    n_atoms, h = a_re.shape
    width = _prefix_width_jit(pp)
    for i in numba.prange(n_atoms):
        row_re = np.empty(4 * h)
        row_im = np.empty(4 * h)
        work = np.empty((5, width))
        _load_signed_row_jit(a_re, a_im, i, row_re, row_im)
        _atom_densities_prefix_jit(row_re, row_im, group[i], pp, work, rho[i])


def _adjoint_kernel(a_re, a_im, group, pp, w_rho, ga_re, ga_im):
    n_atoms, h = a_re.shape
    width = _prefix_width_jit(pp)
    for i in numba.prange(n_atoms):
        row_re = np.empty(4 * h)
        row_im = np.empty(4 * h)
        grad_re = np.zeros(4 * h)
        grad_im = np.zeros(4 * h)
        work = np.empty((5, width))
        _load_signed_row_jit(a_re, a_im, i, row_re, row_im)
        _atom_adjoint_prefix_jit(row_re, row_im, group[i], pp, work, False, w_rho[i], grad_re, grad_im)
        _fold_gradient_jit(grad_re, grad_im, ga_re, ga_im, i)


# reassociation only (no contraction, no finite-math assumptions), as the fused kernel: the dot
# products over the terms vectorise (measured: the forward pass in 0.6x its time without)
_product = compile_pair(_product_kernel, fastmath={"reassoc"})
_adjoint = compile_pair(_adjoint_kernel, fastmath={"reassoc"})


def triple_plan(plan):
    """The plan split for the kernels, once per plan (cached on it): ``(tri_offsets (G+1,),
    tri_codes (T, 3), tri_coeff_t (P, T), rest_offsets (G+1,), rest_codes (S-T, RMAX),
    rest_length (S-T,), rest_coeff (S-T, P))`` as numpy arrays. The rank-3 terms without padding
    have their three codes sorted and, within each group, are sorted by them (so that terms with
    the same first two factors are neighbours); every other term keeps its codes and its order."""
    cached = plan.__dict__.get("_numba_triple_plan")
    if cached is not None:
        return cached
    codes = plan.codes.numpy()
    coeff = plan.coeff.numpy()
    length = plan.term_length.numpy()
    offsets = plan.group_offsets.numpy()
    n_groups = offsets.shape[0] - 1
    is_triple = (length == 3) & (codes[:, :3] >= 0).all(axis=1) if codes.shape[1] >= 3 else \
        np.zeros(codes.shape[0], dtype=bool)
    tri_rows, rest_rows = [], []
    tri_offsets, rest_offsets = [0], [0]
    for g in range(n_groups):
        block = np.arange(offsets[g], offsets[g + 1])
        triples = block[is_triple[block]]
        sorted_codes = np.sort(codes[triples, :3], axis=1) if triples.size else np.zeros((0, 3), dtype=np.int64)
        order = np.lexsort((sorted_codes[:, 2], sorted_codes[:, 1], sorted_codes[:, 0]))
        tri_rows.append((triples[order], sorted_codes[order]))
        rest_rows.append(block[~is_triple[block]])
        tri_offsets.append(tri_offsets[-1] + triples.shape[0])
        rest_offsets.append(rest_offsets[-1] + rest_rows[-1].shape[0])
    tri_index = np.concatenate([r for r, _ in tri_rows]) if tri_rows else np.zeros(0, dtype=np.int64)
    tri_codes = np.concatenate([c for _, c in tri_rows]) if tri_rows else np.zeros((0, 3), dtype=np.int64)
    rest_index = np.concatenate(rest_rows) if rest_rows else np.zeros(0, dtype=np.int64)
    out = (np.asarray(tri_offsets, dtype=np.int64), np.ascontiguousarray(tri_codes.reshape(-1, 3), dtype=np.int64),
           np.ascontiguousarray(coeff[tri_index].T),
           np.asarray(rest_offsets, dtype=np.int64), np.ascontiguousarray(codes[rest_index]),
           np.ascontiguousarray(length[rest_index]), np.ascontiguousarray(coeff[rest_index]))
    plan.__dict__["_numba_triple_plan"] = out
    return out


def _prefix_width(pp):
    """Columns of the per-atom scratch ``work (5, W)``: the most terms or prefixes of one group."""
    return pp[9]


_prefix_width_jit = numba.njit(inline="always", cache=True)(_prefix_width)


def prefix_plan(plan):
    """The plan as prefixes and last factors, once per plan (cached on it): ``(block_group (G+1,),
    block_m (NB,), block_pre (NB+1,), block_diag (NB+1,), diag_start (ND+1,), pre_codes (M, NQ)
    uint32, last_codes (T,) uint32, coeff_t (P, T), const (G, P), work_width)``.

    Each term's codes (padding, the factor 1, dropped) are sorted: the last is its factor ``d``,
    the others (``m`` of them) its prefix; terms of no factor add ``const``. Per group, the terms
    are in blocks by ``m`` (``block_group``, ``block_m``); in a block, the prefixes (``block_pre``,
    their codes column by column in ``pre_codes``) go by their number of terms, most first, and the
    terms are stored column-major over them (the jagged diagonal layout of sparse matrices: Saad,
    Iterative Methods for Sparse Linear Systems, 2nd ed., sec. 3.4): diagonal ``d`` holds the k-th
    term of each of its block's first ``n_d`` prefixes, so term ``diag_start[d] + j`` has the
    block's prefix ``j``: no index per term, and neighbouring terms have different prefixes."""
    cached = plan.__dict__.get("_numba_prefix_plan")
    if cached is not None:
        return cached
    codes = plan.codes.numpy()
    coeff = plan.coeff.numpy()
    offsets = plan.group_offsets.numpy()
    n_groups, n_p = offsets.shape[0] - 1, coeff.shape[1]
    width = max(codes.shape[1] - 1, 1)
    block_group, block_m, block_pre, block_diag, diag_start = [0], [], [0], [0], [0]
    pre_rows, last, term_rows = [], [], []
    const = np.zeros((n_groups, n_p))
    for g in range(n_groups):
        blocks: dict = {}  # m -> {prefix: [(last code, term)]}
        for s in range(offsets[g], offsets[g + 1]):
            factors = sorted(int(c) for c in codes[s] if c >= 0)
            if not factors:
                const[g] += coeff[s]
                continue
            blocks.setdefault(len(factors) - 1, {}).setdefault(tuple(factors[:-1]), []).append((factors[-1], s))
        for m in sorted(blocks):
            runs = sorted(blocks[m].items(), key=lambda kv: (-len(kv[1]), kv[0]))
            for prefix, terms in runs:
                pre_rows.append(list(prefix) + [0] * (width - m))
                terms.sort()
            for k in range(len(runs[0][1])):
                for _, terms in runs:
                    if len(terms) <= k:
                        break
                    last.append(terms[k][0])
                    term_rows.append(terms[k][1])
                diag_start.append(len(last))
            block_m.append(m)
            block_pre.append(len(pre_rows))
            block_diag.append(len(diag_start) - 1)
        block_group.append(len(block_m))
    as_int = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
    block_pre, block_diag, diag_start = as_int(block_pre), as_int(block_diag), as_int(diag_start)
    first, last_block = as_int(block_group[:-1]), as_int(block_group[1:])
    work_width = int(max(1, np.max(block_pre[last_block] - block_pre[first], initial=0),
                         np.max(diag_start[block_diag[last_block]] - diag_start[block_diag[first]], initial=0)))
    pre_codes = np.ascontiguousarray(as_int(pre_rows).reshape(-1, width).T).astype(np.uint32)
    out = (as_int(block_group), as_int(block_m), block_pre, block_diag, diag_start, pre_codes,
           as_int(last).astype(np.uint32), np.ascontiguousarray(coeff[as_int(term_rows)].T), const, work_width)
    plan.__dict__["_numba_prefix_plan"] = out
    return out


def _work(plan, n_atoms):
    per_atom = plan.n_terms * plan.rank_max // max(1, plan.n_groups)
    return n_atoms * per_atom


def product_basis(a_re, a_im, group, plan):
    n = a_re.shape[0]
    rho = torch.empty((n, plan.n_densities), dtype=a_re.dtype)
    kernel = pick(_product, _work(plan, n))
    kernel(a_re.numpy(), a_im.numpy(), group.numpy(), prefix_plan(plan), rho.numpy())
    return rho


def product_basis_adjoint(a_re, a_im, group, plan, w_rho):
    ga_re = torch.empty_like(a_re)
    ga_im = torch.empty_like(a_im)
    kernel = pick(_adjoint, _work(plan, a_re.shape[0]))
    kernel(a_re.numpy(), a_im.numpy(), group.numpy(), prefix_plan(plan), w_rho.numpy(), ga_re.numpy(), ga_im.numpy())
    return ga_re, ga_im
