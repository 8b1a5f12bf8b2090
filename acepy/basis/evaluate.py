"""Plain numpy evaluation of rotation-invariant products on explicit neighbour environments.

Used to check generated bases (invariance, linear independence, span) without building a model:
an environment is a set of neighbour vectors with species and arbitrary per-neighbour radial
values, and the atomic base is A[mu, n, l, m] = sum_j R_{n l}(j) Y_lm(r_j) over the full m range,
with PACE's Y_lm (Y00 = 1, ACE_SPEC.md 2.9). The spherical harmonics come from
``acepy.kernels.spherical_harmonics`` (torch reference backend).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from acepy.kernels import lm_index, spherical_harmonics

__all__ = ["ylm_full", "atomic_base", "product_value"]


def ylm_full(vectors: np.ndarray, lmax: int) -> np.ndarray:
    """Complex Y_lm (PACE convention) of each vector: ``(E, lmax + 1, 2 lmax + 1)``, column l + m."""
    vectors = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    re, im, _, _ = spherical_harmonics(torch.as_tensor(vectors), lmax, gradients=False, backend="torch")
    half = re.numpy() + 1j * im.numpy()
    out = np.zeros((vectors.shape[0], lmax + 1, 2 * lmax + 1), dtype=np.complex128)
    for l in range(lmax + 1):
        for m in range(l + 1):
            y = half[:, lm_index(l, m)]
            out[:, l, lmax + m] = y
            out[:, l, lmax - m] = (-1) ** m * np.conj(y)
    return out


def atomic_base(vectors: np.ndarray, species: np.ndarray, radial: np.ndarray, nelements: int,
                lmax: int) -> np.ndarray:
    """A[mu, n, l, lmax + m] = sum over neighbours j of species mu of radial[j, n, l] Y_lm(r_j).

    ``radial`` is ``(E, nmax, lmax + 1)``: any per-neighbour values (a radial function of |r_j| for
    a physical environment; random numbers are fine for algebraic checks, since A stays a sum over
    neighbours of a rotation-covariant Y_lm).
    """
    y = ylm_full(vectors, lmax)
    radial = np.asarray(radial, dtype=np.float64)
    nmax = radial.shape[1]
    A = np.zeros((nelements, nmax, lmax + 1, 2 * lmax + 1), dtype=np.complex128)
    for mu in range(nelements):
        sel = np.asarray(species) == mu
        A[mu] = np.einsum("jnl,jlm->nlm", radial[sel], y[sel])
    return A


def product_value(A: np.ndarray, mus: Sequence[int], ns: Sequence[int], ls: Sequence[int],
                  ms_combs: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Re sum_s coeffs[s] prod_t A[mus_t, ns_t - 1, ls_t, m_{s,t}] (``ns`` 1-based as in files).

    ``A`` may carry leading batch axes: ``(..., nelements, nmax, lmax + 1, 2 lmax + 1)``; ``coeffs``
    is ``(S,)`` or ``(S, P)``. Returns ``(...)`` or ``(..., P)``.
    """
    lmax = (A.shape[-1] - 1) // 2
    ms_combs = np.asarray(ms_combs, dtype=np.int64)
    prod = np.ones(A.shape[:-4] + (ms_combs.shape[0],), dtype=np.complex128)
    for t in range(len(ls)):
        prod = prod * A[..., int(mus[t]), int(ns[t]) - 1, int(ls[t]), lmax + ms_combs[:, t]]
    return np.tensordot(prod, np.asarray(coeffs, dtype=np.float64), axes=([-1], [0])).real
