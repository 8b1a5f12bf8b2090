"""Numba tangents (forward mode) of the ACE product basis and of its adjoint, for the
matrix-free Hessian-vector product (``acepy/models/ace_hvp.py``).

rho_p = sum_s c_sp Re(prod_t z_t) with z_t the signed / conjugated factors of term s
(``product_basis.py``). Along a tangent dA of the atomic base (the factors' tangents dz_t are the
same signed / conjugated variants of dA, the map being real-linear):

- :func:`product_jvp`: drho_p = sum_s c_sp Re(sum_t dz_t prod_{u != t} z_u), with dual numbers
  (value, tangent) carried through the same prefix products as the forward kernel;
- :func:`dual_adjoint`: the adjoint dE/dA = sum_s w_s dRe(prod)/dA (w_s = sum_p w_rho_p c_sp) and
  its tangent, sum_s [dw_s dRe(prod)/dA + w_s d(dRe(prod)/dA)], the second term being for each
  factor t the sum over u != t of the products of the other factors times dz_u: the kernel of
  ``product_basis.py`` run on dual numbers (prefix and suffix products, and its rank-3 prefix
  sharing: a run of terms a b d with one prefix adds b D and a D once, D = sum w d, and their
  tangents db D + b dD, da D + a dD).

K tangents at once: every dual carries K tangent parts. The signed rows, the fold of the signed
gradients and the four-way dot product are those of ``product_basis.py``.
"""

from __future__ import annotations

import numba
import numpy as np

from ._compile import compile_pair, pick
from .product_basis import _dot4_jit, _fold_gradient_jit, _load_signed_row_jit, _max_triples_jit, triple_plan


def _jvp_kernel(a_re, a_im, da_re, da_im, group, tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes,
                term_length, coeff, drho):
    n_atoms, h = a_re.shape
    n_k = da_re.shape[0]
    n_p = coeff.shape[1]
    max_triples = _max_triples_jit(tri_offsets)
    for i in numba.prange(n_atoms):
        row_re = np.empty(4 * h)
        row_im = np.empty(4 * h)
        drow_re = np.empty((n_k, 4 * h))
        drow_im = np.empty((n_k, 4 * h))
        _load_signed_row_jit(a_re, a_im, i, row_re, row_im)
        for k in range(n_k):
            _load_signed_row_jit(da_re[k], da_im[k], i, drow_re[k], drow_im[k])
        acc = np.zeros((n_k, n_p))
        products = np.empty((n_k, max_triples))
        dab_re = np.zeros(n_k)
        dab_im = np.zeros(n_k)
        dp_re = np.empty(n_k)
        dp_im = np.empty(n_k)
        g = group[i]
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
                for k in range(n_k):
                    da_r, da_i = drow_re[k, c0], drow_im[k, c0]
                    db_r, db_i = drow_re[k, c1], drow_im[k, c1]
                    dab_re[k] = da_r * b_r - da_i * b_i + a_r * db_r - a_i * db_i
                    dab_im[k] = da_r * b_i + da_i * b_r + a_r * db_i + a_i * db_r
                p0 = c0
                p1 = c1
            c2 = tri_codes[s, 2]
            d_r, d_i = row_re[c2], row_im[c2]
            for k in range(n_k):
                products[k, s - t0] = (dab_re[k] * d_r - dab_im[k] * d_i + ab_r * drow_re[k, c2]
                                       - ab_i * drow_im[k, c2])
        n_tri = tri_offsets[g + 1] - t0
        for k in range(n_k):
            for p in range(n_p):
                acc[k, p] = _dot4_jit(tri_coeff_t[p], t0, products[k], 0, n_tri)
        for s in range(group_offsets[g], group_offsets[g + 1]):
            pr = 1.0
            pi = 0.0
            for k in range(n_k):
                dp_re[k] = 0.0
                dp_im[k] = 0.0
            for t in range(term_length[s]):
                c = codes[s, t]
                if c < 0:
                    continue  # padding: the factor 1
                fr, fi = row_re[c], row_im[c]
                for k in range(n_k):
                    dfr, dfi = drow_re[k, c], drow_im[k, c]
                    x = dp_re[k] * fr - dp_im[k] * fi + pr * dfr - pi * dfi
                    dp_im[k] = dp_re[k] * fi + dp_im[k] * fr + pr * dfi + pi * dfr
                    dp_re[k] = x
                pr, pi = pr * fr - pi * fi, pr * fi + pi * fr
            for k in range(n_k):
                for p in range(n_p):
                    acc[k, p] += coeff[s, p] * dp_re[k]
        for k in range(n_k):
            for p in range(n_p):
                drho[k, i, p] = acc[k, p]


