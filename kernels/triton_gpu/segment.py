"""Triton per-atom segment sums over a CSR edge list (contract: ``reference/segment.py``)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _segment_sum_kernel(
    v_ptr, off_ptr, out_ptr, K,
    BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # one program owns one output row block (atom i, a block of K): no atomics, a fixed
    # summation order, hence deterministic
    i = tl.program_id(0).to(tl.int64)
    k = tl.program_id(1).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K).to(tl.int64)
    kmask = k < K
    start = tl.load(off_ptr + i)
    end = tl.load(off_ptr + i + 1)
    acc = tl.zeros((BLOCK_E, BLOCK_K), dtype=out_ptr.dtype.element_ty)
    for e0 in range(start, end, BLOCK_E):
        e = e0 + tl.arange(0, BLOCK_E).to(tl.int64)
        m = (e < end)[:, None] & kmask[None, :]
        acc += tl.load(v_ptr + e[:, None] * K + k[None, :], mask=m, other=0.0)
    tl.store(out_ptr + i * K + k, tl.sum(acc, axis=0), mask=kmask)


def segment_sum(values2d, offsets):
    """``out[i] = values2d[offsets[i]:offsets[i+1]].sum(0)``, shape ``(N, K)``."""
    n = offsets.shape[0] - 1
    k = values2d.shape[1]
    out = torch.empty((n, k), dtype=values2d.dtype, device=values2d.device)
    block_k = min(triton.next_power_of_2(k), 128)
    block_e = max(8, min(64, 2048 // block_k))
    _segment_sum_kernel[(n, triton.cdiv(k, block_k))](
        values2d, offsets, out, k, BLOCK_E=block_e, BLOCK_K=block_k,
    )
    return out
