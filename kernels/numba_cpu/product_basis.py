"""Numba sparse product contraction of the ACE basis and its adjoint (contract:
``reference/product_basis.py``).

One atom per parallel iteration (owner computes). Each iteration copies its row of ``a`` into
local arrays, in the four signed/conjugated variants the factor codes address directly, and
accumulates its gradient locally per variant (contiguous, alias-free, no decoding in the loops).

The kernels run the prefix plan (:func:`prefix_plan`), a one-level form of PACE's recursive
evaluator (shared partial products: Lysogorskiy et al., npj Comput. Mater. 7, 97 (2021)): each
term is its sorted factors, a prefix made once per atom times a last factor; the adjoint adds each
prefix's gradients once. The per-atom steps (prefix products, term products, the contraction
with the coefficients, the term weights, the two adjoint passes) are separate inline functions:
the fused kernel (``ace_fused.py``) runs the densities and the adjoint of one atom, and the
forward-mode tangents of the Hessian-vector product (``ace_tangent_product.py``) run the same
steps on tangent rows. Only the order of floating-point sums differs from the torch reference
(results agree to rounding).
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


def _group_span(g, pp):
    """``(b0, b1, q0, t0, n_t)``: the blocks of group ``g``, its first prefix and term, its term count."""
    block_pre, block_diag, diag_start = pp[2], pp[3], pp[4]
    b0, b1 = pp[0][g], pp[0][g + 1]
    t0 = diag_start[block_diag[b0]]
    return b0, b1, block_pre[b0], t0, diag_start[block_diag[b1]] - t0


_group_span_jit = numba.njit(inline="always", cache=True)(_group_span)


def _term_products(x_re, x_im, row_re, row_im, pp, b0, b1, q0, t0, add, products):
    """``products[s - t0] (+)= Re(x_j f_s)`` for each term s of blocks ``b0 .. b1 - 1``: ``x`` per
    prefix j (its product, or its tangent), ``f_s`` the term's last factor in ``row`` (its value,
    or its tangent). Stores with ``add`` false, adds with it true."""
    block_pre, block_diag, diag_start, last_codes = pp[2], pp[3], pp[4], pp[6]
    for b in range(b0, b1):
        j0 = block_pre[b] - q0
        for d in range(block_diag[b], block_diag[b + 1]):  # term j of diagonal d has the prefix j
            s0 = diag_start[d]
            n = diag_start[d + 1] - s0
            last = last_codes[s0:s0 + n]
            out = products[s0 - t0:s0 - t0 + n]
            y_re = x_re[j0:j0 + n]
            y_im = x_im[j0:j0 + n]
            if add:
                for j in range(n):
                    out[j] += y_re[j] * row_re[last[j]] - y_im[j] * row_im[last[j]]
            else:
                for j in range(n):
                    out[j] = y_re[j] * row_re[last[j]] - y_im[j] * row_im[last[j]]


_term_products_jit = numba.njit(inline="always", cache=True)(_term_products)


def _contract(coeff_t, t0, n_t, products, base, acc):
    """``acc[p] = base[p] + sum_k coeff_t[p, t0 + k] products[k]``: one loop per density
    (vectorised where the caller allows reassociation)."""
    for p in range(coeff_t.shape[0]):
        cp = coeff_t[p, t0:t0 + n_t]
        s = 0.0
        for k in range(n_t):
            s += cp[k] * products[k]
        acc[p] = base[p] + s


_contract_jit = numba.njit(inline="always", cache=True)(_contract)


def _term_weights(coeff_t, t0, n_t, w_row, weights):
    """``weights[k] = sum_p w_row[p] coeff_t[p, t0 + k]``: density by density (contiguous, it vectorises)."""
    weights[:n_t] = 0.0
    for p in range(coeff_t.shape[0]):
        wp = w_row[p]
        cp = coeff_t[p, t0:t0 + n_t]
        for k in range(n_t):
            weights[k] += wp * cp[k]


_term_weights_jit = numba.njit(inline="always", cache=True)(_term_weights)


def _last_factor_adjoint(weights, x_re, x_im, row_re, row_im, pp, b0, b1, q0, t0, dd_re, dd_im, grad_re, grad_im):
    """Each term ``c x f`` (weight w, prefix value x, last factor f of code c, from ``row``) adds
    w x to f's signed gradient and w f to its prefix's ``dd`` (accumulated, not zeroed here)."""
    block_pre, block_diag, diag_start, last_codes = pp[2], pp[3], pp[4], pp[6]
    for b in range(b0, b1):
        j0 = block_pre[b] - q0
        for d in range(block_diag[b], block_diag[b + 1]):
            s0 = diag_start[d]
            n = diag_start[d + 1] - s0
            last = last_codes[s0:s0 + n]
            ws = weights[s0 - t0:s0 - t0 + n]
            y_re = x_re[j0:j0 + n]
            y_im = x_im[j0:j0 + n]
            z_re = dd_re[j0:j0 + n]
            z_im = dd_im[j0:j0 + n]
            for j in range(n):  # no two terms of a diagonal share a prefix
                c = last[j]
                w = ws[j]  # every load before the stores (which the compiler cannot tell apart)
                f_re, f_im, q_re, q_im = row_re[c], row_im[c], y_re[j], y_im[j]
                z_re[j] += w * f_re
                z_im[j] += w * f_im
                grad_re[c] += w * q_re
                grad_im[c] -= w * q_im


_last_factor_adjoint_jit = numba.njit(inline="always", cache=True)(_last_factor_adjoint)


def _prefix_adjoint(dd_re, dd_im, row_re, row_im, pp, b0, b1, q0, grad_re, grad_im):
    """Each prefix adds its ``dd`` times the product of its other factors (from ``row``) to the
    signed gradient of each of its factors."""
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


_prefix_adjoint_jit = numba.njit(inline="always", cache=True)(_prefix_adjoint)


def _atom_densities_prefix(row_re, row_im, g, pp, work, acc):
    """rho_p of one atom of group ``g`` into ``acc (P,)`` on the prefix plan ``pp`` from its signed
    row; ``work (5, W)`` is scratch (``W = _prefix_width(pp)``): its rows 0 and 1 keep the prefix
    products for :func:`_atom_adjoint_prefix` of the same row. The term products are contracted
    with each density's coefficients in one loop (vectorised where the caller allows reassociation,
    as the fused kernel and the staged kernels here do)."""
    b0, b1, q0, t0, n_t = _group_span_jit(g, pp)
    _prefix_products_jit(row_re, row_im, pp[1], pp[2], pp[5], b0, b1, q0, work[0], work[1])
    _term_products_jit(work[0], work[1], row_re, row_im, pp, b0, b1, q0, t0, False, work[4])
    _contract_jit(pp[7], t0, n_t, work[4], pp[8][g], acc)


_atom_densities_prefix_jit = numba.njit(inline="always", cache=True)(_atom_densities_prefix)


def _atom_adjoint_prefix(row_re, row_im, g, pp, work, ab_ready, w_row, grad_re, grad_im):
    """Add sum_p w_row[p] drho_p/dA of one atom of group ``g`` to its signed gradient ``grad_re,
    grad_im (4H,)`` on the prefix plan ``pp`` (``work`` as for :func:`_atom_densities_prefix`, whose
    prefix products of the same row it reuses if ``ab_ready``). A term ``c Q d`` (prefix Q, last
    factor d, w = sum_p w_p c_p) adds w Q to d's gradient and w d to its prefix's D = sum w d; each
    prefix then adds D times the product of its other factors to each of its factors, once."""
    b0, b1, q0, t0, n_t = _group_span_jit(g, pp)
    _term_weights_jit(pp[7], t0, n_t, w_row, work[4])
    if not ab_ready:
        _prefix_products_jit(row_re, row_im, pp[1], pp[2], pp[5], b0, b1, q0, work[0], work[1])
    n_q = pp[2][b1] - q0
    work[2, :n_q] = 0.0
    work[3, :n_q] = 0.0
    _last_factor_adjoint_jit(work[4], work[0], work[1], row_re, row_im, pp, b0, b1, q0, t0, work[2], work[3],
                             grad_re, grad_im)
    _prefix_adjoint_jit(work[2], work[3], row_re, row_im, pp, b0, b1, q0, grad_re, grad_im)


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
