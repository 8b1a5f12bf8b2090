"""The extrapolation grade (acepy/fit/extrapolation.py) against python-ace: B-basis projections in
python-ace's order on every pacemaker file, active sets written by one read by the other, and gamma
from the ASE calculator, the model and python-ace's calculator equal to 1e-10 (python-ace rounds the
projections it multiplies by an inverse with entries up to ~1e3: 1e-12 had no margin on every potential)."""

import numpy as np
import pytest

import acepy
from acepy.calculators import ACECalculator
from acepy.fit.active_set import ActiveSet
from acepy.fit.extrapolation import ExtrapolationGrade, attach, b_projections, select_active_set
from data_paths import PACEMAKER_YAML_FILES, pacemaker_yaml
from test_active_set import _alni_structures

ALNI = "python-ace__tests__Al-Ni_opt_all.yaml"


def _structures(elements, rng, count):
    from ase.build import bulk

    out = []
    for _ in range(count):
        a = bulk("Al", "fcc", a=4.05 * rng.uniform(0.96, 1.04), cubic=True).repeat((2, 2, 1))
        a.set_chemical_symbols(rng.choice(elements, len(a)).tolist())
        a.rattle(0.1, seed=int(rng.integers(1 << 30)))
        out.append(a)
    return out


@pytest.mark.parametrize("name", PACEMAKER_YAML_FILES)
def test_projections_in_python_aces_order(name):
    path = str(pacemaker_yaml(name))
    pytest.importorskip("pyace")
    from pyace.activelearning import compute_B_projections
    from pyace.basis import BBasisConfiguration

    bconf = BBasisConfiguration(path)
    rng = np.random.default_rng(len(name))
    basis_elements = acepy.load(path).elements
    structures = _structures(basis_elements, rng, 2)
    theirs = compute_B_projections(bconf, structures)  # {species index: (atoms of it, functions)}
    values, species, columns = b_projections(path, structures)
    for mu in range(len(basis_elements)):
        mine = values[species == mu][:, columns[mu]]
        assert mine.shape == theirs[mu].shape
        scale = max(1.0, float(np.abs(theirs[mu]).max()))
        assert np.abs(mine - theirs[mu]).max() <= 1e-12 * scale


def test_gamma_of_acepy_and_python_ace_agree_both_ways(tmp_path):
    path = str(pacemaker_yaml(ALNI))
    pytest.importorskip("pyace")
    from pyace import PyACECalculator
    from pyace.activelearning import compute_active_set, compute_B_projections, save_active_inverse_set
    from pyace.basis import BBasisConfiguration

    rng = np.random.default_rng(20261202)
    train = _alni_structures(rng, 12)
    mine = select_active_set(path, train)
    assert mine.write(tmp_path / "acepy.asi").exists()
    # python-ace's active set of the same data (MaxVol may stop at another local optimum: both bound
    # the training data's grade by tol, checked below)
    proj = compute_B_projections(BBasisConfiguration(path), train)
    theirs = compute_active_set({k: v.copy() for k, v in proj.items()})
    save_active_inverse_set(str(tmp_path / "pyace.asi"), {k: np.linalg.inv(v) for k, v in theirs.items()},
                            elements_name=["Al", "Ni"])
    for k, el in enumerate(["Al", "Ni"]):
        assert mine.matrices[el].shape == theirs[k].shape
    tests = _alni_structures(rng, 2) + [_compressed(train[0])]
    for asi in ("acepy.asi", "pyace.asi"):
        ref_calc = PyACECalculator(path)
        ref_calc.set_active_set(str(tmp_path / asi))
        calc = ACECalculator(path, active_set=tmp_path / asi)
        model = acepy.load(path)
        attach(model, ExtrapolationGrade(path, tmp_path / asi))
        for atoms in tests:
            a, b = atoms.copy(), atoms.copy()
            a.calc, b.calc = ref_calc, calc
            a.get_potential_energy()
            b.get_potential_energy()
            want = np.asarray(ref_calc.results["gamma"])
            np.testing.assert_allclose(calc.results["gamma"], want, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(model.extrapolation_grade(atoms).numpy(), want, rtol=1e-10, atol=1e-12)
    assert calc.results["gamma"].max() > 1.05  # the compressed cell is outside the training data
    for asi in (mine, tmp_path / "pyace.asi"):  # the training data itself: at most MaxVol's tol (1.001, 1.001)
        assert ExtrapolationGrade(path, asi)(train).max() <= 1.001 + 1e-9


def _compressed(atoms):
    a = atoms.copy()
    a.set_cell(a.cell * 0.85, scale_atoms=True)
    return a


def test_extrapolation_errors_name_the_problem(tmp_path):
    path = str(pacemaker_yaml(ALNI))
    with pytest.raises(ValueError, match="has no active set"):
        acepy.load(path).extrapolation_grade(_alni_structures(np.random.default_rng(0), 1))
    ActiveSet(inverses={"Al": np.eye(3), "Ni": np.eye(8)}).write(tmp_path / "wrong.asi")
    with pytest.raises(ValueError, match=r"entry 'Al' is 3 x 3, the potential has \d+ projections"):
        ExtrapolationGrade(path, tmp_path / "wrong.asi")
    with pytest.raises(ValueError, match="needs the pacemaker B-basis .yaml"):
        ExtrapolationGrade("tests/data/potentials/ACEpotentials.jl__gh-pages__0.2.3__literate_tutorials__"
                           "TiAl_tutorial_pot.yace", tmp_path / "wrong.asi")
    with pytest.raises(ValueError, match="needs the model loaded from its pacemaker .yaml"):
        ACECalculator("AlTi-synthetic-linear", active_set=tmp_path / "wrong.asi")
