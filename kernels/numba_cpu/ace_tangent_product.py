"""Numba tangents (forward mode) of the ACE product basis and of its adjoint, for the
matrix-free Hessian-vector product (``acepy/models/ace_hvp.py``), on the prefix plan of
``product_basis.py``.

rho_p = const_p + sum_s c_sp Re(Q_s f_s), Q_s the product of term s's prefix and f_s its last
factor (signed / conjugated variants of A, a real-linear map: their tangents are the same variants
of dA). Along a tangent dA:

- :func:`product_jvp`: drho_p = sum_s c_sp Re(dQ_s f_s + Q_s df_s), dQ the tangent of each prefix
  product (product rule, once per prefix); the densities themselves come with it;
- :func:`dual_adjoint`: the adjoint G = sum_s w_s dRe(Q_s f_s)/dA (w_s = sum_p w_rho_p c_sp) and
  its tangent. The adjoint is two passes (``product_basis._atom_adjoint_prefix``): each term adds
  w Q to its last factor's gradient and w f to its prefix's D = sum w f; each prefix adds D times
  its other factors to each of its factors. Both passes are bilinear, so their tangents are the
  same passes on tangent arguments: the first gives dw Q + w dQ and dD = dw f + w df (the pass run
  twice, on (dw, Q, f) and (w, dQ, df)); the second gives dD times the other factors (the pass on
  dD) plus D times the tangent of the product of the other factors (:func:`_prefix_adjoint_tangent`).

K tangents: each atom's values (prefix products, weights, D) are made once, then each tangent in
turn with the same per-atom scratch.
"""

from __future__ import annotations

import numba
import numpy as np

from ._compile import compile_pair, pick
from .product_basis import (_add_gradient_jit, _contract_jit, _fold_gradient_jit, _group_span_jit,
                            _last_factor_adjoint_jit, _load_signed_row_jit, _prefix_adjoint_jit, _prefix_products_jit,
                            _prefix_width_jit, _term_products_jit, _term_weights_jit, prefix_plan)


def _prefix_tangents(row_re, row_im, drow_re, drow_im, pp, b0, b1, q0, dx_re, dx_im):
    """The tangent of each prefix product of blocks ``b0 .. b1 - 1`` into ``dx[q - q0]`` (the
    product rule: d(f_0 .. f_{m-1}) = sum_t f_0 .. df_t .. f_{m-1})."""
    block_m, block_pre, pre_codes = pp[1], pp[2], pp[5]
    for b in range(b0, b1):
        m = block_m[b]
        q1 = block_pre[b]
        n = block_pre[b + 1] - q1
        y_re = dx_re[q1 - q0:q1 - q0 + n]
        y_im = dx_im[q1 - q0:q1 - q0 + n]
        first = pre_codes[0, q1:q1 + n]
        if m == 1:
            for j in range(n):
                y_re[j] = drow_re[first[j]]
                y_im[j] = drow_im[first[j]]
        elif m == 2:
            second = pre_codes[1, q1:q1 + n]
            for j in range(n):
                c0 = first[j]
                c1 = second[j]
                y_re[j] = (drow_re[c0] * row_re[c1] - drow_im[c0] * row_im[c1]
                           + row_re[c0] * drow_re[c1] - row_im[c0] * drow_im[c1])
                y_im[j] = (drow_re[c0] * row_im[c1] + drow_im[c0] * row_re[c1]
                           + row_re[c0] * drow_im[c1] + row_im[c0] * drow_re[c1])
        else:  # the empty product (m = 0: tangent 0), and the few longer ones: dual numbers
            for j in range(n):
                pr = 1.0
                pi = 0.0
                dr = 0.0
                di = 0.0
                for t in range(m):
                    c = pre_codes[t, q1 + j]
                    fr, fi, gr, gi = row_re[c], row_im[c], drow_re[c], drow_im[c]
                    dr, di = dr * fr - di * fi + pr * gr - pi * gi, dr * fi + di * fr + pr * gi + pi * gr
                    pr, pi = pr * fr - pi * fi, pr * fi + pi * fr
                y_re[j] = dr
                y_im[j] = di


_prefix_tangents_jit = numba.njit(inline="always", cache=True)(_prefix_tangents)


