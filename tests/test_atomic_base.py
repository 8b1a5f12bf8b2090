"""The ACE atomic base and its adjoint: backends against the reference, autograd, finite differences."""


import numpy as np
import pytest
import torch

from acepy.kernels import atomic_base, atomic_base_edge_grads, n_lm, spherical_harmonics
from conftest import assert_close, compile_check_sm90, device_for


def random_graph(rng, n, mean_degree, nspecies):
    """CSR offsets with some atoms that have no edges, and random neighbour species."""
    counts = rng.poisson(mean_degree, n)
    counts[rng.random(n) < 0.25] = 0
    offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)]))
    species = torch.as_tensor(rng.integers(0, nspecies, int(offsets[-1])))
    return offsets, species


def random_edges(rng, e, nrad, lmax):
    """vectors, radial, dradial, y_re, y_im, dy_re, dy_im (float64)."""
    v = torch.as_tensor(rng.normal(size=(e, 3)) * rng.uniform(0.5, 3.0, (e, 1)))
    y_re, y_im, dy_re, dy_im = spherical_harmonics(v, lmax, gradients=True, backend="torch")
    radial = torch.as_tensor(rng.normal(size=(e, nrad, lmax + 1)))
    dradial = torch.as_tensor(rng.normal(size=(e, nrad, lmax + 1)))
    return v, radial, dradial, y_re, y_im, dy_re, dy_im


def numpy_atomic_base(radial, y_re, y_im, offsets, species, nspecies):
    """Plain loops over atoms, edges and (n, l, m): an oracle independent of the reference."""
    n = len(offsets) - 1
    nrad, l1 = radial.shape[1:]
    a = np.zeros((n, nspecies, nrad, y_re.shape[1]), dtype=complex)
    for i in range(n):
        for e in range(offsets[i], offsets[i + 1]):
            for l in range(l1):
                for m in range(l + 1):
                    k = l * (l + 1) // 2 + m
                    a[i, species[e], :, k] += radial[e, :, l] * (y_re[e, k] + 1j * y_im[e, k])
    return a


@pytest.mark.parametrize("n,nspecies,nrad,lmax,degree", [
    (1, 1, 1, 0, 3),
    (7, 3, 2, 3, 5),
    (5, 6, 3, 6, 4),  # more species than one tile of the Triton kernel
    (11, 2, 5, 1, 7),
])
def test_backends_agree_with_reference(backend, dtype, n, nspecies, nrad, lmax, degree):
    rng = np.random.default_rng()
    offsets, species = random_graph(rng, n, degree, nspecies)
    e = int(offsets[-1])
    # the reference sees the same rounded inputs as the backend
    inputs = [t.to(dtype).double() for t in random_edges(rng, e, nrad, lmax)]
    v, radial, dradial, y_re, y_im, dy_re, dy_im = inputs
    h = n_lm(lmax)
    ga_re, ga_im = (torch.as_tensor(rng.normal(size=(n, nspecies, nrad, h))).to(dtype).double() for _ in range(2))

    ref = atomic_base(radial, y_re, y_im, offsets, species, nspecies, backend="torch")
    if e <= 60:  # the reference against plain loops
        expected = numpy_atomic_base(radial.numpy(), y_re.numpy(), y_im.numpy(), offsets.numpy(), species.numpy(),
                                     nspecies)
        assert_close(ref[0], torch.as_tensor(expected.real), torch.float64, what="reference re vs loops")
        assert_close(ref[1], torch.as_tensor(expected.imag), torch.float64, what="reference im vs loops")
    ref_g = atomic_base_edge_grads(ga_re, ga_im, offsets, species, radial, dradial, y_re, y_im, dy_re, dy_im, v,
                                   backend="torch")

    d = device_for(backend)
    c = lambda t: t.to(d, dtype)  # noqa: E731
    out = atomic_base(c(radial), c(y_re), c(y_im), offsets.to(d), species.to(d), nspecies, backend=backend)
    for q, what in enumerate(("re", "im")):
        assert out[q].dtype == dtype and out[q].shape == (n, nspecies, nrad, h)
        assert_close(out[q], ref[q], dtype, what=f"{backend} A {what}")
    g = atomic_base_edge_grads(c(ga_re), c(ga_im), offsets.to(d), species.to(d), c(radial), c(dradial), c(y_re),
                               c(y_im), c(dy_re), c(dy_im), c(v), backend=backend)
    assert g.dtype == dtype and g.shape == (e, 3)
    # edge gradients scale as 1/|r| through grad Y: compare them per edge, in units of |r|
    r = v.norm(dim=1, keepdim=True)
    assert_close(g.cpu().double() * r, ref_g * r, dtype, what=f"{backend} edge grads")

    # harmonics from the vectors (fused into the Numba kernels, a harmonics pass elsewhere)
    out = atomic_base(c(radial), None, None, offsets.to(d), species.to(d), nspecies, backend=backend, vectors=c(v))
    for q, what in enumerate(("re", "im")):
        assert_close(out[q], ref[q], dtype, what=f"{backend} A {what} from vectors")
    g = atomic_base_edge_grads(c(ga_re), c(ga_im), offsets.to(d), species.to(d), c(radial), c(dradial), None, None,
                               None, None, c(v), backend=backend)
    assert_close(g.cpu().double() * r, ref_g * r, dtype, what=f"{backend} edge grads from vectors")


