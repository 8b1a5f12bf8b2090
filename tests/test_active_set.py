"""Active sets and the extrapolation grade (acepy.fit.active_set): MaxVol's defining property on
random matrices, its local optimality checked by brute force, the .asi layout against python-ace's
own reader and calculator (gamma to 1e-12), and every malformed file refused by name."""

import itertools

import numpy as np
import pytest

from acepy.fit.active_set import ActiveSet, maxvol, read_asi, write_asi

ALNI_YAML = "python-ace__tests__Al-Ni_opt_all.yaml"


@pytest.mark.parametrize("n,k,seed", [(40, 6, 0), (200, 25, 1), (9, 9, 2), (1000, 3, 3)])
def test_maxvol_coefficients_are_bounded_by_tol(n, k, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, k)) * rng.uniform(0.1, 10, size=k)  # badly scaled columns
    rows, b = maxvol(a, tol=1.01)
    assert len(set(rows.tolist())) == k
    np.testing.assert_allclose(b, a @ np.linalg.inv(a[rows]), rtol=0, atol=1e-9)
    assert np.abs(b).max() <= 1.01 + 1e-12
    np.testing.assert_allclose(b[rows], np.eye(k), atol=1e-10)  # the active rows write themselves


def test_maxvol_is_a_local_maximum_of_the_volume():
    # no single swap of an active row for another row increases |det| by more than tol
    rng = np.random.default_rng(7)
    a = rng.normal(size=(12, 4))
    rows, _ = maxvol(a, tol=1.0)
    best = abs(np.linalg.det(a[rows]))
    for j, i in itertools.product(range(4), range(12)):
        trial = rows.copy()
        trial[j] = i
        assert abs(np.linalg.det(a[trial])) <= best * (1 + 1e-10)
    # and on a tiny case it is within tol of the global maximum over all C(8, 3) subsets
    a = rng.normal(size=(8, 3))
    rows, _ = maxvol(a, tol=1.0)
    top = max(abs(np.linalg.det(a[list(s)])) for s in itertools.combinations(range(8), 3))
    assert abs(np.linalg.det(a[rows])) >= top / 2.0  # a local maximum; here it is close to the top
    assert abs(np.linalg.det(a[rows])) <= top * (1 + 1e-12)