def _add(c, q_re, q_im, grad_re, grad_im):
    """grad of Re(f q) by the signed variant ``c`` (as ``product_basis._add_gradient`` with w = 1)."""
    grad_re[c] += q_re
    grad_im[c] -= q_im


_add_jit = numba.njit(inline="always", cache=True)(_add)


def _dual_adjoint_kernel(a_re, a_im, da_re, da_im, group, tri_offsets, tri_codes, tri_coeff_t, group_offsets, codes,
                         term_length, coeff, w_rho, dw_rho, ga_re, ga_im, dga_re, dga_im):
    n_atoms, h = a_re.shape
    n_k = da_re.shape[0]
    rmax = codes.shape[1]
    n_p = coeff.shape[1]
    max_triples = _max_triples_jit(tri_offsets)
    for i in numba.prange(n_atoms):
        row_re = np.empty(4 * h)
        row_im = np.empty(4 * h)
        drow_re = np.empty((n_k, 4 * h))
        drow_im = np.empty((n_k, 4 * h))
        _load_signed_row_jit(a_re, a_im, i, row_re, row_im)
        for k in range(n_k):
            _load_signed_row_jit(da_re[k], da_im[k], i, drow_re[k], drow_im[k])
        grad_re = np.zeros(4 * h)
        grad_im = np.zeros(4 * h)
        dgrad_re = np.zeros((n_k, 4 * h))
        dgrad_im = np.zeros((n_k, 4 * h))
        weights = np.zeros(max_triples)
        dweights = np.zeros((n_k, max_triples))
        dw = np.empty(n_k)
        dab_re = np.zeros(n_k)
        dab_im = np.zeros(n_k)
        dd_re = np.zeros(n_k)  # tangent of D = sum w d over the current run
        dd_im = np.zeros(n_k)
        f_re = np.empty(max(rmax, 1))
        f_im = np.empty(max(rmax, 1))
        df_re = np.empty((n_k, max(rmax, 1)))
        df_im = np.empty((n_k, max(rmax, 1)))
        pre_re = np.empty(rmax + 1)
        pre_im = np.empty(rmax + 1)
        dpre_re = np.empty((n_k, rmax + 1))
        dpre_im = np.empty((n_k, rmax + 1))
        dsuf_re = np.empty(n_k)
        dsuf_im = np.empty(n_k)
        g = group[i]
        t0 = tri_offsets[g]
        n_tri = tri_offsets[g + 1] - t0
        for p in range(n_p):
            wp = w_rho[i, p]
            for s in range(n_tri):
                weights[s] += wp * tri_coeff_t[p, t0 + s]
            for k in range(n_k):
                dwp = dw_rho[k, i, p]
                for s in range(n_tri):
                    dweights[k, s] += dwp * tri_coeff_t[p, t0 + s]
        p0 = -1
        p1 = -1
        a_r = a_i = b_r = b_i = ab_r = ab_i = 0.0
        sd_r = 0.0  # D
        sd_i = 0.0
        for s in range(t0, t0 + n_tri + 1):
            last = s == t0 + n_tri
            c0 = -2
            c1 = -2
            if not last:
                c0 = tri_codes[s, 0]
                c1 = tri_codes[s, 1]
            if last or c0 != p0 or c1 != p1:
                if p0 >= 0:  # the run of prefix (p0, p1) ends: b D to a, a D to b, with tangents
                    _add_jit(p0, b_r * sd_r - b_i * sd_i, b_r * sd_i + b_i * sd_r, grad_re, grad_im)
                    _add_jit(p1, a_r * sd_r - a_i * sd_i, a_r * sd_i + a_i * sd_r, grad_re, grad_im)
                    for k in range(n_k):
                        db_r, db_i = drow_re[k, p1], drow_im[k, p1]
                        da_r, da_i = drow_re[k, p0], drow_im[k, p0]
                        qr = db_r * sd_r - db_i * sd_i + b_r * dd_re[k] - b_i * dd_im[k]
                        qi = db_r * sd_i + db_i * sd_r + b_r * dd_im[k] + b_i * dd_re[k]
                        _add_jit(p0, qr, qi, dgrad_re[k], dgrad_im[k])
                        qr = da_r * sd_r - da_i * sd_i + a_r * dd_re[k] - a_i * dd_im[k]
                        qi = da_r * sd_i + da_i * sd_r + a_r * dd_im[k] + a_i * dd_re[k]
                        _add_jit(p1, qr, qi, dgrad_re[k], dgrad_im[k])
                if last:
                    break
                a_r, a_i = row_re[c0], row_im[c0]
                b_r, b_i = row_re[c1], row_im[c1]
                ab_r = a_r * b_r - a_i * b_i
                ab_i = a_r * b_i + a_i * b_r
                for k in range(n_k):
                    da_r, da_i = drow_re[k, c0], drow_im[k, c0]
                    db_r, db_i = drow_re[k, c1], drow_im[k, c1]
                    dab_re[k] = da_r * b_r - da_i * b_i + a_r * db_r - a_i * db_i
                    dab_im[k] = da_r * b_i + da_i * b_r + a_r * db_i + a_i * db_r
                    dd_re[k] = 0.0
                    dd_im[k] = 0.0
                sd_r = 0.0
                sd_i = 0.0
                p0 = c0
                p1 = c1
            w = weights[s - t0]
            c2 = tri_codes[s, 2]
            d_r, d_i = row_re[c2], row_im[c2]
            sd_r += w * d_r
            sd_i += w * d_i
            _add_jit(c2, w * ab_r, w * ab_i, grad_re, grad_im)
            for k in range(n_k):
                dwk = dweights[k, s - t0]
                ddr, ddi = drow_re[k, c2], drow_im[k, c2]
                dd_re[k] += dwk * d_r + w * ddr
                dd_im[k] += dwk * d_i + w * ddi
                _add_jit(c2, dwk * ab_r + w * dab_re[k], dwk * ab_i + w * dab_im[k], dgrad_re[k], dgrad_im[k])
        for s in range(group_offsets[g], group_offsets[g + 1]):
            w = 0.0
            for p in range(n_p):
                w += w_rho[i, p] * coeff[s, p]
            live = w != 0.0
            for k in range(n_k):
                x = 0.0
                for p in range(n_p):
                    x += dw_rho[k, i, p] * coeff[s, p]
                dw[k] = x
                live = live or x != 0.0
            if not live:
                continue
            n_f = term_length[s]
            pre_re[0] = 1.0
            pre_im[0] = 0.0
            for k in range(n_k):
                dpre_re[k, 0] = 0.0
                dpre_im[k, 0] = 0.0
            for t in range(n_f):
                c = codes[s, t]
                fr = 1.0  # padding: the factor 1
                fi = 0.0
                if c >= 0:
                    fr, fi = row_re[c], row_im[c]
                f_re[t] = fr
                f_im[t] = fi
                pre_re[t + 1] = pre_re[t] * fr - pre_im[t] * fi
                pre_im[t + 1] = pre_re[t] * fi + pre_im[t] * fr
                for k in range(n_k):
                    dfr = 0.0
                    dfi = 0.0
                    if c >= 0:
                        dfr, dfi = drow_re[k, c], drow_im[k, c]
                    df_re[k, t] = dfr
                    df_im[k, t] = dfi
                    dpre_re[k, t + 1] = dpre_re[k, t] * fr - dpre_im[k, t] * fi + pre_re[t] * dfr - pre_im[t] * dfi
                    dpre_im[k, t + 1] = dpre_re[k, t] * fi + dpre_im[k, t] * fr + pre_re[t] * dfi + pre_im[t] * dfr
            suf_re = 1.0
            suf_im = 0.0
            for k in range(n_k):
                dsuf_re[k] = 0.0
                dsuf_im[k] = 0.0
            for t in range(n_f - 1, -1, -1):
                c = codes[s, t]
                if c >= 0:
                    q_re = pre_re[t] * suf_re - pre_im[t] * suf_im
                    q_im = pre_re[t] * suf_im + pre_im[t] * suf_re
                    _add_jit(c, w * q_re, w * q_im, grad_re, grad_im)
                    for k in range(n_k):
                        dq_re = (dpre_re[k, t] * suf_re - dpre_im[k, t] * suf_im + pre_re[t] * dsuf_re[k]
                                 - pre_im[t] * dsuf_im[k])
                        dq_im = (dpre_re[k, t] * suf_im + dpre_im[k, t] * suf_re + pre_re[t] * dsuf_im[k]
                                 + pre_im[t] * dsuf_re[k])
                        _add_jit(c, dw[k] * q_re + w * dq_re, dw[k] * q_im + w * dq_im, dgrad_re[k], dgrad_im[k])
                for k in range(n_k):
                    x = dsuf_re[k] * f_re[t] - dsuf_im[k] * f_im[t] + suf_re * df_re[k, t] - suf_im * df_im[k, t]
                    dsuf_im[k] = dsuf_re[k] * f_im[t] + dsuf_im[k] * f_re[t] + suf_re * df_im[k, t] + suf_im * df_re[k, t]
                    dsuf_re[k] = x
                suf_re, suf_im = suf_re * f_re[t] - suf_im * f_im[t], suf_re * f_im[t] + suf_im * f_re[t]
        _fold_gradient_jit(grad_re, grad_im, ga_re, ga_im, i)
        for k in range(n_k):
            _fold_gradient_jit(dgrad_re[k], dgrad_im[k], dga_re[k], dga_im[k], i)


