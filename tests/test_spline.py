"""Spline tables: PACE's grid and Hermite rule, exactness on cubics, range errors, backend agreement."""

import numpy as np
import pytest
import torch

from acepy.kernels import (
    SplineGrid,
    SplineRangeError,
    build_spline_table,
    hermite_segments,
    spline_eval,
)
from conftest import assert_close, device_for


def test_grid_truncates_like_pace():
    # ACE_SPEC.md 2.6: nlut = (int)(rcut/deltaSplineBins), a truncation of the double quotient:
    # 8.7/0.01 = 869.9999999999999 -> 869 and 3.3/0.001 = 3299.9999999999995 -> 3299, while
    # 8.7/0.001 is exactly 8700.0 in IEEE double (python-ace agrees: see the test below).
    assert SplineGrid.from_spacing(8.7, 0.01).nlut == 869
    assert SplineGrid.from_spacing(3.3, 0.001).nlut == 3299
    grid = SplineGrid.from_spacing(8.7, 0.001)
    assert grid.nlut == 8700
    assert grid.rscale == 8700 / 8.7
    nodes = grid.nodes()
    assert nodes.shape == (8700,)
    assert nodes[0] == 1.0 / grid.rscale and nodes[-1] == pytest.approx(8.7, abs=1e-12)
    with pytest.raises(ValueError):
        SplineGrid.from_spacing(-1.0, 0.01)


def test_first_node_matches_python_ace():
    """python-ace (the C++ evaluator) throws exactly below our first node, for every pair of a real file."""
    pyace = pytest.importorskip("pyace")
    from data_paths import ALNI_YACE, require

    path = require(ALNI_YACE)  # python-ace's (ASL): from ../shared/reference, else its generated stand-in

    radial = pyace.ACECTildeBasisSet(str(path)).radial_functions
    for mu_i in range(radial.nelements):
        for mu_j in range(radial.nelements):
            first = 1.0 / SplineGrid.from_spacing(radial.cut[mu_i][mu_j], radial.deltaSplineBins).rscale
            radial.evaluate(first * (1 + 1e-9), radial.nradbase, radial.nradial, mu_i, mu_j, False)
            with pytest.raises(Exception, match="small distance"):
                radial.evaluate(first * (1 - 1e-9), radial.nradbase, radial.nradial, mu_i, mu_j, False)


def test_hermite_segments_match_pace_walk():
    """The coefficients equal a literal transcription of PACE's downward walk (ACE_SPEC.md 2.6)."""
    rng = np.random.default_rng()
    nlut, k, rscale = 37, 3, 4.25
    f = rng.normal(size=(nlut, k))
    fp = rng.normal(size=(nlut, k))
    ours = hermite_segments(f, fp / rscale)
    F = np.zeros((nlut + 2, k))
    D = np.zeros((nlut + 2, k))
    expected = np.zeros((nlut + 1, 4, k))
    for n in range(nlut, 0, -1):
        F[n] = f[n - 1]
        D[n] = fp[n - 1] / rscale
        expected[n] = [F[n], D[n], 3 * (F[n + 1] - F[n]) - D[n + 1] - 2 * D[n], -2 * (F[n + 1] - F[n]) + D[n + 1] + D[n]]
    np.testing.assert_array_equal(ours, expected)


def _cubic_table(rng, grids, k, dtype=torch.float64, device="cpu"):
    """Tables of random cubics: Hermite interpolation reproduces them exactly between nodes."""
    coef = [rng.normal(size=(4, k)) for _ in grids]
    vals, ders = [], []
    for grid, c in zip(grids, coef):
        r = grid.nodes()[:, None]
        vals.append(c[0] + r * (c[1] + r * (c[2] + r * c[3])))
        ders.append(c[1] + r * (2 * c[2] + 3 * r * c[3]))
    return build_spline_table(grids, vals, ders, dtype=dtype, device=device), coef


def test_exact_on_cubics_with_derivatives():
    rng = np.random.default_rng()
    grids = [SplineGrid.from_spacing(5.0, 0.01), SplineGrid.from_spacing(6.3, 0.0137)]
    table, coef = _cubic_table(rng, grids, k=4)
    e = 2001
    tab = torch.as_tensor(rng.integers(0, 2, e))
    lo = np.array([1.0 / g.rscale for g in grids])[tab.numpy()]
    hi = np.array([g.rcut for g in grids])[tab.numpy()]
    r = torch.as_tensor(lo + (hi - lo) * rng.random(e) * 0.999)
    f, df, d2f = spline_eval(table, r, tab, order=2, backend="torch")
    c = torch.as_tensor(np.stack(coef))[tab]  # (E, 4, K)
    rr = r[:, None]
    expect = c[:, 0] + rr * (c[:, 1] + rr * (c[:, 2] + rr * c[:, 3]))
    dexpect = c[:, 1] + rr * (2 * c[:, 2] + 3 * rr * c[:, 3])
    d2expect = 2 * c[:, 2] + 6 * rr * c[:, 3]
    assert_close(f, expect, torch.float64, what="value")
    assert_close(df, dexpect, torch.float64, what="first derivative")
    # the second derivative divides node slopes by rscale and multiplies by rscale^2 again
    torch.testing.assert_close(d2f, d2expect, rtol=0, atol=1e-8 * float(d2expect.abs().max()))


