"""Per-atom segment sums over a CSR edge list: ``out[i] = sum(values[offsets[i]:offsets[i+1]])``."""

from __future__ import annotations

import torch

from .backend import check_same_device, implementation, resolve_backend


def segment_sum(values: torch.Tensor, offsets: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """Sum ``values (E, ...)`` over the CSR segments given by ``offsets (N+1,)`` into ``(N, ...)``.

    ``offsets`` must start at 0, be non-decreasing and end at ``E``.
    """
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"offsets must be (N+1,) with N >= 0, got {tuple(offsets.shape)}")
    if values.ndim < 1:
        raise ValueError("values must have a leading edge axis")
    device = check_same_device(values, offsets)
    name = resolve_backend(backend, device)
    offsets = offsets.long()
    e = values.shape[0]
    if int(offsets[0]) != 0 or int(offsets[-1]) != e or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"offsets must start at 0, be non-decreasing and end at E={e}")
    n = offsets.shape[0] - 1
    tail = tuple(values.shape[1:])
    if n == 0 or e == 0:
        return values.new_zeros((n,) + tail)
    impl = implementation(name, "segment")
    if name == "torch":
        return impl.segment_sum(values, offsets)
    flat = values.reshape(e, -1).contiguous()
    return impl.segment_sum(flat, offsets.contiguous()).reshape((n,) + tail)
