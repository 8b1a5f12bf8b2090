"""Embedding functions F(rho) and the energy-level inner cutoff of PACE (ACE_SPEC.md 2.11, 2.12).

Plain torch, twice differentiable away from the measure-zero points where PACE's own formulas
switch branches. Every branch is evaluated on a "safe" argument so that torch.where never routes
a NaN or inf into a gradient.
"""

from __future__ import annotations

import math

import torch

from .radial import cutoff_func_poly


_FS_W = 1.0e6


def _fs_parts(rho: torch.Tensor, m: float):
    """The pieces of PACE's ``Fexp`` shared by its value and derivative: |x| (1 where tiny, so
    that no branch sees 0), the mask of non-tiny |x|, g = exp(-(w|x|)^3) and lam = w^(1-m)."""
    a = rho.abs()
    big = a > 1e-10
    a_safe = torch.where(big, a, torch.ones_like(a))
    wx3 = (_FS_W * a_safe) ** 3
    g = torch.where(wx3 > 30.0, torch.zeros_like(a), torch.exp(-torch.clamp(wx3, max=30.0)))
    return a_safe, big, g, _FS_W ** (1.0 - m)


def finnis_sinclair(rho: torch.Tensor, m: float) -> torch.Tensor:
    """PACE ``Fexp(x, m)``: sign(x)[(1 - g)|x|^m + lam g |x|] with g = exp(-(w|x|)^3), w = 1e6.

    The tiny linear piece lam|x| (lam = w^(1-m)) makes F differentiable at 0 for m < 1.
    """
    if abs(m - 1.0) < 1e-10:  # exactly how PACE special-cases the linear embedding
        return rho.clone()
    a, big, g, lam = _fs_parts(rho, m)
    return torch.where(big, torch.sign(rho) * ((1.0 - g) * a**m + lam * g * a), lam * rho)


def finnis_sinclair_derivative(rho: torch.Tensor, m: float) -> torch.Tensor:
    """dF/drho of :func:`finnis_sinclair`: (1-g) m|x|^(m-1) + lam g + g'(lam|x| - |x|^m), g' = -3 w^3 |x|^2 g."""
    if abs(m - 1.0) < 1e-10:
        return torch.ones_like(rho)
    a, big, g, lam = _fs_parts(rho, m)
    dg = -3.0 * _FS_W**3 * a**2 * g
    return torch.where(big, (1.0 - g) * m * a ** (m - 1.0) + lam * g + dg * (lam * a - a**m), torch.full_like(rho, lam))


def _shifted_scaled_offsets(a: torch.Tensor, m: float):
    """x_off and y_off of PACE's ``FexpShiftedScaled`` at |rho| = a."""
    nu = 1.0 / m
    decay = torch.exp(-a)
    return nu ** (nu / (1.0 - nu)) * decay, nu ** (1.0 / (1.0 - nu)) * decay


def finnis_sinclair_shifted_scaled(rho: torch.Tensor, m: float) -> torch.Tensor:
    """PACE ``FexpShiftedScaled(rho, m)``: sign(rho)[(x_off + |rho|)^m - y_off], F(0) = 0, smooth at 0."""
    if abs(m - 1.0) < 1e-10:
        return rho.clone()
    a = rho.abs()
    x_off, y_off = _shifted_scaled_offsets(a, m)
    return torch.sign(rho) * ((x_off + a) ** m - y_off)


def finnis_sinclair_shifted_scaled_derivative(rho: torch.Tensor, m: float) -> torch.Tensor:
    """dF/drho of :func:`finnis_sinclair_shifted_scaled`: m (x_off + |rho|)^(m-1) (1 - x_off) + y_off."""
    if abs(m - 1.0) < 1e-10:
        return torch.ones_like(rho)
    a = rho.abs()
    x_off, y_off = _shifted_scaled_offsets(a, m)
    return m * (x_off + a) ** (m - 1.0) * (1.0 - x_off) + y_off


EMBEDDING_DERIVATIVES = {
    "FinnisSinclair": finnis_sinclair_derivative,
    "FinnisSinclairShiftedScaled": finnis_sinclair_shifted_scaled_derivative,
}

EMBEDDINGS = {
    "FinnisSinclair": finnis_sinclair,
    "FinnisSinclairShiftedScaled": finnis_sinclair_shifted_scaled,
}


def embedding_energy(rho: torch.Tensor, fs_parameters, npoti: str) -> torch.Tensor:
    """F = sum_p w_p F_npoti(rho_p; m_p) for ``rho (N, P)`` and ``fs_parameters = [w_1, m_1, ...]``."""
    fn = EMBEDDINGS[npoti]
    total = torch.zeros(rho.shape[0], dtype=rho.dtype, device=rho.device)
    for p in range(rho.shape[1]):
        weight, exponent = float(fs_parameters[2 * p]), float(fs_parameters[2 * p + 1])
        total = total + weight * fn(rho[:, p], exponent)
    return total


def embedding_energy_and_derivative(rho: torch.Tensor, fs_parameters, npoti: str):
    """``(F (N,), dF/drho (N, P))`` of :func:`embedding_energy`, analytically (the fast path)."""
    fn, dfn = EMBEDDINGS[npoti], EMBEDDING_DERIVATIVES[npoti]
    total = torch.zeros(rho.shape[0], dtype=rho.dtype, device=rho.device)
    deriv = torch.zeros_like(rho)
    for p in range(rho.shape[1]):
        weight, exponent = float(fs_parameters[2 * p]), float(fs_parameters[2 * p + 1])
        total = total + weight * fn(rho[:, p], exponent)
        deriv[:, p] = weight * dfn(rho[:, p], exponent)
    return total, deriv


def density_inner_cutoff(rho_core: torch.Tensor, rho_cut: float, drho: float):
    """``(f_rho, df_rho/drho_core)`` of the density/distance inner-cutoff types (ACE_SPEC.md 2.12)."""
    if not math.isfinite(rho_cut):
        return torch.ones_like(rho_core), torch.zeros_like(rho_core)
    if rho_core.device.type == "cpu" and bool((rho_core <= rho_cut - drho).all()):
        # every atom below the switch (the usual case: rho_core_cutoff is large): f = 1, f' = 0 as the
        # quintic gives there, without its dozen tensor ops per species and call (a host read, so CPU only)
        return torch.ones_like(rho_core), torch.zeros_like(rho_core)
    return cutoff_func_poly(rho_core, rho_cut, drho)
