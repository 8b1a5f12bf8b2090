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

from .backend import check_same_device, implementation, resolve_backend


def _harmonics(y_re, y_im, vectors, lmax, gradients, backend):
    """The harmonics as given, or from ``vectors`` (``None`` where the Numba kernels fuse them)."""
    if (y_re is None) != (y_im is None):
        raise ValueError("give both y_re and y_im, or neither (then they come from vectors)")
    if y_re is not None:
        return None
    if vectors is None:
        raise ValueError("without y_re / y_im, the harmonics need the edge vectors (vectors=...)")
    if backend == "numba":
        return (None,) * 4
    from .sph_harm import spherical_harmonics

    return spherical_harmonics(vectors, lmax, gradients=gradients, backend=backend)


def _check_common(radial, y_re, y_im, offsets, nbr_species):
    if radial.ndim != 3:
        raise ValueError(f"radial must be (E, nrad, lmax+1), got {tuple(radial.shape)}")
    e, _, l1 = radial.shape
    h = l1 * (l1 + 1) // 2
    for name, t in (("y_re", y_re), ("y_im", y_im)):
        if t is None:
            continue
        if tuple(t.shape) != (e, h):
            raise ValueError(f"{name} must be (E, (lmax+1)(lmax+2)/2) = {(e, h)}, got {tuple(t.shape)}")
    if nbr_species.shape != (e,):
        raise ValueError(f"nbr_species must be (E,) = ({e},), got {tuple(nbr_species.shape)}")
    if offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"offsets must be (N+1,), got {tuple(offsets.shape)}")
    if int(offsets[0]) != 0 or int(offsets[-1]) != e or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"offsets must start at 0, be non-decreasing and end at E={e}")
    return e, h


def atomic_base(radial: torch.Tensor, y_re: torch.Tensor | None, y_im: torch.Tensor | None, offsets: torch.Tensor,
                nbr_species: torch.Tensor, nspecies: int, backend: str | None = None,
                vectors: torch.Tensor | None = None):
    """``(a_re, a_im)``, each ``(N, nspecies, nrad, H)``: the atomic base of every atom.

    ``radial (E, nrad, lmax+1)`` R_nl per edge, ``y_re / y_im (E, H)`` the m >= 0 harmonics,
    ``offsets (N+1,)`` CSR of the edges by centre, ``nbr_species (E,)`` in ``0..nspecies-1``;
    ``y_re = y_im = None`` with ``vectors (E, 3)``: the harmonics come from the vectors.
    """
    device = check_same_device(*(t for t in (radial, y_re, y_im, offsets, nbr_species, vectors) if t is not None))
    name = resolve_backend(backend, device)
    offsets, nbr_species = offsets.long(), nbr_species.long()
    e, h = _check_common(radial, y_re, y_im, offsets, nbr_species)
    if vectors is not None and tuple(vectors.shape) != (e, 3):
        raise ValueError(f"vectors must be ({e}, 3), got {tuple(vectors.shape)}")
    n, nrad = offsets.shape[0] - 1, radial.shape[1]
    if e and (int(nbr_species.min()) < 0 or int(nbr_species.max()) >= nspecies):
        raise IndexError(f"nbr_species must lie in 0..{nspecies - 1}")
    if n == 0 or e == 0 or nrad == 0:
        z = radial.new_zeros((n, nspecies, nrad, h))
        return z, z.clone()
    computed = _harmonics(y_re, y_im, vectors, radial.shape[2] - 1, False, name)
    if computed is not None:
        y_re, y_im = computed[0], computed[1]
    impl = implementation(name, "atomic_base")
    c = lambda t: None if t is None else t.contiguous()  # noqa: E731
    # Numba reads strided views as they are (the model's R_nl is a column slice of one spline
    # evaluation): a copy would cost more than the strided reads
    cr = (lambda t: t) if name == "numba" else c  # noqa: E731
    if y_re is None:
        return impl.atomic_base(cr(radial), None, None, c(offsets), c(nbr_species), int(nspecies), vectors=c(vectors))
    return impl.atomic_base(cr(radial), c(y_re), c(y_im), c(offsets), c(nbr_species), int(nspecies))


def atomic_base_edge_grads(ga_re: torch.Tensor, ga_im: torch.Tensor, offsets: torch.Tensor,
                           nbr_species: torch.Tensor, radial: torch.Tensor, dradial: torch.Tensor,
                           y_re: torch.Tensor | None, y_im: torch.Tensor | None, dy_re: torch.Tensor | None,
                           dy_im: torch.Tensor | None, vectors: torch.Tensor,
                           backend: str | None = None) -> torch.Tensor:
    """Per-edge gradients ``(E, 3)`` of ``E = sum ga . A`` (the adjoint of :func:`atomic_base`).

    ``ga_re / ga_im (N, nspecies, nrad, H)``, ``dradial`` = dR/dr like ``radial``, ``dy_re / dy_im
    (E, H, 3)`` the Cartesian gradients of the harmonics (all four ``None``: computed from the
    vectors), ``vectors (E, 3)`` the edge vectors.
    """
    harmonics = (y_re, y_im, dy_re, dy_im)
    if any(t is None for t in harmonics) and not all(t is None for t in harmonics):
        raise ValueError("give all of y_re, y_im, dy_re, dy_im, or none (then they come from vectors)")
    device = check_same_device(*(t for t in (ga_re, ga_im, offsets, nbr_species, radial, dradial, vectors)
                                 + harmonics if t is not None))
    name = resolve_backend(backend, device)
    offsets, nbr_species = offsets.long(), nbr_species.long()
    e, h = _check_common(radial, y_re, y_im, offsets, nbr_species)
    n, nrad = offsets.shape[0] - 1, radial.shape[1]
    if dradial.shape != radial.shape:
        raise ValueError(f"dradial must be {tuple(radial.shape)}, got {tuple(dradial.shape)}")
    for nm, t in (("dy_re", dy_re), ("dy_im", dy_im)):
        if t is not None and tuple(t.shape) != (e, h, 3):
            raise ValueError(f"{nm} must be {(e, h, 3)}, got {tuple(t.shape)}")
    if tuple(vectors.shape) != (e, 3):
        raise ValueError(f"vectors must be ({e}, 3), got {tuple(vectors.shape)}")
    if ga_re.ndim != 4 or ga_re.shape[0] != n or tuple(ga_re.shape[2:]) != (nrad, h) or ga_im.shape != ga_re.shape:
        raise ValueError(f"ga_re / ga_im must be (N={n}, nspecies, {nrad}, {h}), got {tuple(ga_re.shape)}, "
                         f"{tuple(ga_im.shape)}")
    nspecies = ga_re.shape[1]
    if e and (int(nbr_species.min()) < 0 or int(nbr_species.max()) >= nspecies):
        raise IndexError(f"nbr_species must lie in 0..{nspecies - 1}")
    if e == 0 or nrad == 0:
        return vectors.new_zeros((e, 3))
    if y_re is None:
        y_re, y_im, dy_re, dy_im = _harmonics(None, None, vectors, radial.shape[2] - 1, True, name)
    impl = implementation(name, "atomic_base")
    c = lambda t: None if t is None else t.contiguous()  # noqa: E731
    cr = (lambda t: t) if name == "numba" else c  # noqa: E731  (strided R_nl views: see atomic_base)
    return impl.atomic_base_edge_grads(c(ga_re), c(ga_im), c(offsets), c(nbr_species), cr(radial), cr(dradial),
                                       c(y_re), c(y_im), c(dy_re), c(dy_im), c(vectors))
