"""The ACE atomic base and its adjoint (ACE_SPEC.md 2.10, 2.13).

For every atom ``i`` and neighbour species ``mu``, with the atom's edges ``offsets[i]:offsets[i+1]``::

    A[i, mu, n, lm] = sum over edges e of i with nbr_species[e] == mu of  R[e, n, l(lm)] * Y[e, lm]

for the ``m >= 0`` half of the harmonics (column ``lm = l(l+1)/2 + m``, as ``spherical_harmonics``
returns them), complex, stored as ``(a_re, a_im)`` of shape ``(N, nspecies, nrad, H)``.

The adjoint takes ``ga = dE/dA`` in real form (``ga_re = dE/dRe A``, ``ga_im = dE/dIm A``) and
returns the per-edge gradient ``g_e = dE/dr_e``::

    g_e = sum over n, lm of  ga_re * d(R Y_re)/dr_e + ga_im * d(R Y_im)/dr_e,
    d(R Y)/dr_e = R'(r) r_hat Y + R grad Y,

with the atom's own row of ``ga`` and the edge's neighbour species.

Both take the harmonics either precomputed (``y_re, y_im (E, H)``, ``dy_re, dy_im (E, H, 3)``
from ``spherical_harmonics``) or ``None``, and then compute them from ``vectors`` (the Numba
kernels do that per edge in a scratch row, never holding per-edge harmonics in memory; the other
backends call ``spherical_harmonics`` first).
"""

from __future__ import annotations

import torch

from .backend import check_offsets, check_range, prepare

# the model's R_nl (and dR_nl/dr) are column slices of one spline evaluation: the Numba kernels
# read them as strided views, which costs less than a contiguous copy (see backend.prepare)
_STRIDED = ("radial", "dradial")


def _harmonics(call, lmax, gradients):
    """The harmonics of ``call.vectors`` for the backends that do not fuse them (Numba does,
    per block of edges inside its kernels: then ``None``)."""
    if call.backend == "numba":
        return (None,) * 4
    from .sph_harm import spherical_harmonics

    return spherical_harmonics(call.vectors, lmax, gradients=gradients, backend=call.backend)


def _check_shapes(fn, call):
    """Shape checks common to both directions; returns ``(E, H)``."""
    radial, offsets = call.radial, call.offsets
    if radial.ndim != 3:
        raise ValueError(f"{fn}: radial must be (E, nrad, lmax+1), got {tuple(radial.shape)}")
    e, _, l1 = radial.shape
    h = l1 * (l1 + 1) // 2
    for name in ("y_re", "y_im"):
        t = call.tensors[name]
        if t is not None and tuple(t.shape) != (e, h):
            raise ValueError(f"{fn}: {name} must be (E, (lmax+1)(lmax+2)/2) = {(e, h)}, got {tuple(t.shape)}")
    if call.nbr_species.shape != (e,):
        raise ValueError(f"{fn}: nbr_species must be (E,) = ({e},), got {tuple(call.nbr_species.shape)}")
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"{fn}: offsets must be (N+1,), got {tuple(offsets.shape)}")
    vectors = call.vectors
    if vectors is not None and tuple(vectors.shape) != (e, 3):
        raise ValueError(f"{fn}: vectors must be ({e}, 3), got {tuple(vectors.shape)}")
    return e, h


def _check_values(fn, call, nspecies):
    e = call.radial.shape[0]
    check_offsets(fn, "offsets", call.offsets, e)
    check_range(fn, "nbr_species", call.nbr_species, nspecies)


