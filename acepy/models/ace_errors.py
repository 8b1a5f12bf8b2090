"""The named errors of the ACE component's fast path, built only once a check has failed: a
distance outside the radial tables (:class:`TooCloseError` naming the pair) and a non-finite site
energy or edge gradient (:class:`NonFiniteError` naming the atom or pair and the potential's
values that overflow)."""

from __future__ import annotations

import torch

from acepy.errors import NonFiniteError, SplineRangeError, TooCloseError

from .component import BatchGraph


def raise_range(ace, inputs: BatchGraph, centers, mu_i, mu_j, r, kept) -> None:
    """:class:`TooCloseError` naming the first pair closer than the radial tables reach."""
    try:
        ace.radial.check_distances(r.detach(), mu_i, mu_j)
    except SplineRangeError as err:
        e = err.edge
        raise TooCloseError(
            f"{inputs.describe_edge(e if kept is None else int(kept[e]))} are {float(r[e].detach()):.6g} A "
            f"apart: closer than the potential's radial tables reach for {ace.elements[int(mu_i[e])]}-"
            f"{ace.elements[int(mu_j[e])]} (PACE stops here too)"
        ) from None


def check_finite(ace, inputs: BatchGraph, energies: torch.Tensor, grads: torch.Tensor | None = None) -> None:
    """Once per call (one host read): an infinite or NaN site energy or edge gradient raises
    :class:`NonFiniteError` naming the atom (or pair) and the potential's values that overflow,
    instead of returning it."""
    bad = ~torch.isfinite(energies.detach())
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        mu = int(inputs.species[i])
        emb = ace._embeddings[mu]
        raise NonFiniteError(
            f"{inputs.describe_atom(i)} ({ace.elements[mu]}): the ACE energy is {float(energies[i])}: the "
            f"potential's values overflow float64 at this atom's density ({ace.spec.source or 'potential'}: "
            f"embeddings[{mu}].FS_parameters = {emb.fs_parameters.tolist()} ({emb.npoti}), or the C-tilde "
            "coefficients and radial functions of its functions)")
    if grads is None:
        return
    bad = ~torch.isfinite(grads).all(dim=1)
    if bool(bad.any()):
        e = int(torch.nonzero(bad)[0])
        raise NonFiniteError(
            f"{inputs.describe_edge(e)}: the ACE force between them is not finite ({grads[e].tolist()}): the "
            f"derivative of the potential's values overflows float64 there ({ace.spec.source or 'potential'}: "
            "the embeddings' FS_parameters, the radial coefficients or the core repulsion)")
