"""The ASE calculator's conventions (arguments, parameters, property caching, dtype at the boundary,
stress of clusters) and the model summaries (acepy.models.summary)."""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError

import acepy
from acepy.models.stack import Stack
from acepy.models.summary import stack_repr, stack_summary

from data_paths import ALNI_YACE as POT, TIAL_TABLE as TABLE, TIAL_YACE as TIAL, needs, potential_path, require

# POT is python-ace's (ASL), INP FitSNAP's (GPL-2.0): not in tests/data, read from ../shared/reference or
# generated stand-ins (tests/generated_data.py); the TiAl files are in tests/data (MIT)
INP = potential_path("FitSNAP__examples__InP_PACE__ref19Sep2023__InP_pot.yace")
CU = "Cu-synthetic-pbe-core-rep"


@pytest.fixture(scope="module")
def model():
    return acepy.load(require(POT))


def alni(seed=0, repeat=(2, 1, 1)):
    rng = np.random.default_rng(seed)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)
    atoms.set_cell(atoms.cell[:] + rng.normal(scale=0.1, size=(3, 3)), scale_atoms=True)
    atoms.rattle(0.1, seed=seed)
    atoms.set_chemical_symbols(rng.choice(["Al", "Ni"], len(atoms)).tolist())
    return atoms


def tial(seed=0):
    atoms = bulk("Ti", "bcc", a=3.25).repeat(2)
    atoms.symbols[::2] = "Al"
    atoms.rattle(0.05, seed=seed)
    return atoms


def voigt(s):
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


class EvaluateSpy:
    """Records the keyword arguments of every ``model.evaluate`` call and forwards them."""

    def __init__(self, model):
        self.inner = model.evaluate
        self.calls = []

    def __call__(self, structures, **kwargs):
        self.calls.append(kwargs)
        return self.inner(structures, **kwargs)


# ---- 1. a built model refuses load options it would ignore -------------------------------------
def test_built_model_accepts_its_own_options(model):
    calc = acepy.ACECalculator(model, dtype="float64", device="cpu", backend=model.backend, skin=0.0)
    assert calc.model is model
    calc = acepy.ACECalculator(model, dtype=torch.float64)
    assert calc.parameters["dtype"] == "float64"


@pytest.mark.parametrize("option", [
    {"dtype": "float32"}, {"dtype": torch.float32}, {"backend": "torch"}, {"device": "cuda"},
    {"pair_table": str(TABLE)}, {"skin": 1.0}, {"table_n": 1000}, {"table_style": "spline"}, {"table_cutoff": 5.0},
])
def test_built_model_refuses_options_it_would_ignore(model, option):
    (key,) = option
    with pytest.raises(ValueError, match=rf"{key}=.*acepy\.load\(\.\.\.\) instead"):
        acepy.ACECalculator(model, **option)


# ---- 2. keywords: only those that reach somewhere ----------------------------------------------
@pytest.mark.parametrize("source", ["model", "path"])
def test_unknown_keyword_raises_naming_it_and_the_accepted_ones(model, source):
    target = model if source == "model" else str(POT)
    with pytest.raises(TypeError, match=r"'skn' \(did you mean 'skin'\?\); accepted: .*num_threads.*label"):
        acepy.ACECalculator(target, skn=1.0)
    with pytest.raises(TypeError, match=r"'restart'"):  # ASE's, but there are no files to restart from
        acepy.ACECalculator(target, restart="old")


def test_ase_keywords_reach_ase(model, tmp_path):
    atoms = alni()
    calc = acepy.ACECalculator(model, atoms=atoms, directory=str(tmp_path), label="run")
    assert atoms.calc is calc
    assert calc.label == f"{tmp_path}/run"
    assert atoms.get_potential_energy() == pytest.approx(float(model.evaluate(atoms)["energy"][0]), abs=1e-12)


@needs(POT)
def test_load_keywords_reach_the_loaded_model():
    calc = acepy.ACECalculator(str(POT), skin=0.4)
    assert calc.model.graph_cache.skin == 0.4
    calc = acepy.ACECalculator(TIAL, pair_table=TABLE, table_n=1000, table_cutoff={("Al", "Ti"): 6.0})
    pair = calc.model.components[-1]
    assert pair.tablength == 1000
    assert pair.pair_cutoff("Al", "Ti") == 6.0 and pair.pair_cutoff("Ti", "Ti") == 7.0  # 7.0: the file's last r


