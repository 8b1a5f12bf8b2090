"""Per-atom segment sums over a CSR edge list: ``out[i] = sum(values[offsets[i]:offsets[i+1]])``."""

from __future__ import annotations

import torch

from .backend import check_offsets, prepare


def segment_sum(values: torch.Tensor, offsets: torch.Tensor, backend: str | None = None,
                check: bool = True) -> torch.Tensor:
    """Sum ``values (E, ...)`` over the CSR segments given by ``offsets (N+1,)`` into ``(N, ...)``.

    ``offsets`` must start at 0, be non-decreasing and end at ``E``; ``check=False`` skips that
    value check (no host sync; the caller vouches for it).
    """
    call = prepare("segment_sum", "segment", backend, floats={"values": values}, indices={"offsets": offsets})
    values, offsets = call.values, call.offsets
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"segment_sum: offsets must be (N+1,) with N >= 0, got {tuple(offsets.shape)}")
    if values.ndim < 1:
        raise ValueError("segment_sum: values must have a leading edge axis")
    e = values.shape[0]
    if check:
        check_offsets("segment_sum", "offsets", offsets, e)
    n = offsets.shape[0] - 1
    tail = tuple(values.shape[1:])
    if n == 0 or e == 0:
        return call.zeros((n,) + tail)
    if not call.compiled:
        return call.impl.segment_sum(values, offsets)
    flat = values.reshape(e, -1)  # a view: prepare made values contiguous
    return call.impl.segment_sum(flat, offsets).reshape((n,) + tail)