def polynomial_radial(r, coef):
    """R[e, n, l] = sum_k coef[n, l, k] r^k, differentiable in r, and its derivative."""
    k = torch.arange(coef.shape[2], dtype=r.dtype)
    powers = r[:, None] ** k  # (E, K)
    dpowers = torch.where(k > 0, k * r[:, None] ** (k - 1).clamp(min=0), torch.zeros_like(powers))
    return torch.einsum("ek,nlk->enl", powers, coef), torch.einsum("ek,nlk->enl", dpowers, coef)


def energy_and_inputs(v, coef, lmax, offsets, species, nspecies, ga_re, ga_im):
    r = torch.linalg.vector_norm(v, dim=1)
    radial, dradial = polynomial_radial(r, coef)
    y_re, y_im, dy_re, dy_im = spherical_harmonics(v, lmax, gradients=True, backend="torch")
    a_re, a_im = atomic_base(radial, y_re, y_im, offsets, species, nspecies, backend="torch")
    energy = (ga_re * a_re).sum() + (ga_im * a_im).sum()
    return energy, (radial, dradial, y_re, y_im, dy_re, dy_im)


def test_edge_grads_match_autograd_and_finite_differences():
    rng = np.random.default_rng()
    n, nspecies, nrad, lmax = 9, 3, 4, 6
    offsets, species = random_graph(rng, n, 6, nspecies)
    e = int(offsets[-1])
    v = torch.as_tensor(rng.normal(size=(e, 3)) * rng.uniform(0.7, 2.0, (e, 1)))
    coef = torch.as_tensor(rng.normal(size=(nrad, lmax + 1, 4)))
    h = n_lm(lmax)
    ga_re, ga_im = (torch.as_tensor(rng.normal(size=(n, nspecies, nrad, h))) for _ in range(2))

    vv = v.clone().requires_grad_()
    energy, inputs = energy_and_inputs(vv, coef, lmax, offsets, species, nspecies, ga_re, ga_im)
    (auto,) = torch.autograd.grad(energy, vv)
    radial, dradial, y_re, y_im, dy_re, dy_im = (t.detach() for t in inputs)
    g = atomic_base_edge_grads(ga_re, ga_im, offsets, species, radial, dradial, y_re, y_im, dy_re, dy_im, v,
                               backend="torch")
    assert_close(g, auto, torch.float64, what="reference adjoint vs autograd")
    g_numba = atomic_base_edge_grads(ga_re, ga_im, offsets, species, radial, dradial, y_re, y_im, dy_re, dy_im, v,
                                     backend="numba")
    assert_close(g_numba, auto, torch.float64, what="numba adjoint vs autograd")

    # directional finite differences: dE/dt E(v + t D) = sum_e g_e . D_e
    eps = 1e-6
    for _ in range(3):
        direction = torch.as_tensor(rng.normal(size=(e, 3)))
        ep = energy_and_inputs(v + eps * direction, coef, lmax, offsets, species, nspecies, ga_re, ga_im)[0]
        em = energy_and_inputs(v - eps * direction, coef, lmax, offsets, species, nspecies, ga_re, ga_im)[0]
        fd = float(ep - em) / (2 * eps)
        exact = float((g * direction).sum())
        assert abs(fd - exact) <= 1e-6 * max(1.0, float((g.abs() * direction.abs()).sum())), (fd, exact)