def _prefix_adjoint_tangent(dd_re, dd_im, row_re, row_im, drow_re, drow_im, pp, b0, b1, q0, grad_re, grad_im):
    """Each prefix adds ``dd`` times the tangent of the product of its other factors to each of
    its factors' signed gradients (nothing for m = 1: no other factor)."""
    block_m, block_pre, pre_codes = pp[1], pp[2], pp[5]
    for b in range(b0, b1):
        m = block_m[b]
        q1 = block_pre[b]
        if m == 2:
            n = block_pre[b + 1] - q1
            first, second = pre_codes[0, q1:q1 + n], pre_codes[1, q1:q1 + n]
            y_re, y_im = dd_re[q1 - q0:q1 - q0 + n], dd_im[q1 - q0:q1 - q0 + n]
            for j in range(n):
                c0, c1, x_re, x_im = first[j], second[j], y_re[j], y_im[j]
                a_re, a_im, b_re, b_im = drow_re[c0], drow_im[c0], drow_re[c1], drow_im[c1]
                _add_gradient_jit(c0, 1.0, b_re * x_re - b_im * x_im, b_re * x_im + b_im * x_re, grad_re, grad_im)
                _add_gradient_jit(c1, 1.0, a_re * x_re - a_im * x_im, a_re * x_im + a_im * x_re, grad_re, grad_im)
        elif m > 2:  # the few longer ones: D times the product of the others on dual numbers, O(m^2)
            for q in range(q1, block_pre[b + 1]):
                for t in range(m):
                    x_re = dd_re[q - q0]
                    x_im = dd_im[q - q0]
                    y_re = 0.0
                    y_im = 0.0
                    for u in range(m):
                        if u != t:
                            c = pre_codes[u, q]
                            fr, fi, gr, gi = row_re[c], row_im[c], drow_re[c], drow_im[c]
                            y_re, y_im = (y_re * fr - y_im * fi + x_re * gr - x_im * gi,
                                          y_re * fi + y_im * fr + x_re * gi + x_im * gr)
                            x_re, x_im = x_re * fr - x_im * fi, x_re * fi + x_im * fr
                    _add_gradient_jit(pre_codes[t, q], 1.0, y_re, y_im, grad_re, grad_im)


_prefix_adjoint_tangent_jit = numba.njit(inline="always", cache=True)(_prefix_adjoint_tangent)


def _jvp_kernel(a_re, a_im, da_re, da_im, group, pp, rho, drho):
    n_atoms, h = a_re.shape
    n_k = da_re.shape[0]
    width = _prefix_width_jit(pp)
    for i in numba.prange(n_atoms):
        row_re = np.empty(4 * h)
        row_im = np.empty(4 * h)
        drow_re = np.empty(4 * h)
        drow_im = np.empty(4 * h)
        work = np.empty((5, width))  # rows 0, 1: Q; 2, 3: dQ; 4: the term products or their tangents
        zero = np.zeros(rho.shape[1])
        g = group[i]
        b0, b1, q0, t0, n_t = _group_span_jit(g, pp)
        _load_signed_row_jit(a_re, a_im, i, row_re, row_im)
        _prefix_products_jit(row_re, row_im, pp[1], pp[2], pp[5], b0, b1, q0, work[0], work[1])
        _term_products_jit(work[0], work[1], row_re, row_im, pp, b0, b1, q0, t0, False, work[4])
        _contract_jit(pp[7], t0, n_t, work[4], pp[8][g], rho[i])
        for k in range(n_k):
            _load_signed_row_jit(da_re[k], da_im[k], i, drow_re, drow_im)
            _prefix_tangents_jit(row_re, row_im, drow_re, drow_im, pp, b0, b1, q0, work[2], work[3])
            _term_products_jit(work[2], work[3], row_re, row_im, pp, b0, b1, q0, t0, False, work[4])
            _term_products_jit(work[0], work[1], drow_re, drow_im, pp, b0, b1, q0, t0, True, work[4])
            _contract_jit(pp[7], t0, n_t, work[4], zero, drho[k, i])


