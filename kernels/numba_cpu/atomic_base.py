"""Numba ACE atomic base and its adjoint (contract: ``reference/atomic_base.py``).

Owner computes: each parallel iteration is one atom, which owns its row of ``A`` and its own CSR
range of edges, so nothing is shared between iterations.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ._compile import compile_pair, pick


def _atomic_base_kernel(radial, y_re, y_im, offsets, nbr_species, a_re, a_im):
    n_atoms, _, nrad, h = a_re.shape
    n_l = radial.shape[2]
    for i in numba.prange(n_atoms):
        a_re[i] = 0.0
        a_im[i] = 0.0
        for e in range(offsets[i], offsets[i + 1]):
            mu = nbr_species[e]
            for n in range(nrad):
                lm = 0
                for l in range(n_l):
                    r = radial[e, n, l]
                    for m in range(l + 1):
                        a_re[i, mu, n, lm] += r * y_re[e, lm]
                        a_im[i, mu, n, lm] += r * y_im[e, lm]
                        lm += 1


def _edge_grads_kernel(ga_re, ga_im, offsets, nbr_species, radial, dradial, y_re, y_im, dy_re, dy_im, vectors, out):
    n_atoms, _, nrad, h = ga_re.shape
    n_l = radial.shape[2]
    for i in numba.prange(n_atoms):
        s_re = np.empty(h)
        s_im = np.empty(h)
        for e in range(offsets[i], offsets[i + 1]):
            mu = nbr_species[e]
            # contract over n first: s = sum_n ga R (weights of grad Y), d = sum_n ga R' (of Y)
            radial_part = 0.0
            for lm in range(h):
                s_re[lm] = 0.0
                s_im[lm] = 0.0
            for n in range(nrad):
                lm = 0
                for l in range(n_l):
                    r = radial[e, n, l]
                    dr = dradial[e, n, l]
                    for m in range(l + 1):
                        gr = ga_re[i, mu, n, lm]
                        gi = ga_im[i, mu, n, lm]
                        s_re[lm] += gr * r
                        s_im[lm] += gi * r
                        radial_part += dr * (gr * y_re[e, lm] + gi * y_im[e, lm])
                        lm += 1
            vx, vy, vz = vectors[e, 0], vectors[e, 1], vectors[e, 2]
            inv = 1.0 / np.sqrt(vx * vx + vy * vy + vz * vz)
            gx = radial_part * vx * inv
            gy = radial_part * vy * inv
            gz = radial_part * vz * inv
            for lm in range(h):
                gx += s_re[lm] * dy_re[e, lm, 0] + s_im[lm] * dy_im[e, lm, 0]
                gy += s_re[lm] * dy_re[e, lm, 1] + s_im[lm] * dy_im[e, lm, 1]
                gz += s_re[lm] * dy_re[e, lm, 2] + s_im[lm] * dy_im[e, lm, 2]
            out[e, 0] = gx
            out[e, 1] = gy
            out[e, 2] = gz


_atomic_base = compile_pair(_atomic_base_kernel)
_edge_grads = compile_pair(_edge_grads_kernel)


def atomic_base(radial, y_re, y_im, offsets, nbr_species, nspecies):
    n = offsets.shape[0] - 1
    e, nrad, _ = radial.shape
    h = y_re.shape[1]
    a_re = torch.empty((n, nspecies, nrad, h), dtype=radial.dtype)
    a_im = torch.empty_like(a_re)
    kernel = pick(_atomic_base, e * nrad * h)
    kernel(radial.numpy(), y_re.numpy(), y_im.numpy(), offsets.numpy(), nbr_species.numpy(), a_re.numpy(),
           a_im.numpy())
    return a_re, a_im


def atomic_base_edge_grads(ga_re, ga_im, offsets, nbr_species, radial, dradial, y_re, y_im, dy_re, dy_im, vectors):
    e, nrad, _ = radial.shape
    out = torch.empty((e, 3), dtype=radial.dtype)
    kernel = pick(_edge_grads, e * nrad * y_re.shape[1])
    kernel(ga_re.numpy(), ga_im.numpy(), offsets.numpy(), nbr_species.numpy(), radial.numpy(), dradial.numpy(),
           y_re.numpy(), y_im.numpy(), dy_re.numpy(), dy_im.numpy(), vectors.numpy(), out.numpy())
    return out