def test_empty_inputs(backend):
    d = device_for(backend)
    f64 = dict(dtype=torch.float64, device=d)
    rng = np.random.default_rng()
    # no atoms, no edges
    z = torch.zeros(1, dtype=torch.long, device=d)
    a_re, a_im = atomic_base(torch.zeros(0, 3, 3, **f64), torch.zeros(0, 6, **f64), torch.zeros(0, 6, **f64), z,
                             torch.zeros(0, dtype=torch.long, device=d), 2, backend=backend)
    assert a_re.shape == a_im.shape == (0, 2, 3, 6)
    # atoms without edges
    off = torch.zeros(5, dtype=torch.long, device=d)
    a_re, a_im = atomic_base(torch.zeros(0, 3, 3, **f64), torch.zeros(0, 6, **f64), torch.zeros(0, 6, **f64), off,
                             torch.zeros(0, dtype=torch.long, device=d), 2, backend=backend)
    assert a_re.shape == (4, 2, 3, 6) and not a_re.any() and not a_im.any()
    ga = torch.zeros(4, 2, 3, 6, **f64)
    g = atomic_base_edge_grads(ga, ga, off, torch.zeros(0, dtype=torch.long, device=d), torch.zeros(0, 3, 3, **f64),
                               torch.zeros(0, 3, 3, **f64), torch.zeros(0, 6, **f64), torch.zeros(0, 6, **f64),
                               torch.zeros(0, 6, 3, **f64), torch.zeros(0, 6, 3, **f64), torch.zeros(0, 3, **f64),
                               backend=backend)
    assert g.shape == (0, 3)
    # edges, but no radial functions (nrad = 0)
    off = torch.tensor([0, 2, 3], device=d)
    sp = torch.tensor([0, 1, 0], device=d)
    v, radial, dradial, y_re, y_im, dy_re, dy_im = (t.to(d) for t in random_edges(rng, 3, 0, 2))
    a_re, _ = atomic_base(radial, y_re, y_im, off, sp, 2, backend=backend)
    assert a_re.shape == (2, 2, 0, 6)
    ga = torch.zeros(2, 2, 0, 6, **f64)
    g = atomic_base_edge_grads(ga, ga, off, sp, radial, dradial, y_re, y_im, dy_re, dy_im, v, backend=backend)
    assert g.shape == (3, 3) and not g.any()


def _inputs(e=4, n=2, nspecies=2, nrad=3, lmax=2):
    rng = np.random.default_rng(0)
    v, radial, dradial, y_re, y_im, dy_re, dy_im = random_edges(rng, e, nrad, lmax)
    offsets = torch.tensor([0, 3, e])
    species = torch.tensor([0, 1, 1, 0])
    ga = torch.zeros(n, nspecies, nrad, n_lm(lmax), dtype=torch.float64)
    return dict(ga_re=ga, ga_im=ga.clone(), offsets=offsets, nbr_species=species, radial=radial, dradial=dradial,
                y_re=y_re, y_im=y_im, dy_re=dy_re, dy_im=dy_im, vectors=v)