@needs(POT)
def test_num_threads_reaches_the_loaded_model():
    # needs acepy.load(..., num_threads=...) (the model's thread count)
    calc = acepy.ACECalculator(str(POT), num_threads=1)
    assert calc.model.num_threads == 1
    assert calc.parameters["num_threads"] == 1


# ---- 3. parameters / todict record the potential ----------------------------------------------
@needs(POT)
def test_parameters_of_a_path_calculator_rebuild_it(monkeypatch, tmp_path):
    monkeypatch.chdir(POT.parent)
    calc = acepy.ACECalculator(POT.name)  # relative: the record must still find it from elsewhere
    params = calc.todict()
    assert params == {"model": str(POT.resolve()), "pair_table": None, "dtype": "float64",
                      "backend": calc.model.backend, "device": "cpu", "skin": 0.0, "num_threads": None}
    assert dict(calc.parameters) == params
    monkeypatch.chdir(tmp_path)
    again = acepy.ACECalculator(**json.loads(json.dumps(params)))
    atoms = alni()
    assert again.get_potential_energy(atoms) == calc.get_potential_energy(atoms)
    assert again.todict() == params


def test_parameters_of_a_pair_stack_rebuild_it():
    calc = acepy.ACECalculator(str(TIAL), pair_table=str(TABLE), dtype="float32", table_n=2000,
                               table_cutoff={("Al", "Ti"): 6.0})
    params = calc.todict()
    assert params["model"] == str(TIAL.resolve()) and params["pair_table"] == str(TABLE.resolve())
    assert params["dtype"] == "float32" and params["table_n"] == 2000
    assert params["table_cutoff"] == {"Al-Ti": 6.0}
    again = acepy.ACECalculator(**json.loads(json.dumps(params)))
    assert again.todict() == params
    pair = again.model.components[-1]
    assert pair.tablength == 2000 and pair.pair_cutoff("Al", "Ti") == 6.0 and again.model.dtype == torch.float32
    atoms = tial()
    np.testing.assert_array_equal(again.get_forces(atoms), calc.get_forces(atoms))


@needs(POT)
def test_parameters_of_a_given_model_come_from_its_load_options():
    # what acepy.load records (monkeypatched here: this test does not depend on load setting it)
    loaded = acepy.load(POT)
    loaded.load_options = {"path": str(POT), "pair_table": None, "dtype": "float64", "backend": None,
                           "device": "cpu", "skin": 0.0, "table_n": None, "table_style": "spline",
                           "table_cutoff": None, "num_threads": None}
    params = acepy.ACECalculator(loaded).todict()
    assert params == {"model": str(POT.resolve()), "pair_table": None, "dtype": "float64",
                      "backend": loaded.backend, "device": "cpu", "skin": 0.0, "num_threads": None}
    atoms = alni()
    rebuilt = acepy.ACECalculator(**params)
    assert rebuilt.get_potential_energy(atoms) == acepy.ACECalculator(loaded).get_potential_energy(atoms)


def test_parameters_of_a_hand_built_model_say_what_it_is(model):
    stack = Stack(model.components, model.elements, dtype=model.dtype, device="cpu", backend=model.backend)
    params = acepy.ACECalculator(stack).todict()
    assert params == {"elements": ["Al", "Ni"], "dtype": "float64", "backend": model.backend, "device": "cpu",
                      "skin": 0.0, "num_threads": None}
    json.dumps(params)


def test_parameters_of_a_loaded_bundled_model_end_to_end():
    # needs acepy.load to set model.load_options and take num_threads
    loaded = acepy.load(CU, skin=0.3, num_threads=1)
    params = acepy.ACECalculator(loaded).todict()
    assert params == {"model": CU, "pair_table": None, "dtype": "float64", "backend": loaded.backend,
                      "device": "cpu", "skin": 0.3, "num_threads": 1}
    again = acepy.ACECalculator(**params)
    assert again.model.graph_cache.skin == 0.3 and again.model.num_threads == 1
    cu = bulk("Cu", "fcc", a=3.61).repeat(2)
    cu.rattle(0.05, seed=1)
    assert again.get_potential_energy(cu) == acepy.ACECalculator(loaded).get_potential_energy(cu)