def test_smooth_function_converges_fourth_order():
    errs = []
    for delta in (0.02, 0.01):
        grid = SplineGrid.from_spacing(6.0, delta)
        r = grid.nodes()
        table = build_spline_table([grid], [np.sin(r) * np.exp(-r)], [np.exp(-r) * (np.cos(r) - np.sin(r))])
        x = torch.linspace(0.5, 5.9, 3001, dtype=torch.float64)
        f, _, _ = spline_eval(table, x, torch.zeros(3001, dtype=torch.long), order=0, backend="torch")
        errs.append(float((f[:, 0] - torch.sin(x) * torch.exp(-x)).abs().max()))
    assert errs[0] < 1e-8
    assert 12 < errs[0] / errs[1] < 20  # h^4


def test_zero_at_and_beyond_last_node_and_errors_below_first():
    grid = SplineGrid.from_spacing(4.0, 0.1)  # nlut 40, nodes 0.1..4.0
    v = np.ones((grid.nlut, 2))
    table = build_spline_table([grid], [v], [np.zeros_like(v)])
    r = torch.tensor([0.1, 3.99, 4.0, 4.5, 100.0], dtype=torch.float64)
    f, df, d2f = spline_eval(table, r, torch.zeros(5, dtype=torch.long), order=2, backend="torch")
    assert torch.all(f[:2] == 1.0)
    assert torch.all(f[2:] == 0) and torch.all(df[2:] == 0) and torch.all(d2f[2:] == 0)
    with pytest.raises(SplineRangeError, match="edge 1"):
        spline_eval(table, torch.tensor([1.0, 0.0999, 0.05], dtype=torch.float64), torch.zeros(3, dtype=torch.long))
    with pytest.raises(SplineRangeError, match="edge 0"):
        spline_eval(table, torch.tensor([float("nan")], dtype=torch.float64), torch.zeros(1, dtype=torch.long))
    with pytest.raises(SplineRangeError, match="edge 1"):
        spline_eval(table, torch.tensor([1.0, float("inf")], dtype=torch.float64), torch.zeros(2, dtype=torch.long))
    with pytest.raises(IndexError, match="table index 3"):
        spline_eval(table, torch.tensor([1.0], dtype=torch.float64), torch.tensor([3]))


def _random_case(rng, e, k, dtype, device):
    grids = [SplineGrid.from_spacing(rc, d) for rc, d in ((5.0, 0.013), (7.4, 0.001), (3.1, 0.05))]
    vals = [rng.normal(size=(g.nlut, k)) for g in grids]
    ders = [rng.normal(size=(g.nlut, k)) * 3 for g in grids]
    table = build_spline_table(grids, vals, ders, dtype=dtype, device=device)
    tab = torch.as_tensor(rng.integers(0, 3, e), device=device)
    lo = 1.0 / table.rscale[tab]
    r = (lo + torch.as_tensor(rng.random(e), device=device) * 8.0).to(dtype)
    return table, r, tab


@pytest.mark.parametrize("e,k", [(1, 1), (7, 3), (300, 17)])
def test_backends_agree_with_reference(backend, dtype, e, k):
    rng = np.random.default_rng()
    device = device_for(backend)
    table, r, tab = _random_case(rng, e, k, dtype, device)
    ref = spline_eval(table.to("cpu", torch.float64), r.cpu().double(), tab.cpu(), order=2, backend="torch")  # r is already rounded
    for order in (0, 1, 2):
        out = spline_eval(table, r, tab, order=order, backend=backend)
        for q in range(3):
            if q > order:
                assert out[q] is None
            else:
                assert out[q].dtype == dtype and out[q].device.type == device.type
                assert_close(out[q], ref[q], dtype, what=f"{backend} order {order} output {q}")


def test_empty_input(backend):
    rng = np.random.default_rng()
    device = device_for(backend)
    table, _, _ = _random_case(rng, 1, 5, torch.float64, device)
    f, df, d2f = spline_eval(table, torch.zeros(0, dtype=torch.float64, device=device),
                             torch.zeros(0, dtype=torch.long, device=device), order=2, backend=backend)
    assert f.shape == df.shape == d2f.shape == (0, 5)


def test_derivatives_against_autograd_and_finite_differences():
    rng = np.random.default_rng()
    table, r, tab = _random_case(rng, 200, 3, torch.float64, "cpu")
    inside = r < 3.0  # every table is live here (shortest rcut 3.1)
    r, tab = r[inside], tab[inside]
    x = r.clone().requires_grad_()
    f, df, d2f = spline_eval(table, x, tab, order=2, backend="torch")
    w = torch.randn_like(f)
    (g,) = torch.autograd.grad((f * w).sum(), x, create_graph=True)
    assert_close(g, (df * w).sum(1), torch.float64, what="autograd first")
    (h,) = torch.autograd.grad(g.sum(), x)
    assert_close(h, (d2f * w).sum(1), torch.float64, what="autograd second")
    # finite differences, on a smooth table: random node values make third derivatives of order
    # rscale^3, which no central difference resolves
    grid = SplineGrid.from_spacing(6.0, 0.01)
    nodes = grid.nodes()
    smooth = build_spline_table([grid], [np.sin(nodes) * np.exp(-nodes)], [np.exp(-nodes) * (np.cos(nodes) - np.sin(nodes))])
    r = torch.as_tensor(np.random.default_rng().uniform(0.5, 5.9, 300))
    tab = torch.zeros(300, dtype=torch.long)
    _, df, _ = spline_eval(smooth, r, tab, order=1, backend="torch")
    eps = 1e-7
    fp, _, _ = spline_eval(smooth, r + eps, tab, order=0, backend="torch")
    fm, _, _ = spline_eval(smooth, r - eps, tab, order=0, backend="torch")
    same_seg = torch.floor((r + eps) * smooth.rscale[0]) == torch.floor((r - eps) * smooth.rscale[0])
    fd = (fp - fm) / (2 * eps)
    torch.testing.assert_close(fd[same_seg], df[same_seg], rtol=1e-6, atol=1e-6)
