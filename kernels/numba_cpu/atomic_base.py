"""Numba ACE atomic base and its adjoint (contract: ``reference/atomic_base.py``).

Owner computes: each parallel iteration is one atom, which owns its row of ``A`` and its own CSR
range of edges, so nothing is shared between iterations.

Fused mode (``y_re is None``): the harmonics of each block of an atom's edges are computed in the
kernel (``sph_harm.ylm_block``): into small scratch arrays for the atomic base, and contracted
with their weights as they are made for the edge gradients. Nothing reads them back from
``(E, H)`` and ``(E, H, 3)`` arrays that a separate harmonics pass would write: the fast path of
the model runs this way, and never holds per-edge harmonics in memory.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
import torch

from ..reference.sph_harm import plm_coefficients
from ._compile import compile_pair, pick
from .sph_harm import CONTRACT, EDGE_BLOCK, STORE, ylm_block


def _atomic_base_kernel(radial, y_re, y_im, vectors, fused, lmax, diag, sub, a, b, offsets, nbr_species,
                        a_re, a_im):
    n_atoms, nspecies, nrad, h = a_re.shape
    n_l = radial.shape[2]
    for i in numba.prange(n_atoms):
        state = np.empty((16, EDGE_BLOCK))
        blk_re = np.empty((h, EDGE_BLOCK))  # the harmonics of a block of the atom's edges
        blk_im = np.empty((h, EDGE_BLOCK))
        no_grad = np.empty((0, 3, EDGE_BLOCK))
        no_value = np.empty(0)
        no_sum = np.empty((3, 0))
        # the atom's row accumulates in a local buffer (alias-free, so the loops vectorise)
        acc_re = np.zeros((nspecies, nrad, h))
        acc_im = np.zeros((nspecies, nrad, h))
        for e0 in range(offsets[i], offsets[i + 1], EDGE_BLOCK):
            nb = min(EDGE_BLOCK, offsets[i + 1] - e0)
            if fused:
                ylm_block(vectors, e0, nb, lmax, diag, sub, a, b, STORE, state, blk_re, blk_im, no_grad, no_grad,
                          no_value, no_sum)
            else:
                for q in range(nb):
                    for lm in range(h):
                        blk_re[lm, q] = y_re[e0 + q, lm]
                        blk_im[lm, q] = y_im[e0 + q, lm]
            for q in range(nb):
                e = e0 + q
                mu = nbr_species[e]
                for n in range(nrad):
                    lm = 0
                    for l in range(n_l):
                        r = radial[e, n, l]
                        for m in range(l + 1):
                            acc_re[mu, n, lm] += r * blk_re[lm, q]
                            acc_im[mu, n, lm] += r * blk_im[lm, q]
                            lm += 1
        for mu in range(nspecies):
            for n in range(nrad):
                for lm in range(h):
                    a_re[i, mu, n, lm] = acc_re[mu, n, lm]
                    a_im[i, mu, n, lm] = acc_im[mu, n, lm]


def _edge_grads_kernel(ga_re, ga_im, offsets, nbr_species, radial, dradial, y_re, y_im, dy_re, dy_im, vectors,
                       fused, lmax, diag, sub, a, b, out):
    n_atoms, _, nrad, h = ga_re.shape
    n_l = radial.shape[2]
    for i in numba.prange(n_atoms):
        r_lm = np.empty((nrad, h))
        dr_lm = np.empty((nrad, h))
        state = np.empty((16, EDGE_BLOCK))
        # per block of edges: s = sum_n ga R (the weights of grad Y), t = sum_n ga R' (of Y)
        s_re = np.empty((h, 1, EDGE_BLOCK))  # (H, 1, B): the gradient-weight layout ylm_block reads
        s_im = np.empty((h, 1, EDGE_BLOCK))
        t_re = np.empty((h, EDGE_BLOCK))
        t_im = np.empty((h, EDGE_BLOCK))
        value = np.empty(EDGE_BLOCK)
        grad = np.empty((3, EDGE_BLOCK))
        row_s_re = np.empty(h)  # one edge's s and t, contiguous while they are summed over n
        row_s_im = np.empty(h)
        row_t_re = np.empty(h)
        row_t_im = np.empty(h)
        for e0 in range(offsets[i], offsets[i + 1], EDGE_BLOCK):
            nb = min(EDGE_BLOCK, offsets[i + 1] - e0)
            for q in range(nb):
                e = e0 + q
                mu = nbr_species[e]
                # R and R' spread over the lm columns, so that the contraction over n runs over
                # contiguous rows (it vectorises)
                for n in range(nrad):
                    lm = 0
                    for l in range(n_l):
                        r = radial[e, n, l]
                        dr = dradial[e, n, l]
                        for m in range(l + 1):
                            r_lm[n, lm] = r
                            dr_lm[n, lm] = dr
                            lm += 1
                for lm in range(h):
                    row_s_re[lm] = 0.0
                    row_s_im[lm] = 0.0
                    row_t_re[lm] = 0.0
                    row_t_im[lm] = 0.0
                for n in range(nrad):
                    for lm in range(h):
                        gr = ga_re[i, mu, n, lm]
                        gi = ga_im[i, mu, n, lm]
                        row_s_re[lm] += gr * r_lm[n, lm]
                        row_s_im[lm] += gi * r_lm[n, lm]
                        row_t_re[lm] += gr * dr_lm[n, lm]
                        row_t_im[lm] += gi * dr_lm[n, lm]
                for lm in range(h):  # into the block layout of the recursion (edge innermost)
                    s_re[lm, 0, q] = row_s_re[lm]
                    s_im[lm, 0, q] = row_s_im[lm]
                    t_re[lm, q] = row_t_re[lm]
                    t_im[lm, q] = row_t_im[lm]
            if fused:
                # the harmonics of the block, contracted as they are made: never stored
                ylm_block(vectors, e0, nb, lmax, diag, sub, a, b, CONTRACT, state, t_re, t_im, s_re, s_im, value,
                          grad)
            else:
                for q in range(nb):
                    e = e0 + q
                    value[q] = 0.0
                    for c in range(3):
                        grad[c, q] = 0.0
                    for lm in range(h):
                        value[q] += t_re[lm, q] * y_re[e, lm] + t_im[lm, q] * y_im[e, lm]
                        for c in range(3):
                            grad[c, q] += s_re[lm, 0, q] * dy_re[e, lm, c] + s_im[lm, 0, q] * dy_im[e, lm, c]
            for q in range(nb):
                e = e0 + q
                vx, vy, vz = np.float64(vectors[e, 0]), np.float64(vectors[e, 1]), np.float64(vectors[e, 2])
                inv = 1.0 / np.sqrt(vx * vx + vy * vy + vz * vz)
                # d(R Y)/dr = R' r_hat Y + R grad Y
                out[e, 0] = grad[0, q] + value[q] * vx * inv
                out[e, 1] = grad[1, q] + value[q] * vy * inv
                out[e, 2] = grad[2, q] + value[q] * vz * inv


_atomic_base = compile_pair(_atomic_base_kernel)
_edge_grads = compile_pair(_edge_grads_kernel)


@functools.lru_cache(maxsize=None)
def _harmonics_args(n_l: int):
    """The recursion constants for lmax = n_l - 1: built once per lmax, not per call (the arrays
    are only read)."""
    lmax = n_l - 1
    diag, sub, a, b = (np.asarray(c, dtype=np.float64) for c in plm_coefficients(max(lmax, 0)))
    return lmax, diag, sub, a, b


def atomic_base(radial, y_re, y_im, offsets, nbr_species, nspecies, vectors=None):
    """``y_re = y_im = None``: fused, the harmonics come from ``vectors``."""
    n = offsets.shape[0] - 1
    e, nrad, n_l = radial.shape
    h = n_l * (n_l + 1) // 2
    a_re = torch.empty((n, nspecies, nrad, h), dtype=radial.dtype)
    a_im = torch.empty_like(a_re)
    fused = y_re is None
    empty2 = np.empty((0, 0), dtype=radial.numpy().dtype)
    y_args = (empty2, empty2, vectors.numpy()) if fused else (y_re.numpy(), y_im.numpy(), np.empty((0, 3)))
    kernel = pick(_atomic_base, e * nrad * h)
    kernel(radial.numpy(), *y_args, fused, *_harmonics_args(n_l), offsets.numpy(), nbr_species.numpy(),
           a_re.numpy(), a_im.numpy())
    return a_re, a_im


def atomic_base_edge_grads(ga_re, ga_im, offsets, nbr_species, radial, dradial, y_re, y_im, dy_re, dy_im, vectors):
    """``y_re = y_im = dy_re = dy_im = None``: fused, the harmonics come from ``vectors``."""
    e, nrad, n_l = radial.shape
    h = n_l * (n_l + 1) // 2
    out = torch.empty((e, 3), dtype=radial.dtype)
    fused = y_re is None
    dt = radial.numpy().dtype
    if fused:
        y_args = (np.empty((0, 0), dtype=dt),) * 2 + (np.empty((0, 0, 3), dtype=dt),) * 2
    else:
        y_args = (y_re.numpy(), y_im.numpy(), dy_re.numpy(), dy_im.numpy())
    kernel = pick(_edge_grads, e * nrad * h)
    kernel(ga_re.numpy(), ga_im.numpy(), offsets.numpy(), nbr_species.numpy(), radial.numpy(), dradial.numpy(),
           *y_args, vectors.numpy(), fused, *_harmonics_args(n_l), out.numpy())
    return out
