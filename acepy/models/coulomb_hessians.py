"""Exact position Hessians of the reciprocal Coulomb sums (Ewald and PME) of one structure.

Both are the second derivatives of torch-pme's energies (what autograd through torch-pme gives,
to rounding), computed without 3N backward passes:

- Ewald: ``E = k/(2V) sum_k G(k) |S(k)|^2``, ``S(k) = sum_j q_j exp(i k.r_j)`` (G: torch-pme's
  ``lr_from_k_sq``). For ``i != j``, ``H_ij = (k/V) q_i q_j sum_k G(k) k k^T cos(k.(r_i - r_j))``
  and ``cos(k.(r_i - r_j)) = c_i c_j + s_i s_j`` (``c = cos(k.r)``, ``s = sin(k.r)``), so with
  ``M[k, (i, a)] = sqrt(w_k) k_a q_i c_ki`` (and the same with ``s``) the whole matrix is
  ``M^T M``: matrix products over chunks of k (memory bounded), only the upper triangle of tiles
  (the result is symmetric), over half of the k-sphere (k and -k give the same terms, weight 2).
  The diagonal blocks are ``H_ii = -sum_(j != i) H_ij``: the self and background terms do not
  move with the atoms, so the sum rule holds exactly.
- PME: torch-pme's ``PMECalculator`` energy is ``E = k/(2V) sum_(m, m') Q(m) Phi(m - m') Q(m')``
  (``Q``: charges spread by its Lagrange stencils; ``Phi``: its k-space filter applied to a unit
  mesh point, one FFT); the pair blocks contract 1D correlations of the stencils with ``Phi``
  (:mod:`acepy.kernels.numba_cpu.coulomb_pme`, O(N^2 (2p - 1)^3)); no k-space truncation.
  Essmann et al., J. Chem. Phys. 103, 8577 (1995) for the mesh energy; torch-pme's Lagrange
  weights after Hockney & Eastwood / Darden et al. (torchpme/lib/mesh_interpolator.py).
"""

from __future__ import annotations

import copy

import torch

__all__ = ["ewald_hessian", "pme_hessian"]

# elements of one (2 kc, 3 n) chunk of M (64 MB in float64) and tile width of the upper triangle
EWALD_CHUNK_ELEMENTS = 1 << 23
EWALD_TILE = 1536


