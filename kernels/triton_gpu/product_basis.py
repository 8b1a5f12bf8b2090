"""Triton sparse product contraction of the ACE basis and its adjoint (contract:
``reference/product_basis.py``).

Forward: one program per (atom, block of ``P`` columns, slice of the group's terms). The program
walks its terms in blocks of ``BLOCK_S``, gathers each term's factors from the atom's row of ``a``
(a static loop over the ``RMAX`` factor slots, padding = 1), and contracts the real parts with
``coeff``. With one slice per atom (``split = 1``, the usual case when there are many atoms) the
program owns its output tile and stores it: deterministic. With several slices (few atoms, many
terms: more programs keep the GPU busy) the slices add their partial sums atomically.

Adjoint: one program per (atom, slice of terms). ``w_s = sum_p w_rho[i, p] coeff[s, p]``; the
products of the other factors, ``q[s, t] = prod over u != t of f[s, u]``, are built as a
``(BLOCK_S, RMAX)`` tile in one static pass over the factors (``RMAX`` is small), and
``w_s dRe(f q)/da`` is added into the atom's gradient row with ``tl.atomic_add`` (columns repeat
within and across terms; the atomics add every copy).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _factor(are_ptr, aim_ptr, arow, code, mask):
    """The factor of ``code`` (``4h + 2conj + neg``; ``-1`` = 1) from the row starting at ``arow``."""
    pad = code < 0
    h = tl.where(pad, 0, code >> 2)
    lmask = mask & (code >= 0)
    fr = tl.load(are_ptr + arow + h, mask=lmask, other=0.0)
    fi = tl.load(aim_ptr + arow + h, mask=lmask, other=0.0)
    fr = tl.where(pad, 1.0, fr)
    fi = tl.where((code & 2) != 0, -fi, fi)
    neg = ((code & 1) != 0) & (code >= 0)  # the padding code -1 has every flag bit set
    fr = tl.where(neg, -fr, fr)
    fi = tl.where(neg, -fi, fi)
    return fr, fi


@triton.jit
def _product_kernel(
    are_ptr, aim_ptr, grp_ptr, goff_ptr, codes_ptr, coeff_ptr, rho_ptr,
    H, P, SPLIT,
    RMAX: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr, ATOMIC: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64)
    p = tl.program_id(1).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P).to(tl.int64)
    pmask = p < P
    g = tl.load(grp_ptr + i)
    start = tl.load(goff_ptr + g)
    end = tl.load(goff_ptr + g + 1)
    arow = i * H
    acc = tl.zeros((BLOCK_S, BLOCK_P), dtype=rho_ptr.dtype.element_ty)
    first = start + tl.program_id(2).to(tl.int64) * BLOCK_S
    for s0 in range(first, end, SPLIT * BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S).to(tl.int64)
        smask = s < end
        pr = tl.zeros((BLOCK_S,), dtype=rho_ptr.dtype.element_ty) + 1.0
        pi = tl.zeros((BLOCK_S,), dtype=rho_ptr.dtype.element_ty)
        for t in tl.static_range(RMAX):
            code = tl.load(codes_ptr + s * RMAX + t, mask=smask, other=-1)
            fr, fi = _factor(are_ptr, aim_ptr, arow, code, smask)
            pr, pi = pr * fr - pi * fi, pr * fi + pi * fr
        cf = tl.load(coeff_ptr + s[:, None] * P + p[None, :], mask=smask[:, None] & pmask[None, :], other=0.0)
        acc += pr[:, None] * cf
    out = tl.sum(acc, axis=0)
    if ATOMIC:
        tl.atomic_add(rho_ptr + i * P + p, out, mask=pmask, sem="relaxed")
    else:
        tl.store(rho_ptr + i * P + p, out, mask=pmask)


@triton.jit
def _adjoint_kernel(
    are_ptr, aim_ptr, grp_ptr, goff_ptr, codes_ptr, coeff_ptr, w_ptr, gre_ptr, gim_ptr,
    H, P, SPLIT,
    RMAX: tl.constexpr, R: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_P: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64)
    g = tl.load(grp_ptr + i)
    start = tl.load(goff_ptr + g)
    end = tl.load(goff_ptr + g + 1)
    arow = i * H
    dt = gre_ptr.dtype.element_ty
    tcol = tl.arange(0, R)
    first = start + tl.program_id(1).to(tl.int64) * BLOCK_S
    for s0 in range(first, end, SPLIT * BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S).to(tl.int64)
        smask = s < end
        # w_s = sum_p w_rho[i, p] coeff[s, p]
        w2 = tl.zeros((BLOCK_S, BLOCK_P), dtype=dt)
        for p0 in range(0, P, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P).to(tl.int64)
            pmask = p < P
            cf = tl.load(coeff_ptr + s[:, None] * P + p[None, :], mask=smask[:, None] & pmask[None, :], other=0.0)
            wr = tl.load(w_ptr + i * P + p, mask=pmask, other=0.0)
            w2 += cf * wr[None, :]
        w = tl.sum(w2, axis=1)
        # q[s, t] = product of the factors u != t
        q_re = tl.zeros((BLOCK_S, R), dtype=dt) + 1.0
        q_im = tl.zeros((BLOCK_S, R), dtype=dt)
        for u in tl.static_range(RMAX):
            code = tl.load(codes_ptr + s * RMAX + u, mask=smask, other=-1)
            fr, fi = _factor(are_ptr, aim_ptr, arow, code, smask)
            other = tcol[None, :] != u
            fr2 = tl.where(other, fr[:, None], 1.0)
            fi2 = tl.where(other, fi[:, None], 0.0)
            q_re, q_im = q_re * fr2 - q_im * fi2, q_re * fi2 + q_im * fr2
        # d Re(f q) = q_re d f_re - q_im d f_im, then undo the factor's negation and conjugation
        m2 = smask[:, None] & (tcol < RMAX)[None, :]
        codes = tl.load(codes_ptr + s[:, None] * RMAX + tcol[None, :], mask=m2, other=-1)
        live = m2 & (codes >= 0) & (w != 0.0)[:, None]
        sgn = tl.where((codes & 1) != 0, -w[:, None], w[:, None])
        g_re = sgn * q_re
        g_im = tl.where((codes & 2) != 0, sgn * q_im, -sgn * q_im)
        col = arow + tl.where(codes < 0, 0, codes >> 2)
        tl.atomic_add(gre_ptr + col, g_re, mask=live, sem="relaxed")
        tl.atomic_add(gim_ptr + col, g_im, mask=live, sem="relaxed")


def _pick_split(n_programs: int, max_terms: int, block_s: int, device) -> int:
    """Slices per atom: enough programs to fill the GPU when atoms are few, never more than blocks."""
    if device.type != "cuda":
        return 1
    target = 8 * torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(triton.cdiv(max_terms, block_s), triton.cdiv(target, max(1, n_programs))))


def product_basis(a_re, a_im, group, plan, split: int | None = None):
    codes, coeff, group_offsets = plan.codes, plan.coeff, plan.group_offsets
    n, h = a_re.shape
    rmax = codes.shape[1]
    p = coeff.shape[1]
    # (BLOCK_S, BLOCK_P) tiles of 1024 float64 / 2048 float32 keep sm_90 clear of register spills
    block_p = min(triton.next_power_of_2(p), 32)
    block_s = min(128, max(16, (1024 if a_re.dtype == torch.float64 else 2048) // block_p))
    n_pb = triton.cdiv(p, block_p)
    if split is None:
        split = _pick_split(n * n_pb, plan.max_group_terms, block_s, a_re.device)
    alloc = torch.zeros if split > 1 else torch.empty
    rho = alloc((n, p), dtype=a_re.dtype, device=a_re.device)
    _product_kernel[(n, n_pb, split)](
        a_re, a_im, group, group_offsets, codes, coeff, rho, h, p, split,
        RMAX=rmax, BLOCK_S=block_s, BLOCK_P=block_p, ATOMIC=split > 1,
    )
    return rho


def product_basis_adjoint(a_re, a_im, group, plan, w_rho, split: int | None = None):
    codes, coeff, group_offsets = plan.codes, plan.coeff, plan.group_offsets
    n, h = a_re.shape
    rmax = codes.shape[1]
    p = coeff.shape[1]
    block_s = 64 if rmax <= 4 else 32  # the (BLOCK_S, RMAX) product tiles grow with RMAX
    block_p = min(triton.next_power_of_2(p), 16)
    if split is None:
        split = _pick_split(n, plan.max_group_terms, block_s, a_re.device)
    ga_re = torch.zeros_like(a_re)
    ga_im = torch.zeros_like(a_im)
    _adjoint_kernel[(n, split)](
        a_re, a_im, group, group_offsets, codes, coeff, w_rho, ga_re, ga_im, h, p, split,
        RMAX=rmax, R=triton.next_power_of_2(max(rmax, 1)), BLOCK_S=block_s, BLOCK_P=block_p,
    )
    return ga_re, ga_im
