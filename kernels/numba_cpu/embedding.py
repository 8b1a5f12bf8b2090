"""Numba site energies of ACE from its densities, with their derivatives: one pass per atom.

Contract (the torch reference is ``acepy/models/embedding.py`` with ``ACE._site_energies_from``,
ACE_SPEC.md 2.11-2.12): for atom i of species mu,

    rho_p   = rho_hi[i, p] + sum_k a1[i, k] rank1[mu, k, p]          (p < ndensity[mu])
    F       = sum_p w[mu, p] F_kind(rho_p; m[mu, p])                 (FinnisSinclair or ...ShiftedScaled)
    density inner cutoff: E_i = F f(core_i) + core_i,        f = PACE's quintic switch in rho_core
    zbl inner cutoff:     E_i = F f_i + core_i (1 - f_i),     f_i given (the distance switch)

and the derivatives the adjoint pass needs: dE/drho (N, P), dE/dcore (N,), dE/df (N,; zbl), and
dE/dA1 (N, K) = sum_p dE/drho_p rank1[mu, k, p]. Replaces a per-species loop of tensor ops (about
forty small torch calls per call) by one launch; the formulas are those of the reference, term by
term.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from ._compile import compile_pair, pick

FINNIS_SINCLAIR = 0
FINNIS_SINCLAIR_SHIFTED_SCALED = 1
KINDS = {"FinnisSinclair": FINNIS_SINCLAIR, "FinnisSinclairShiftedScaled": FINNIS_SINCLAIR_SHIFTED_SCALED}
_W = 1.0e6  # PACE's Fexp width (acepy/models/embedding.py)


@numba.njit(cache=True, inline="always")
def _embedding(x, m, kind):
    """``(F(x; m), dF/dx)`` of PACE's ``Fexp`` (kind 0) or ``FexpShiftedScaled`` (kind 1)."""
    if abs(m - 1.0) < 1e-10:
        return x, 1.0
    a = abs(x)
    sign = 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)
    if kind == FINNIS_SINCLAIR:
        lam = _W ** (1.0 - m)
        if not a > 1e-10:
            return lam * x, lam
        wx3 = (_W * a) ** 3
        g = 0.0 if wx3 > 30.0 else math.exp(-min(wx3, 30.0))
        am = a ** m
        dg = -3.0 * _W ** 3 * a * a * g
        return sign * ((1.0 - g) * am + lam * g * a), (1.0 - g) * m * a ** (m - 1.0) + lam * g + dg * (lam * a - am)
    nu = 1.0 / m
    decay = math.exp(-a)
    x_off = nu ** (nu / (1.0 - nu)) * decay
    y_off = nu ** (1.0 / (1.0 - nu)) * decay
    return sign * ((x_off + a) ** m - y_off), m * (x_off + a) ** (m - 1.0) * (1.0 - x_off) + y_off


@numba.njit(cache=True, inline="always")
def _switch(r, r_in, delta):
    """PACE's ``cutoff_func_poly`` (ACE_SPEC.md 2.3): ``(f, df/dr)``."""
    if r <= r_in - delta:
        return 1.0, 0.0
    if r >= r_in:
        return 0.0, 0.0
    x = 1.0 - 2.0 * (1.0 + (r - r_in) / delta)
    f = 0.5 + 7.5 / 2.0 * (x / 4.0 - x ** 3 / 6.0 + x ** 5 / 20.0)
    return f, -7.5 / delta * (0.25 - x * x / 2.0 + x ** 4 / 4.0)


