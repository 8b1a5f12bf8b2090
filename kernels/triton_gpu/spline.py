"""Triton evaluation of vector-valued cubic Hermite spline tables (contract: ``reference/spline.py``)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _spline_kernel(
    coeffs_ptr, rscale_ptr, nlut_ptr, r_ptr, tab_ptr,
    f_ptr, df_ptr, d2f_ptr,
    E, K, S,
    ORDER: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # one program: BLOCK_E edges x BLOCK_K functions, k fastest (coalesced coefficient rows)
    pid_e = tl.program_id(0).to(tl.int64)
    pid_k = tl.program_id(1).to(tl.int64)
    e = pid_e * BLOCK_E + tl.arange(0, BLOCK_E).to(tl.int64)
    k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K).to(tl.int64)
    emask = e < E
    kmask = k < K

    r = tl.load(r_ptr + e, mask=emask, other=1.0)
    tab = tl.load(tab_ptr + e, mask=emask, other=0)
    # The segment and local coordinate come from x = r*rscale in float64 whatever r's dtype: in
    # float32, x ~ nlut ~ 1e4 would keep only ~3 digits of t (errors ~1e-3 relative). One float64
    # multiply per edge; float32 r converts exactly. The derivative scale is then cast to r's dtype.
    s64 = tl.load(rscale_ptr + tab, mask=emask, other=1.0)
    nlut = tl.load(nlut_ptr + tab, mask=emask, other=0)
    x = r.to(tl.float64) * s64
    nf = tl.floor(x)
    t = (x - nf).to(r.dtype)
    s = s64.to(r.dtype)
    # segments n >= nlut are zero; compare in floating point so a huge x never overflows int64,
    # and as not(n >= nlut) so that a NaN distance gives NaN (as the reference) rather than 0
    inside = ~(nf >= nlut.to(tl.float64))
    # clamp into [0, S-1] before the integer cast (a NaN fails both tests and lands on 0)
    nc = tl.where(nf > 0.0, nf, 0.0)
    nc = tl.where(nc < S - 1, nc, S - 1)
    n = nc.to(tl.int64)

    mask2 = emask[:, None] & kmask[None, :]
    live = mask2 & inside[:, None]
    base = ((tab * S + n) * 4)[:, None] * K + k[None, :]  # offset of c0; c_q at base + q*K
    c0 = tl.load(coeffs_ptr + base, mask=live, other=0.0)
    c1 = tl.load(coeffs_ptr + base + K, mask=live, other=0.0)
    c2 = tl.load(coeffs_ptr + base + 2 * K, mask=live, other=0.0)
    c3 = tl.load(coeffs_ptr + base + 3 * K, mask=live, other=0.0)
    t2 = t[:, None]
    zero = tl.zeros_like(c0)
    out = e[:, None] * K + k[None, :]
    f = c0 + t2 * (c1 + t2 * (c2 + t2 * c3))
    tl.store(f_ptr + out, tl.where(live, f, zero), mask=mask2)
    if ORDER >= 1:
        s2 = s[:, None]
        df = (c1 + t2 * (2.0 * c2 + 3.0 * c3 * t2)) * s2
        tl.store(df_ptr + out, tl.where(live, df, zero), mask=mask2)
        if ORDER >= 2:
            d2f = (2.0 * c2 + 6.0 * c3 * t2) * (s2 * s2)
            tl.store(d2f_ptr + out, tl.where(live, d2f, zero), mask=mask2)


def spline_eval(coeffs, rscale, nlut, r, table_index, order: int):
    """``(f, df, d2f)``, each ``(E, K)`` in r's dtype (``None`` above ``order``)."""
    e = r.shape[0]
    _, s, _, k = coeffs.shape
    f = torch.empty((e, k), dtype=r.dtype, device=r.device)
    df = torch.empty_like(f) if order >= 1 else None
    d2f = torch.empty_like(f) if order >= 2 else None
    block_k = min(triton.next_power_of_2(k), 64)
    # 512-element tiles: about 60 registers on sm_90 (2048 needed ~230, for int64 gather addresses)
    block_e = 512 // block_k
    grid = (triton.cdiv(e, block_e), triton.cdiv(k, block_k))
    _spline_kernel[grid](
        coeffs, rscale, nlut, r, table_index,
        f, f if df is None else df, f if d2f is None else d2f,  # unused pointers when ORDER is low
        e, k, s,
        ORDER=order, BLOCK_E=block_e, BLOCK_K=block_k,
    )
    return f, df, d2f