def test_parameters_survive_ase_db_and_trajectory(tmp_path):
    import ase.db
    from ase.io import Trajectory

    calc = acepy.ACECalculator(str(TIAL), pair_table=str(TABLE), table_cutoff=6.5)
    atoms = tial()
    atoms.calc = calc
    atoms.get_forces()
    with ase.db.connect(tmp_path / "runs.db") as db:
        db.write(atoms)
    row = ase.db.connect(tmp_path / "runs.db").get(1)
    assert row.calculator == "acecalculator"
    assert row.calculator_parameters == calc.todict()
    with Trajectory(tmp_path / "md.traj", "w") as traj:
        traj.write(atoms)
    back = Trajectory(tmp_path / "md.traj")[0]
    assert back.calc.parameters == calc.todict()
    rebuilt = acepy.ACECalculator(**row.calculator_parameters)
    np.testing.assert_array_equal(rebuilt.get_forces(atoms.copy()), atoms.get_forces())


def test_parameters_cannot_be_changed_after_construction(model):
    calc = acepy.ACECalculator(model)
    assert calc.set(dtype="float64") == {}  # its own value: nothing changes
    with pytest.raises(ValueError, match="cannot set skin"):
        calc.set(skin=2.0)
    with pytest.raises(ValueError, match="cannot set cutoff"):
        calc.set(cutoff=2.0)


# ---- 4. stress of a structure without a cell volume -------------------------------------------
def test_stress_of_a_cluster_is_not_implemented(model):
    cluster = Atoms("AlNiAl", positions=[[0, 0, 0], [2.4, 0.1, 0], [1.1, 2.2, 0.3]])  # pbc False, zero cell
    cluster.calc = acepy.ACECalculator(model)
    ref = model.evaluate(cluster)
    assert cluster.get_potential_energy() == pytest.approx(float(ref["energy"][0]), abs=1e-12)
    np.testing.assert_allclose(cluster.get_forces(), ref["forces"].numpy(), rtol=0, atol=1e-12)
    why = r"non-zero volume.*\(Al2Ni, pbc=\[False, False, False\]\) has cell volume 0"
    with pytest.raises(PropertyNotImplementedError, match=why):
        cluster.get_stress()


# ---- 5. an energy-only call does not pay for forces -------------------------------------------
def test_energy_alone_skips_forces_and_later_requests_are_served(monkeypatch, model):
    spy = EvaluateSpy(model)
    monkeypatch.setattr(model, "evaluate", spy)
    atoms = alni(seed=3)
    ref = spy.inner(atoms)  # energy, energies, forces and stress of the full call
    atoms.calc = acepy.ACECalculator(model)

    assert atoms.get_potential_energy() == pytest.approx(float(ref["energy"][0]), rel=1e-14)
    assert spy.calls == [{"compute_forces": False, "compute_stress": False}]
    assert atoms.get_potential_energy(force_consistent=True) == atoms.get_potential_energy()
    np.testing.assert_allclose(atoms.get_potential_energies(), ref["energies"].numpy(), rtol=1e-14, atol=1e-14)
    assert len(spy.calls) == 1  # energies and free_energy came with the energy

    # forces on unchanged atoms: ASE asks again, and the gradient pass runs now (stress with it)
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"].numpy(), rtol=1e-12, atol=1e-12)
    assert spy.calls[1:] == [{"compute_forces": True, "compute_stress": True}]
    np.testing.assert_allclose(atoms.get_stress(), voigt(ref["stress"][0].numpy()), rtol=1e-12, atol=1e-14)
    atoms.get_potential_energies()
    assert len(spy.calls) == 2

    atoms.positions[0, 0] += 0.05  # a new geometry: everything is recomputed
    e_new = atoms.get_potential_energy()
    assert e_new == pytest.approx(float(spy.inner(atoms)["energy"][0]), rel=1e-14)
    assert spy.calls[2] == {"compute_forces": False, "compute_stress": False}


def test_stress_first_gives_forces_with_it(monkeypatch, model):
    spy = EvaluateSpy(model)
    monkeypatch.setattr(model, "evaluate", spy)
    atoms = alni(seed=4)
    atoms.calc = acepy.ACECalculator(model)
    atoms.get_stress()
    atoms.get_forces()
    atoms.get_potential_energy()
    assert spy.calls == [{"compute_forces": True, "compute_stress": True}]


def test_num_threads_reaches_each_call_of_a_given_model(monkeypatch, model):
    # needs Stack.evaluate(..., num_threads=...) (the spy forwards it)
    spy = EvaluateSpy(model)
    monkeypatch.setattr(model, "evaluate", spy)
    atoms = alni()
    acepy.ACECalculator(model).get_potential_energy(atoms)
    calc = acepy.ACECalculator(model, num_threads=1)
    calc.get_forces(atoms)
    assert spy.calls == [{"compute_forces": False, "compute_stress": False},
                         {"compute_forces": True, "compute_stress": True, "num_threads": 1}]
    assert calc.parameters["num_threads"] == 1


