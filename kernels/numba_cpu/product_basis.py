"""Numba sparse product contraction of the ACE basis and its adjoint (contract:
``reference/product_basis.py``).

One atom per parallel iteration (owner computes). Each iteration copies its row of ``a`` into
local arrays and accumulates its gradient row locally (contiguous, alias-free: LLVM keeps the
inner loops tight), and every term loops only up to its last real factor (``term_length``), so
padding to the largest rank costs nothing. The adjoint of a product of ``k`` factors takes prefix
and suffix products, so every ``prod over s != t`` costs O(1) instead of O(k).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ._compile import compile_pair, pick


def _factor(c, row_re, row_im):
    """The factor of code ``c`` (``c >= 0``) from the atom's row."""
    # branch-free: the flags are data, and mispredicted branches cost more than two multiplies
    s_re = 1.0 - 2.0 * (c & 1)
    s_im = s_re * (1.0 - 2.0 * ((c >> 1) & 1))
    h = c >> 2
    return s_re * row_re[h], s_im * row_im[h]


_factor_jit = numba.njit(inline="always", cache=True)(_factor)


def _add_gradient(c, w, q_re, q_im, grad_re, grad_im):
    """Add w dRe(f q)/d(row) for the factor of code ``c``: d Re(f q) = q_re d f_re - q_im d f_im,
    then undo the factor's sign and conjugation."""
    s_re = 1.0 - 2.0 * (c & 1)
    s_im = s_re * (1.0 - 2.0 * ((c >> 1) & 1))
    col = c >> 2
    grad_re[col] += w * s_re * q_re
    grad_im[col] -= w * s_im * q_im


_add_gradient_jit = numba.njit(inline="always", cache=True)(_add_gradient)


def _product_kernel(a_re, a_im, group, group_offsets, codes, term_length, coeff, rho):
    n_atoms, h = a_re.shape
    n_p = coeff.shape[1]
    for i in numba.prange(n_atoms):
        row_re = np.empty(h)
        row_im = np.empty(h)
        acc = np.zeros(n_p)
        for k in range(h):
            row_re[k] = a_re[i, k]
            row_im[k] = a_im[i, k]
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
        row_re = np.empty(h)
        row_im = np.empty(h)
        grad_re = np.zeros(h)
        grad_im = np.zeros(h)
        for k in range(h):
            row_re[k] = a_re[i, k]
            row_im[k] = a_im[i, k]
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
        for k in range(h):
            ga_re[i, k] = grad_re[k]
            ga_im[i, k] = grad_im[k]


_product = compile_pair(_product_kernel)
_adjoint = compile_pair(_adjoint_kernel)


def _term_length(codes: torch.Tensor) -> torch.Tensor:
    """Per term: one past its last real factor (0 for an all-padding term)."""
    if codes.shape[1] == 0:
        return torch.zeros(codes.shape[0], dtype=torch.int64)
    positions = torch.arange(1, codes.shape[1] + 1, dtype=torch.int64)
    return torch.where(codes >= 0, positions, torch.zeros_like(positions)).amax(dim=1)


def _work(group_offsets, codes, n_atoms):
    per_atom = codes.shape[0] * codes.shape[1] // max(1, group_offsets.shape[0] - 1)
    return n_atoms * per_atom


def product_basis(a_re, a_im, group, group_offsets, codes, coeff):
    n = a_re.shape[0]
    rho = torch.empty((n, coeff.shape[1]), dtype=a_re.dtype)
    kernel = pick(_product, _work(group_offsets, codes, n))
    kernel(a_re.numpy(), a_im.numpy(), group.numpy(), group_offsets.numpy(), codes.numpy(),
           _term_length(codes).numpy(), coeff.numpy(), rho.numpy())
    return rho


def product_basis_adjoint(a_re, a_im, group, group_offsets, codes, coeff, w_rho):
    ga_re = torch.empty_like(a_re)
    ga_im = torch.empty_like(a_im)
    kernel = pick(_adjoint, _work(group_offsets, codes, a_re.shape[0]))
    kernel(a_re.numpy(), a_im.numpy(), group.numpy(), group_offsets.numpy(), codes.numpy(),
           _term_length(codes).numpy(), coeff.numpy(), w_rho.numpy(), ga_re.numpy(), ga_im.numpy())
    return ga_re, ga_im