def _atom_site_energy(mu, rho_hi, a1, rank1, c, ndensity, kind, weights, exponents, rho_cut, drho_cut, f_zbl,
                      use_zbl, d_rho, d_a1):
    """One atom of species ``mu``: ``(E_i, dE/dcore, dE/df)`` from its densities ``rho_hi (P,)``,
    rank-1 base ``a1 (K,)`` and core density ``c``; writes ``d_rho (P,)`` and ``d_a1 (K,)``. Shared
    by the site-energy kernel and the fused ACE kernel."""
    n_dens = rho_hi.shape[0]
    n_k = a1.shape[0]
    total = 0.0
    for p in range(n_dens):
        d_rho[p] = 0.0
    for p in range(ndensity[mu]):
        rho = rho_hi[p]
        for k in range(n_k):
            rho += a1[k] * rank1[mu, k, p]
        f_p, df_p = _embedding(rho, exponents[mu, p], kind[mu])
        total += weights[mu, p] * f_p
        d_rho[p] = weights[mu, p] * df_p
    if use_zbl:
        f = f_zbl
        energy = total * f + c * (1.0 - f)
        d_core = 1.0 - f
        d_f = total - c
    else:
        if math.isinf(rho_cut[mu]):
            f, df = 1.0, 0.0
        else:
            f, df = _switch(c, rho_cut[mu], drho_cut[mu])
        energy = total * f + c
        d_core = total * df + 1.0
        d_f = 0.0
    for p in range(n_dens):
        d_rho[p] *= f
    for k in range(n_k):
        s = 0.0
        for p in range(ndensity[mu]):
            s += d_rho[p] * rank1[mu, k, p]
        d_a1[k] = s
    return energy, d_core, d_f


atom_site_energy = numba.njit(cache=True, inline="always")(_atom_site_energy)


def _site_energies_kernel(rho_hi, a1, rank1, core, species, ndensity, kind, weights, exponents, rho_cut, drho_cut,
                          zbl_f, use_zbl, energies, d_rho, d_core, d_f, d_a1):
    n_atoms = rho_hi.shape[0]
    for i in numba.prange(n_atoms):
        f = zbl_f[i] if use_zbl else 1.0
        energies[i], d_core[i], d_f[i] = atom_site_energy(species[i], rho_hi[i], a1[i], rank1, core[i], ndensity,
                                                          kind, weights, exponents, rho_cut, drho_cut, f, use_zbl,
                                                          d_rho[i], d_a1[i])


_site_energies = compile_pair(_site_energies_kernel)


def embedding_tables(embeddings, max_ndensity: int):
    """The per-species arrays the kernel reads, from ACE's ``_SpeciesEmbedding`` list (built once
    per model): ``(ndensity, kind, weights, exponents, rho_cut, drho_cut)``."""
    nel = len(embeddings)
    ndensity = np.array([e.ndensity for e in embeddings], dtype=np.int64)
    kind = np.array([KINDS[e.npoti] for e in embeddings], dtype=np.int64)
    weights = np.zeros((nel, max_ndensity))
    exponents = np.ones((nel, max_ndensity))
    for mu, e in enumerate(embeddings):
        fs = np.asarray(e.fs_parameters, dtype=np.float64)
        weights[mu, : e.ndensity] = fs[0: 2 * e.ndensity: 2]
        exponents[mu, : e.ndensity] = fs[1: 2 * e.ndensity: 2]
    rho_cut = np.array([e.rho_cut for e in embeddings], dtype=np.float64)
    drho_cut = np.array([e.drho_cut for e in embeddings], dtype=np.float64)
    return ndensity, kind, weights, exponents, rho_cut, drho_cut


def site_energies_and_derivatives(rho_hi: torch.Tensor, a1: torch.Tensor, rank1: np.ndarray, core: torch.Tensor,
                                  species: torch.Tensor, tables, zbl_f: torch.Tensor | None):
    """``(E (N,), dE/drho (N, P), dE/dcore (N,), dE/df (N,), dE/dA1 (N, K))``: CPU tensors in
    ``rho_hi``'s dtype (``rank1`` a numpy array of the same dtype; sums accumulate in float64)."""
    n, p = rho_hi.shape
    k = a1.shape[1]
    dtype = rho_hi.dtype
    energies = torch.empty(n, dtype=dtype)
    d_rho = torch.empty((n, p), dtype=dtype)
    d_core = torch.empty(n, dtype=dtype)
    d_f = torch.empty(n, dtype=dtype)
    d_a1 = torch.empty((n, k), dtype=dtype)
    use_zbl = zbl_f is not None
    zf = zbl_f.numpy() if use_zbl else np.zeros(0, dtype=rank1.dtype)
    kernel = pick(_site_energies, n * (p + k) * 8)
    kernel(rho_hi.numpy(), a1.numpy(), rank1, core.numpy(), species.numpy(), *tables, zf, use_zbl,
           energies.numpy(), d_rho.numpy(), d_core.numpy(), d_f.numpy(), d_a1.numpy())
    return energies, d_rho, d_core, d_f, d_a1
