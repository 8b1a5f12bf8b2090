"""Triton ACE atomic base and its adjoint (contract: ``reference/atomic_base.py``).

Forward: one program per (atom, block of columns ``c = n * H + lm``). The program loops over the
atom's CSR range of edges in blocks and over the neighbour species in tiles of ``BLOCK_MU``; an
edge's contribution reaches its species' row through a one-hot mask summed over the edge axis, so
the program owns its output tile (no atomics, a fixed summation order: deterministic).

Adjoint: one program per block of edges, looping over the harmonic columns ``lm`` in blocks and
over ``n`` inside, contracting ``ga`` with ``R`` and ``R'`` first (as the Numba kernel does), so
``Y`` and ``grad Y`` are read once per edge. Each edge's gradient is written by one lane.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl


@triton.jit
def _atomic_base_kernel(
    r_ptr, yre_ptr, yim_ptr, off_ptr, sp_ptr, lof_ptr, are_ptr, aim_ptr,
    NSPECIES, NRAD, H, L1,
    BLOCK_MU: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64)
    C = NRAD * H
    c = tl.program_id(1).to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    cmask = c < C
    n = c // H
    lm = c - n * H
    l = tl.load(lof_ptr + lm, mask=cmask, other=0).to(tl.int64)
    rcol = n * L1 + l  # column of R[e] (row of nrad * (lmax+1))
    start = tl.load(off_ptr + i)
    end = tl.load(off_ptr + i + 1)
    mus = tl.arange(0, BLOCK_MU).to(tl.int64)
    for mu0 in range(0, NSPECIES, BLOCK_MU):
        acc_re = tl.zeros((BLOCK_MU, BLOCK_C), dtype=are_ptr.dtype.element_ty)
        acc_im = tl.zeros((BLOCK_MU, BLOCK_C), dtype=are_ptr.dtype.element_ty)
        for e0 in range(start, end, BLOCK_E):
            e = e0 + tl.arange(0, BLOCK_E).to(tl.int64)
            emask = e < end
            sp = tl.load(sp_ptr + e, mask=emask, other=-1) - mu0
            # skip the edge block's loads when none of its edges has a species of this tile
            hit = emask & (sp >= 0) & (sp < BLOCK_MU)
            if tl.max(hit.to(tl.int32), axis=0) > 0:
                m2 = hit[:, None] & cmask[None, :]
                r = tl.load(r_ptr + e[:, None] * (NRAD * L1) + rcol[None, :], mask=m2, other=0.0)
                yre = tl.load(yre_ptr + e[:, None] * H + lm[None, :], mask=m2, other=0.0)
                yim = tl.load(yim_ptr + e[:, None] * H + lm[None, :], mask=m2, other=0.0)
                onehot = (sp[None, :] == mus[:, None])[:, :, None]  # (MU, E, 1)
                acc_re += tl.sum(tl.where(onehot, (r * yre)[None, :, :], 0.0), axis=1)
                acc_im += tl.sum(tl.where(onehot, (r * yim)[None, :, :], 0.0), axis=1)
        mu = mu0 + mus
        row = ((i * NSPECIES + mu) * C)[:, None] + c[None, :]
        om = (mu < NSPECIES)[:, None] & cmask[None, :]
        tl.store(are_ptr + row, acc_re, mask=om)
        tl.store(aim_ptr + row, acc_im, mask=om)


@triton.jit
def _edge_grads_kernel(
    gre_ptr, gim_ptr, own_ptr, sp_ptr, r_ptr, dr_ptr, yre_ptr, yim_ptr, dyre_ptr, dyim_ptr, v_ptr, lof_ptr,
    out_ptr, E, NSPECIES, NRAD, H, L1,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
):
    e = tl.program_id(0).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E).to(tl.int64)
    emask = e < E
    owner = tl.load(own_ptr + e, mask=emask, other=0)
    mu = tl.load(sp_ptr + e, mask=emask, other=0)
    grow = (owner * NSPECIES + mu) * (NRAD * H)  # start of the edge's (n, lm) block of ga
    rrow = e * (NRAD * L1)
    dt = out_ptr.dtype.element_ty
    radial_part = tl.zeros((BLOCK_E,), dtype=dt)
    gx = tl.zeros((BLOCK_E,), dtype=dt)
    gy = tl.zeros((BLOCK_E,), dtype=dt)
    gz = tl.zeros((BLOCK_E,), dtype=dt)
    for h0 in range(0, H, BLOCK_H):
        lm = h0 + tl.arange(0, BLOCK_H).to(tl.int64)
        hmask = lm < H
        l = tl.load(lof_ptr + lm, mask=hmask, other=0).to(tl.int64)
        m2 = emask[:, None] & hmask[None, :]
        # s = sum_n ga R (the weights of grad Y), d = sum_n ga R' (the weights of Y r_hat)
        s_re = tl.zeros((BLOCK_E, BLOCK_H), dtype=dt)
        s_im = tl.zeros((BLOCK_E, BLOCK_H), dtype=dt)
        d_re = tl.zeros((BLOCK_E, BLOCK_H), dtype=dt)
        d_im = tl.zeros((BLOCK_E, BLOCK_H), dtype=dt)
        for n in range(0, NRAD):
            g_off = grow[:, None] + n * H + lm[None, :]
            g_re = tl.load(gre_ptr + g_off, mask=m2, other=0.0)
            g_im = tl.load(gim_ptr + g_off, mask=m2, other=0.0)
            r_off = rrow[:, None] + n * L1 + l[None, :]
            r = tl.load(r_ptr + r_off, mask=m2, other=0.0)
            dr = tl.load(dr_ptr + r_off, mask=m2, other=0.0)
            s_re += g_re * r
            s_im += g_im * r
            d_re += g_re * dr
            d_im += g_im * dr
        y_off = e[:, None] * H + lm[None, :]
        yre = tl.load(yre_ptr + y_off, mask=m2, other=0.0)
        yim = tl.load(yim_ptr + y_off, mask=m2, other=0.0)
        radial_part += tl.sum(d_re * yre + d_im * yim, axis=1)
        dy_off = y_off * 3
        gx += tl.sum(s_re * tl.load(dyre_ptr + dy_off, mask=m2, other=0.0)
                     + s_im * tl.load(dyim_ptr + dy_off, mask=m2, other=0.0), axis=1)
        gy += tl.sum(s_re * tl.load(dyre_ptr + dy_off + 1, mask=m2, other=0.0)
                     + s_im * tl.load(dyim_ptr + dy_off + 1, mask=m2, other=0.0), axis=1)
        gz += tl.sum(s_re * tl.load(dyre_ptr + dy_off + 2, mask=m2, other=0.0)
                     + s_im * tl.load(dyim_ptr + dy_off + 2, mask=m2, other=0.0), axis=1)
    # masked lanes read the vector (1, 1, 1), so they never divide by zero
    vx = tl.load(v_ptr + e * 3, mask=emask, other=1.0)
    vy = tl.load(v_ptr + e * 3 + 1, mask=emask, other=1.0)
    vz = tl.load(v_ptr + e * 3 + 2, mask=emask, other=1.0)
    w = radial_part / tl.sqrt(vx * vx + vy * vy + vz * vz)
    tl.store(out_ptr + e * 3, w * vx + gx, mask=emask)
    tl.store(out_ptr + e * 3 + 1, w * vy + gy, mask=emask)
    tl.store(out_ptr + e * 3 + 2, w * vz + gz, mask=emask)


@functools.lru_cache(maxsize=None)
def _l_list(h: int) -> tuple[int, ...]:
    out: list[int] = []
    l = 0
    while len(out) < h:
        out.extend([l] * (l + 1))
        l += 1
    return tuple(out[:h])


def _l_of(h: int, device) -> torch.Tensor:
    """The l of every m >= 0 harmonic column ``l(l+1)/2 + m``, int32 on ``device``."""
    return torch.tensor(_l_list(h), dtype=torch.int32, device=device)


def atomic_base(radial, y_re, y_im, offsets, nbr_species, nspecies):
    n = offsets.shape[0] - 1
    _, nrad, l1 = radial.shape
    h = y_re.shape[1]
    a_re = torch.empty((n, nspecies, nrad, h), dtype=radial.dtype, device=radial.device)
    a_im = torch.empty_like(a_re)
    c = nrad * h
    if a_re.numel() == 0:
        return a_re, a_im
    block_c = min(triton.next_power_of_2(c), 128)
    block_mu = min(triton.next_power_of_2(nspecies), 4)
    block_e = max(4, min(16, 2048 // (block_c * block_mu)))
    _atomic_base_kernel[(n, triton.cdiv(c, block_c))](
        radial, y_re, y_im, offsets, nbr_species, _l_of(h, radial.device), a_re, a_im,
        nspecies, nrad, h, l1,
        BLOCK_MU=block_mu, BLOCK_E=block_e, BLOCK_C=block_c,
    )
    return a_re, a_im


def atomic_base_edge_grads(ga_re, ga_im, offsets, nbr_species, radial, dradial, y_re, y_im, dy_re, dy_im, vectors):
    n, nspecies, nrad, h = ga_re.shape
    e, _, l1 = radial.shape
    if h == 0:  # no harmonics (lmax + 1 = 0): nothing depends on the edges
        return torch.zeros((e, 3), dtype=radial.dtype, device=radial.device)
    out = torch.empty((e, 3), dtype=radial.dtype, device=radial.device)
    owner = torch.repeat_interleave(torch.arange(n, device=offsets.device), offsets[1:] - offsets[:-1],
                                    output_size=e)
    # four (BLOCK_E, BLOCK_H) accumulators: 512 float64 / 1024 float32 entries each keep sm_90 clear
    # of register spills
    block_h = min(triton.next_power_of_2(h), 32)
    block_e = 16 if radial.dtype == torch.float64 else 32
    _edge_grads_kernel[(triton.cdiv(e, block_e),)](
        ga_re, ga_im, owner, nbr_species, radial, dradial, y_re, y_im, dy_re, dy_im, vectors,
        _l_of(h, radial.device), out, e, nspecies, nrad, h, l1,
        BLOCK_E=block_e, BLOCK_H=block_h,
    )
    return out
