"""Triton sums over pairs of edges of one centre (contract: ``reference/angular.py``).

One program per centre, owning its output row (forward) or its edges' rows (adjoint, Jacobian):
no atomics, a fixed summation order, deterministic. The program walks its CSR range in blocks of
``BLOCK`` edges and takes the pairs of a (j block, k block) tile at once: the cosines are a
``(BLOCK, BLOCK)`` tile, the channels a leading axis of ``BLOCK_C``, and the Chebyshev orders are
unrolled (``N_MAX`` is a compile-time constant) with the three-term recurrences carried in
registers. The forward takes the pairs ``j < k`` once; the adjoint and the Jacobian take every
ordered pair ``(j, k != j)`` for the rows of the j block, which is the same sum (ACE_SPEC.md 5).
Masked lanes read the vector (1, 1, 1) and a zero weight, so they never divide by zero.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _edges(v_ptr, w_ptr, e, emask, cc, cmask, C):
    """Vectors (components, length) of a block of edges and their weights ``(BLOCK_C, BLOCK)``."""
    x = tl.load(v_ptr + e * 3, mask=emask, other=1.0)
    y = tl.load(v_ptr + e * 3 + 1, mask=emask, other=1.0)
    z = tl.load(v_ptr + e * 3 + 2, mask=emask, other=1.0)
    d = tl.sqrt(x * x + y * y + z * z)
    w = tl.load(w_ptr + e[None, :] * C + cc[:, None], mask=cmask[:, None] & emask[None, :], other=0.0)
    return x, y, z, d, w


@triton.jit
def _angular_sum_kernel(
    v_ptr, w_ptr, off_ptr, out_ptr, C,
    N_MAX: tl.constexpr, BLOCK: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64)
    start = tl.load(off_ptr + i)
    end = tl.load(off_ptr + i + 1)
    cc = tl.arange(0, BLOCK_C).to(tl.int64)
    cmask = cc < C
    nn = tl.arange(0, BLOCK_N)
    lane = tl.arange(0, BLOCK).to(tl.int64)
    acc = tl.zeros((BLOCK_C, BLOCK_N), dtype=out_ptr.dtype.element_ty)
    for j0 in range(start, end, BLOCK):
        j = j0 + lane
        jm = j < end
        xj, yj, zj, dj, wj = _edges(v_ptr, w_ptr, j, jm, cc, cmask, C)
        for k0 in range(j0, end, BLOCK):
            k = k0 + lane
            km = k < end
            xk, yk, zk, dk, wk = _edges(v_ptr, w_ptr, k, km, cc, cmask, C)
            pm = (j[:, None] < k[None, :]) & jm[:, None] & km[None, :]
            dot = xj[:, None] * xk[None, :] + yj[:, None] * yk[None, :] + zj[:, None] * zk[None, :]
            cos = dot / (dj[:, None] * dk[None, :])
            ww = tl.where(pm[None, :, :], wj[:, :, None] * wk[:, None, :], 0.0)  # (C, J, K)
            s = tl.sum(tl.sum(ww, axis=2), axis=1)
            acc += tl.where(nn[None, :] == 0, s[:, None], 0.0)
            if N_MAX >= 1:
                t_prev = tl.zeros_like(cos) + 1.0
                t = cos
                s = tl.sum(tl.sum(ww * t[None, :, :], axis=2), axis=1)
                acc += tl.where(nn[None, :] == 1, s[:, None], 0.0)
                for n in tl.static_range(2, N_MAX + 1):
                    t_next = 2.0 * cos * t - t_prev
                    t_prev = t
                    t = t_next
                    s = tl.sum(tl.sum(ww * t[None, :, :], axis=2), axis=1)
                    acc += tl.where(nn[None, :] == n, s[:, None], 0.0)
    NP1: tl.constexpr = N_MAX + 1
    out = out_ptr + (i * C + cc[:, None]) * NP1 + nn[None, :]
    tl.store(out, acc, mask=cmask[:, None] & (nn[None, :] < NP1))


@triton.jit
def _edge_grads_kernel(
    g_ptr, v_ptr, w_ptr, dw_ptr, off_ptr, out_ptr, C,
    N_MAX: tl.constexpr, BLOCK: tl.constexpr, BLOCK_C: tl.constexpr,
):
    NP1: tl.constexpr = N_MAX + 1
    i = tl.program_id(0).to(tl.int64)
    start = tl.load(off_ptr + i)
    end = tl.load(off_ptr + i + 1)
    cc = tl.arange(0, BLOCK_C).to(tl.int64)
    cmask = cc < C
    lane = tl.arange(0, BLOCK).to(tl.int64)
    gam = g_ptr + (i * C + cc) * NP1  # the centre's cotangent row of each channel
    for j0 in range(start, end, BLOCK):
        j = j0 + lane
        jm = j < end
        xj, yj, zj, dj, wj = _edges(v_ptr, w_ptr, j, jm, cc, cmask, C)
        dwj = tl.load(dw_ptr + j[None, :] * C + cc[:, None], mask=cmask[:, None] & jm[None, :], other=0.0)
        uxj = xj / dj
        uyj = yj / dj
        uzj = zj / dj
        gx = tl.zeros_like(xj)
        gy = tl.zeros_like(xj)
        gz = tl.zeros_like(xj)
        for k0 in range(start, end, BLOCK):
            k = k0 + lane
            km = k < end
            xk, yk, zk, dk, wk = _edges(v_ptr, w_ptr, k, km, cc, cmask, C)
            pm = (j[:, None] != k[None, :]) & jm[:, None] & km[None, :]
            dot = xj[:, None] * xk[None, :] + yj[:, None] * yk[None, :] + zj[:, None] * zk[None, :]
            cos = dot / (dj[:, None] * dk[None, :])
            # P_c = sum_n gamma_cn T_n(cos), dP_c = sum_n gamma_cn T'_n(cos): (C, J, K)
            g0 = tl.load(gam, mask=cmask, other=0.0)
            p = tl.zeros((BLOCK_C, BLOCK, BLOCK), dtype=cos.dtype) + g0[:, None, None]
            dp = tl.zeros((BLOCK_C, BLOCK, BLOCK), dtype=cos.dtype)
            if N_MAX >= 1:
                g1 = tl.load(gam + 1, mask=cmask, other=0.0)
                t_prev = tl.zeros_like(cos) + 1.0
                t = cos
                dt_prev = tl.zeros_like(cos)
                dt = tl.zeros_like(cos) + 1.0
                p += g1[:, None, None] * t[None, :, :]
                dp += g1[:, None, None] * dt[None, :, :]
                for n in tl.static_range(2, NP1):
                    t_next = 2.0 * cos * t - t_prev
                    dt_next = 2.0 * t + 2.0 * cos * dt - dt_prev
                    t_prev = t
                    t = t_next
                    dt_prev = dt
                    dt = dt_next
                    gn = tl.load(gam + n, mask=cmask, other=0.0)
                    p += gn[:, None, None] * t[None, :, :]
                    dp += gn[:, None, None] * dt[None, :, :]
            coef = tl.where(pm, tl.sum(wj[:, :, None] * wk[:, None, :] * dp, axis=0), 0.0)
            rad = tl.where(pm, tl.sum(dwj[:, :, None] * wk[:, None, :] * p, axis=0), 0.0)
            # d cos / d r_j = (u_k - cos u_j) / d_j
            a = coef / dj[:, None]
            gx += tl.sum(a * (xk / dk)[None, :] + (rad - a * cos) * uxj[:, None], axis=1)
            gy += tl.sum(a * (yk / dk)[None, :] + (rad - a * cos) * uyj[:, None], axis=1)
            gz += tl.sum(a * (zk / dk)[None, :] + (rad - a * cos) * uzj[:, None], axis=1)
        tl.store(out_ptr + j * 3, gx, mask=jm)
        tl.store(out_ptr + j * 3 + 1, gy, mask=jm)
        tl.store(out_ptr + j * 3 + 2, gz, mask=jm)


@triton.jit
def _jacobian_kernel(
    v_ptr, w_ptr, dw_ptr, off_ptr, out_ptr, C,
    N_MAX: tl.constexpr, BLOCK: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_N: tl.constexpr,
):
    NP1: tl.constexpr = N_MAX + 1
    i = tl.program_id(0).to(tl.int64)
    start = tl.load(off_ptr + i)
    end = tl.load(off_ptr + i + 1)
    cc = tl.arange(0, BLOCK_C).to(tl.int64)
    cmask = cc < C
    nn = tl.arange(0, BLOCK_N)
    lane = tl.arange(0, BLOCK).to(tl.int64)
    for j0 in range(start, end, BLOCK):
        j = j0 + lane
        jm = j < end
        xj, yj, zj, dj, wj = _edges(v_ptr, w_ptr, j, jm, cc, cmask, C)
        dwj = tl.load(dw_ptr + j[None, :] * C + cc[:, None], mask=cmask[:, None] & jm[None, :], other=0.0)
        uxj = xj / dj
        uyj = yj / dj
        uzj = zj / dj
        jx = tl.zeros((BLOCK_C, BLOCK, BLOCK_N), dtype=xj.dtype)
        jy = tl.zeros((BLOCK_C, BLOCK, BLOCK_N), dtype=xj.dtype)
        jz = tl.zeros((BLOCK_C, BLOCK, BLOCK_N), dtype=xj.dtype)
        for k0 in range(start, end, BLOCK):
            k = k0 + lane
            km = k < end
            xk, yk, zk, dk, wk = _edges(v_ptr, w_ptr, k, km, cc, cmask, C)
            pm = (j[:, None] != k[None, :]) & jm[:, None] & km[None, :]
            dot = xj[:, None] * xk[None, :] + yj[:, None] * yk[None, :] + zj[:, None] * zk[None, :]
            cos = dot / (dj[:, None] * dk[None, :])
            wk3 = tl.where(pm[None, :, :], wk[:, None, :], 0.0)  # (C, J, K), zero off the pairs
            # d cos / d r_j, (J, K) per component
            dcx = ((xk / dk)[None, :] - cos * uxj[:, None]) / dj[:, None]
            dcy = ((yk / dk)[None, :] - cos * uyj[:, None]) / dj[:, None]
            dcz = ((zk / dk)[None, :] - cos * uzj[:, None]) / dj[:, None]
            # n = 0: T = 1, T' = 0
            s_t = tl.sum(wk3, axis=2)  # (C, J)
            jx += tl.where(nn[None, None, :] == 0, (dwj * s_t * uxj[None, :])[:, :, None], 0.0)
            jy += tl.where(nn[None, None, :] == 0, (dwj * s_t * uyj[None, :])[:, :, None], 0.0)
            jz += tl.where(nn[None, None, :] == 0, (dwj * s_t * uzj[None, :])[:, :, None], 0.0)
            if N_MAX >= 1:
                t_prev = tl.zeros_like(cos) + 1.0
                t = cos
                dt_prev = tl.zeros_like(cos)
                dt = tl.zeros_like(cos) + 1.0
                for n in tl.static_range(1, NP1):
                    if n >= 2:
                        t_next = 2.0 * cos * t - t_prev
                        dt_next = 2.0 * t + 2.0 * cos * dt - dt_prev
                        t_prev = t
                        t = t_next
                        dt_prev = dt
                        dt = dt_next
                    s_t = tl.sum(wk3 * t[None, :, :], axis=2)
                    sel = nn[None, None, :] == n
                    cx = wj * tl.sum(wk3 * (dt * dcx)[None, :, :], axis=2) + dwj * s_t * uxj[None, :]
                    cy = wj * tl.sum(wk3 * (dt * dcy)[None, :, :], axis=2) + dwj * s_t * uyj[None, :]
                    cz = wj * tl.sum(wk3 * (dt * dcz)[None, :, :], axis=2) + dwj * s_t * uzj[None, :]
                    jx += tl.where(sel, cx[:, :, None], 0.0)
                    jy += tl.where(sel, cy[:, :, None], 0.0)
                    jz += tl.where(sel, cz[:, :, None], 0.0)
        row = ((j[None, :, None] * C + cc[:, None, None]) * NP1 + nn[None, None, :]) * 3
        m = cmask[:, None, None] & jm[None, :, None] & (nn[None, None, :] < NP1)
        tl.store(out_ptr + row, jx, mask=m)
        tl.store(out_ptr + row + 1, jy, mask=m)
        tl.store(out_ptr + row + 2, jz, mask=m)


def _blocks(c: int, n_max: int, dtype) -> tuple[int, int, int]:
    """(BLOCK, BLOCK_C, BLOCK_N): (C, BLOCK, BLOCK) tiles of 512 float64 / 1024 float32 entries
    at most for two channels."""
    block_c = triton.next_power_of_2(max(c, 1))
    block = 16 if dtype == torch.float64 or block_c > 2 else 32
    return block, block_c, triton.next_power_of_2(n_max + 1)


def angular_sum(vectors, weights, offsets, n_max):
    n, c = offsets.shape[0] - 1, weights.shape[1]
    out = torch.empty((n, c, n_max + 1), dtype=vectors.dtype, device=vectors.device)
    block, block_c, block_n = _blocks(c, n_max, vectors.dtype)
    _angular_sum_kernel[(n,)](vectors, weights, offsets, out, c,
                              N_MAX=n_max, BLOCK=block, BLOCK_C=block_c, BLOCK_N=block_n)
    return out


def angular_sum_edge_grads(grad, vectors, weights, dweights, offsets):
    n, c, np1 = grad.shape
    out = torch.empty((vectors.shape[0], 3), dtype=vectors.dtype, device=vectors.device)
    block, block_c, _ = _blocks(c, np1 - 1, vectors.dtype)
    _edge_grads_kernel[(n,)](grad, vectors, weights, dweights, offsets, out, c,
                             N_MAX=np1 - 1, BLOCK=block, BLOCK_C=block_c)
    return out


def angular_sum_jacobian(vectors, weights, dweights, offsets, n_max):
    n, c = offsets.shape[0] - 1, weights.shape[1]
    out = torch.empty((vectors.shape[0], c, n_max + 1, 3), dtype=vectors.dtype, device=vectors.device)
    block, block_c, block_n = _blocks(c, n_max, vectors.dtype)
    _jacobian_kernel[(n,)](vectors, weights, dweights, offsets, out, c,
                           N_MAX=n_max, BLOCK=block, BLOCK_C=block_c, BLOCK_N=block_n)
    return out
