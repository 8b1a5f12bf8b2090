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
