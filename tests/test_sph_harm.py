"""Spherical harmonics in PACE's convention: SciPy, autograd, finite differences, backend agreement."""

import math

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from acepy.kernels import lm_index, n_lm, spherical_harmonics
from conftest import assert_close, device_for


def random_vectors(e, dtype=torch.float64, device="cpu"):
    v = torch.randn(e, 3, dtype=torch.float64) * torch.exp(torch.randn(e, 1, dtype=torch.float64))
    return v.to(device, dtype)


@pytest.mark.parametrize("lmax", [0, 1, 4, 8, 10])
def test_reference_matches_scipy(lmax):
    v = random_vectors(300)
    v[0] = torch.tensor([0.0, 0.0, 2.0])  # the poles
    v[1] = torch.tensor([0.0, 0.0, -0.5])
    re, im, _, _ = spherical_harmonics(v, lmax, gradients=False, backend="torch")
    x = v.numpy()
    r = np.linalg.norm(x, axis=1)
    theta, phi = np.arccos(x[:, 2] / r), np.arctan2(x[:, 1], x[:, 0])
    for l in range(lmax + 1):
        for m in range(l + 1):
            expected = math.sqrt(4 * math.pi) * sph_harm_y(l, m, theta, phi)
            k = lm_index(l, m)
            np.testing.assert_allclose(re[:, k].numpy(), expected.real, rtol=0, atol=1e-13 * (l + 1))
            np.testing.assert_allclose(im[:, k].numpy(), expected.imag, rtol=0, atol=1e-13 * (l + 1))
    assert torch.all(re[:, 0] == 1.0) and torch.all(im[:, 0] == 0.0)


def test_gradients_against_autograd_and_finite_differences():
    lmax = 8
    v = random_vectors(200)
    re, im, gre, gim = spherical_harmonics(v, lmax, backend="torch")
    assert gre.shape == (200, n_lm(lmax), 3)
    # tangential: r . grad Y = 0 (Y depends on the direction only)
    assert float((gre * v[:, None, :]).sum(-1).abs().max()) < 1e-12 * float(gre.abs().max() * v.abs().max())
    vv = v.clone().requires_grad_()
    r2, i2, _, _ = spherical_harmonics(vv, lmax, gradients=False, backend="torch")
    w, u = torch.randn_like(r2), torch.randn_like(i2)
    (g,) = torch.autograd.grad((r2 * w).sum() + (i2 * u).sum(), vv)
    assert_close(g, (gre * w[..., None]).sum(1) + (gim * u[..., None]).sum(1), torch.float64, what="autograd")
    eps = 1e-6
    for a in range(3):
        d = torch.zeros(3, dtype=torch.float64)
        d[a] = eps
        rp, ip, _, _ = spherical_harmonics(v + d, lmax, gradients=False, backend="torch")
        rm, im_, _, _ = spherical_harmonics(v - d, lmax, gradients=False, backend="torch")
        scale = float(gre[..., a].abs().max())
        torch.testing.assert_close((rp - rm) / (2 * eps), gre[..., a], rtol=1e-5, atol=1e-6 * scale)
        torch.testing.assert_close((ip - im_) / (2 * eps), gim[..., a], rtol=1e-5, atol=1e-6 * scale)


def test_reference_gradients_are_differentiable():
    """The exact path needs second derivatives: the analytic gradient differentiates like autograd's."""
    v = random_vectors(20).requires_grad_()
    re, im, gre, gim = spherical_harmonics(v, 4, backend="torch")
    (h1,) = torch.autograd.grad(gre[:, 7, 0].sum(), v, retain_graph=True)
    (g,) = torch.autograd.grad(re[:, 7].sum(), v, create_graph=True)
    (h2,) = torch.autograd.grad(g[:, 0].sum(), v)
    assert_close(h1, h2, torch.float64, what="second derivative")


@pytest.mark.parametrize("lmax", [0, 1, 3, 8])
@pytest.mark.parametrize("e", [1, 5, 129])
def test_backends_agree_with_reference(backend, dtype, lmax, e):
    v = random_vectors(e).to(dtype).double()  # the reference sees the same rounded inputs
    ref = spherical_harmonics(v, lmax, backend="torch")
    for gradients in (False, True):
        out = spherical_harmonics(v.to(device_for(backend), dtype), lmax, gradients=gradients, backend=backend)
        for q, what in enumerate(("re", "im", "grad_re", "grad_im")):
            if q >= 2 and not gradients:
                assert out[q] is None
                continue
            assert out[q].dtype == dtype
            # gradients scale as 1/|r|: compare them per edge, relative to that edge's scale
            expected, actual = ref[q], out[q]
            if q >= 2:
                scale = v.norm(dim=1).reshape(-1, 1, 1).to(expected.dtype)
                expected, actual = expected * scale, actual.cpu().double() * scale
            assert_close(actual, expected, dtype, what=f"{backend} lmax {lmax} {what}")


def test_empty_and_bad_arguments(backend):
    device = device_for(backend)
    re, im, gre, gim = spherical_harmonics(torch.zeros(0, 3, dtype=torch.float64, device=device), 6, backend=backend)
    assert re.shape == im.shape == (0, 28) and gre.shape == gim.shape == (0, 28, 3)
    with pytest.raises(ValueError, match="lmax"):
        spherical_harmonics(torch.ones(2, 3), -1)
    with pytest.raises(ValueError, match="vectors"):
        spherical_harmonics(torch.ones(2, 2), 2)
