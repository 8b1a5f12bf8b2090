"""GPU-scale checks of the compiled Triton kernels against the float64 torch reference (skip without CUDA)."""

import numpy as np
import pytest
import torch

import acepy.kernels as K
from conftest import assert_close

pytestmark = pytest.mark.gpu

E = 1_000_003  # odd, and large enough to span many programs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_large_kernels_on_cuda(dtype):
    rng = np.random.default_rng()
    dev = torch.device("cuda")
    grids = [K.SplineGrid.from_spacing(7.4, 0.001), K.SplineGrid.from_spacing(5.0, 0.001)]
    vals = [rng.normal(size=(g.nlut, 35)) for g in grids]
    table = K.build_spline_table(grids, vals, vals, dtype=dtype, device=dev)
    tab = torch.as_tensor(rng.integers(0, 2, E), device=dev)
    r = torch.as_tensor(rng.uniform(0.5, 7.5, E), dtype=dtype, device=dev)
    ref = K.spline_eval(table.to("cpu", torch.float64), r.cpu().double(), tab.cpu(), order=2, backend="torch")
    out = K.spline_eval(table, r, tab, order=2, backend="triton")
    for q in range(3):
        assert_close(out[q], ref[q], dtype, what=f"spline {q}")
    vec = torch.as_tensor(rng.normal(size=(E, 3)), dtype=dtype, device=dev)
    ref = K.spherical_harmonics(vec.cpu().double(), 8, backend="torch")
    out = K.spherical_harmonics(vec, 8, backend="triton")
    for q in range(2):
        assert_close(out[q], ref[q], dtype, what=f"sph_harm {q}")
    ref = K.chebyshev(r.cpu().double(), 15, transform="exp_cos", lam=5.25, rcut=7.4, backend="torch")
    out = K.chebyshev(r, 15, transform="exp_cos", lam=5.25, rcut=7.4, backend="triton")
    for q in range(3):
        assert_close(out[q], ref[q], dtype, what=f"chebyshev {q}")
    n_atoms = E // 100
    offsets = torch.as_tensor(np.sort(np.concatenate([[0, E], rng.integers(0, E, n_atoms - 1)])), device=dev)
    values = torch.as_tensor(rng.normal(size=(E, 35)), dtype=dtype, device=dev)
    assert_close(K.segment_sum(values, offsets, backend="triton"),
                 K.segment_sum(values.cpu().double(), offsets.cpu(), backend="torch"), dtype, scale_floor=50.0, what="segment")
    centers = torch.repeat_interleave(torch.arange(n_atoms, device=dev), offsets[1:] - offsets[:-1])
    neighbors = torch.as_tensor(rng.integers(0, n_atoms, E), device=dev)
    system = torch.div(centers, 1000, rounding_mode="floor")
    nsys = int(system.max()) + 1
    f, v = K.scatter_forces_virials(vec, vec, centers, neighbors, system, n_atoms, nsys, backend="triton")
    rf, rv = K.scatter_forces_virials(vec.cpu().double(), vec.cpu().double(), centers.cpu(), neighbors.cpu(),
                                      system.cpu(), n_atoms, nsys, backend="torch")
    assert_close(f, rf, dtype, scale_floor=100.0, what="forces")
    assert_close(v, rv, dtype, scale_floor=1e4, what="virials")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_atomic_base_large_on_cuda(dtype):
    from test_atomic_base import random_edges, random_graph

    rng = np.random.default_rng()
    dev = torch.device("cuda")
    n, nspecies, nrad, lmax = 5003, 3, 8, 6
    offsets, species = random_graph(rng, n, 40, nspecies)
    e = int(offsets[-1])
    v, radial, dradial, y_re, y_im, dy_re, dy_im = (t.to(dtype).double() for t in random_edges(rng, e, nrad, lmax))
    h = K.n_lm(lmax)
    ga_re, ga_im = (torch.as_tensor(rng.normal(size=(n, nspecies, nrad, h))).to(dtype).double() for _ in range(2))
    ref = K.atomic_base(radial, y_re, y_im, offsets, species, nspecies, backend="torch")
    c = lambda t: t.to(dev, dtype)  # noqa: E731
    out = K.atomic_base(c(radial), c(y_re), c(y_im), offsets.to(dev), species.to(dev), nspecies, backend="triton")
    assert_close(out[0], ref[0], dtype, what="atomic base re")
    assert_close(out[1], ref[1], dtype, what="atomic base im")
    ref_g = K.atomic_base_edge_grads(ga_re, ga_im, offsets, species, radial, dradial, y_re, y_im, dy_re, dy_im, v,
                                     backend="torch")
    g = K.atomic_base_edge_grads(c(ga_re), c(ga_im), offsets.to(dev), species.to(dev), c(radial), c(dradial),
                                 c(y_re), c(y_im), c(dy_re), c(dy_im), c(v), backend="triton")
    r = v.norm(dim=1, keepdim=True)
    assert_close(g.cpu().double() * r, ref_g * r, dtype, what="atomic base edge grads")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("n,h,sizes,rmax,p", [
    (2003, 672, [5000, 3000, 0], 6, 2),  # many atoms: one program per atom
    (5, 200, [100_000], 4, 1),  # few atoms, many terms: several programs per atom, atomics
    (301, 50, [2000, 700], 8, 100),  # many output columns
])
def test_product_basis_large_on_cuda(dtype, n, h, sizes, rmax, p):
    from test_product_basis import random_problem

    rng = np.random.default_rng()
    dev = torch.device("cuda")
    a_re, a_im, group, goff, codes, coeff, w_rho = (
        t.to(dtype).double() if t.is_floating_point() else t for t in random_problem(rng, n, h, sizes, rmax, p))
    # the summed magnitudes of the terms set the scale of rounding errors (sums of both signs)
    plain = torch.where(codes < 0, codes, codes & ~3)
    modulus = torch.sqrt(a_re ** 2 + a_im ** 2)
    abs_plan = K.ProductBasisPlan(plain, coeff.abs(), goff)
    rho_abs = K.product_basis(modulus, torch.zeros_like(a_im), group, abs_plan, backend="torch")
    g_abs = K.product_basis_adjoint(modulus, torch.zeros_like(a_im), group, abs_plan, w_rho.abs(),
                                    backend="torch")[0]
    plan = K.ProductBasisPlan(codes, coeff, goff)
    rho_ref = K.product_basis(a_re, a_im, group, plan, backend="torch")
    g_ref = K.product_basis_adjoint(a_re, a_im, group, plan, w_rho, backend="torch")
    c = lambda t: t.to(dev, dtype) if t.is_floating_point() else t.to(dev)  # noqa: E731
    args = [c(a_re), c(a_im), c(group), plan.to(dev, dtype)]
    rho = K.product_basis(*args, backend="triton")
    assert_close(rho, rho_ref, dtype, scale_floor=float(rho_abs.max()), what="rho")
    g = K.product_basis_adjoint(*args, c(w_rho), backend="triton")
    assert_close(g[0], g_ref[0], dtype, scale_floor=float(g_abs.max()), what="adjoint re")
    assert_close(g[1], g_ref[1], dtype, scale_floor=float(g_abs.max()), what="adjoint im")