def _dual_adjoint_kernel(a_re, a_im, da_re, da_im, group, pp, w_rho, dw_rho, ga_re, ga_im, dga_re, dga_im):
    n_atoms, h = a_re.shape
    n_k = da_re.shape[0]
    width = _prefix_width_jit(pp)
    for i in numba.prange(n_atoms):
        row_re = np.empty(4 * h)
        row_im = np.empty(4 * h)
        drow_re = np.empty(4 * h)
        drow_im = np.empty(4 * h)
        grad_re = np.zeros(4 * h)
        grad_im = np.zeros(4 * h)
        work = np.empty((5, width))  # Q, D, weights (as product_basis._atom_adjoint_prefix)
        dwork = np.empty((5, width))  # dQ, dD, weight tangents
        g = group[i]
        b0, b1, q0, t0, n_t = _group_span_jit(g, pp)
        n_q = pp[2][b1] - q0
        _load_signed_row_jit(a_re, a_im, i, row_re, row_im)
        _prefix_products_jit(row_re, row_im, pp[1], pp[2], pp[5], b0, b1, q0, work[0], work[1])
        _term_weights_jit(pp[7], t0, n_t, w_rho[i], work[4])
        work[2, :n_q] = 0.0
        work[3, :n_q] = 0.0
        _last_factor_adjoint_jit(work[4], work[0], work[1], row_re, row_im, pp, b0, b1, q0, t0, work[2], work[3],
                                 grad_re, grad_im)
        _prefix_adjoint_jit(work[2], work[3], row_re, row_im, pp, b0, b1, q0, grad_re, grad_im)
        _fold_gradient_jit(grad_re, grad_im, ga_re, ga_im, i)
        for k in range(n_k):
            grad_re[:] = 0.0
            grad_im[:] = 0.0
            _load_signed_row_jit(da_re[k], da_im[k], i, drow_re, drow_im)
            _prefix_tangents_jit(row_re, row_im, drow_re, drow_im, pp, b0, b1, q0, dwork[0], dwork[1])
            _term_weights_jit(pp[7], t0, n_t, dw_rho[k, i], dwork[4])
            dwork[2, :n_q] = 0.0
            dwork[3, :n_q] = 0.0
            # dw Q + w dQ to the last factors, dw f + w df to the prefixes' dD
            _last_factor_adjoint_jit(dwork[4], work[0], work[1], row_re, row_im, pp, b0, b1, q0, t0, dwork[2],
                                     dwork[3], grad_re, grad_im)
            _last_factor_adjoint_jit(work[4], dwork[0], dwork[1], drow_re, drow_im, pp, b0, b1, q0, t0, dwork[2],
                                     dwork[3], grad_re, grad_im)
            # dD times the other factors, D times their tangent
            _prefix_adjoint_jit(dwork[2], dwork[3], row_re, row_im, pp, b0, b1, q0, grad_re, grad_im)
            _prefix_adjoint_tangent_jit(work[2], work[3], row_re, row_im, drow_re, drow_im, pp, b0, b1, q0,
                                        grad_re, grad_im)
            _fold_gradient_jit(grad_re, grad_im, dga_re[k], dga_im[k], i)


# the jvp: reassociation only, as the forward kernels of product_basis.py (its contractions with the
# coefficients are dot products over the terms: they vectorise; measured 0.6x its time without). The
# dual adjoint has no reductions to reorder (the same time without): no fast-math flags
_jvp = compile_pair(_jvp_kernel, fastmath={"reassoc"})
_dual_adjoint = compile_pair(_dual_adjoint_kernel)


def _work(plan, n_atoms, n_k):
    return n_atoms * (1 + n_k) * plan.n_terms * plan.rank_max // max(1, plan.n_groups)


def product_jvp(a_re, a_im, da_re, da_im, group, plan):
    """``(rho (N, P), drho (K, N, P))``: the densities at ``a (N, H)`` and their tangents along
    ``da (K, N, H)`` (float64 numpy arrays)."""
    k, n = da_re.shape[0], a_re.shape[0]
    rho = np.empty((n, plan.n_densities))
    drho = np.empty((k, n, plan.n_densities))
    kernel = pick(_jvp, _work(plan, n, k))
    kernel(a_re, a_im, da_re, da_im, group, prefix_plan(plan), rho, drho)
    return rho, drho


def dual_adjoint(a_re, a_im, da_re, da_im, group, plan, w_rho, dw_rho):
    """``(ga_re, ga_im (N, H), dga_re, dga_im (K, N, H))``: dE/dA for the weights ``w_rho (N, P)``
    and its tangent along ``da`` with weight tangents ``dw_rho (K, N, P)``."""
    ga_re = np.empty_like(a_re)
    ga_im = np.empty_like(a_im)
    dga_re = np.empty_like(da_re)
    dga_im = np.empty_like(da_im)
    kernel = pick(_dual_adjoint, _work(plan, a_re.shape[0], da_re.shape[0]))
    kernel(a_re, a_im, da_re, da_im, group, prefix_plan(plan), w_rho, dw_rho, ga_re, ga_im, dga_re, dga_im)
    return ga_re, ga_im, dga_re, dga_im
