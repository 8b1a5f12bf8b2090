"""Numba sparse product contraction of the ACE basis and its adjoint (contract:
``reference/product_basis.py``).

One atom per parallel iteration (owner computes). Each iteration copies its row of ``a`` into
local arrays, in the four signed/conjugated variants the factor codes address directly, and
accumulates its gradient locally per variant (contiguous, alias-free, no decoding in the loops).
Every term loops only up to its last real factor (``plan.term_length``, computed once per plan),
so padding to the largest rank costs nothing. The adjoint of a product of ``k`` factors takes
prefix and suffix products, so every ``prod over s != t`` costs O(1) instead of O(k).
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


def _product_kernel(a_re, a_im, group, group_offsets, codes, term_length, coeff, rho):
    n_atoms, h = a_re.shape
    n_p = coeff.shape[1]
    for i in numba.prange(n_atoms):
        row_re = np.empty(4 * h)
        row_im = np.empty(4 * h)
        acc = np.zeros(n_p)
        _load_signed_row_jit(a_re, a_im, i, row_re, row_im)
        g = group[i]
        for s in range(group_offsets[g], group_offsets[g + 1]):
            k = term_length[s]
            if k == 3 and codes[s, 0] >= 0 and codes[s, 1] >= 0 and codes[s, 2] >= 0:
                # the common case, straight-line (callers that sort terms by rank make this branch
                # predictable)
                a_r, a_i = _factor_jit(codes[s, 0], row_re, row_im)
                b_r, b_i = _factor_jit(codes[s, 1], row_re, row_im)
                d_r, d_i = _factor_jit(codes[s, 2], row_re, row_im)
                ab_r = a_r * b_r - a_i * b_i
                ab_i = a_r * b_i + a_i * b_r
                pr = ab_r * d_r - ab_i * d_i
                for p in range(n_p):
                    acc[p] += coeff[s, p] * pr
                continue
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
        for p in range(n_p):
            rho[i, p] = acc[p]


def _adjoint_kernel(a_re, a_im, group, group_offsets, codes, term_length, coeff, w_rho, ga_re, ga_im):
    n_atoms, h = a_re.shape
    rmax = codes.shape[1]
    n_p = coeff.shape[1]
    for i in numba.prange(n_atoms):
        row_re = np.empty(4 * h)
        row_im = np.empty(4 * h)
        grad_re = np.zeros(4 * h)
        grad_im = np.zeros(4 * h)
        _load_signed_row_jit(a_re, a_im, i, row_re, row_im)
        f_re = np.empty(rmax)
        f_im = np.empty(rmax)
        pre_re = np.empty(rmax + 1)  # pre[t] = f_0 ... f_{t-1}
        pre_im = np.empty(rmax + 1)
        g = group[i]
        for s in range(group_offsets[g], group_offsets[g + 1]):
            w = 0.0
            for p in range(n_p):
                w += w_rho[i, p] * coeff[s, p]
            if w == 0.0:
                continue
            k = term_length[s]
            if k == 3 and codes[s, 0] >= 0 and codes[s, 1] >= 0 and codes[s, 2] >= 0:
                # the common case (most terms are rank 3), unrolled: no prefix arrays
                c0, c1, c2 = codes[s, 0], codes[s, 1], codes[s, 2]
                a_r, a_i = _factor_jit(c0, row_re, row_im)
                b_r, b_i = _factor_jit(c1, row_re, row_im)
                d_r, d_i = _factor_jit(c2, row_re, row_im)
                _add_gradient_jit(c0, w, b_r * d_r - b_i * d_i, b_r * d_i + b_i * d_r, grad_re, grad_im)
                _add_gradient_jit(c1, w, a_r * d_r - a_i * d_i, a_r * d_i + a_i * d_r, grad_re, grad_im)
                _add_gradient_jit(c2, w, a_r * b_r - a_i * b_i, a_r * b_i + a_i * b_r, grad_re, grad_im)
                continue
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
        _fold_gradient_jit(grad_re, grad_im, ga_re, ga_im, i)


_product = compile_pair(_product_kernel)
_adjoint = compile_pair(_adjoint_kernel)


def _work(plan, n_atoms):
    per_atom = plan.n_terms * plan.rank_max // max(1, plan.n_groups)
    return n_atoms * per_atom


def product_basis(a_re, a_im, group, plan):
    n = a_re.shape[0]
    rho = torch.empty((n, plan.n_densities), dtype=a_re.dtype)
    kernel = pick(_product, _work(plan, n))
    # plan.term_length is computed once per plan, not per call
    kernel(a_re.numpy(), a_im.numpy(), group.numpy(), plan.group_offsets.numpy(), plan.codes.numpy(),
           plan.term_length.numpy(), plan.coeff.numpy(), rho.numpy())
    return rho


def product_basis_adjoint(a_re, a_im, group, plan, w_rho):
    ga_re = torch.empty_like(a_re)
    ga_im = torch.empty_like(a_im)
    kernel = pick(_adjoint, _work(plan, a_re.shape[0]))
    kernel(a_re.numpy(), a_im.numpy(), group.numpy(), plan.group_offsets.numpy(), plan.codes.numpy(),
           plan.term_length.numpy(), plan.coeff.numpy(), w_rho.numpy(), ga_re.numpy(), ga_im.numpy())
    return ga_re, ga_im
