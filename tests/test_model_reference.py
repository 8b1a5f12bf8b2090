"""The stacked model against upstream numbers and python-ace's C++ evaluator, on the exact path
(torch) and the fast path (Numba; Triton through the interpreter on the small cases)."""

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

import acepy

import data_paths as D
from data_paths import EXPECTED


def _cases():
    data = json.loads((EXPECTED / "python-ace_reference_values.json").read_text())
    return data["cases"]


def _decimals_tol(value, floor):
    """The upstream numbers are printed with limited digits: half a unit in the last place."""
    text = repr(float(value))
    if "e" in text or "." not in text:
        return floor
    return max(floor, 0.5 * 10.0 ** -len(text.split(".")[1]))


MODEL_BACKENDS = ["torch", "numba", "triton"]
# The Triton interpreter is slow: run it on structures up to this size only.
TRITON_MAX_ATOMS = 8


def _skip_slow_triton(backend, n_atoms):
    if backend == "triton" and n_atoms > TRITON_MAX_ATOMS and not torch.cuda.is_available():
        pytest.skip(f"Triton interpreter: {n_atoms} atoms > {TRITON_MAX_ATOMS} (run on a GPU)")


def _pyace_reference(path, atoms, cutoff):
    """Energy, forces and (periodic) stress from python-ace's C++ evaluator: the reference values for a
    stand-in file (tests/generated_data.py), whose upstream numbers do not apply."""
    pyace = pytest.importorskip("pyace")
    ref_atoms = atoms.copy()
    if not atoms.pbc.any():  # PyACE wants a cell: a box wider than twice the cutoff, periodic
        ref_atoms.cell = np.eye(3) * (40 + 2 * cutoff)
        ref_atoms.center()
        ref_atoms.pbc = True
    ref_atoms.calc = pyace.PyACECalculator(str(path))
    ref = {"energy": ref_atoms.get_potential_energy(), "forces": ref_atoms.get_forces().tolist()}
    if atoms.pbc.all():
        ref["stress_ase_voigt"] = ref_atoms.get_stress().tolist()
    return ref


@pytest.mark.parametrize("backend", MODEL_BACKENDS)
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_upstream_reference_values(case, backend):
    """The structures of python-ace's own tests: with upstream's files, the numbers its tests assert;
    with the stand-ins (a clone without ../shared), python-ace's numbers on the same structures."""
    atoms = Atoms(case["symbols"], positions=case["positions"], cell=case["cell"], pbc=case["pbc"])
    _skip_slow_triton(backend, len(atoms))
    path = D.potential(case["potential"])
    model = acepy.load(path, backend=backend)
    out = model.evaluate(atoms)
    ref = case["reference"]
    numpy_ref = case.get("refimpl_numpy_result", {})
    if not D.upstream(path):
        ref, numpy_ref = _pyace_reference(path, atoms, model.cutoff), {}
    energy = float(out["energy"][0])
    if "energy" in ref:
        assert energy == pytest.approx(ref["energy"], abs=_decimals_tol(ref["energy"], 1e-8) + 1e-11 * abs(ref["energy"]))
    if "energy" in numpy_ref:
        assert energy == pytest.approx(numpy_ref["energy"], abs=1e-8)
    if "energies" in ref:
        for e, r in zip(out["energies"].tolist(), ref["energies"]):
            assert e == pytest.approx(r, abs=_decimals_tol(r, 1e-8))
    forces = out["forces"].numpy()
    if isinstance(ref.get("forces"), list):
        np.testing.assert_allclose(forces, np.array(ref["forces"]), rtol=0, atol=1e-7)
    elif ref.get("forces") == "all zero":
        assert np.abs(forces).max() < 1e-10
    for key in ("F[0][0]", "F[1][1]", "F[7][2]"):
        if key in ref:
            i, a = int(key[2]), int(key[5])
            assert forces[i, a] == pytest.approx(ref[key], abs=_decimals_tol(ref[key], 1e-7))
    if isinstance(numpy_ref.get("forces"), list):
        np.testing.assert_allclose(forces, np.array(numpy_ref["forces"]), rtol=0, atol=1e-7)
    stress = None
    if "stress" in out:
        s = out["stress"][0].numpy()
        stress = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    if "stress_ase_voigt" in ref:
        for v, r in zip(stress, ref["stress_ase_voigt"]):
            assert v == pytest.approx(r, abs=_decimals_tol(r, 1e-8))
    if "stress_xx" in ref:
        assert stress[0] == pytest.approx(ref["stress_xx"], abs=_decimals_tol(ref["stress_xx"], 1e-8))


def _pyace_files():
    # the full list, never a glob: the python-ace and FitSNAP files (not redistributable under MIT) come from
    # ../shared/reference, else generated stand-ins
    return list(D.YACE_FILES + D.ACE_FILES + D.DERIVED_FILES)


def _random_structure(elements, rng, kind):
    if kind == "fcc":
        atoms = bulk("Cu", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    elif kind == "triclinic":
        atoms = bulk("Cu", "fcc", a=4.1).repeat((3, 3, 3))
    elif kind == "small":
        atoms = bulk("Cu", "fcc", a=4.05)  # one atom, cell far shorter than the cutoff
    else:  # cluster
        atoms = bulk("Cu", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
        atoms.pbc = False
        atoms.cell = [0, 0, 0]
    atoms.rattle(0.15, seed=int(rng.integers(1 << 30)))
    atoms.set_chemical_symbols(rng.choice(elements, len(atoms)).tolist())
    return atoms


# every backend on every kind, but the Triton interpreter only on the one-atom cell
_KIND_BACKEND = [(k, b) for k in ("fcc", "triclinic", "small", "cluster") for b in MODEL_BACKENDS
                 if b != "triton" or k == "small" or torch.cuda.is_available()]


@pytest.mark.parametrize("kind,backend", _KIND_BACKEND)
@pytest.mark.parametrize("name", _pyace_files())
def test_matches_pyace_calculator(name, kind, backend):
    pyace = pytest.importorskip("pyace")
    path = D.potential(name)
    model = acepy.load(path, backend=backend)
    rng = np.random.default_rng()
    atoms = _random_structure(model.elements, rng, kind)
    if kind == "cluster":
        # PyACE wants a cell: put the cluster in a box wider than the cutoff with vacuum
        ref_atoms = atoms.copy()
        ref_atoms.cell = np.eye(3) * (40 + 2 * model.cutoff)
        ref_atoms.center()
        ref_atoms.pbc = True
        atoms = ref_atoms.copy()
        atoms.pbc = False
    else:
        ref_atoms = atoms.copy()
    ref_atoms.calc = pyace.PyACECalculator(str(path))
    e_ref = ref_atoms.get_potential_energy()
    f_ref = ref_atoms.get_forces()
    out = model.evaluate(atoms)
    n = len(atoms)
    assert float(out["energy"][0]) / n == pytest.approx(e_ref / n, abs=1e-8 + 1e-11 * abs(e_ref / n))
    np.testing.assert_allclose(out["forces"].numpy(), f_ref, rtol=1e-9, atol=1e-6)
    if kind != "cluster":
        s_ref = ref_atoms.get_stress()
        s = out["stress"][0].numpy()
        voigt = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        np.testing.assert_allclose(voigt, s_ref, rtol=1e-9, atol=1e-7)
