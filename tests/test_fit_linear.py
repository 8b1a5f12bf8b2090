"""``linear_fit``: recovery of a known linear potential, the weighted matrix against scikit-learn,
weights, the written .yace against python-ace, and clear errors on bad data.

The known potential: a small generated Cu basis (two elements would double the cost, not the
logic) with random coefficients that decay with degree; labels are the model's own values
(``Stack.evaluate`` and ``Stack.hessian``: not the rows), so a fit that recovers the coefficients
checks rows, weighting and solver together.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from acepy.basis import BondSpec, generate_basis
from acepy.basis.generator import default_embedding
from acepy.errors import StructureError
from acepy.fit import LinearBasis, linear_fit
from acepy.io import make_frame


@pytest.fixture(scope="module")
def known():
    gb = generate_basis(["Cu", "Ni"], [3, 2, 1], [0, 2, 1], bonds=BondSpec("ChebExpCos", [4.0], rcut=4.6, prehc=10.0,
                                                                          lambdahc=4.0),
                        embeddings=default_embedding(1))
    lb = LinearBasis.from_generated(gb, E0=[-0.25, -0.6])
    # with the same radial basis for Cu-Ni and Ni-Cu, the pair (rank-1) functions Cu<-Ni and Ni<-Cu
    # sum to the same total energy: their difference is not identifiable from any label
    # (nradmax_by_orders[0] = 3 such directions); compare coefficients modulo that null space
    pairs = [(i, j) for i, a in enumerate(lb.columns) for j, b in enumerate(lb.columns)
             if a["rank"] == b["rank"] == 1 and a["species"] == "Cu" and a["mus"] == ["Ni"]
             and b["species"] == "Ni" and b["mus"] == ["Cu"] and a["ns"] == b["ns"]]
    assert len(pairs) == 3
    rng = np.random.default_rng(11)
    c = rng.standard_normal(lb.ncoefficients) * np.exp(-0.4 * (lb.degrees + lb.l_sums))
    return lb, c, lb.model(c), pairs


def _identifiable(c, pairs):
    """Coefficients with each symmetric Cu<-Ni / Ni<-Cu pair replaced by its sum."""
    c = np.array(c, dtype=np.float64)
    for i, j in pairs:
        c[i], c[j] = c[i] + c[j], 0.0
    return c


def _structures(n, seed, rep=(1, 1, 2)):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=rng.uniform(3.45, 3.7), cubic=True).repeat(rep)
        a.set_cell(a.cell[:] @ (np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))), scale_atoms=True)
        a.rattle(0.12, seed=int(rng.integers(1 << 30)))
        a.symbols[rng.random(len(a)) < 0.4] = "Ni"
        out.append(a)
    return out


def _label(model, structures, hessian=False, config_types=None):
    out = model.evaluate(structures)
    frames = []
    offsets = np.cumsum([0] + [len(a) for a in structures])
    hs = model.hessian(structures) if hessian else [None] * len(structures)
    for k, a in enumerate(structures):
        h = None if hs[k] is None else hs[k].numpy().reshape(3 * len(a), 3 * len(a))
        frames.append(make_frame(a.get_chemical_symbols(), a.positions, a.cell[:], True,
                                 energy=float(out["energy"][k]),
                                 forces=out["forces"][offsets[k]:offsets[k + 1]].numpy(),
                                 virial=out["virials"][k].numpy(), hessian=h,
                                 config_type=None if config_types is None else config_types[k % len(config_types)]))
    return frames


def _rel_error(model, ref, structures):
    a, b = model.evaluate(structures), ref.evaluate(structures)
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max()) for k in ("energy", "forces", "virials"))


def test_recovers_a_known_potential_from_efv(known):
    lb, c, model, pairs = known
    frames = _label(model, _structures(10, 1), config_types=["bulk", "strained"])
    fit = linear_fit(lb, frames, weights={"energy": 10.0, "forces": 1.0, "virial": 1.0})
    assert fit.solver.info["rank"] == lb.ncoefficients - len(pairs)
    np.testing.assert_allclose(_identifiable(fit.coefficients, pairs), _identifiable(c, pairs),
                               atol=1e-8 * np.abs(c).max())
    held_out = _structures(3, 99, rep=(2, 1, 2))
    assert _rel_error(fit.model(), model, held_out) < 1e-8
    for name in ("all", "bulk", "strained"):
        for obs in ("energy", "forces", "virial"):
            assert fit.errors["train"][name][obs]["rmse"] < 1e-9


def test_recovers_a_known_potential_from_hessians_alone(known):
    lb, c, model, pairs = known
    frames = _label(model, _structures(4, 2), hessian=True)
    fit = linear_fit(lb, frames, weights={"energy": 0.0, "forces": 0.0, "virial": 0.0, "hessian": 1.0})
    assert fit.solver.info["rank"] == lb.ncoefficients - len(pairs)
    np.testing.assert_allclose(_identifiable(fit.coefficients, pairs), _identifiable(c, pairs),
                               atol=1e-8 * np.abs(c).max())
    held_out = _structures(3, 98, rep=(2, 1, 2))
    assert _rel_error(fit.model(), model, held_out) < 1e-8
    # E, F and V were left out of the fit (zero weight) and are still reported
    assert set(fit.errors["train"]["all"]) == {"energy", "forces", "virial", "hessian"}


def _manual_design(lb, frames, w, config_weights, norm):
    """The weighted matrix built here from the rows and the definitions of acepy.fit.weights."""
    rows = lb.rows(frames, energy=True, forces=True, virial=True)
    A, y = [], []
    off = 0
    for b, a in enumerate(frames):
        n = len(a)
        s = config_weights.get(a.info.get("config_type"), 1.0)
        f = {"per_atom": n, "sqrt": np.sqrt(n), "none": 1.0}[norm]
        A.append(w["energy"] * s * rows.energy[b][None] / f)
        y.append(w["energy"] * s * np.array([a.get_potential_energy() - rows.reference["energy"][b]]) / f)
        A.append(w["forces"] * s * rows.forces[off:off + n].reshape(3 * n, -1))
        y.append(w["forces"] * s * (a.get_forces() - rows.reference["forces"][off:off + n]).reshape(-1))
        vir = -a.get_stress(voigt=False) * a.get_volume()
        A.append(w["virial"] * s * rows.virial[b].reshape(9, -1) / f)
        y.append(w["virial"] * s * (vir - rows.reference["virial"][b]).reshape(-1) / f)
        off += n
    return np.vstack(A), np.concatenate(y)


# converged to the end: the iterations stop on a change of the coefficients below tol (1e-3 by
# default), which leaves the result sensitive to rounding in the matrix
OPTIONS = {"bayesian_ridge": {"tol": 1e-14, "max_iter": 2000}, "ard": {"tol": 1e-12, "max_iter": 300}}


@pytest.mark.parametrize("solver", ["lstsq", "ridge", "bayesian_ridge", "ard"])
def test_matches_scikit_learn_on_the_weighted_matrix(known, solver):
    from sklearn import linear_model

    lb, c, model, pairs = known
    rng = np.random.default_rng(5)
    frames = _label(model, _structures(6, 3), config_types=["a", "b"])
    for f in frames:  # noisy labels: the solvers must differ from plain interpolation
        f.calc.results["energy"] += 0.01 * rng.standard_normal()
        f.calc.results["forces"] += 0.01 * rng.standard_normal(f.calc.results["forces"].shape)
    w = {"energy": 7.0, "forces": 1.3, "virial": 0.4}
    cw = {"b": 2.5}
    A, y = _manual_design(lb, frames, w, cw, "sqrt")
    fit = linear_fit(lb, frames, weights=w, config_weights=cw, energy_normalization="sqrt", solver=solver,
                     alpha=0.1, solver_options=OPTIONS.get(solver))
    if solver == "lstsq":
        ref = np.linalg.pinv(A, rcond=1e-10) @ y  # the minimum-norm solution, by numpy's SVD
    elif solver == "ridge":
        ref = np.linalg.solve(A.T @ A + 0.1 * np.eye(A.shape[1]), A.T @ y)
    elif solver == "bayesian_ridge":
        ref = linear_model.BayesianRidge(fit_intercept=False, **OPTIONS[solver]).fit(A, y).coef_
    else:
        ref = linear_model.ARDRegression(fit_intercept=False, **OPTIONS[solver]).fit(A, y).coef_
    # fitted values to rounding; coefficients to what the conditioning of A allows (the Bayesian
    # solvers leave the three non-identifiable directions to a weak prior)
    np.testing.assert_allclose(A @ fit.coefficients, A @ ref, atol=1e-9 * np.abs(A @ ref).max())
    tol = 1e-8 if solver in ("lstsq", "ridge") else 1e-5
    np.testing.assert_allclose(_identifiable(fit.coefficients, pairs), _identifiable(ref, pairs),
                               atol=tol * np.abs(ref).max())


def test_smoothness_prior_is_a_tikhonov_penalty(known):
    lb, c, model, pairs = known
    frames = _label(model, _structures(3, 4))
    w = {"energy": 1.0, "forces": 1.0, "virial": 1.0}
    A, y = _manual_design(lb, frames, w, {}, "per_atom")
    prior = {"kind": "algebraic", "p": 2, "wL": 1.5}
    fit = linear_fit(lb, frames, weights=w, solver="ridge", alpha=0.1, prior=prior)
    gamma = 1.0 + (lb.degrees + 1.5 * lb.l_sums) ** 2.0
    ref = np.linalg.solve(A.T @ A + 0.1 * np.diag(gamma**2), A.T @ y)
    np.testing.assert_allclose(fit.coefficients, ref, atol=1e-8 * np.abs(ref).max())


def test_yace_equal_in_acepy_and_python_ace(known, tmp_path):
    pyace = pytest.importorskip("pyace")
    import acepy

    lb, c, model, pairs = known
    fit = linear_fit(lb, _label(model, _structures(8, 6)))
    path = fit.write_yace(tmp_path / "fit.yace")
    structures = _structures(3, 77, rep=(2, 2, 1))
    ours = acepy.load(path).evaluate(structures)
    direct = fit.model().evaluate(structures)
    for k, a in enumerate(structures):
        a.calc = pyace.PyACECalculator(str(path))
        n = len(a)
        e_ref = a.get_potential_energy()
        assert abs(float(ours["energy"][k]) - e_ref) / n < 1e-10
        assert abs(float(direct["energy"][k]) - e_ref) / n < 1e-10
        sl = slice(sum(len(s) for s in structures[:k]), sum(len(s) for s in structures[:k + 1]))
        np.testing.assert_allclose(ours["forces"][sl].numpy(), a.get_forces(), atol=1e-9)


def test_weights_and_bad_data_give_clear_errors(known):
    lb, c, model, pairs = known
    frames = _label(model, _structures(3, 7), config_types=["bulk"])
    with pytest.raises(ValueError, match=r"unknown observable\(s\) \['force'\]"):
        linear_fit(lb, frames, weights={"force": 1.0})
    with pytest.raises(ValueError, match=r"weights\['energy'\]: a weight must be finite and >= 0"):
        linear_fit(lb, frames, weights={"energy": -1.0})
    with pytest.raises(ValueError, match=r"config type\(s\) \['surface'\] that no frame has"):
        linear_fit(lb, frames, config_weights={"surface": 2.0})
    with pytest.raises(ValueError, match="every row has weight zero"):
        linear_fit(lb, frames, weights={"energy": 0, "forces": 0, "virial": 0, "hessian": 0})
    with pytest.raises(ValueError, match="solver must be one of"):
        linear_fit(lb, frames, solver="magic")
    frames[1].calc.results["energy"] = float("nan")
    with pytest.raises(StructureError, match=r"frame 1 \(config_type 'bulk'\): the energy label is not finite"):
        linear_fit(lb, frames)
    frames[1].calc.results["energy"] = 0.0
    frames[2].info["hessian"] = np.zeros((5, 5))
    with pytest.raises(StructureError, match=r"frame 2 .*the Hessian of 8 atoms must be \(24, 24\)"):
        linear_fit(lb, frames)
    del frames[2].info["hessian"]
    frames[2].symbols[0] = "Al"  # an element the basis lacks: the rows name the frame
    with pytest.raises(StructureError, match=r"frame 2 \(config_type 'bulk'\): .*Al, which the potential does not"):
        linear_fit(lb, frames)
    frames[2].symbols[0] = "Cu"
    frames[0].calc = None
    with pytest.raises(StructureError, match=r"frame 0 .*no label"):
        linear_fit(lb, frames)


def test_validation_split_and_parity_plot(known, tmp_path):
    lb, c, model, pairs = known
    frames = _label(model, _structures(10, 8), config_types=["x", "y"])
    fit = linear_fit(lb, frames, validation_fraction=0.3, seed=1)
    n_val = fit.errors["validation"]["all"]["energy"]["n"]
    assert n_val == 3 and fit.errors["train"]["all"]["energy"]["n"] == 7
    assert fit.errors["validation"]["all"]["forces"]["rmse"] < 1e-6
    png = fit.parity_plot(tmp_path / "parity.png")
    assert (tmp_path / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.endswith("parity.png")
    assert "validation: RMSE (MAE)" in fit.error_table()
