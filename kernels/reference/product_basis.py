"""Reference sparse product contraction of the ACE basis (contract: ``kernels/product_basis.py``).

Plain torch complex arithmetic, differentiable twice; the adjoint is autograd of the forward.
"""

from __future__ import annotations

import torch

# Atoms per chunk: bounds the (atoms x terms) complex work arrays.
ATOM_CHUNK = 256


def product_basis(a_re, a_im, group, plan):
    codes, coeff, group_offsets = plan.codes, plan.coeff, plan.group_offsets
    n = a_re.shape[0]
    a = torch.complex(a_re, a_im)
    # column 0 of the padded row is the factor 1 of padding codes
    a = torch.cat([torch.ones((n, 1), dtype=a.dtype, device=a.device), a], dim=1)
    pad = codes < 0
    col = torch.where(pad, torch.zeros_like(codes), (codes >> 2) + 1)
    conj = ((codes >> 1) & 1).bool() & ~pad
    sign = torch.where(((codes & 1) == 1) & ~pad, -1.0, 1.0).to(a_re.dtype)
    rho = a_re.new_zeros((n, coeff.shape[1]))
    for g in range(group_offsets.shape[0] - 1):
        s0, s1 = int(group_offsets[g]), int(group_offsets[g + 1])
        atoms = torch.nonzero(group == g).squeeze(1)
        if s0 == s1 or atoms.numel() == 0:
            continue
        parts = []
        for start in range(0, atoms.numel(), ATOM_CHUNK):
            rows = a[atoms[start:start + ATOM_CHUNK]]
            prod = None
            for t in range(codes.shape[1]):
                f = rows[:, col[s0:s1, t]]
                f = torch.where(conj[s0:s1, t], f.conj(), f) * sign[s0:s1, t]
                prod = f if prod is None else prod * f
            if prod is None:  # RMAX = 0: every term is the empty product 1
                prod = torch.ones((rows.shape[0], s1 - s0), dtype=a.dtype, device=a.device)
            parts.append(prod.real @ coeff[s0:s1])
        rho = rho.index_put((atoms,), torch.cat(parts))
    return rho


def product_basis_adjoint(a_re, a_im, group, plan, w_rho):
    with torch.enable_grad():
        x_re = a_re.detach().requires_grad_(True)
        x_im = a_im.detach().requires_grad_(True)
        rho = product_basis(x_re, x_im, group, plan)
        if not rho.requires_grad:  # RMAX = 0: rho does not depend on a
            return torch.zeros_like(a_re), torch.zeros_like(a_im)
        g_re, g_im = torch.autograd.grad((rho * w_rho).sum(), (x_re, x_im), allow_unused=True)
    return (torch.zeros_like(a_re) if g_re is None else g_re), (torch.zeros_like(a_im) if g_im is None else g_im)
