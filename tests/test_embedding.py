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
