"""The bundled synthetic potentials: listed and loadable by name, of the advertised shapes, physically
sized on ordinary structures, the same in python-ace, and reproducible from their recipe."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

import acepy
from acepy.basis.bundled import RECIPES, build, data_folder
from acepy.io import read_yace

SYNTHETIC = ["AlCuNi-synthetic-r4", "AlTi-synthetic-linear", "Cu-synthetic-pbe-core-rep"]
FITTED = ["Cu-EMT-fit"]  # fitted to ASE's EMT by `python -m acepy.fit.cu_emt` (tests/test_fitted_cu.py)
NAMES = sorted(SYNTHETIC + FITTED)


def test_listed_and_loadable_by_name():
    assert acepy.bundled() == NAMES and sorted(RECIPES) == SYNTHETIC
    for name in NAMES:
        assert (data_folder() / f"{name}.yace").is_file()
    from ase import Atoms

    dimer = Atoms("AlTi", positions=[[0, 0, 0], [2.6, 0, 0]])
    by_name = acepy.load("AlTi-synthetic-linear").evaluate([dimer])["energy"]
    by_path = acepy.load(data_folder() / "AlTi-synthetic-linear.yace").evaluate([dimer])["energy"]
    assert float(by_name[0]) == float(by_path[0]) != 0.0
    with pytest.raises(FileNotFoundError):
        acepy.load("no-such-potential")


def test_shapes():
    cu = read_yace(data_folder() / "Cu-synthetic-pbe-core-rep.yace")
    bond = cu.bonds[(0, 0)]
    assert cu.elements == ["Cu"] and bond.radbasename == "ChebPow" and bond.rcut == 7.4
    assert cu.nradmax == 5 and cu.lmax == 6 and cu.rankmax == 6 and bond.prehc > 0
    assert cu.embeddings[0].ndensity == 2 and cu.embeddings[0].npoti == "FinnisSinclairShiftedScaled"
    assert 700 <= len(cu.functions[0]) <= 780
    tri = read_yace(data_folder() / "AlCuNi-synthetic-r4.yace")
    assert len(tri.elements) == 3 and tri.rankmax == 4
    lin = read_yace(data_folder() / "AlTi-synthetic-linear.yace")
    assert all(e.ndensity == 1 and list(e.fs_parameters) == [1.0, 1.0] for e in lin.embeddings)
    assert lin.rankmax == 3 and np.any(lin.E0 != 0)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_physically_sized_and_same_in_pyace(name):
    pyace = pytest.importorskip("pyace")
    path = data_folder() / f"{name}.yace"
    elements = read_yace(path).elements
    model = acepy.load(name)
    rng = np.random.default_rng()
    for lattice, a in (("fcc", 3.61), ("bcc", 2.87)):
        atoms = bulk("Cu", lattice, a=a, cubic=True).repeat((2, 2, 2))
        atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
        atoms.set_chemical_symbols(rng.choice(elements, len(atoms)).tolist())
        out = model.evaluate([atoms])
        e = float(out["energy"][0]) / len(atoms)
        f = out["forces"].numpy()
        assert 0.5 < -e < 8.0, f"{name} {lattice}: energy per atom {e}"
        assert 1e-3 < np.abs(f).max() < 5.0, f"{name} {lattice}: max |force| {np.abs(f).max()}"
        assert np.abs(out["stress"][0].numpy()).max() < 1.0  # eV/A^3 (160 GPa)
        ref = atoms.copy()
        ref.calc = pyace.PyACECalculator(str(path))
        assert abs(ref.get_potential_energy() / len(atoms) - e) <= 1e-8 + 1e-11 * abs(e)
        np.testing.assert_allclose(f, ref.get_forces(), rtol=1e-9, atol=1e-6)


def test_reproducible_from_recipe(tmp_path):
    """Rebuilding gives the shipped file: the same functions, and coefficients equal up to rounding
    (the per-rank scales come from model evaluations, whose last bits may change with the evaluator)."""
    from acepy.io import write_yace

    name = "AlTi-synthetic-linear"  # the cheapest of the three; the construction is the same code
    shipped = read_yace(data_folder() / f"{name}.yace")
    rebuilt = read_yace(write_yace(build(name), tmp_path / "rebuilt.yace"))
    assert np.array_equal(shipped.E0, rebuilt.E0)
    for k, bond in shipped.bonds.items():
        assert np.array_equal(bond.crad, rebuilt.bonds[k].crad)
    for fa, fb in zip(shipped.functions, rebuilt.functions, strict=True):
        assert len(fa) == len(fb) > 100
        for x, y in zip(fa, fb):
            assert np.array_equal(x.ns, y.ns) and np.array_equal(x.ls, y.ls) and np.array_equal(x.mus, y.mus)
            assert np.array_equal(x.ms_combs, y.ms_combs)
            np.testing.assert_allclose(x.ctildes, y.ctildes, rtol=1e-10, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_summary_says_what_each_bundled_potential_is(name):
    """The synthetic ones are flagged SYNTHETIC; the EMT fit is not (it was mislabelled once)."""
    text = acepy.load(name).summary()
    assert ("SYNTHETIC" in text) == (name in SYNTHETIC)
    assert ("fitted to ASE's EMT" in text) == (name in FITTED)
