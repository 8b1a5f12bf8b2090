"""Every component runs the same conformance checks (tests/conformance.py), inside a stack.

Cases: the ACE component on a two-element file (density inner cutoff), on the bundled
single-element potential (core repulsion, the segment-sum path) and on ACEpotentials.jl spline
bonds; the LAMMPS pair table alone; the one-body term alone; and two test-only components that
exercise the rest of the contract: a charge-dependent pair term (per-atom data) and a
structure-level term (``structure_energies``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

import acepy
from acepy.io import read_pair_table
from acepy.models.component import BatchGraph, Component
from acepy.models.onebody import OneBody
from acepy.models.pair import Pair
from acepy.models.stack import Stack

import conformance as C

from data_paths import ALNI_YACE as ALNI, TIAL_TABLE, TIAL_YACE as TIAL, require


# ---- test-only components: the parts of the contract no production component uses yet -------
class ScreenedCharges(Component):
    """E_i = 1/2 sum_j q_i q_j exp(-r/lam) / r * s(r), s = (1 - (r/rc)^2)^2: a graph component
    that reads per-atom charges. Fast path analytic, exact path plain torch."""

    per_atom_data = ("charges",)

    def __init__(self, cutoff=4.0, lam=1.5):
        self.cutoff, self.lam = cutoff, lam

    def _pair(self, r):
        x = r / self.cutoff
        s, ds = (1 - x * x) ** 2, -4 * x * (1 - x * x) / self.cutoff
        v = torch.exp(-r / self.lam) / r
        dv = -v * (1 / self.lam + 1 / r)
        return v * s, dv * s + v * ds

    def site_energies(self, inputs: BatchGraph, backend="torch"):
        q = inputs.batch.charges
        v, _ = self._pair(inputs.distances)
        e = 0.5 * q[inputs.centers] * q[inputs.neighbors] * v
        return torch.zeros_like(q).index_add(0, inputs.centers, e)

    def energies_and_edge_grads(self, inputs: BatchGraph, backend=None):
        q = inputs.batch.charges
        r = inputs.distances
        v, dv = self._pair(r)
        qq = 0.5 * q[inputs.centers] * q[inputs.neighbors]
        energies = torch.zeros_like(q).index_add(0, inputs.centers, qq * v)
        return energies, (qq * dv / r)[:, None] * inputs.vectors


class Pressure(Component):
    """A structure-level term E_b = p V_b (no graph): its stress is p everywhere."""

    def __init__(self, p=0.01):
        self.p = p

    def structure_energies(self, inputs: BatchGraph):
        return self.p * torch.linalg.det(inputs.batch.cell).abs()


# ---- the cases -----------------------------------------------------------------------------
def _alni_stack(backend):
    return acepy.load(ALNI, backend=backend)


def _cu_stack(backend):
    return acepy.load("Cu-synthetic-pbe-core-rep", backend=backend)


def _tial_ace_stack(backend):
    return acepy.load(TIAL, backend=backend)


def _pair_stack(backend):
    return Stack([Pair(read_pair_table(TIAL_TABLE), ["Al", "Ti"])], ["Al", "Ti"], backend=backend)


def _onebody_stack(backend):
    return Stack([OneBody([-1.5, -2.25], ["Al", "Ni"])], ["Al", "Ni"], backend=backend)


def _charges_stack(backend):
    return Stack([ScreenedCharges()], ["Na", "Cl"], backend=backend)


def _pressure_stack(backend):
    return Stack([OneBody([0.0, 0.0], ["Na", "Cl"]), ScreenedCharges(), Pressure()], ["Na", "Cl"], backend=backend)


def _alloy(rng, a, base, others, repeat, rattle=0.1, cubic=True):
    atoms = bulk(base, "fcc", a=a, cubic=cubic).repeat(repeat)
    atoms.set_cell(atoms.cell[:] + rng.normal(scale=0.1, size=(3, 3)), scale_atoms=True)
    atoms.rattle(rattle, seed=int(rng.integers(1 << 30)))
    atoms.set_chemical_symbols(rng.choice([base] + others, len(atoms)).tolist())
    return atoms


def _salt(rng, repeat=(1, 1, 1)):
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(repeat)
    atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
    atoms.set_initial_charges(rng.uniform(-1.2, 1.2, len(atoms)))
    return atoms


def _cluster(rng, symbols, spacing=2.6):
    n = len(Atoms(symbols))
    pos = rng.normal(size=(n, 3))
    pos *= spacing / np.min([np.linalg.norm(pos[i] - pos[j]) for i in range(n) for j in range(i)])
    return Atoms(symbols, positions=pos)


CASES = {
    # name: (make_stack, structures(rng) -> list of Atoms, the first is the main one; the data files it reads:
    # ALNI is python-ace's (ASL), from ../shared/reference or its generated stand-in; the TiAl ones are in tests/data)
    "ace-AlNi": (_alni_stack, lambda rng: [_alloy(rng, 4.05, "Al", ["Ni"], (2, 1, 1)),
                                           _alloy(rng, 4.05, "Al", ["Ni"], (1, 1, 1)),
                                           _cluster(rng, "AlNiAlNiAl")], (ALNI,)),
    "ace-Cu-bundled": (_cu_stack, lambda rng: [_alloy(rng, 3.61, "Cu", [], (1, 1, 2)),
                                               _alloy(rng, 3.61, "Cu", [], (1, 1, 1), cubic=False),
                                               _cluster(rng, "Cu5")], ()),
    "ace-TiAl-splines": (_tial_ace_stack, lambda rng: [_alloy(rng, 4.0, "Al", ["Ti"], (2, 1, 1)),
                                                       _cluster(rng, "TiAlTiAl")], (TIAL,)),
    "pair-TiAl-table": (_pair_stack, lambda rng: [_alloy(rng, 4.0, "Al", ["Ti"], (2, 1, 1)),
                                                  _cluster(rng, "TiAlTi")], (TIAL_TABLE,)),
    "onebody": (_onebody_stack, lambda rng: [_alloy(rng, 4.05, "Al", ["Ni"], (1, 1, 1)), _cluster(rng, "AlNi")], ()),
    "charges-test-only": (_charges_stack, lambda rng: [_salt(rng), _salt(rng)[:5]], ()),
    "structure-level-test-only": (_pressure_stack, lambda rng: [_salt(rng), _salt(rng)], ()),
}


@pytest.fixture(params=list(CASES))
def case(request):
    make, structures, files = CASES[request.param]
    for path in files:
        require(path)
    rng = np.random.default_rng()
    return make, structures(rng), rng


def test_fast_equals_exact(case):
    make, structures, _ = case
    for atoms in structures:
        C.check_fast_equals_exact(make, atoms)


def test_energy_differentiable_in_positions_and_cell(case):
    make, structures, _ = case
    for atoms in structures:
        C.check_energy_is_differentiable(make, atoms)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_forces_and_stress_match_finite_differences(case, backend):
    make, structures, rng = case
    stack = make(backend)
    for atoms in structures[:2]:
        C.check_finite_differences(stack, atoms, rng)


def test_batch_equals_singles(case):
    make, structures, _ = case
    C.check_batch_equals_singles(make("numba"), structures)


def test_invariances(case):
    make, structures, rng = case
    stack = make("numba")
    for atoms in structures:
        C.check_invariances(stack, atoms, rng)


def test_input_not_mutated(case):
    make, structures, _ = case
    C.check_input_not_mutated(make("numba"), structures[0])


def test_hessian_symmetric_with_acoustic_sum_rule(case):
    make, structures, _ = case
    C.check_hessian(make, structures[-1])  # the smallest structure: 3N double-backward rows


# ---- the stack's side of the contract ------------------------------------------------------
def test_stack_refuses_mixed_dtype_device_and_species_order():
    with pytest.raises(ValueError, match="dtype"):
        Stack([OneBody([0.0], ["Al"], dtype=torch.float32)], ["Al"])
    with pytest.raises(ValueError, match="elements"):
        Stack([OneBody([0.0, 1.0], ["Ni", "Al"])], ["Al", "Ni"])
    with pytest.raises(ValueError, match="unknown element"):
        Stack([OneBody([0.0], None)], ["Xx"])
    dev = Component()
    dev.device = torch.device("meta")
    with pytest.raises(ValueError, match="device"):
        Stack([dev], ["Al"])


def test_per_atom_data_is_required_and_carried():
    rng = np.random.default_rng()
    atoms = _salt(rng)
    stack = _charges_stack("numba")
    out = stack.evaluate(atoms)  # from ase.Atoms: the stack asks the batch for the charges
    batch = acepy.batch_from_atoms(atoms, charges=True)
    torch.testing.assert_close(batch.charges, torch.as_tensor(atoms.get_initial_charges()))
    torch.testing.assert_close(stack.evaluate(batch)["energy"], out["energy"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="charges"):
        stack.evaluate(acepy.batch_from_atoms(atoms))  # a batch built without them
    # the charges matter: flipping one changes the energy
    flipped = atoms.copy()
    q = flipped.get_initial_charges()
    q[0] = -q[0]
    flipped.set_initial_charges(q)
    assert float(stack.evaluate(flipped)["energy"][0]) != float(out["energy"][0])


def test_structure_level_stress_is_the_pressure():
    """E = p V: stress = (1/V) dE/d(strain) = p on the diagonal (closed form)."""
    rng = np.random.default_rng()
    atoms = _salt(rng)
    stack = Stack([OneBody([0.0, 0.0], ["Na", "Cl"]), Pressure(0.0123)], ["Na", "Cl"])
    out = stack.evaluate(atoms)
    np.testing.assert_allclose(out["stress"][0].numpy(), 0.0123 * np.eye(3), atol=1e-15)
    assert float(out["forces"].abs().max()) == 0.0
    assert float(out["energy"][0]) == pytest.approx(0.0123 * atoms.get_volume(), rel=1e-14)