def atomic_base(radial: torch.Tensor, y_re: torch.Tensor | None, y_im: torch.Tensor | None, offsets: torch.Tensor,
                nbr_species: torch.Tensor, nspecies: int, backend: str | None = None,
                vectors: torch.Tensor | None = None, check: bool = True):
    """``(a_re, a_im)``, each ``(N, nspecies, nrad, H)``: the atomic base of every atom.

    ``radial (E, nrad, lmax+1)`` R_nl per edge, ``y_re / y_im (E, H)`` the m >= 0 harmonics,
    ``offsets (N+1,)`` CSR of the edges by centre, ``nbr_species (E,)`` in ``0..nspecies-1``;
    ``y_re = y_im = None`` with ``vectors (E, 3)``: the harmonics come from the vectors.
    ``check=False`` skips the value checks (the offsets and the range of ``nbr_species``): no host
    sync; the caller vouches for them.
    """
    fn = "atomic_base"
    if (y_re is None) != (y_im is None):
        raise ValueError(f"{fn}: give both y_re and y_im, or neither (then they come from vectors)")
    if y_re is None and vectors is None:
        raise ValueError(f"{fn}: without y_re / y_im, the harmonics need the edge vectors (vectors=...)")
    call = prepare(fn, "atomic_base", backend,
                   floats={"radial": radial, "y_re": y_re, "y_im": y_im, "vectors": vectors},
                   indices={"offsets": offsets, "nbr_species": nbr_species}, numba_views=_STRIDED)
    e, h = _check_shapes(fn, call)
    nspecies = int(nspecies)
    if check:
        _check_values(fn, call, nspecies)
    radial, offsets, nbr_species = call.radial, call.offsets, call.nbr_species
    n, nrad = offsets.shape[0] - 1, radial.shape[1]
    if n == 0 or e == 0 or nrad == 0:
        z = call.zeros((n, nspecies, nrad, h))
        return z, z.clone()
    if call.y_re is None:
        y_re, y_im, _, _ = _harmonics(call, radial.shape[2] - 1, False)
        if y_re is None:  # Numba: fused
            return call.impl.atomic_base(radial, None, None, offsets, nbr_species, nspecies, vectors=call.vectors)
        return call.impl.atomic_base(radial, y_re, y_im, offsets, nbr_species, nspecies)
    return call.impl.atomic_base(radial, call.y_re, call.y_im, offsets, nbr_species, nspecies)


def atomic_base_edge_grads(ga_re: torch.Tensor, ga_im: torch.Tensor, offsets: torch.Tensor,
                           nbr_species: torch.Tensor, radial: torch.Tensor, dradial: torch.Tensor,
                           y_re: torch.Tensor | None, y_im: torch.Tensor | None, dy_re: torch.Tensor | None,
                           dy_im: torch.Tensor | None, vectors: torch.Tensor,
                           backend: str | None = None, check: bool = True) -> torch.Tensor:
    """Per-edge gradients ``(E, 3)`` of ``E = sum ga . A`` (the adjoint of :func:`atomic_base`).

    ``ga_re / ga_im (N, nspecies, nrad, H)``, ``dradial`` = dR/dr like ``radial``, ``dy_re / dy_im
    (E, H, 3)`` the Cartesian gradients of the harmonics (all four ``None``: computed from the
    vectors), ``vectors (E, 3)`` the edge vectors. ``check=False`` skips the same value checks as
    :func:`atomic_base`.
    """
    fn = "atomic_base_edge_grads"
    harmonics = (y_re, y_im, dy_re, dy_im)
    if any(t is None for t in harmonics) and not all(t is None for t in harmonics):
        raise ValueError(f"{fn}: give all of y_re, y_im, dy_re, dy_im, or none (then they come from vectors)")
    if vectors is None:
        raise ValueError(f"{fn}: vectors (E, 3) are required")
    call = prepare(fn, "atomic_base", backend,
                   floats={"radial": radial, "dradial": dradial, "ga_re": ga_re, "ga_im": ga_im, "y_re": y_re,
                           "y_im": y_im, "dy_re": dy_re, "dy_im": dy_im, "vectors": vectors},
                   indices={"offsets": offsets, "nbr_species": nbr_species}, numba_views=_STRIDED)
    e, h = _check_shapes(fn, call)
    radial, offsets = call.radial, call.offsets
    n, nrad = offsets.shape[0] - 1, radial.shape[1]
    if call.dradial.shape != radial.shape:
        raise ValueError(f"{fn}: dradial must be {tuple(radial.shape)}, got {tuple(call.dradial.shape)}")
    for name in ("dy_re", "dy_im"):
        t = call.tensors[name]
        if t is not None and tuple(t.shape) != (e, h, 3):
            raise ValueError(f"{fn}: {name} must be {(e, h, 3)}, got {tuple(t.shape)}")
    ga_re, ga_im = call.ga_re, call.ga_im
    if ga_re.ndim != 4 or ga_re.shape[0] != n or tuple(ga_re.shape[2:]) != (nrad, h) or ga_im.shape != ga_re.shape:
        raise ValueError(f"{fn}: ga_re / ga_im must be (N={n}, nspecies, {nrad}, {h}), got {tuple(ga_re.shape)}, "
                         f"{tuple(ga_im.shape)}")
    if check:
        _check_values(fn, call, ga_re.shape[1])
    if e == 0 or nrad == 0:
        return call.zeros((e, 3))
    ys = (call.y_re, call.y_im, call.dy_re, call.dy_im)
    if ys[0] is None:
        ys = _harmonics(call, radial.shape[2] - 1, True)
    return call.impl.atomic_base_edge_grads(ga_re, ga_im, offsets, call.nbr_species, radial, call.dradial, *ys,
                                            call.vectors)
