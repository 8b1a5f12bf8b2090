"""Numba ACE atomic base and its adjoint (contract: ``reference/atomic_base.py``).

Owner computes: each parallel iteration is one atom, which owns its row of ``A`` and its own CSR
range of edges, so nothing is shared between iterations.

Fused mode (``y_re is None``): the harmonics of each block of an atom's edges are computed in the
kernel into small scratch arrays (``sph_harm.ylm_block``) and used at once, instead of being read back from
``(E, H)`` and ``(E, H, 3)`` arrays that a separate harmonics pass would write: the fast path
of the model runs this way, and never holds per-edge harmonics in memory.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ..reference.sph_harm import plm_coefficients
from ._compile import compile_pair, pick
from .sph_harm import EDGE_BLOCK, ylm_block


def _atomic_base_kernel(radial, y_re, y_im, vectors, fused, lmax, diag, sub, a, b, offsets, nbr_species,
                        a_re, a_im):
    n_atoms, nspecies, nrad, h = a_re.shape
    n_l = radial.shape[2]
    for i in numba.prange(n_atoms):
        state = np.empty((16, EDGE_BLOCK))
        blk_re = np.empty((h, EDGE_BLOCK))  # the harmonics of a block of the atom's edges
        blk_im = np.empty((h, EDGE_BLOCK))
        no_grad = np.empty((0, 3, EDGE_BLOCK))
        # the atom's row accumulates in a local buffer (alias-free, so the loops vectorise)
        acc_re = np.zeros((nspecies, nrad, h))
        acc_im = np.zeros((nspecies, nrad, h))
        for e0 in range(offsets[i], offsets[i + 1], EDGE_BLOCK):
            nb = min(EDGE_BLOCK, offsets[i + 1] - e0)
            if fused:
                ylm_block(vectors, e0, nb, lmax, diag, sub, a, b, False, state, blk_re, blk_im, no_grad, no_grad)
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
        s_re = np.empty(h)
        s_im = np.empty(h)
        t_re = np.empty(h)
        t_im = np.empty(h)
        r_lm = np.empty((nrad, h))
        dr_lm = np.empty((nrad, h))
        state = np.empty((16, EDGE_BLOCK))
        blk_re = np.empty((h, EDGE_BLOCK))  # the harmonics and their gradients of a block of edges
        blk_im = np.empty((h, EDGE_BLOCK))
        blk_gre = np.empty((h, 3, EDGE_BLOCK))
        blk_gim = np.empty((h, 3, EDGE_BLOCK))
        for e0 in range(offsets[i], offsets[i + 1], EDGE_BLOCK):
            nb = min(EDGE_BLOCK, offsets[i + 1] - e0)
            if fused:
                ylm_block(vectors, e0, nb, lmax, diag, sub, a, b, True, state, blk_re, blk_im, blk_gre, blk_gim)
            else:
                for q in range(nb):
                    for lm in range(h):
                        blk_re[lm, q] = y_re[e0 + q, lm]
                        blk_im[lm, q] = y_im[e0 + q, lm]
                        for c in range(3):
                            blk_gre[lm, c, q] = dy_re[e0 + q, lm, c]
                            blk_gim[lm, c, q] = dy_im[e0 + q, lm, c]
            for q in range(nb):
                e = e0 + q
                mu = nbr_species[e]
                # R and R' spread over the lm columns, so that the contractions below run over
                # contiguous rows (they vectorise): s = sum_n ga R (weights of grad Y), t = sum_n ga R'
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
                    s_re[lm] = 0.0
                    s_im[lm] = 0.0
                    t_re[lm] = 0.0
                    t_im[lm] = 0.0
                for n in range(nrad):
                    for lm in range(h):
                        gr = ga_re[i, mu, n, lm]
                        gi = ga_im[i, mu, n, lm]
                        s_re[lm] += gr * r_lm[n, lm]
                        s_im[lm] += gi * r_lm[n, lm]
                        t_re[lm] += gr * dr_lm[n, lm]
                        t_im[lm] += gi * dr_lm[n, lm]
                radial_part = 0.0
                gx = 0.0
                gy = 0.0
                gz = 0.0
                for lm in range(h):
                    radial_part += t_re[lm] * blk_re[lm, q] + t_im[lm] * blk_im[lm, q]
                    gx += s_re[lm] * blk_gre[lm, 0, q] + s_im[lm] * blk_gim[lm, 0, q]
                    gy += s_re[lm] * blk_gre[lm, 1, q] + s_im[lm] * blk_gim[lm, 1, q]
                    gz += s_re[lm] * blk_gre[lm, 2, q] + s_im[lm] * blk_gim[lm, 2, q]
                vx, vy, vz = np.float64(vectors[e, 0]), np.float64(vectors[e, 1]), np.float64(vectors[e, 2])
                inv = 1.0 / np.sqrt(vx * vx + vy * vy + vz * vz)
                out[e, 0] = gx + radial_part * vx * inv
                out[e, 1] = gy + radial_part * vy * inv
                out[e, 2] = gz + radial_part * vz * inv


_atomic_base = compile_pair(_atomic_base_kernel)
_edge_grads = compile_pair(_edge_grads_kernel)


def _harmonics_args(n_l: int):
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
