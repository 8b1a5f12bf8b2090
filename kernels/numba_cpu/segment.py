"""Numba per-atom segment sums over a CSR edge list (contract: ``reference/segment.py``)."""

from __future__ import annotations

import numba
import numpy as np
import torch

from ._compile import compile_pair, pick

# atoms per parallel iteration: amortises the scratch row and the scheduling over a few atoms
ATOMS_PER_BLOCK = 16


def _segment_sum_kernel(values, offsets, out, block):
    """Owner computes: each iteration owns ``block`` consecutive atoms and sums their rows
    ``offsets[i]:offsets[i+1]``, so no two iterations write the same output row. Sums are
    accumulated in float64 (scalars for a few columns, a scratch row otherwise, read row by row)."""
    n_atoms = out.shape[0]
    n_cols = values.shape[1]
    for blk in numba.prange((n_atoms + block - 1) // block):
        acc = np.empty(n_cols)
        for i in range(blk * block, min(n_atoms, (blk + 1) * block)):
            start = offsets[i]
            stop = offsets[i + 1]
            if n_cols <= 4:
                for k in range(n_cols):
                    s = 0.0
                    for e in range(start, stop):
                        s += values[e, k]
                    out[i, k] = s
            else:
                for k in range(n_cols):
                    acc[k] = 0.0
                for e in range(start, stop):
                    for k in range(n_cols):
                        acc[k] += values[e, k]
                for k in range(n_cols):
                    out[i, k] = acc[k]


_segment_sum = compile_pair(_segment_sum_kernel)


def segment_sum(values2d, offsets):
    """``out[i] = sum(values2d[offsets[i]:offsets[i+1]])``: ``(E, K)``, ``(N+1,)`` -> ``(N, K)``."""
    n, k = offsets.shape[0] - 1, values2d.shape[1]
    out = torch.empty((n, k), dtype=values2d.dtype)
    kernel = pick(_segment_sum, values2d.shape[0] * k)
    kernel(values2d.numpy(), offsets.numpy(), out.numpy(), ATOMS_PER_BLOCK)
    return out
