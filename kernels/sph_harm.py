"""Complex spherical harmonics in PACE's convention, with Cartesian gradients (ACE_SPEC.md 2.9).

``Y_lm = sqrt(4 pi) * Y_lm^orthonormal`` (so ``Y_00 = 1``), Condon-Shortley phase, only ``m >= 0``
(``Y_l,-m = (-1)^m conj(Y_lm)``). Column ``l(l+1)/2 + m`` of the outputs holds ``(l, m)``.
The inputs are bond vectors of any non-zero length: the harmonics are of the direction, and the
gradients are with respect to the vector itself (so they scale as ``1/|r|`` and are orthogonal
to ``r``).
"""

from __future__ import annotations

import torch

from .backend import prepare

LMAX_LIMIT = 20  # the recursion is exact far beyond, the kernels are unrolled up to here


def n_lm(lmax: int) -> int:
    """Number of (l, m) columns with 0 <= m <= l <= lmax."""
    return (lmax + 1) * (lmax + 2) // 2


def lm_index(l: int, m: int) -> int:
    """Column of (l, m), 0 <= m <= l."""
    return l * (l + 1) // 2 + m


def spherical_harmonics(vectors: torch.Tensor, lmax: int, gradients: bool = True, backend: str | None = None):
    """``(re, im, grad_re, grad_im)``: ``(E, L)``, ``(E, L)``, ``(E, L, 3)``, ``(E, L, 3)``.

    The gradients are ``None`` when ``gradients=False``. Zero-length vectors have no direction:
    their rows are undefined (the models never pass them). There are no value checks (so no ``check``).
    """
    if int(lmax) != lmax or not 0 <= lmax <= LMAX_LIMIT:
        raise ValueError(f"spherical_harmonics: lmax must be an integer in [0, {LMAX_LIMIT}], got {lmax}")
    call = prepare("spherical_harmonics", "sph_harm", backend, floats={"vectors": vectors})
    vectors = call.vectors
    if vectors.ndim != 2 or vectors.shape[1] != 3:
        raise ValueError(f"spherical_harmonics: vectors must be (E, 3), got {tuple(vectors.shape)}")
    lmax = int(lmax)
    if vectors.shape[0] == 0:
        e = call.zeros((0, n_lm(lmax)))
        g = call.zeros((0, n_lm(lmax), 3))
        return e, e.clone(), (g if gradients else None), (g.clone() if gradients else None)
    return call.impl.spherical_harmonics(vectors, lmax, gradients)
