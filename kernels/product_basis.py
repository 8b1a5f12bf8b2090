"""The sparse product contraction of the ACE basis, and its adjoint (ACE_SPEC.md 2.10, 2.13).

Every atom ``i`` belongs to a group ``group[i]`` (its species) that owns the product terms
``group_offsets[g]:group_offsets[g+1]``. Term ``s`` is a product of up to ``RMAX`` factors, each a
complex entry of the atom's row ``a[i, :]`` (``H`` columns), possibly negated and/or conjugated::

    rho[i, p] = sum over terms s of the group of i of  coeff[s, p] * Re( prod_t  f(a[i], codes[s, t]) )

A factor code packs ``4*h + 2*conj + neg`` (column ``h``; ``conj``: take the complex conjugate;
``neg``: negate); ``-1`` pads a term of lower rank (factor 1). This is how the m < 0 entries of
the atomic base enter: ``A_{l,-m} = (-1)^m conj(A_{lm})``.

The adjoint takes ``w_rho = dE/drho (N, P)`` and returns ``dE/dRe a`` and ``dE/dIm a``, each
``(N, H)``.
"""

from __future__ import annotations

import torch

from .backend import check_same_device, implementation, resolve_backend


def encode_factor(column: int, conj: bool, neg: bool) -> int:
    """The code of one factor: column ``column`` of the row, conjugated and/or negated."""
    return 4 * int(column) + 2 * int(bool(conj)) + int(bool(neg))


def _check(a_re, a_im, group, group_offsets, codes, coeff):
    if a_re.ndim != 2 or a_im.shape != a_re.shape:
        raise ValueError(f"a_re / a_im must both be (N, H), got {tuple(a_re.shape)}, {tuple(a_im.shape)}")
    n, h = a_re.shape
    if group.shape != (n,):
        raise ValueError(f"group must be (N,) = ({n},), got {tuple(group.shape)}")
    if codes.ndim != 2 or coeff.ndim != 2 or codes.shape[0] != coeff.shape[0]:
        raise ValueError(f"codes must be (S, RMAX) and coeff (S, P), got {tuple(codes.shape)}, {tuple(coeff.shape)}")
    s = codes.shape[0]
    if group_offsets.ndim != 1 or group_offsets.shape[0] < 1:
        raise ValueError(f"group_offsets must be (G+1,), got {tuple(group_offsets.shape)}")
    if int(group_offsets[0]) != 0 or int(group_offsets[-1]) != s or bool((group_offsets[1:] < group_offsets[:-1]).any()):
        raise ValueError(f"group_offsets must start at 0, be non-decreasing and end at S={s}")
    ngroups = group_offsets.shape[0] - 1
    if n and (int(group.min()) < 0 or int(group.max()) >= ngroups):
        raise IndexError(f"group must lie in 0..{ngroups - 1}")
    if s and codes.numel():
        if int(codes.min()) < -1 or int(codes.max()) >= 4 * h:
            raise IndexError(f"factor codes must be -1 or 4*h + flags with h < H={h}")


def product_basis(a_re: torch.Tensor, a_im: torch.Tensor, group: torch.Tensor, group_offsets: torch.Tensor,
                  codes: torch.Tensor, coeff: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """``rho (N, P)``: the product terms of every atom's group contracted with ``coeff``."""
    device = check_same_device(a_re, a_im, group, group_offsets, codes, coeff)
    name = resolve_backend(backend, device)
    group, group_offsets, codes = group.long(), group_offsets.long(), codes.long()
    _check(a_re, a_im, group, group_offsets, codes, coeff)
    n, p = a_re.shape[0], coeff.shape[1]
    if n == 0 or codes.shape[0] == 0 or p == 0:
        return a_re.new_zeros((n, p))
    impl = implementation(name, "product_basis")
    return impl.product_basis(a_re.contiguous(), a_im.contiguous(), group.contiguous(), group_offsets.contiguous(),
                              codes.contiguous(), coeff.to(a_re.dtype).contiguous())


def product_basis_adjoint(a_re: torch.Tensor, a_im: torch.Tensor, group: torch.Tensor, group_offsets: torch.Tensor,
                          codes: torch.Tensor, coeff: torch.Tensor, w_rho: torch.Tensor,
                          backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dE/dRe a, dE/dIm a)``, each ``(N, H)``, for ``E = sum w_rho * rho`` (rho of :func:`product_basis`)."""
    device = check_same_device(a_re, a_im, group, group_offsets, codes, coeff, w_rho)
    name = resolve_backend(backend, device)
    group, group_offsets, codes = group.long(), group_offsets.long(), codes.long()
    _check(a_re, a_im, group, group_offsets, codes, coeff)
    n, p = a_re.shape[0], coeff.shape[1]
    if tuple(w_rho.shape) != (n, p):
        raise ValueError(f"w_rho must be (N, P) = {(n, p)}, got {tuple(w_rho.shape)}")
    if n == 0 or codes.shape[0] == 0 or p == 0:
        return torch.zeros_like(a_re), torch.zeros_like(a_im)
    impl = implementation(name, "product_basis")
    return impl.product_basis_adjoint(a_re.contiguous(), a_im.contiguous(), group.contiguous(),
                                      group_offsets.contiguous(), codes.contiguous(),
                                      coeff.to(a_re.dtype).contiguous(), w_rho.to(a_re.dtype).contiguous())
