"""Reference ACE atomic base and its adjoint (contract: ``kernels/atomic_base.py``)."""

from __future__ import annotations

import torch


def _l_of(h: int, device) -> torch.Tensor:
    """The l of every m >= 0 harmonic column ``l(l+1)/2 + m``."""
    ls = []
    l = 0
    while len(ls) < h:
        ls.extend([l] * (l + 1))
        l += 1
    return torch.as_tensor(ls, dtype=torch.long, device=device)  # long even when empty (H = 0)


def _rows(offsets, nbr_species, nspecies):
    n = offsets.shape[0] - 1
    # output_size: the edge count is known, so torch need not read it back from the device
    owner = torch.repeat_interleave(torch.arange(n, device=offsets.device), offsets[1:] - offsets[:-1],
                                    output_size=nbr_species.shape[0])
    return owner * nspecies + nbr_species


def atomic_base(radial, y_re, y_im, offsets, nbr_species, nspecies):
    n = offsets.shape[0] - 1
    e, nrad, _ = radial.shape
    h = y_re.shape[1]
    rl = radial[:, :, _l_of(h, radial.device)]  # (E, nrad, H)
    rows = _rows(offsets, nbr_species, nspecies)
    zero = radial.new_zeros((n * nspecies, nrad, h))
    a_re = zero.index_add(0, rows, rl * y_re[:, None, :])
    a_im = zero.index_add(0, rows, rl * y_im[:, None, :])
    shape = (n, nspecies, nrad, h)
    return a_re.reshape(shape), a_im.reshape(shape)


def atomic_base_edge_grads(ga_re, ga_im, offsets, nbr_species, radial, dradial, y_re, y_im, dy_re, dy_im, vectors):
    n, nspecies, nrad, h = ga_re.shape
    l_of = _l_of(h, radial.device)
    rows = _rows(offsets, nbr_species, nspecies)
    g_re = ga_re.reshape(n * nspecies, nrad, h)[rows]  # (E, nrad, H)
    g_im = ga_im.reshape(n * nspecies, nrad, h)[rows]
    rl, drl = radial[:, :, l_of], dradial[:, :, l_of]
    s_re, s_im = (g_re * rl).sum(1), (g_im * rl).sum(1)  # (E, H): weights of grad Y
    d_re, d_im = (g_re * drl).sum(1), (g_im * drl).sum(1)  # weights of R' r_hat Y
    radial_part = (d_re * y_re + d_im * y_im).sum(1)
    unit = vectors / torch.linalg.vector_norm(vectors, dim=1, keepdim=True)
    angular = (s_re[:, :, None] * dy_re + s_im[:, :, None] * dy_im).sum(1)
    return radial_part[:, None] * unit + angular
