"""Reference per-atom segment sums over a CSR edge list (see ``kernels/segment.py``)."""

from __future__ import annotations

import torch


def segment_sum(values, offsets):
    """out[i] = sum of values[offsets[i]:offsets[i+1]] along the first axis."""
    n = offsets.shape[0] - 1
    counts = offsets[1:] - offsets[:-1]
    # output_size: the edge count is known, so torch need not read it back from the device
    owner = torch.repeat_interleave(torch.arange(n, device=values.device), counts, output_size=values.shape[0])
    out = torch.zeros((n,) + tuple(values.shape[1:]), dtype=values.dtype, device=values.device)
    return out.index_add(0, owner, values)
