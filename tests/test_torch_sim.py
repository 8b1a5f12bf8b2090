"""acepy.calculators.TorchSimModel: torch-sim's ModelInterface around an acepy stack.

torch-sim's own conformance check (``validate_model_outputs``), agreement with ACECalculator on
the structures of torch-sim's consistency test (rebuilt here with ASE as torch-sim's conftest
builds them), the conventions that could silently go wrong (column vs row cell, stress sign and
units, int32 numbers, charges, mixed batches without a volume) against finite differences, and a
batched FIRE relaxation.

The bundled synthetic potentials have Al/Cu/Ni and Al/Ti; torch-sim's checks use Si, Fe, O, C,
H, ...: the tests relabel the element symbols of the AlCuNi potential (the same functions, other
names), which is all a conformance check needs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.spacegroup import crystal

ts = pytest.importorskip("torch_sim")

from acepy.calculators import ACECalculator  # noqa: E402
from acepy.io import read_potential  # noqa: E402
from acepy.loading import _resolve  # noqa: E402
from acepy.models.ace import ACE  # noqa: E402
from acepy.models.onebody import OneBody  # noqa: E402
from acepy.models.stack import Stack  # noqa: E402

DTYPE = torch.float64


def relabelled(elements, name="AlCuNi-synthetic-r4") -> Stack:
    """The bundled potential with its element symbols replaced (padded to its element count)."""
    spec = read_potential(_resolve(name))
    names = list(elements)
    for spare in ("Al", "Cu", "Ni", "Zn", "Ag", "Au"):
        if len(names) >= len(spec.elements):
            break
        if spare not in names:
            names.append(spare)
    spec.elements = names[: len(spec.elements)]
    return Stack([OneBody(spec.E0, spec.elements), ACE(spec)], spec.elements)


def model_for(elements):
    from acepy.calculators import TorchSimModel

    return TorchSimModel(relabelled(elements))


def consistency_structures() -> dict[str, Atoms]:
    """torch-sim's consistency states (tests/models/conftest.py, consistency_test_simstate_fixtures)."""
    out = {
        "cu": bulk("Cu", "fcc", a=3.58, cubic=True),
        "mg": bulk("Mg", "hcp", a=3.17, c=5.14),
        "sb": bulk("Sb", "rhombohedral", a=4.58, alpha=60),
        "tio2": crystal(["Ti", "O"], basis=[(0.5, 0.5, 0), (0.695679, 0.695679, 0.5)], spacegroup=136,
                        cellpar=[4.60, 4.60, 2.96, 90, 90, 90]),
        "ga": crystal(["Ga"], basis=[(0, 0.344304, 0.415401)], spacegroup=64, cellpar=[4.43, 7.60, 4.56, 90, 90, 90]),
        "niti": crystal(["Ni", "Ti"], basis=[(0.369548, 0.25, 0.217074), (0.076622, 0.25, 0.671102)], spacegroup=11,
                        cellpar=[2.89, 3.97, 4.83, 90.00, 105.23, 90.00]),
        "ti": bulk("Ti", "hcp", a=2.94, c=4.64),
        "si": bulk("Si", "diamond", a=5.43, cubic=True),
        "sio2": crystal(["O", "Si"], basis=[[0.413, 0.2711, 0.2172], [0.4673, 0, 0.3333]], spacegroup=152,
                        cellpar=[4.9019, 4.9019, 5.3988, 90, 90, 120]),
        "ar_supercell": bulk("Ar", "fcc", a=5.26, cubic=True).repeat([2, 2, 2]),
        "fe_supercell": bulk("Fe", "fcc", a=5.26, cubic=True).repeat([4, 4, 4]),
        "benzene": molecule("C6H6"),
    }
    rattled = out["sio2"].copy()
    rng = np.random.default_rng(3)
    d = rng.normal(size=rattled.positions.shape)
    rattled.positions += rng.weibull(1.0, size=(len(rattled), 1)) * 0.1 * d / np.linalg.norm(d, axis=1, keepdims=True)
    out["rattled_sio2"] = rattled
    return out


