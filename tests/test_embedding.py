"""The analytic embedding derivatives (the fast path's dF/drho) against autograd and finite
differences of the embedding values (the exact path)."""

import numpy as np
import pytest
import torch

from acepy.models.embedding import EMBEDDINGS, embedding_energy, embedding_energy_and_derivative


def _rho(rng):
    # both signs, tiny values around the lam|x| piece of Fexp, ordinary and large densities
    parts = [rng.normal(size=40), rng.normal(scale=1e-7, size=10), rng.normal(scale=30, size=10), [0.0]]
    return torch.as_tensor(np.concatenate(parts), dtype=torch.float64)


@pytest.mark.parametrize("npoti", sorted(EMBEDDINGS))
@pytest.mark.parametrize("m", [1.0, 0.5, 0.75, 1.5, 2.0])
def test_derivative_matches_autograd_and_finite_differences(npoti, m):
    rng = np.random.default_rng()
    rho = _rho(rng).requires_grad_(True)
    params = [float(rng.normal()), m, float(rng.normal()), 0.5]  # two densities: the second has m = 1/2
    rho2 = torch.stack([rho, rho.detach().flip(0)], dim=1)
    value, deriv = embedding_energy_and_derivative(rho2.detach(), params, npoti)
    assert torch.equal(value, embedding_energy(rho2.detach(), params, npoti))
    (auto,) = torch.autograd.grad(embedding_energy(torch.stack([rho, rho.detach().flip(0)], 1), params, npoti).sum(),
                                  rho)
    # autograd through sign() is 0 at exactly rho = 0, where the analytic derivative has its limit
    nonzero = (rho != 0).numpy()
    np.testing.assert_allclose(deriv[nonzero, 0].numpy(), auto[nonzero].numpy(), rtol=1e-12, atol=1e-12)
    # finite differences away from the switch region of Fexp (|x| ~ 1e-6, width 1e-6); the
    # shifted-scaled form is smooth through 0, so its derivative there is checked too
    x = rho.detach()
    ok = (x.abs() > 1e-3) | ((x == 0) & (npoti == "FinnisSinclairShiftedScaled"))
    h = 1e-6
    fd = (embedding_energy(torch.stack([x + h, x.flip(0)], 1), params, npoti)
          - embedding_energy(torch.stack([x - h, x.flip(0)], 1), params, npoti)) / (2 * h)
    np.testing.assert_allclose(deriv[ok, 0].numpy(), fd[ok].numpy(), rtol=1e-6, atol=1e-6)


def test_density_inner_cutoff_short_cut_equals_the_quintic():
    # all atoms below the switch (the CPU short cut) and a mix across it: the same values and slopes
    from acepy.models.embedding import density_inner_cutoff
    from acepy.models.radial.functions import cutoff_func_poly

    rng = torch.Generator().manual_seed(3)
    below = torch.rand(50, generator=rng, dtype=torch.float64) * 30.0  # rho_cut 40, drho 10: switch 30..40
    across = torch.rand(50, generator=rng, dtype=torch.float64) * 45.0
    for core in (below, across):
        f, df = density_inner_cutoff(core, 40.0, 10.0)
        f_ref, df_ref = cutoff_func_poly(core, 40.0, 10.0)
        torch.testing.assert_close(f, f_ref, rtol=0, atol=0)
        torch.testing.assert_close(df, df_ref, rtol=0, atol=0)
    assert bool((density_inner_cutoff(across, 40.0, 10.0)[0] < 1).any())  # the mix reaches the switch


def _reference_site_terms(rho_hi, a1, rank1, core, species, embeddings, zbl_f):
    """The torch reference, written out: what ``ACE._site_energies_from`` and the einsum of the
    fast path compute (acepy/models/ace.py), per atom."""
    from acepy.models.embedding import density_inner_cutoff

    rho = rho_hi + torch.einsum("ik,ikp->ip", a1, rank1[species])
    n, p = rho.shape
    e, d_rho, d_core, d_f = (torch.zeros(n, dtype=rho.dtype), torch.zeros_like(rho), torch.zeros(n, dtype=rho.dtype),
                             torch.zeros(n, dtype=rho.dtype))
    for i in range(n):
        emb = embeddings[int(species[i])]
        val, der = embedding_energy_and_derivative(rho[i: i + 1, : emb.ndensity], emb.fs_parameters, emb.npoti)
        if zbl_f is not None:
            f = zbl_f[i]
            e[i] = val[0] * f + core[i] * (1 - f)
            d_core[i], d_f[i] = 1 - f, val[0] - core[i]
        else:
            f, df = density_inner_cutoff(core[i: i + 1], emb.rho_cut, emb.drho_cut)
            f, df = f[0], df[0]
            e[i] = val[0] * f + core[i]
            d_core[i] = val[0] * df + 1
        d_rho[i, : emb.ndensity] = der[0] * f
    d_a1 = torch.einsum("ip,ikp->ik", d_rho, rank1[species])
    return e, d_rho, d_core, d_f, d_a1


@pytest.mark.parametrize("inner", ["density", "zbl"])
def test_numba_site_energies_equal_the_torch_reference(inner):
    """The Numba fast path's site-energy kernel (kernels/numba_cpu/embedding.py) = the torch
    reference, term by term, on three species with different embeddings, density counts and inner
    cutoffs (atoms below, inside and above the density switch), tiny and zero densities included."""
    from dataclasses import dataclass

    from acepy.kernels.numba_cpu.embedding import embedding_tables, site_energies_and_derivatives

    @dataclass
    class Emb:
        ndensity: int
        fs_parameters: np.ndarray
        npoti: str
        rho_cut: float
        drho_cut: float

    rng = np.random.default_rng()
    embeddings = [Emb(2, np.array([1.0, 1.0, rng.normal(), 0.5]), "FinnisSinclair", 3.0, 1.0),
                  Emb(1, np.array([rng.normal(), 0.75]), "FinnisSinclairShiftedScaled", float("inf"), 0.0),
                  Emb(3, np.array([rng.normal(), 0.5, rng.normal(), 1.5, rng.normal(), 2.0]),
                      "FinnisSinclairShiftedScaled", 5.0, 2.0)]
    n, k, p = 60, 6, 3
    species = torch.as_tensor(rng.integers(0, 3, n))
    rho_hi = torch.as_tensor(rng.normal(size=(n, p)) * rng.choice([1e-8, 1.0, 10.0], size=(n, 1)))
    rho_hi[0] = 0.0
    a1 = torch.as_tensor(rng.normal(size=(n, k)))
    a1[0] = 0.0
    rank1 = torch.as_tensor(rng.normal(size=(3, k, p)))
    core = torch.as_tensor(rng.uniform(0.0, 6.0, n))  # below, inside and above the switches
    zbl_f = torch.as_tensor(rng.uniform(0.0, 1.0, n)) if inner == "zbl" else None
    got = site_energies_and_derivatives(rho_hi, a1, rank1.numpy(), core, species, embedding_tables(embeddings, p),
                                        zbl_f)
    want = _reference_site_terms(rho_hi, a1, rank1, core, species, embeddings, zbl_f)
    for name, g, w in zip(["E", "dE/drho", "dE/dcore", "dE/df", "dE/dA1"], got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-12, atol=1e-12, err_msg=name)
