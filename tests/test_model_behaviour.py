"""Model-level behaviour on the exact (torch) and fast (Numba) paths: finite differences,
invariances, batches, bad input."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

import acepy
from acepy.errors import TooCloseError

from data_paths import ALNI_YACE as POT, needs

# python-ace's Al-Ni file (ASL): not in tests/data; from ../shared/reference, else its generated stand-in
pytestmark = needs(POT)


@pytest.fixture(scope="module", params=["torch", "numba"])
def model(request):
    return acepy.load(POT, backend=request.param)


def alni(rng, repeat=(2, 1, 1)):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(repeat)
    atoms.set_cell(atoms.cell[:] + rng.normal(scale=0.1, size=(3, 3)), scale_atoms=True)
    atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
    atoms.set_chemical_symbols(rng.choice(["Al", "Ni"], len(atoms)).tolist())
    return atoms


def test_forces_and_stress_match_finite_differences(model):
    rng = np.random.default_rng()
    atoms = alni(rng)
    out = model.evaluate(atoms)
    # a small central step: the energy is a cubic spline in every distance (C1, with jumps in the
    # second derivative every 0.001 A), so a wide stencil would straddle many segments; rounding
    # stays near 1e-16 |E| / h = 3e-8
    h = 1e-6

    def stencil(energy_at):
        return (energy_at(h) - energy_at(-h)) / (2 * h)

    def displaced(i, a):
        def energy_at(d):
            x = atoms.copy()
            x.positions[i, a] += d
            return float(model.evaluate(x)["energy"][0])
        return energy_at

    for i, a in [(0, 0), (3, 2), (5, 1)]:
        assert float(out["forces"][i, a]) == pytest.approx(-stencil(displaced(i, a)), abs=1e-6)
    volume = atoms.get_volume()
    for a, b in [(0, 0), (1, 2)]:
        unit = np.zeros((3, 3))
        unit[a, b] = unit[b, a] = 0.5 if a != b else 1.0

        def strained(d, unit=unit):
            x = atoms.copy()
            x.set_cell(atoms.cell[:] @ (np.eye(3) + d * unit), scale_atoms=True)
            return float(model.evaluate(x)["energy"][0])

        assert float(out["stress"][0, a, b]) == pytest.approx(stencil(strained) / volume, abs=1e-7)


def test_invariances_and_batch_equals_singles(model):
    rng = np.random.default_rng()
    atoms = alni(rng)
    ref = model.evaluate(atoms)
    moved = atoms.copy()
    moved.rotate(37, (1, 2, 3), rotate_cell=True)
    moved.translate((0.3, -1.2, 5.0))
    moved.positions[2] += moved.cell[0]  # a lattice shift of one atom
    out = model.evaluate(moved)
    assert float(out["energy"][0]) == pytest.approx(float(ref["energy"][0]), abs=1e-9)
    perm = rng.permutation(len(atoms))
    out = model.evaluate(atoms[perm])
    np.testing.assert_allclose(out["forces"].numpy(), ref["forces"].numpy()[perm], atol=1e-10)
    others = [alni(rng, (1, 1, 1)), alni(rng, (1, 2, 1))]
    batch = model.evaluate([atoms] + others)
    start = 0
    for k, s in enumerate([atoms] + others):
        single = model.evaluate(s)
        assert float(batch["energy"][k]) == pytest.approx(float(single["energy"][0]), abs=1e-9)
        np.testing.assert_allclose(batch["forces"][start:start + len(s)].numpy(), single["forces"].numpy(), atol=1e-10)
        np.testing.assert_allclose(batch["stress"][k].numpy(), single["stress"][0].numpy(), atol=1e-11)
        start += len(s)


def test_calculator_follows_ase_conventions(model):
    rng = np.random.default_rng()
    atoms = alni(rng)
    atoms.calc = acepy.ACECalculator(model)
    e = atoms.get_potential_energy()
    assert atoms.get_potential_energy(force_consistent=True) == e
    assert atoms.get_potential_energies().sum() == pytest.approx(e, abs=1e-10)
    s = atoms.get_stress()
    full = model.evaluate(atoms)["stress"][0].numpy()
    np.testing.assert_allclose(s, [full[0, 0], full[1, 1], full[2, 2], full[1, 2], full[0, 2], full[0, 1]])
    atoms.positions[0, 0] += 0.05  # system_changes: a new result
    assert atoms.get_potential_energy() != e


@pytest.mark.parametrize("backend", ["torch", "numba", "triton"])
def test_bad_and_degenerate_inputs(backend):
    model = acepy.load(POT, backend=backend)
    with pytest.raises(ValueError, match="Cu"):
        model.evaluate(Atoms("AlCu", positions=[[0, 0, 0], [2.5, 0, 0]]))
    with pytest.raises(TooCloseError, match="atoms 0 and 1"):
        model.evaluate(Atoms("AlNi", positions=[[0, 0, 0], [0.0005, 0, 0]]))
    with pytest.raises(ValueError, match="not finite"):
        model.evaluate(Atoms("Al2", positions=[[0, 0, 0], [np.nan, 0, 0]]))
    with pytest.raises(ValueError, match="singular"):
        model.evaluate(Atoms("Al", positions=[[0, 0, 0]], cell=[[1, 0, 0], [2, 0, 0], [0, 0, 1]], pbc=True))
    out = model.evaluate(Atoms())
    assert float(out["energy"][0]) == 0.0 and out["forces"].shape == (0, 3)
    far = Atoms("AlNi", positions=[[0, 0, 0], [30, 0, 0]])
    out = model.evaluate(far)
    e0 = model.components[0].e0
    # no neighbours: E = E0 + F(0) (zero for both embeddings here), and no force
    assert float(out["energy"][0]) == pytest.approx(float(e0.sum()), abs=1e-12)
    assert np.isfinite(out["forces"].numpy()).all() and np.abs(out["forces"].numpy()).max() == 0


@pytest.mark.parametrize("backend,edge_chunk", [("numba", 1), ("numba", 37), ("numba", 500), ("triton", 37)])
def test_fast_path_in_chunks_equals_exact_path(monkeypatch, backend, edge_chunk):
    """The staged fast path evaluates atoms in chunks of at most EDGE_CHUNK edges (one atom per
    chunk when an atom alone has more): any chunking gives the exact path's numbers."""
    import acepy.models.ace as ace_module

    rng = np.random.default_rng()
    # 8 atoms of about 160 ACE edges each (cutoff 8.75 A): chunks of 1 and 37 edges hold one atom each
    # (8 chunks), chunks of 500 two atoms each (4 chunks); more atoms only add more such chunks
    atoms = alni(rng, repeat=(2, 1, 1))
    exact = acepy.load(POT, backend="torch").evaluate(atoms)
    monkeypatch.setattr(ace_module, "EDGE_CHUNK", edge_chunk)
    model = acepy.load(POT, backend=backend)
    if backend == "numba":  # the staged kernels (SHIPs radial bases run them): the fused one has no chunks
        next(c for c in model.components if isinstance(c, ace_module.ACE))._fused = None
    fast = model.evaluate(atoms)
    for key in ("energies", "forces", "stress"):
        np.testing.assert_allclose(fast[key].numpy(), exact[key].numpy(), rtol=1e-10, atol=1e-10, err_msg=key)