def test_validate_model_outputs():
    """torch-sim's own conformance check (Si diamond + Fe fcc, batched and one by one)."""
    from torch_sim.models.interface import validate_model_outputs

    validate_model_outputs(model_for(["Si", "Fe"]), torch.device("cpu"), DTYPE)


def test_torch_sim_is_imported_lazily():
    import subprocess
    import sys

    code = "import sys, acepy, acepy.calculators; print('torch_sim' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("name", sorted(consistency_structures()))
def test_agrees_with_ace_calculator(name):
    atoms = consistency_structures()[name]
    stack = relabelled(sorted(set(atoms.get_chemical_symbols())))
    from acepy.calculators import TorchSimModel

    state = ts.io.atoms_to_state(atoms, "cpu", DTYPE)
    out = TorchSimModel(stack)(state)
    calc = atoms.copy()
    calc.calc = ACECalculator(stack)
    e = calc.get_potential_energy()
    assert abs(float(out["energy"][0]) - e) <= 1e-10 * max(1.0, abs(e))
    np.testing.assert_allclose(out["forces"].numpy(), calc.get_forces(), rtol=0, atol=1e-10)
    if abs(atoms.cell.volume) > 0:
        voigt = out["stress"][0].numpy()[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        np.testing.assert_allclose(voigt, calc.get_stress(), rtol=0, atol=1e-10)
    else:
        assert not out["stress"].any()


def _triclinic_alloy() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.62).repeat((2, 2, 2))
    atoms.set_cell(atoms.cell[:] @ np.array([[1.0, 0.04, -0.03], [0.02, 1.01, 0.05], [-0.04, 0.03, 0.98]]),
                   scale_atoms=True)
    atoms.symbols[::3] = "Al"
    atoms.symbols[1::4] = "Ni"
    atoms.rattle(0.05, seed=7)
    return atoms


