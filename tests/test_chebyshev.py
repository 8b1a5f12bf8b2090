"""Chebyshev polynomials of transformed distances: closed forms, numpy, derivatives, backend agreement."""

import math

import numpy as np
import numpy.polynomial.chebyshev as npcheb
import pytest
import torch

from acepy.kernels import chebyshev
from conftest import assert_close, device_for

PARAMS = {
    "identity": {},
    "exp_cos": dict(lam=5.25, rcut=7.4),
    "pow": dict(lam=2.0, rcut=7.4),
    "linear": dict(rcut=5.5),
    "aenet": dict(rcut=6.5, rmin=0.0),
}


def transform_numpy(r, transform, lam=0.0, rcut=1.0, rmin=0.0):
    """x(r) written directly from ACE_SPEC.md 2.2 and 5, for r inside the domain."""
    if transform == "identity":
        return r
    if transform == "exp_cos":
        y1, y2 = np.exp(-lam * r / rcut), np.exp(-lam)
        return 1 - 2 * (y1 - y2) / (1 - y2)
    if transform == "pow":
        return 1 - 2 * (1 - r / rcut) ** lam
    if transform == "linear":
        return 1 - r / rcut
    return (2 * r - rmin - rcut) / (rcut - rmin)


def test_closed_forms_on_cos_theta():
    theta = torch.rand(501, dtype=torch.float64) * math.pi * 0.98 + 0.01
    x = torch.cos(theta)
    n = torch.arange(12, dtype=torch.float64)
    t, dt, _ = chebyshev(x, 11, kind="T", backend="torch")
    u, _, _ = chebyshev(x, 11, kind="U", backend="torch")
    assert_close(t, torch.cos(n * theta[:, None]), torch.float64, what="T_n(cos) = cos(n theta)")
    assert_close(u, torch.sin((n + 1) * theta[:, None]) / torch.sin(theta)[:, None], torch.float64, what="U_n")
    # dT_n/dx = n U_{n-1}
    assert_close(dt[:, 1:], n[1:] * u[:, :-1], torch.float64, what="dT = n U")


@pytest.mark.parametrize("kind", ["T", "U"])
def test_identity_matches_numpy_polynomials_with_derivatives(kind):
    x = np.concatenate([np.random.default_rng().uniform(-1, 1, 300), [-1.0, 1.0]])
    v, d1, d2 = chebyshev(torch.as_tensor(x), 9, kind=kind, backend="torch")
    for n in range(10):
        if kind == "T":
            c = np.zeros(n + 1)
            c[n] = 1
        else:  # U_n = sum of T_k over k = n, n-2, ... (T_0 counted once), times 2
            c = np.zeros(n + 1)
            c[n % 2 :: 2] = 2.0
            if n % 2 == 0:
                c[0] = 1.0
        np.testing.assert_allclose(v[:, n].numpy(), npcheb.chebval(x, c), rtol=0, atol=1e-12 * (n + 1) ** 2)
        np.testing.assert_allclose(d1[:, n].numpy(), npcheb.chebval(x, npcheb.chebder(c)), rtol=0, atol=1e-11 * (n + 1) ** 4)
        np.testing.assert_allclose(d2[:, n].numpy(), npcheb.chebval(x, npcheb.chebder(c, 2)), rtol=0, atol=1e-10 * (n + 1) ** 6)


@pytest.mark.parametrize("transform", sorted(PARAMS))
def test_transforms_values_and_derivatives(transform):
    p = PARAMS[transform]
    hi = p.get("rcut", 1.0)
    r = torch.rand(400, dtype=torch.float64) * hi * 0.98 + 0.01 * hi
    if transform == "identity":
        r = r * 2 - 1
    v, d1, d2 = chebyshev(r, 8, transform=transform, backend="torch", **p)
    x = torch.as_tensor(transform_numpy(r.numpy(), transform, **p))
    assert_close(v, torch.cos(torch.arange(9.0, dtype=torch.float64) * torch.acos(x.clamp(-1, 1))[:, None]),
                 torch.float64, what="values")
    # autograd of the reference
    rr = r.clone().requires_grad_()
    vv, _, _ = chebyshev(rr, 8, transform=transform, backend="torch", order=0, **p)
    w = torch.randn_like(vv)
    (g,) = torch.autograd.grad((vv * w).sum(), rr, create_graph=True)
    assert_close(g, (d1 * w).sum(1), torch.float64, what="autograd d/dr")
    (h,) = torch.autograd.grad(g.sum(), rr)
    assert_close(h, (d2 * w).sum(1), torch.float64, what="autograd d2/dr2")
    # finite differences
    eps = 1e-6
    vp, dp, _ = chebyshev(r + eps, 8, transform=transform, backend="torch", **p)
    vm, dm, _ = chebyshev(r - eps, 8, transform=transform, backend="torch", **p)
    torch.testing.assert_close((vp - vm) / (2 * eps), d1, rtol=1e-6, atol=1e-6 * float(d1.abs().max()))
    torch.testing.assert_close((dp - dm) / (2 * eps), d2, rtol=1e-6, atol=1e-6 * float(d2.abs().max()))


@pytest.mark.parametrize("transform", sorted(PARAMS))
@pytest.mark.parametrize("kind", ["T", "U"])
@pytest.mark.parametrize("e,n_max", [(1, 0), (7, 1), (257, 12)])
def test_backends_agree_with_reference(backend, dtype, transform, kind, e, n_max):
    p = PARAMS[transform]
    hi = p.get("rcut", 1.0)
    r = torch.rand(e, dtype=torch.float64) * hi * 1.1  # includes r > rcut (pow is held constant there)
    if transform == "identity":
        r = r * 2 - 1
    ref = chebyshev(r.to(dtype).double(), n_max, kind=kind, transform=transform, backend="torch", **p)  # at the rounded inputs
    for order in (0, 1, 2):
        out = chebyshev(r.to(device_for(backend), dtype), n_max, kind=kind, transform=transform,
                        order=order, backend=backend, **p)
        for q in range(3):
            if q > order:
                assert out[q] is None
            else:
                assert out[q].dtype == dtype
                assert_close(out[q], ref[q], dtype, what=f"{backend} {transform} order {order} out {q}")


def test_empty_and_bad_arguments(backend):
    device = device_for(backend)
    out = chebyshev(torch.zeros(0, dtype=torch.float64, device=device), 5, transform="linear", rcut=5.0, backend=backend)
    assert all(o.shape == (0, 6) for o in out)
    r = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="transform"):
        chebyshev(r, 3, transform="nope")
    with pytest.raises(ValueError, match="lam"):
        chebyshev(r, 3, transform="pow", rcut=5.0)
    with pytest.raises(ValueError, match="kind"):
        chebyshev(r, 3, kind="V")
