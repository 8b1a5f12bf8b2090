"""The stack's own behaviour: work not asked for is not done, per-model and per-call thread counts,
what acepy.load records, the species map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

import acepy
import acepy.errors
from acepy.models.ace import ACE

CU = "Cu-synthetic-pbe-core-rep"


def _cu(rng, repeat=(2, 2, 2)):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
    return atoms


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_energy_only_call_runs_no_gradient_pass(monkeypatch, backend):
    """compute_forces=False with the default compute_stress gives energies only: no adjoint
    (fast path) and no autograd (exact path), and the same energies as a full call."""
    rng = np.random.default_rng()
    model = acepy.load(CU, backend=backend)
    atoms = _cu(rng)
    full = model.evaluate(atoms)
    calls = []
    monkeypatch.setattr(ACE, "energies_and_edge_grads", lambda *a, **k: calls.append("adjoint"))
    import acepy.models.stack as stack_module

    monkeypatch.setattr(stack_module, "_exact_edge_grads", lambda *a, **k: calls.append("autograd"))
    alone = model.evaluate(atoms, compute_forces=False)
    assert calls == [] and set(alone) == {"energy", "energies", "system_idx"}
    np.testing.assert_allclose(alone["energies"].numpy(), full["energies"].numpy(), rtol=1e-13, atol=1e-12)


def test_stress_alone_is_still_available():
    rng = np.random.default_rng()
    model = acepy.load(CU)
    atoms = _cu(rng, (1, 1, 2))
    full = model.evaluate(atoms)
    only = model.evaluate(atoms, compute_forces=False, compute_stress=True)
    assert "forces" not in only
    np.testing.assert_allclose(only["stress"].numpy(), full["stress"].numpy(), rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="structure 0: stress needs a cell"):
        model.evaluate(Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]]), compute_stress=True)



def test_timings_name_each_phase_and_change_nothing():
    """``timings=`` receives the seconds of each phase (neighbours, each component, scatter),
    summed over calls; the numbers are those of a call without it."""
    rng = np.random.default_rng()
    model = acepy.load(CU)
    atoms = _cu(rng)
    plain = model.evaluate(atoms)
    model.graph_cache.invalidate()
    timings: dict = {}
    timed = model.evaluate(atoms, timings=timings)
    phases = {"neighbours", "scatter"} | {type(c).__name__.lower() for c in model.components}
    assert set(timings) == phases and all(t > 0 for t in timings.values()), timings
    first = dict(timings)
    model.evaluate(atoms, timings=timings)
    assert all(timings[k] > first[k] for k in phases)
    for key in ("energies", "forces", "stress"):
        assert torch.equal(timed[key], plain[key])

@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_num_threads_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="num_threads"):
        acepy.load(CU, num_threads=bad)
    model = acepy.load(CU)
    with pytest.raises(ValueError, match="num_threads"):
        model.evaluate(bulk("Cu", "fcc", a=3.61), num_threads=bad)


def test_num_threads_reaches_the_kernels(monkeypatch):
    """The model's thread count, or the call's, is the Numba thread count inside the call; the
    caller's setting is restored afterwards; 1 and 2 threads give the same numbers."""
    import numba

    from acepy.kernels.numba_cpu import scatter as numba_scatter

    seen = []
    original = numba_scatter.scatter_forces_virials

    def spy(*args, **kwargs):
        seen.append(numba.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(numba_scatter, "scatter_forces_virials", spy)
    rng = np.random.default_rng()
    atoms = _cu(rng)
    before = numba.get_num_threads()
    one = acepy.load(CU, num_threads=1)
    out1 = one.evaluate(atoms)
    out2 = one.evaluate(atoms, num_threads=2) if numba.config.NUMBA_NUM_THREADS >= 2 else out1
    assert seen[0] == 1 and seen[-1] == min(2, numba.config.NUMBA_NUM_THREADS)
    assert numba.get_num_threads() == before
    for key in ("energies", "forces", "stress"):
        np.testing.assert_allclose(out2[key].numpy(), out1[key].numpy(), rtol=1e-12, atol=1e-12, err_msg=key)


def test_load_records_its_options(tmp_path):
    model = acepy.load(CU, dtype="float32", skin=0.5, num_threads=1)
    assert model.load_options == {
        "path": CU, "pair_table": None, "dtype": "float32", "backend": None, "device": "cpu", "skin": 0.5,
        "table_n": None, "table_style": "spline", "table_cutoff": None, "num_threads": 1}
    assert model.dtype == torch.float32 and model.num_threads == 1 and model.graph_cache.skin == 0.5
    path = tmp_path / "cu.yace"
    path.write_bytes((acepy.loading._DATA / f"{CU}.yace").read_bytes())
    assert acepy.load(path).load_options["path"] == str(path.resolve())


def test_species_map_lives_in_the_stack():
    model = acepy.load(CU)
    numbers = torch.tensor([29, 29])
    assert model.species_of(numbers).tolist() == [0, 0]
    with pytest.raises(ValueError, match="atom 1 is Al, which the potential does not have"):
        model.species_of(torch.tensor([29, 13]))
    with pytest.raises(ValueError, match="0..118"):
        model.species_of(torch.tensor([29, 130]))


def test_energy_is_twice_differentiable_in_the_cell():
    """d2E/d(cell)^2 exists on the exact path (the stress derivative that an NPT Hessian needs) and
    matches a finite difference of the autograd cell gradient."""
    rng = np.random.default_rng()
    model = acepy.load(CU, backend="torch")
    atoms = _cu(rng, (1, 1, 1))
    batch = acepy.batch_from_atoms(atoms).requires_grad_()
    (gc,) = torch.autograd.grad(model.energy(batch).sum(), batch.cell, create_graph=True)
    (row,) = torch.autograd.grad(gc[0, 0, 0], batch.cell)
    h = 1e-5

    def cell_grad(d):
        b = acepy.batch_from_atoms(atoms)
        cell = b.cell.clone()
        cell[0, 0, 0] += d
        b = acepy.Batch(positions=b.positions, numbers=b.numbers, cell=cell.requires_grad_(), pbc=b.pbc,
                        system_idx=b.system_idx)
        return torch.autograd.grad(model.energy(b).sum(), b.cell)[0]

    fd = (cell_grad(h) - cell_grad(-h)) / (2 * h)
    scale = max(float(fd.abs().max()), 1.0)
    assert float((row - fd).abs().max()) <= 1e-5 * scale


def test_errors_name_the_structure_and_its_own_atom_index():
    model = acepy.load(CU)
    cu4 = bulk("Cu", "fcc", a=3.61, cubic=True)
    bad = cu4.copy()
    bad[3].symbol = "Al"
    with pytest.raises(ValueError, match=r"structure 1, atom 3 is Al, which the potential does not have"):
        model.evaluate([cu4, bad])
    close = cu4.copy()
    close.positions[2] = close.positions[0] + [1e-4, 0, 0]
    with pytest.raises(acepy.errors.TooCloseError, match=r"structure 1: atoms 0 and 2 are 0.0001 A apart"):
        model.evaluate([cu4, close])


@pytest.mark.parametrize("which", ["ace", "pair"])
def test_a_periodic_self_image_is_named_as_such(which):
    """An atom closer to its own periodic image than the tables reach: the error says so, with the
    shift, instead of 'atoms 0 and 0'."""
    from data_paths import TIAL_TABLE

    if which == "ace":
        model = acepy.load(CU)
        atoms = Atoms("Cu", cell=[[4e-4, 0, 0], [0, 9, 0], [0, 0, 9]], pbc=[True, False, False])
    else:
        table = TIAL_TABLE
        from acepy.io import read_pair_table
        from acepy.models.pair import Pair
        from acepy.models.stack import Stack

        pair = Pair(read_pair_table(table), ["Al", "Ti"])
        model = Stack([pair], ["Al", "Ti"])
        inner = min(tb.inner for tb in pair.lammps_tables)
        atoms = Atoms("Al", cell=[[0.6 * inner, 0, 0], [0, 9, 0], [0, 0, 9]], pbc=[True, False, False])
    with pytest.raises(acepy.errors.TooCloseError,
                       match=r"structure 0: atom 0 and its own periodic image shifted by cell vectors \(-?[12], 0, 0\).* apart"):
        model.evaluate(atoms)


@pytest.mark.parametrize("symbol", ["Xx", "Ål", "X"])
def test_unknown_element_symbol_is_refused_at_load_naming_file_and_key(tmp_path, symbol):
    """A file whose elements hold a symbol that is no chemical element is refused by acepy.load
    (not at every later evaluation), naming the file and the key."""
    text = (acepy.loading._DATA / f"{CU}.yace").read_text(encoding="utf-8")
    assert "elements: [Cu]" in text
    path = tmp_path / "bad.yace"
    path.write_text(text.replace("elements: [Cu]", f"elements: [{symbol}]"), encoding="utf-8")
    with pytest.raises(acepy.errors.PotentialFileError, match=rf"bad.yace: elements\[0\]: '{symbol}' is not a chemical"):
        acepy.load(path)