def test_bad_inputs():
    def fwd(nspecies=2, **kw):
        args = {**_inputs(), **kw}
        return atomic_base(args["radial"], args["y_re"], args["y_im"], args["offsets"], args["nbr_species"], nspecies)

    def adj(**kw):
        return atomic_base_edge_grads(**{**_inputs(), **kw})

    base = _inputs()
    with pytest.raises(ValueError, match="both y_re and y_im"):
        fwd(y_im=None)
    with pytest.raises(ValueError, match="vectors"):
        fwd(y_re=None, y_im=None)  # no vectors to compute the harmonics from
    with pytest.raises(ValueError, match="vectors must be"):
        atomic_base(base["radial"], None, None, base["offsets"], base["nbr_species"], 2, vectors=base["vectors"][:3])
    with pytest.raises(ValueError, match="or none"):
        adj(dy_re=None)
    with pytest.raises(ValueError, match="radial"):
        fwd(radial=base["radial"][:, :, 0])
    with pytest.raises(ValueError, match="y_re"):
        fwd(y_re=base["y_re"][:, :3])
    with pytest.raises(ValueError, match="y_im"):
        fwd(y_im=base["y_im"][:3])
    with pytest.raises(ValueError, match="nbr_species"):
        fwd(nbr_species=base["nbr_species"][:3])
    with pytest.raises(ValueError, match="offsets"):
        fwd(offsets=torch.tensor([0, 3, 3]))
    with pytest.raises(ValueError, match="offsets"):
        fwd(offsets=torch.tensor([0, 3, 2, 4]))
    with pytest.raises(IndexError, match="nbr_species"):
        fwd(nbr_species=torch.tensor([0, 2, 1, 0]))
    with pytest.raises(IndexError, match="nbr_species"):
        fwd(nbr_species=torch.tensor([0, -1, 1, 0]))
    with pytest.raises(IndexError, match="nbr_species"):
        fwd(nspecies=1)
    with pytest.raises(ValueError, match="dradial"):
        adj(dradial=base["dradial"][:, :2])
    with pytest.raises(ValueError, match="dy_re"):
        adj(dy_re=base["dy_re"][..., :2])
    with pytest.raises(ValueError, match="dy_im"):
        adj(dy_im=base["dy_im"][:3])
    with pytest.raises(ValueError, match="vectors"):
        adj(vectors=base["vectors"][:, :2])
    with pytest.raises(ValueError, match="ga_re"):
        adj(ga_re=base["ga_re"][:1])
    with pytest.raises(ValueError, match="ga_re"):
        adj(ga_im=base["ga_im"][:, :, :2])
    with pytest.raises(IndexError, match="nbr_species"):
        adj(ga_re=base["ga_re"][:, :1], ga_im=base["ga_im"][:, :1])
    with pytest.raises(ValueError, match="devices"):
        fwd(offsets=base["offsets"].to("meta"))


COMPILE_BODY = """
    from acepy.kernels.triton_gpu import atomic_base as A

    for ft in ("*fp64", "*fp32"):
        i = "i32"
        compile_sm90(A._atomic_base_kernel,
                     dict(r_ptr=ft, yre_ptr=ft, yim_ptr=ft, off_ptr="*i64", sp_ptr="*i64", lof_ptr="*i32", are_ptr=ft,
                          aim_ptr=ft, NSPECIES=i, NRAD=i, H=i, L1=i),
                     dict(BLOCK_MU=4, BLOCK_E=4, BLOCK_C=128))
        compile_sm90(A._edge_grads_kernel,
                     dict(gre_ptr=ft, gim_ptr=ft, own_ptr="*i64", sp_ptr="*i64", r_ptr=ft, dr_ptr=ft, yre_ptr=ft,
                          yim_ptr=ft, dyre_ptr=ft, dyim_ptr=ft, v_ptr=ft, lof_ptr="*i32", out_ptr=ft, E=i,
                          NSPECIES=i, NRAD=i, H=i, L1=i),
                     dict(BLOCK_E=16, BLOCK_H=32))
"""


def test_triton_kernels_compile_for_sm90():
    """The interpreter runs numpy: compile the kernels for real (float32 and float64, sm_90)."""
    compile_check_sm90(COMPILE_BODY)