# ---- 6. a float32 model gives float64 arrays at the ASE boundary -------------------------------
def test_float32_model_returns_float64_close_to_float64_model(model):
    atoms = alni(seed=5, repeat=(2, 2, 1))
    m32 = acepy.load(POT, dtype="float32")
    got, want = {}, {}
    for out, m in ((got, m32), (want, model)):
        atoms.calc = acepy.ACECalculator(m)
        out["energy"] = atoms.get_potential_energy()
        out["energies"] = atoms.get_potential_energies()
        out["forces"] = atoms.get_forces()
        out["stress"] = atoms.get_stress()
    assert type(got["energy"]) is float
    raw = m32.evaluate(atoms)
    for key in ("energies", "forces", "stress"):
        assert isinstance(got[key], np.ndarray) and got[key].dtype == np.float64, key
        # relative to the largest value: the README states about 1e-5 over all potentials; this
        # file and structure give 2.4e-7 (energies), 1.5e-7 (forces), 4e-8 (stress)
        scale = np.abs(want[key]).max()
        assert np.abs(got[key] - want[key]).max() <= 2e-6 * scale, key
    # the values are the float32 model's, widened exactly (not recomputed in float64)
    np.testing.assert_array_equal(got["forces"], raw["forces"].double().numpy())
    assert np.abs(got["forces"] - want["forces"]).max() > 0
    assert got["energy"] == pytest.approx(want["energy"], rel=1e-6)


# ---- 7. summaries -----------------------------------------------------------------------------
def pyace_counts(path):
    """Functions per species and rank by python-ace's own reader (an independent count)."""
    basis = pytest.importorskip("pyace.basis").ACECTildeBasisSet(str(path))
    counts = []
    for mu in range(basis.nelements):
        c = Counter(int(f.rank) for f in basis.basis[mu])
        if len(basis.basis_rank1[mu]):
            c[1] = len(basis.basis_rank1[mu])
        counts.append(c)
    return basis, counts


def file_of(name):
    return Path(acepy.__file__).parent / "data" / f"{name}.yace" if name == CU else name


@pytest.mark.parametrize("path,radial", [pytest.param(POT, "pace", marks=needs(POT)),
                                         pytest.param(INP, "pace", marks=needs(INP)), (CU, "pace")])
def test_summary_of_a_potential_matches_pyace(path, radial):
    stack = acepy.load(path, skin=0.25)
    stack.num_threads = 2  # as acepy.load(..., num_threads=2) sets it
    basis, counts = pyace_counts(file_of(path))
    text = stack_summary(stack)
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == f"acepy Stack: {len(basis.elements_name)} element{'s' * (basis.nelements > 1)} " \
                       f"({', '.join(basis.elements_name)}), 2 components"
    assert f"radial basis: {radial}; lmax {basis.lmax}, nradmax {basis.nradmax}, nradbase {basis.nradbase}" in text
    assert f"C-tilde functions: {sum(sum(c.values()) for c in counts)}" in text
    for el, c in zip(basis.elements_name, counts):
        per_rank = ", ".join(f"rank {r}: {c[r]}" for r in sorted(c))
        assert f"{el}: {sum(c.values())} ({per_rank})" in lines
    embeddings = basis.map_embedding_specifications
    for mu, el in enumerate(basis.elements_name):
        emb = embeddings[mu]
        assert any(line.startswith(f"{el}: {emb.npoti}, {emb.ndensity} densit") for line in lines), el
    assert f"2. ACE: cutoff {basis.cutoffmax:g} A" in lines
    assert "1. OneBody: cutoff none (no neighbour graph)" in lines
    assert f"largest cutoff: {basis.cutoffmax:g} A" in lines
    assert f"backend: {stack.backend}, dtype: float64, device: cpu" in lines
    assert "skin: 0.25 A, num_threads: 2" in lines
    bundled = str(path) in acepy.bundled()
    assert ("SYNTHETIC" in text and "not physically fitted" in text) == bundled
    source = path if bundled else str(Path(path).resolve())
    assert f"potential file: {source}" in lines or f"potential file: {file_of(path)}" in lines
    total = sum(sum(c.values()) for c in counts)
    rankmax = max(r for c in counts for r in c)
    assert stack_repr(stack) == (f"Stack(elements={list(basis.elements_name)}, components=[OneBody, "
                                 f"ACE(rank<={rankmax}, {total} functions)], cutoff={float(basis.cutoffmax)!r}, "
                                 f"backend={stack.backend!r}, dtype=float64)")


