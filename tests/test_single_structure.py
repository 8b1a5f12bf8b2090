"""The lean pass of one ase.Atoms on the CPU (acepy/models/single_structure.py): bit for bit the
general path of Stack.evaluate (``timings={}`` always takes it), the same graph-cache rules, the
same named errors, and python-ace's values."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

import acepy
from acepy.errors import StructureError, TooCloseError
from acepy.models.single_structure import SingleStructurePass
from data_paths import ALNI_YACE, TIAL_TABLE, TIAL_YACE, needs, require

BUNDLED = ["AlTi-synthetic-linear", "Cu-synthetic-pbe-core-rep", "AlCuNi-synthetic-r4", "Cu-EMT-fit"]


def _structures(elements, rng):
    """Random structures of the kinds an ASE user sends: rattled fcc cells (8 and 32 atoms), a
    skewed triclinic cell (reduced before the search), a cell smaller than the cutoff, a slab, a
    cluster without a cell."""
    el = list(elements)
    a0 = {"Al": 4.05, "Cu": 3.61, "Ni": 3.52, "Ti": 4.1}.get(el[0], 4.0)
    out = []
    for reps in ((2, 1, 1), (2, 2, 2)):
        s = bulk(el[0], "fcc", a=a0, cubic=True).repeat(reps)
        out.append(s)
    skew = bulk(el[0], "fcc", a=a0)  # primitive: 1 atom, far smaller than the cutoff
    skew = skew.repeat((2, 2, 2))
    skew.set_cell(skew.cell.array @ np.array([[1, 0, 0], [2, 1, 0], [0, -1, 1]]).T, scale_atoms=False)
    out.append(skew)
    out.append(bulk(el[0], "fcc", a=a0))
    slab = bulk(el[0], "fcc", a=a0, cubic=True).repeat((2, 2, 1))
    slab.pbc = (True, True, False)
    out.append(slab)
    cluster = bulk(el[0], "fcc", a=a0, cubic=True)
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    out.append(cluster)
    for s in out:
        s.set_chemical_symbols([el[int(k)] for k in rng.integers(len(el), size=len(s))])
        s.positions += rng.normal(0.0, 0.08, s.positions.shape)
    return out


def _assert_identical(a: dict, b: dict, what: str):
    assert sorted(a) == sorted(b), what
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, (what, key)
        assert torch.equal(a[key], b[key]), (what, key, float((a[key] - b[key]).abs().max()))


@pytest.mark.parametrize("name", BUNDLED + [pytest.param("alni", marks=needs(ALNI_YACE))])
def test_equals_the_general_path_bit_for_bit(name):
    path = ALNI_YACE if name == "alni" else name
    model = acepy.load(path)
    assert model._single_pass() is not None
    rng = np.random.default_rng()
    for atoms in _structures(model.elements, rng):
        taken = []
        original = SingleStructurePass.evaluate

        def spy(self, *args):
            out = original(self, *args)
            taken.append(out is not None)
            return out

        SingleStructurePass.evaluate = spy
        try:
            lean = model.evaluate(atoms)
        finally:
            SingleStructurePass.evaluate = original
        assert taken == [True], atoms  # the lean pass ran and gave the result
        general = model.evaluate(atoms, timings={})  # a timed call takes the general path
        _assert_identical(lean, general, f"{name} {atoms.get_chemical_formula()} pbc={atoms.pbc}")
        # forces only / stress only as asked
        _assert_identical(model.evaluate(atoms, compute_stress=False),
                          model.evaluate(atoms, compute_stress=False, timings={}), "no stress")


def test_against_python_ace_through_ase():
    pyace = pytest.importorskip("pyace")
    path = str(require(ALNI_YACE))
    rng = np.random.default_rng()
    calc = acepy.calculators.ACECalculator(path)
    ref = pyace.PyACECalculator(path)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    atoms.set_chemical_symbols(["Ni" if rng.random() < 0.3 else "Al" for _ in atoms])
    for _ in range(3):
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        ours, theirs = atoms.copy(), atoms.copy()
        ours.calc, theirs.calc = calc, ref
        np.testing.assert_allclose(ours.get_potential_energy(), theirs.get_potential_energy(), rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(ours.get_forces(), theirs.get_forces(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours.get_stress(), theirs.get_stress(), rtol=0, atol=1e-11)


def test_models_it_does_not_apply_to_keep_the_general_path():
    assert acepy.load("Cu-EMT-fit", dtype="float32")._single_pass() is None
    assert acepy.load("Cu-EMT-fit", backend="torch")._single_pass() is None
    assert acepy.load(TIAL_YACE)._single_pass() is None  # ACEpotentials' SHIPs radials: the staged kernels
    with_table = acepy.load(TIAL_YACE, pair_table=TIAL_TABLE)
    assert with_table._single_pass() is None
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    out = with_table.evaluate(atoms)
    assert torch.isfinite(out["forces"]).all() and "stress" in out


def test_bad_input_raises_the_general_paths_named_errors():
    model = acepy.load("Cu-EMT-fit")
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    bad = atoms.copy()
    bad.positions[2, 1] = np.nan
    with pytest.raises(StructureError, match="structure 0, atom 2: position is not finite"):
        model.evaluate(bad)
    alien = atoms.copy()
    alien.symbols[1] = "Au"
    with pytest.raises(StructureError, match="Au, which the potential does not have"):
        model.evaluate(alien)
    close = atoms.copy()
    close.positions[1] = close.positions[0] + [1e-4, 0.0, 0.0]  # below the radial table's first node
    with pytest.raises(TooCloseError, match="structure 0: atoms 0 and 1 are 0.0001 A apart"):
        model.evaluate(close)
    flat = atoms.copy()
    flat.cell[2] = flat.cell[0] * 2.0  # periodic and linearly dependent
    with pytest.raises(StructureError, match="singular"):
        model.evaluate(flat)
    cluster = atoms.copy()
    cluster.pbc, cluster.cell = False, np.zeros((3, 3))
    with pytest.raises(ValueError, match="stress needs a cell of non-zero volume"):
        model.evaluate(cluster, compute_stress=True)
    # energies alone: the general path's forward pass, no forces key
    out = model.evaluate(atoms, compute_forces=False)
    assert "forces" not in out and "stress" not in out


@pytest.mark.parametrize("skin", [0.0, 0.6])
def test_graph_cache_rules_and_counters(skin):
    model = acepy.load("Cu-EMT-fit", skin=skin)
    cache = model.graph_cache
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    atoms.rattle(0.05, seed=3)
    cache.reset_counters()
    first = model.evaluate(atoms)
    assert cache.n_searches == 1
    _assert_identical(model.evaluate(atoms), first, "same positions")
    assert cache.n_searches == 1  # reused
    moved = atoms.copy()
    moved.positions += 0.1 * max(skin, 0.1) / np.sqrt(3.0) * np.sign(np.random.default_rng().normal(size=(len(atoms), 3)))
    out = model.evaluate(moved)
    assert cache.n_searches == (1 if skin else 2)  # within skin/2: the search is reused
    _assert_identical(out, model.evaluate(moved, timings={}), "moved within the skin")
    far = atoms.copy()
    far.positions[0] += [0.0, 0.0, 0.6 * skin + 0.05]  # beyond skin / 2: a new search
    searches = cache.n_searches
    _assert_identical(model.evaluate(far), model.evaluate(far, timings={}), "moved beyond the skin")
    assert cache.n_searches == searches + 1  # the general path took the lean call's search (adopted)
    cache.invalidate()
    model.evaluate(far)
    assert cache.n_searches == searches + 2
    strained = far.copy()
    strained.set_cell(far.cell.array * 1.001, scale_atoms=True)  # a changed cell is a new search
    model.evaluate(strained)
    assert cache.n_searches == searches + 3


def test_each_thread_keeps_its_own_search():
    """Two threads on two structures of one cell and numbers (the race fixed in acepy/graph.py):
    each gets its own structure's results."""
    model = acepy.load("Cu-EMT-fit", num_threads=1)
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 1, 1))
    structures = []
    for seed in (1, 2):
        s = base.copy()
        s.rattle(0.1, seed=seed)
        structures.append(s)
    expected = [model.evaluate(s, timings={})["forces"] for s in structures]
    errors = []

    def work(k):
        for _ in range(150):
            f = model.evaluate(structures[k])["forces"]
            if not torch.equal(f, expected[k]):
                errors.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_a_cell_without_volume_gives_forces_and_no_stress():
    model = acepy.load("Cu-EMT-fit")
    cluster = Atoms("Cu4", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.5]])
    out = model.evaluate(cluster)
    assert "stress" not in out and out["forces"].shape == (4, 3)
    _assert_identical(out, model.evaluate(cluster, timings={}), "cluster")
