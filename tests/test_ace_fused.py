"""The fused Numba ACE kernel (``kernels/numba_cpu/ace_fused.py``) against the staged Numba kernels
and the torch reference.

The fused kernel runs the whole fast path of a call per atom in one launch; the staged kernels
(radial tables, atomic base, product basis, embedding, adjoint, edge gradients, each over the
whole call) compute the same sums in the same order per atom, so the two agree to rounding; the
torch exact path (autograd) is the independent reference. Every file that ``test_model_all_files``
and ``test_model_random`` compare with python-ace also runs through the fused kernel (it is the
Numba backend's fast path): this file checks what those do not, on fresh random structures: the
staged path equality, float32, threads, edges beyond a pair's cutoff, atoms without neighbours.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

import acepy
from acepy.kernels import num_threads

import data_paths as D

BUNDLED = ["Cu-synthetic-pbe-core-rep", "AlTi-synthetic-linear", "AlCuNi-synthetic-r4"]
FILES = D.params([D.potential_path(n) for n in D.YACE_FILES + D.ACE_FILES if "TiAl_tutorial" not in n])


def _ace(model):
    return next(c for c in model.components if type(c).__name__ == "ACE")


def _staged(model, atoms, **kw):
    """The model's result through the staged Numba kernels (the fused kernel switched off)."""
    ace = _ace(model)
    saved, ace._fused = ace._fused, None
    try:
        return model.evaluate(atoms, **kw)
    finally:
        ace._fused = saved


def _structure(model, rng, n_cells=2, a=None, rattle=0.12):
    """A rattled fcc cell with the model's elements at random sites."""
    els = list(_ace(model).elements)
    at = bulk("Cu", "fcc", a=a or 3.7, cubic=True).repeat((n_cells, n_cells, 1))
    at.positions += rng.normal(0.0, rattle, at.positions.shape)
    at.set_chemical_symbols([els[k] for k in rng.integers(0, len(els), len(at))])
    return at


def _assert_same(out, ref, rtol, what):
    for key in ("energies", "forces", "stress"):
        a, b = out[key].double().numpy(), ref[key].double().numpy()
        scale = max(np.abs(b).max(), 1e-300)
        err = np.abs(a - b).max() / scale
        assert err <= rtol, f"{what}: {key} differs by {err:.2e} of its largest value (bound {rtol:g})"


@pytest.mark.parametrize("name", BUNDLED)
def test_fused_equals_staged_bundled(name):
    rng = np.random.default_rng()
    model = acepy.load(name, backend="numba")
    assert _ace(model)._fused is not None
    for _ in range(3):
        atoms = _structure(model, rng)
        _assert_same(model.evaluate(atoms), _staged(model, atoms), 1e-12, name)


@pytest.mark.parametrize("path", FILES)
def test_fused_equals_staged_and_exact_files(path):
    """Public files (zbl, distance and density inner cutoffs, core repulsion, rank 1 only, two
    densities, several species with per-pair cutoffs: edges beyond a pair's cutoff dropped)."""
    rng = np.random.default_rng()
    model = acepy.load(path, backend="numba")
    if _ace(model)._fused is None:
        pytest.skip("radial kind without a table: the staged kernels run it")
    atoms = _structure(model, rng, a=float(rng.uniform(3.9, 4.3)), rattle=0.08)
    fused = model.evaluate(atoms)
    _assert_same(fused, _staged(model, atoms), 1e-12, path.name)
    exact = acepy.load(path, backend="torch").evaluate(atoms)
    _assert_same(fused, exact, 1e-10, f"{path.name} (torch exact path)")


def test_fused_serial_equals_parallel():
    """Each atom is one independent iteration: the thread count changes no bit."""
    rng = np.random.default_rng()
    model = acepy.load("AlCuNi-synthetic-r4", backend="numba")
    atoms = _structure(model, rng, n_cells=4)  # 64 atoms: above the parallel threshold
    with num_threads(1):
        one = model.evaluate(atoms)
    with num_threads(2):
        two = model.evaluate(atoms)
    for key in ("energies", "forces", "stress"):
        assert torch.equal(one[key], two[key]), key


def test_fused_float32_close_to_float64():
    rng = np.random.default_rng()
    atoms = _structure(acepy.load("AlTi-synthetic-linear"), rng)
    ref = acepy.load("AlTi-synthetic-linear", backend="torch").evaluate(atoms)
    model = acepy.load("AlTi-synthetic-linear", backend="numba", dtype="float32")
    out = model.evaluate(atoms)
    assert out["forces"].dtype == torch.float32
    _assert_same(out, ref, 1e-4, "float32 vs float64")
    _assert_same(out, _staged(model, atoms), 1e-5, "float32 fused vs staged")


def test_fused_atoms_without_neighbours_and_far_apart():
    """A lone atom (no edge: E = F(0), no force) beside a bonded pair, in a batch with a bulk cell."""
    model = acepy.load("AlCuNi-synthetic-r4", backend="numba")
    els = list(_ace(model).elements)
    cluster = Atoms([els[0], els[1], els[2]], positions=[[0, 0, 0], [2.4, 0.3, 0.1], [30.0, 0, 0]])
    rng = np.random.default_rng()
    batch = [cluster, _structure(model, rng)]
    fused = model.evaluate(batch, compute_stress=False)
    staged = _staged(model, batch, compute_stress=False)
    exact = acepy.load("AlCuNi-synthetic-r4", backend="torch").evaluate(batch, compute_stress=False)
    for key in ("energies", "forces"):
        np.testing.assert_allclose(fused[key].numpy(), staged[key].numpy(), rtol=1e-12, atol=1e-14, err_msg=key)
        np.testing.assert_allclose(fused[key].numpy(), exact[key].numpy(), rtol=1e-10, atol=1e-12, err_msg=key)
    assert float(fused["forces"][2].abs().max()) == 0.0
