"""Numba sparse product contraction of the ACE basis and its adjoint (contract:
``reference/product_basis.py``).

One atom per parallel iteration (owner computes). Each iteration copies its row of ``a`` into
local arrays, in the four signed/conjugated variants the factor codes address directly, and
accumulates its gradient locally per variant (contiguous, alias-free, no decoding in the loops).
Every term loops only up to its last real factor (``plan.term_length``, computed once per plan),
so padding to the largest rank costs nothing. The adjoint of a product of ``k`` factors takes
prefix and suffix products, so every ``prod over s != t`` costs O(1) instead of O(k).

Rank-3 terms (most of a potential's: 4884 of 5644 for the bundled Cu-shaped one) go through a
shared-prefix scheme, a one-level form of PACE's recursive evaluator (which shares partial
products between basis functions: Lysogorskiy et al., npj Comput. Mater. 7, 97 (2021)): the
product is commutative, so each term's factors are sorted and the terms sorted by them
(:func:`triple_plan`, once per plan); terms ``a b d`` that share the prefix ``a b`` then take
``a b`` from the previous term (1986 prefixes for those 4884 terms), and the adjoint adds the
prefix's gradients once per run of terms, ``d/da = b sum_s w_s d_s`` (and ``d/db = a sum_s w_s
d_s``), instead of once per term. The forward pass stores the terms' products and contracts them
with each density's coefficients in four partial sums (no add waits for the previous one). Only
the order of floating-point sums changes (results agree to rounding).
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
        row_re[4 * h] = x
        row_im[4 * h] = y
        row_re[4 * h + 1] = -x  # neg
        row_im[4 * h + 1] = -y
        row_re[4 * h + 2] = x  # conj
        row_im[4 * h + 2] = -y
        row_re[4 * h + 3] = -x  # neg conj
        row_im[4 * h + 3] = y


_load_signed_row_jit = numba.njit(inline="always", cache=True)(_load_signed_row)


def _factor(c, row_re, row_im):
    """The factor of code ``c`` (``c >= 0``) from the signed row."""
    return row_re[c], row_im[c]


_factor_jit = numba.njit(inline="always", cache=True)(_factor)


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
    independent add chains instead of one (a single running sum waits for the previous add every
    term)."""
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
    """rho_p of one atom of group ``g`` into ``acc (P,)`` from its signed row (``products``: scratch
    of at least the group's rank-3 term count). Shared by the product kernel and the fused ACE kernel."""
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
            a_r, a_i = _factor_jit(c0, row_re, row_im)
            b_r, b_i = _factor_jit(c1, row_re, row_im)
            ab_r = a_r * b_r - a_i * b_i
            ab_i = a_r * b_i + a_i * b_r
            p0 = c0
            p1 = c1
        d_r, d_i = _factor_jit(tri_codes[s, 2], row_re, row_im)
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
            fr, fi = _factor_jit(c, row_re, row_im)
            pr, pi = pr * fr - pi * fi, pr * fi + pi * fr
        for p in range(n_p):
            acc[p] += coeff[s, p] * pr


_atom_densities_jit = numba.njit(inline="always", cache=True)(_atom_densities)


def _atom_adjoint(row_re, row_im, g, tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes, term_length,
                  coeff, w_row, weights, f_re, f_im, pre_re, pre_im, grad_re, grad_im):
    """Add sum_p w_row[p] drho_p/dA of one atom of group ``g`` to its signed gradient ``grad_re,
    grad_im (4H,)`` (zeroed by the caller; :func:`_fold_gradient` undoes the signs). ``weights``
    (the group's rank-3 term count), ``f_re, f_im (RMAX,)`` and ``pre_re, pre_im (RMAX + 1,)`` are
    scratch. Shared by the adjoint kernel and the fused ACE kernel."""
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
            a_r, a_i = _factor_jit(c0, row_re, row_im)
            b_r, b_i = _factor_jit(c1, row_re, row_im)
            ab_r = a_r * b_r - a_i * b_i
            ab_i = a_r * b_i + a_i * b_r
            dd_r = 0.0
            dd_i = 0.0
            p0 = c0
            p1 = c1
        w = weights[s - t0]
        c2 = tri_codes[s, 2]
        d_r, d_i = _factor_jit(c2, row_re, row_im)
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
            a_r, a_i = _factor_jit(c0, row_re, row_im)
            b_r, b_i = _factor_jit(c1, row_re, row_im)
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
                fr, fi = _factor_jit(c, row_re, row_im)
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


def _product_kernel(a_re, a_im, group, tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes, term_length,
                    coeff, rho):
    n_atoms, h = a_re.shape
    n_p = coeff.shape[1]
    max_triples = _max_triples_jit(tri_offsets)
    for i in numba.prange(n_atoms):
        row_re = np.empty(4 * h)
        row_im = np.empty(4 * h)
        acc = np.empty(n_p)
        products = np.empty(max_triples)  # Re(a b d) of each rank-3 term of the atom's group
        _load_signed_row_jit(a_re, a_im, i, row_re, row_im)
        _atom_densities_jit(row_re, row_im, group[i], tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes,
                            term_length, coeff, products, acc)
        for p in range(n_p):
            rho[i, p] = acc[p]


def _adjoint_kernel(a_re, a_im, group, tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes, term_length,
                    coeff, w_rho, ga_re, ga_im):
    n_atoms, h = a_re.shape
    rmax = codes.shape[1]
    max_triples = _max_triples_jit(tri_offsets)
    for i in numba.prange(n_atoms):
        weights = np.empty(max_triples)  # w_s = sum_p w_rho[i, p] coeff[s, p] of the rank-3 terms
        row_re = np.empty(4 * h)
        row_im = np.empty(4 * h)
        grad_re = np.zeros(4 * h)
        grad_im = np.zeros(4 * h)
        _load_signed_row_jit(a_re, a_im, i, row_re, row_im)
        f_re = np.empty(max(rmax, 1))
        f_im = np.empty(max(rmax, 1))
        pre_re = np.empty(rmax + 1)  # pre[t] = f_0 ... f_{t-1}
        pre_im = np.empty(rmax + 1)
        _atom_adjoint_jit(row_re, row_im, group[i], tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes,
                          term_length, coeff, w_rho[i], weights, f_re, f_im, pre_re, pre_im, grad_re, grad_im)
        _fold_gradient_jit(grad_re, grad_im, ga_re, ga_im, i)


_product = compile_pair(_product_kernel)
_adjoint = compile_pair(_adjoint_kernel)


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


def _work(plan, n_atoms):
    per_atom = plan.n_terms * plan.rank_max // max(1, plan.n_groups)
    return n_atoms * per_atom


def product_basis(a_re, a_im, group, plan):
    n = a_re.shape[0]
    rho = torch.empty((n, plan.n_densities), dtype=a_re.dtype)
    kernel = pick(_product, _work(plan, n))
    # triple_plan (and plan.term_length) are computed once per plan, not per call
    kernel(a_re.numpy(), a_im.numpy(), group.numpy(), *triple_plan(plan), rho.numpy())
    return rho


def product_basis_adjoint(a_re, a_im, group, plan, w_rho):
    ga_re = torch.empty_like(a_re)
    ga_im = torch.empty_like(a_im)
    kernel = pick(_adjoint, _work(plan, a_re.shape[0]))
    kernel(a_re.numpy(), a_im.numpy(), group.numpy(), *triple_plan(plan), w_rho.numpy(), ga_re.numpy(),
           ga_im.numpy())
    return ga_re, ga_im
