"""Numba first and second derivatives of the ACE site energy in its outer variables
x = (rho_1 .. rho_P, rho_core, f_zbl), closed forms, for the Hessian-vector product
(``acepy/models/ace_hvp.py``). The energy is that of ``embedding.py`` (ACE_SPEC.md 2.11-2.12):

    density inner cutoff: E = F(rho) f(core) + core,     zbl: E = F(rho) f + core (1 - f),
    F = sum_p w_p F_kind(rho_p; m_p).

Second derivatives of PACE's embeddings, with a = |x| and F(x) = sign(x) h(a) (so F'' = sign(x) h''):

- ``Fexp``: h = (1 - g) a^m + lam g a, g = exp(-(W a)^3), lam = W^(1-m):
  h'' = (1 - g) m (m-1) a^(m-2) + 2 g' (lam - m a^(m-1)) + g'' (lam a - a^m),
  g' = -3 W^3 a^2 g, g'' = (9 W^6 a^4 - 6 W^3 a) g; F = lam x (F'' = 0) for a <= 1e-10, as PACE;
- ``FexpShiftedScaled``: h = (x_off + a)^m - y_off, x_off = nu^(nu/(1-nu)) e^-a, y_off =
  nu^(1/(1-nu)) e^-a, nu = 1/m: h'' = m (m-1) (x_off + a)^(m-2) (1 - x_off)^2 + m (x_off + a)^(m-1)
  x_off - y_off;
- PACE's quintic switch f(r) (``cutoff_func_poly``), x = 1 - 2 (1 + (r - r_in) / delta):
  f'' = 15 (x^3 - x) / delta^2 inside the switch, 0 outside.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._compile import compile_pair, pick
from .embedding import _W, FINNIS_SINCLAIR, _embedding


@numba.njit(cache=True, inline="always")
def _embedding_second(x, m, kind):
    """d2F/dx2 of PACE's ``Fexp`` (kind 0) or ``FexpShiftedScaled`` (kind 1), same branches as
    ``embedding._embedding``."""
    if abs(m - 1.0) < 1e-10:
        return 0.0
    a = abs(x)
    sign = 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)
    if kind == FINNIS_SINCLAIR:
        if not a > 1e-10:
            return 0.0
        lam = _W ** (1.0 - m)
        wx3 = (_W * a) ** 3
        g = 0.0 if wx3 > 30.0 else math.exp(-min(wx3, 30.0))
        w3 = _W ** 3
        g1 = -3.0 * w3 * a * a * g
        g2 = (9.0 * w3 * w3 * a ** 4 - 6.0 * w3 * a) * g
        am = a ** m
        h2 = (1.0 - g) * m * (m - 1.0) * a ** (m - 2.0) + 2.0 * g1 * (lam - m * a ** (m - 1.0)) + g2 * (lam * a - am)
        return sign * h2
    nu = 1.0 / m
    decay = math.exp(-a)
    x_off = nu ** (nu / (1.0 - nu)) * decay
    y_off = nu ** (1.0 / (1.0 - nu)) * decay
    s = x_off + a
    return sign * (m * (m - 1.0) * s ** (m - 2.0) * (1.0 - x_off) ** 2 + m * s ** (m - 1.0) * x_off - y_off)


@numba.njit(cache=True, inline="always")
def _switch2(r, r_in, delta):
    """PACE's ``cutoff_func_poly`` and its first two derivatives: ``(f, f', f'')``."""
    if r <= r_in - delta:
        return 1.0, 0.0, 0.0
    if r >= r_in:
        return 0.0, 0.0, 0.0
    x = 1.0 - 2.0 * (1.0 + (r - r_in) / delta)
    f = 0.5 + 7.5 / 2.0 * (x / 4.0 - x ** 3 / 6.0 + x ** 5 / 20.0)
    return f, -7.5 / delta * (0.25 - x * x / 2.0 + x ** 4 / 4.0), 15.0 * (x ** 3 - x) / (delta * delta)


def _outer_kernel(rho_hi, a1, rank1, core, species, ndensity, kind, weights, exponents, rho_cut, drho_cut,
                  zbl_f, use_zbl, d1, d2):
    n_atoms, n_dens = rho_hi.shape
    n_k = a1.shape[1]
    cix = n_dens  # index of rho_core in x
    fix = n_dens + 1  # index of f_zbl
    for i in numba.prange(n_atoms):
        mu = species[i]
        c = core[i]
        for p in range(n_dens + 2):
            d1[i, p] = 0.0
            for q in range(n_dens + 2):
                d2[i, p, q] = 0.0
        total = 0.0
        for p in range(ndensity[mu]):
            rho = rho_hi[i, p]
            for k in range(n_k):
                rho += a1[i, k] * rank1[mu, k, p]
            f_p, df_p = _embedding(rho, exponents[mu, p], kind[mu])
            total += weights[mu, p] * f_p
            d1[i, p] = weights[mu, p] * df_p
            d2[i, p, p] = weights[mu, p] * _embedding_second(rho, exponents[mu, p], kind[mu])
        if use_zbl:
            f = zbl_f[i]
            for p in range(ndensity[mu]):
                d2[i, p, fix] = d1[i, p]
                d2[i, fix, p] = d1[i, p]
                d1[i, p] *= f
                d2[i, p, p] *= f
            d1[i, cix] = 1.0 - f
            d1[i, fix] = total - c
            d2[i, cix, fix] = -1.0
            d2[i, fix, cix] = -1.0
        else:
            if math.isinf(rho_cut[mu]):
                f, df, d2f = 1.0, 0.0, 0.0
            else:
                f, df, d2f = _switch2(c, rho_cut[mu], drho_cut[mu])
            for p in range(ndensity[mu]):
                d2[i, p, cix] = d1[i, p] * df
                d2[i, cix, p] = d1[i, p] * df
                d1[i, p] *= f
                d2[i, p, p] *= f
            d1[i, cix] = total * df + 1.0
            d2[i, cix, cix] = total * d2f


_outer = compile_pair(_outer_kernel)


def outer_derivatives(rho_hi, a1, rank1, core, species, tables, zbl_f):
    """``(d1 (N, P+2), d2 (N, P+2, P+2))``: dE/dx and d2E/dx2 per atom, x = (rho, rho_core, f_zbl)
    (f_zbl entries zero without the zbl cutoff). float64 numpy arrays; ``tables`` from
    ``embedding.embedding_tables``."""
    n, p = rho_hi.shape
    d1 = np.empty((n, p + 2))
    d2 = np.empty((n, p + 2, p + 2))
    use_zbl = zbl_f is not None
    zf = zbl_f if use_zbl else np.zeros(0)
    kernel = pick(_outer, n * (p + 2) * (p + 2) * 8)
    kernel(rho_hi, a1, rank1, core, species, *tables, zf, use_zbl, d1, d2)
    return d1, d2