def test_conventions_against_finite_differences():
    """Forces = -dE/dx and stress = (1/V) dE/d(strain) (ASE sign, eV/A^3) on a rattled triclinic
    cell, all through torch-sim states: a transposed cell, a wrong sign or a missing 1/V fails."""
    from acepy.calculators import TorchSimModel

    atoms = _triclinic_alloy()
    model = TorchSimModel(relabelled(["Al", "Cu", "Ni"]))

    def energy(a: Atoms) -> float:
        return float(model(ts.io.atoms_to_state(a, "cpu", DTYPE))["energy"][0])

    out = model(ts.io.atoms_to_state(atoms, "cpu", DTYPE))
    h = 1e-5
    for i, a in [(0, 0), (3, 1), (7, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        assert abs(-(energy(plus) - energy(minus)) / (2 * h) - float(out["forces"][i, a])) < 1e-6
    volume = atoms.cell.volume
    for a, b in [(0, 0), (1, 2), (0, 1), (2, 2)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h / 2 if a != b else h
        plus, minus = atoms.copy(), atoms.copy()
        plus.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
        minus.set_cell(atoms.cell[:] @ (np.eye(3) - eps), scale_atoms=True)
        d = (energy(plus) - energy(minus)) / (2 * h) / volume
        assert abs(d - float(out["stress"][0, a, b])) < 1e-7, (a, b, d, float(out["stress"][0, a, b]))


def test_state_mapping_cell_numbers_charges():
    """SimState -> Batch: the row-vector cell (ASE's), int32 numbers widened, charges carried."""
    from acepy.calculators.torch_sim import batch_from_state

    atoms = _triclinic_alloy()
    state = ts.io.atoms_to_state([atoms, bulk("Al", "fcc", a=4.05)], "cpu", DTYPE)
    state.atomic_numbers = state.atomic_numbers.to(torch.int32)
    q = torch.linspace(-0.5, 0.5, state.n_atoms, dtype=DTYPE)
    state_dict = {"positions": state.positions, "cell": state.cell, "atomic_numbers": state.atomic_numbers,
                  "system_idx": state.system_idx, "pbc": state.pbc, "charges": q}
    for given in (state, state_dict):
        batch = batch_from_state(given)
        np.testing.assert_array_equal(batch.cell[0].numpy(), atoms.cell[:])
        assert batch.numbers.dtype == torch.int64
        assert batch.numbers[: len(atoms)].tolist() == atoms.numbers.tolist()
        assert batch.pbc.shape == (2, 3) and bool(batch.pbc.all())
    assert batch_from_state(state).charges is None
    assert torch.equal(batch_from_state(state_dict).charges, q)


def test_mixed_batch_zero_stress_without_volume():
    """A periodic crystal and a molecule with a zero cell in one call: the crystal's stress is its
    own, the molecule's is zero, energies and forces as one by one (Stack.evaluate alone refuses)."""
    from acepy.calculators import TorchSimModel

    crystal_ = _triclinic_alloy()
    cluster = bulk("Cu", "fcc", a=3.62).repeat((2, 2, 1))
    cluster.set_cell(np.zeros((3, 3)))
    cluster.pbc = False
    cluster.symbols[0] = "Ni"
    stack = relabelled(["Al", "Cu", "Ni"])
    model = TorchSimModel(stack)
    col = torch.tensor(np.stack([crystal_.cell[:].T, cluster.cell[:].T]), dtype=DTYPE)
    state = {"positions": torch.tensor(np.concatenate([crystal_.positions, cluster.positions]), dtype=DTYPE),
             "cell": col, "atomic_numbers": torch.tensor(np.concatenate([crystal_.numbers, cluster.numbers])),
             "system_idx": torch.tensor([0] * len(crystal_) + [1] * len(cluster)),
             "pbc": torch.tensor([[True] * 3, [False] * 3])}
    out = model(state)
    alone = stack.evaluate(crystal_)
    assert torch.allclose(out["stress"][0], alone["stress"][0], rtol=0, atol=1e-12)
    assert not out["stress"][1].any()
    molecule_alone = stack.evaluate(cluster)
    assert torch.allclose(out["energy"], torch.cat([alone["energy"], molecule_alone["energy"]]), rtol=0, atol=1e-10)
    assert torch.allclose(out["forces"][len(crystal_):], molecule_alone["forces"], rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="volume"):
        stack.evaluate([crystal_, cluster], compute_stress=True)


def test_batched_fire_relaxation():
    """Strained, rattled L1_0 TiAl cells (ACEpotentials.jl's fitted MIT potential + its pair table)
    relaxed in one torch-sim call, positions and cell: every structure ends below the force
    tolerance with a near-zero stress, at the same minimum (energy per atom and volume), and the
    final energies equal ACECalculator's on the relaxed structures."""
    from acepy.calculators import TorchSimModel
    from acepy.loading import load
    from data_paths import POTENTIALS, TIAL_STEM

    stack = load(POTENTIALS / f"{TIAL_STEM}.yace", pair_table=POTENTIALS / f"{TIAL_STEM}_pairpot.table")
    l10 = Atoms("Ti2Al2", scaled_positions=[[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                cell=[4.0, 4.0, 4.07], pbc=True)
    structures = []
    for k, scale in enumerate((0.97, 1.0, 1.03)):
        atoms = l10.repeat((2, 1, 1))
        atoms.set_cell(atoms.cell[:] * scale, scale_atoms=True)
        atoms.rattle(0.1, seed=k)
        structures.append(atoms)
    model = TorchSimModel(stack)
    start = model(ts.io.atoms_to_state(structures, "cpu", DTYPE))["energy"]
    fmax = 0.01
    final = ts.optimize(system=structures, model=model, optimizer=ts.optimizers.unit_cell_fire, max_steps=2000,
                        convergence_fn=ts.runners.generate_force_convergence_fn(force_tol=fmax))
    out = model(final)
    assert bool((out["energy"] < start - 1e-3).all())
    assert float(out["forces"].norm(dim=1).max()) < fmax
    relaxed = final.to_atoms()
    per_atom = out["energy"] / 8
    assert float(per_atom.max() - per_atom.min()) < 1e-4
    volumes = [a.get_volume() for a in relaxed]
    assert max(volumes) - min(volumes) < 0.02 * min(volumes)
    for atoms, e in zip(relaxed, out["energy"]):
        atoms.calc = ACECalculator(stack)
        assert abs(atoms.get_potential_energy() - float(e)) < 1e-10
        assert np.abs(atoms.get_stress()).max() < 0.01  # eV/A^3: the cell relaxed with the positions