def test_summary_of_ace_with_a_pair_table():
    stack = acepy.load(TIAL, pair_table=TABLE, dtype="float32")
    basis, counts = pyace_counts(TIAL)
    text = stack_summary(stack)
    lines = [line.strip() for line in text.splitlines()]
    # the table's length and cutoff from the file itself: "N <points>" lines, last r of the last row
    table_text = TABLE.read_text().splitlines()
    n_points = max(int(line.split()[1]) for line in table_text if re.match(r"N \d+", line))
    last_r = float([line for line in table_text if line.strip()][-1].split()[1])
    assert "3. Pair: cutoff 7 A" in lines and last_r == 7.0
    assert f"table file: {TABLE}" in lines
    assert f"table length N = {n_points} (style spline)" in lines
    assert "2. ACE: cutoff 5.5 A" in lines and basis.cutoffmax == 5.5
    assert "largest cutoff: 7 A" in lines
    assert "radial basis: ships; lmax 1, nradmax 6, nradbase 6" in text
    for el, c in zip(basis.elements_name, counts):
        per_rank = ", ".join(f"rank {r}: {c[r]}" for r in sorted(c))
        assert f"{el}: {sum(c.values())} ({per_rank})" in lines
    assert "Al: FinnisSinclairShiftedScaled, 1 density (m = 1): linear" in lines
    assert "E0: Al -105.5954, Ti -1586.0195 eV" in lines
    assert "dtype: float32" in text and "SYNTHETIC" not in text
    total = sum(sum(c.values()) for c in counts)
    assert stack_repr(stack) == (f"Stack(elements=['Al', 'Ti'], components=[OneBody, ACE(rank<=3, {total} functions), "
                                 f"Pair], cutoff=7.0, backend={stack.backend!r}, dtype=float32)")


def test_summary_of_a_hand_built_stack_without_a_file(model):
    # a stack of just the one-body term: no file, no ACE component; nothing must raise
    onebody = model.components[0]
    stack = Stack([onebody], model.elements)
    assert stack_repr(stack) == (f"Stack(elements=['Al', 'Ni'], components=[OneBody], cutoff=0.0, "
                                 f"backend={stack.backend!r}, dtype=float64)")
    text = stack_summary(stack)
    assert "1. OneBody: cutoff none" in text and "potential file" not in text and "SYNTHETIC" not in text


def test_check_state_equals_ases_compare_atoms(model):
    """The calculator's exact, faster state check names the same changes as ASE's
    ``compare_atoms`` for every property ASE checks, one change at a time and together."""
    from ase.calculators.calculator import compare_atoms

    rng = np.random.default_rng()
    calc = acepy.ACECalculator(model)
    base = alni(int(rng.integers(1000)))
    base.calc = calc
    base.get_forces()
    edits = {
        "positions": lambda a: a.positions.__setitem__((int(rng.integers(len(a))), 1), rng.normal()),
        "numbers": lambda a: a.numbers.__setitem__(0, 28 if a.numbers[0] == 13 else 13),
        "cell": lambda a: a.set_cell(a.cell[:] * 1.01),
        "pbc": lambda a: a.set_pbc([True, False, True]),
        "initial_charges": lambda a: a.set_initial_charges(rng.normal(size=len(a))),
        "initial_magmoms": lambda a: a.set_initial_magnetic_moments(rng.normal(size=len(a))),
    }
    assert calc.check_state(base.copy()) == [] == compare_atoms(calc.atoms, base.copy())
    for name, edit in edits.items():
        other = base.copy()
        edit(other)
        assert calc.check_state(other) == compare_atoms(calc.atoms, other) == [name]
    other = base.copy()
    for edit in edits.values():
        edit(other)
    assert sorted(calc.check_state(other)) == sorted(compare_atoms(calc.atoms, other)) == sorted(edits)
    calc.ignored_changes = {"initial_magmoms"}
    assert "initial_magmoms" not in calc.check_state(other)
    # a looser tolerance is ASE's own check
    moved = base.copy()
    moved.positions[0, 0] += 1e-9
    assert calc.check_state(moved) == ["positions"] and calc.check_state(moved, tol=1e-6) == []