def test_maxvol_refuses_what_has_no_active_set():
    with pytest.raises(ValueError, match="3 rows cannot give a 4 x 4"):
        maxvol(np.ones((3, 4)))
    with pytest.raises(ValueError, match="rank below 3"):
        maxvol(np.outer(np.arange(1.0, 11.0), [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="non-finite"):
        maxvol(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_active_set_gamma_is_at_most_one_on_its_data_and_one_on_its_rows():
    rng = np.random.default_rng(11)
    data = {"Cu": rng.normal(size=(300, 12)), "O": rng.normal(size=(50, 5))}
    aset = ActiveSet.select(data, tol=1.001)
    g = aset.gamma(data)
    for el in data:
        assert g[el].max() <= 1.001 + 1e-12
        np.testing.assert_allclose(g[el][aset.rows[el]], 1.0, rtol=1e-12)
        far = aset.matrices[el][0] * 3.0  # three times an active row: gamma 3
        assert aset.gamma({el: far[None]})[el][0] == pytest.approx(3.0, rel=1e-12)
    with pytest.raises(ValueError, match="50 atomic environments for 60 functions"):
        ActiveSet.select({"Cu": rng.normal(size=(50, 60))})


def test_constant_columns_get_pythons_epsilon_and_the_input_is_not_changed():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(30, 4))
    a[:, 2] = 0.0  # a function that is zero on every environment
    before = a.copy()
    aset = ActiveSet.select({"Al": a})
    np.testing.assert_array_equal(a, before)
    assert np.isfinite(aset.inverses["Al"]).all()


def test_asi_round_trip_and_python_ace_reads_it(tmp_path):
    rng = np.random.default_rng(3)
    inv = {"Ni": rng.normal(size=(8, 8)), "Al": rng.normal(size=(9, 9))}
    path = write_asi(tmp_path / "pot.asi", inv)
    assert path.name == "pot.asi"  # no .npz suffix added
    back = read_asi(path, sizes={"Al": 9, "Ni": 8})
    assert list(back) == ["Al", "Ni"]
    for el in inv:
        np.testing.assert_array_equal(back[el], inv[el])
    pyace_al = pytest.importorskip("pyace.activelearning")
    theirs = pyace_al.load_active_inverse_set(str(path))  # species index = sorted element names
    np.testing.assert_array_equal(theirs[0], inv["Al"])
    np.testing.assert_array_equal(theirs[1], inv["Ni"])


def test_malformed_asi_files_are_refused_by_name(tmp_path):
    np.save(tmp_path / "one.npy", np.eye(3))
    with pytest.raises(ValueError, match="one.npy.*one array"):
        read_asi(tmp_path / "one.npy")
    (tmp_path / "text.asi").write_text("not an archive")
    with pytest.raises(ValueError, match="text.asi: not an active-set"):
        read_asi(tmp_path / "text.asi")
    cases = {"square": {"Al": np.ones((3, 4))}, "element": {"Xx": np.eye(3)}, "finite": {"Al": np.full((2, 2), np.nan)},
             "floating": {"Al": np.eye(3, dtype=np.int64)}}
    for what, entries in cases.items():
        with open(tmp_path / f"{what}.asi", "wb") as fh:
            np.savez(fh, **entries)
        with pytest.raises(ValueError, match=f"{what}.asi: entry"):
            read_asi(tmp_path / f"{what}.asi")
    write_asi(tmp_path / "ok.asi", {"Al": np.eye(3)})
    with pytest.raises(ValueError, match="entry 'Al' is 3 x 3, the potential has 9"):
        read_asi(tmp_path / "ok.asi", sizes={"Al": 9})
    with pytest.raises(ValueError, match="no entry for Ni"):
        read_asi(tmp_path / "ok.asi", sizes={"Al": 3, "Ni": 2})
    with pytest.raises(ValueError, match="not a chemical element"):
        write_asi(tmp_path / "bad.asi", {"Q": np.eye(2)})
    assert not (tmp_path / "bad.asi").exists()


def _alni_structures(rng, count):
    from ase.build import bulk

    out = []
    for k in range(count):
        a = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
        a.numbers[rng.random(len(a)) < 0.5] = 28
        a.rattle(0.1, seed=int(rng.integers(1 << 30)))
        a.set_cell(a.cell * (0.95 + 0.1 * rng.random()), scale_atoms=True)
        out.append(a)
    return out


def test_gamma_of_an_acepy_active_set_equals_python_aces_calculator(tmp_path):
    pytest.importorskip("pyace")
    from pyace import PyACECalculator
    from pyace.activelearning import compute_B_projections
    from pyace.basis import BBasisConfiguration

    from data_paths import pacemaker_yaml

    yaml = str(pacemaker_yaml(ALNI_YAML))
    bconf = BBasisConfiguration(yaml)
    rng = np.random.default_rng(2026)
    proj = compute_B_projections(bconf, _alni_structures(rng, 12))  # {species index: (atoms, functions)}
    aset = ActiveSet.select({"Al": proj[0], "Ni": proj[1]})
    path = aset.write(tmp_path / "alni.asi")
    calc = PyACECalculator(yaml)
    calc.set_active_set(str(path))
    for test in _alni_structures(rng, 3):
        test.rattle(0.15, seed=int(rng.integers(1 << 30)))
        test.calc = calc
        test.get_potential_energy()
        theirs = np.asarray(calc.results["gamma"])
        p = compute_B_projections(bconf, [test])
        mine = np.zeros(len(test))
        g = aset.gamma({"Al": p[0], "Ni": p[1]})
        mine[test.numbers == 13], mine[test.numbers == 28] = g["Al"], g["Ni"]
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)
        assert theirs.max() > 0.1  # not a trivially zero grade