def test_energy_only_call_equals_full_call(model):
    """Energies alone skip the adjoint pass (fast path) or autograd (exact path): same energies."""
    atoms = alni(np.random.default_rng(), repeat=(2, 2, 1))
    full = model.evaluate(atoms)
    alone = model.evaluate(atoms, compute_forces=False, compute_stress=False)
    assert "forces" not in alone and "stress" not in alone
    np.testing.assert_allclose(alone["energies"].numpy(), full["energies"].numpy(), rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "numba", "triton"])
def test_float32_model_is_close_to_float64(backend):
    """dtype='float32' on every backend: errors of float32 size, relative to the largest per-atom
    energy, force and stress component. Worst seen over 60 random structures (positions rounded to
    float32 already move the forces): 4e-6 (energies), 1.3e-5 (forces), 4e-6 (stress); the bounds
    leave a factor of about 8."""
    rng = np.random.default_rng()
    atoms = alni(rng)
    ref = acepy.load(POT, backend="torch").evaluate(atoms)
    out = acepy.load(POT, dtype="float32", backend=backend).evaluate(atoms)
    assert out["energy"].dtype == out["forces"].dtype == out["stress"].dtype == torch.float32
    for key, tol in (("energies", 3e-5), ("forces", 1e-4), ("stress", 3e-5)):
        scale = float(ref[key].abs().max())
        err = float((out[key].double() - ref[key]).abs().max())
        assert err <= tol * scale, f"{key}: {err:.2e} > {tol} x {scale:.2e}"