def ewald_hessian(cell: torch.Tensor, x: torch.Tensor, q: torch.Tensor, half_k: torch.Tensor, potential,
                  coulomb_constant: float) -> torch.Tensor:
    """``(n, 3, n, 3)`` Hessian of the Ewald k-space energy for the half k-sphere ``half_k (K, 3)``
    (one of each pair +-k), in float64 arithmetic on ``x``'s device."""
    dtype = x.dtype
    cell, x, q, half_k = (t.detach().to(torch.float64) for t in (cell, x, q, half_k))
    n = x.shape[0]
    dim = 3 * n
    volume = torch.linalg.det(cell).abs()
    weight = 2.0 * potential.lr_from_k_sq((half_k * half_k).sum(dim=1)).to(torch.float64) * (coulomb_constant / volume)
    if bool((weight < 0).any()):  # pragma: no cover - torch-pme's Coulomb kernel is positive
        raise ValueError("ewald_hessian: a negative k-space weight (the M^T M form needs G(k) >= 0)")
    root = weight.sqrt()
    hess = x.new_zeros((dim, dim))
    step = max(1, EWALD_CHUNK_ELEMENTS // (2 * dim))
    tiles = [(lo, min(dim, lo + EWALD_TILE)) for lo in range(0, dim, EWALD_TILE)]
    for k0 in range(0, half_k.shape[0], step):
        k = half_k[k0:k0 + step]
        phase = k @ x.T  # (kc, n)
        kw = k * root[k0:k0 + step, None]  # (kc, 3)
        m = torch.cat([(torch.cos(phase) * q)[:, :, None] * kw[:, None, :],
                       (torch.sin(phase) * q)[:, :, None] * kw[:, None, :]]).reshape(-1, dim)
        for t, (r0, r1) in enumerate(tiles):
            for c0, c1 in tiles[t:]:
                hess[r0:r1, c0:c1].addmm_(m[:, r0:r1].T, m[:, c0:c1])
    for t, (r0, r1) in enumerate(tiles):
        for c0, c1 in tiles[t + 1:]:
            hess[c0:c1, r0:r1] = hess[r0:r1, c0:c1].T
    hess = hess.reshape(n, 3, n, 3)
    # H_ii = -sum_(j != i) H_ij: the diagonal block computed above (q_i^2 sum_k w k k^T) cancels
    rows = hess.sum(dim=2)  # (n, 3, 3)
    idx = torch.arange(n, device=x.device)
    hess[idx, :, idx, :] -= rows
    return hess.to(dtype)


def _stencil(calculator, cell: torch.Tensor, x: torch.Tensor, ns: torch.Tensor):
    """torch-pme's interpolation of ``x`` on the mesh ``ns``: the first stencil index per atom and
    axis (unwrapped), and the 1D weights with their first and second derivatives in the mesh
    coordinate ``u`` (n, 3, p), all from torch-pme's own weight polynomials."""
    interpolator = calculator.mesh_interpolator
    p = int(calculator.interpolation_nodes)
    rel = ns * torch.matmul(x, torch.linalg.inv(cell))  # as MeshInterpolator.compute_weights
    if p % 2 == 0:
        idx = torch.floor(rel).long()
        offsets = rel - (idx + 0.5)
    else:
        idx = torch.round(rel).long()
        offsets = rel - idx
    weights = interpolator._compute_1d_weights  # (p, n, 3) polynomials of the offsets, elementwise
    ones = torch.ones_like(offsets)
    first = lambda u: torch.func.jvp(weights, (u,), (ones,))[1]  # noqa: E731
    w, dw = torch.func.jvp(weights, (offsets,), (ones,))
    ddw = torch.func.jvp(first, (offsets,), (ones,))[1]
    base = idx + (1 - (p + 1) // 2)
    return base, w.permute(1, 2, 0), dw.permute(1, 2, 0), ddw.permute(1, 2, 0)


def pme_hessian(calculator, cell: torch.Tensor, x: torch.Tensor, q: torch.Tensor,
                coulomb_constant: float) -> torch.Tensor:
    """``(n, 3, n, 3)`` Hessian of ``k sum_i q_i phi_i`` with ``phi`` torch-pme's PME k-space
    potential (``calculator``: a ``PMECalculator``), computed in float64 on the CPU."""
    from acepy.kernels.numba_cpu.coulomb_pme import pme_hessian as kernel
    from torchpme.lib.kvectors import get_ns_mesh

    device, dtype = x.device, x.dtype
    cell, x, q = (t.detach().to(device="cpu", dtype=torch.float64) for t in (cell, x, q))
    calc = calculator
    smearing = calculator.potential.smearing
    if smearing.device.type != "cpu" or smearing.dtype != torch.float64:  # a float64 CPU copy (Module.to is in place)
        calc = copy.deepcopy(calculator).to(device="cpu", dtype=torch.float64)
    with torch.no_grad():
        ns = get_ns_mesh(cell, calc.mesh_spacing)
        calc.mesh_interpolator.update(cell, ns)
        calc.kspace_filter.update(cell, ns)
        calc.mesh_interpolator.compute_weights(x)
        pot = calc.kspace_filter.forward(calc.mesh_interpolator.points_to_mesh(q[:, None]))[0]
        delta = torch.zeros((1, *ns.tolist()), dtype=torch.float64)
        delta[0, 0, 0, 0] = 1.0
        phi = calc.kspace_filter.forward(delta)[0]  # the filter's response to a unit charge at mesh point 0
    base, w, dw, ddw = _stencil(calc, cell, x, ns)
    amat = ns.to(torch.float64)[None, :] * torch.linalg.inv(cell)  # d u_d / d x_a
    pref = coulomb_constant / float(torch.linalg.det(cell).abs())
    out = kernel(phi.numpy(), pot.numpy(), base.numpy(), w.numpy(), dw.numpy(), ddw.numpy(), q.numpy(),
                 amat.numpy(), pref)
    return torch.from_numpy(out).to(device=device, dtype=dtype)