_jvp = compile_pair(_jvp_kernel)
_dual_adjoint = compile_pair(_dual_adjoint_kernel)


def _work(plan, n_atoms, n_k):
    return n_atoms * (1 + n_k) * plan.n_terms * plan.rank_max // max(1, plan.n_groups)


def product_jvp(a_re, a_im, da_re, da_im, group, plan):
    """``drho (K, N, P)`` along ``da (K, N, H)`` at ``a (N, H)`` (float64 numpy arrays)."""
    k, n = da_re.shape[0], a_re.shape[0]
    drho = np.empty((k, n, plan.n_densities))
    kernel = pick(_jvp, _work(plan, n, k))
    kernel(a_re, a_im, da_re, da_im, group, *triple_plan(plan), drho)
    return drho


def dual_adjoint(a_re, a_im, da_re, da_im, group, plan, w_rho, dw_rho):
    """``(ga_re, ga_im (N, H), dga_re, dga_im (K, N, H))``: dE/dA for the weights ``w_rho (N, P)``
    and its tangent along ``da`` with weight tangents ``dw_rho (K, N, P)``."""
    ga_re = np.empty_like(a_re)
    ga_im = np.empty_like(a_im)
    dga_re = np.empty_like(da_re)
    dga_im = np.empty_like(da_im)
    kernel = pick(_dual_adjoint, _work(plan, a_re.shape[0], da_re.shape[0]))
    kernel(a_re, a_im, da_re, da_im, group, *triple_plan(plan), w_rho, dw_rho, ga_re, ga_im, dga_re, dga_im)
    return ga_re, ga_im, dga_re, dga_im
