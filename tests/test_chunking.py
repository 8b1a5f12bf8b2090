"""Big batches in chunks (acepy/models/chunking.py): a list or Batch evaluated in chunks of whole
structures gives the numbers of one call, decides stress once for the whole input, keeps each
chunk's real pair count near its budget, and shows a progress bar when asked."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

import acepy
from acepy.graph import neighbor_graph
from acepy.models.chunking import chunk_bounds, estimated_pairs


@pytest.fixture(scope="module")
def model():
    return acepy.load("AlTi-synthetic-linear", num_threads=1)


def _structures(rng, count, periodic_only=True):
    out = []
    for k in range(count):
        reps = [(1, 1, 1), (2, 1, 1), (1, 2, 2)][k % 3]
        a = bulk("Al", "fcc", a=4.05 * rng.uniform(0.97, 1.03), cubic=True).repeat(reps)
        a.numbers[rng.random(len(a)) < 0.4] = 22
        a.rattle(0.08, seed=int(rng.integers(1 << 30)))
        out.append(a)
    if not periodic_only:
        c = Atoms("AlTiAl", positions=[[0, 0, 0], [2.6, 0.1, 0], [1.2, 2.3, 0.2]])
        out.insert(count // 2, c)
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if a[key].dtype.is_floating_point:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-12, msg=key)
        else:
            assert torch.equal(a[key], b[key]), key


def test_chunks_give_the_numbers_of_one_call(model):
    structures = _structures(np.random.default_rng(0), 40)
    whole = model.evaluate(structures, chunk_pairs=10**9)
    pairs = estimated_pairs(structures, model.cutoff)
    budget = int(pairs.sum() / 7)
    assert len(chunk_bounds(pairs, budget)) - 1 >= 7
    _assert_same(model.evaluate(structures, chunk_pairs=budget), whole)
    batch = acepy.batch_from_atoms(structures)
    _assert_same(model.evaluate(batch, chunk_pairs=budget), whole)
    assert "stress" in whole


def test_stress_is_decided_for_the_whole_input(model):
    structures = _structures(np.random.default_rng(1), 12, periodic_only=False)  # a cluster in the middle
    budget = int(estimated_pairs(structures, model.cutoff).sum() / 5)
    chunked = model.evaluate(structures, chunk_pairs=budget)
    whole = model.evaluate(structures, chunk_pairs=10**9)
    assert "stress" not in chunked and "stress" not in whole  # not only for the chunks without the cluster
    _assert_same(chunked, whole)
    with pytest.raises(ValueError, match="stress needs a cell"):
        model.evaluate(structures, compute_stress=True, chunk_pairs=budget)


def test_each_chunk_holds_about_its_budget_of_pairs(model, monkeypatch):
    structures = _structures(np.random.default_rng(2), 60)
    real = [neighbor_graph(acepy.batch_from_atoms(a), model.cutoff).n_edges for a in structures]
    estimate = estimated_pairs(structures, model.cutoff)
    # the estimate is the atom density times the cutoff sphere: within 25% of the real count here
    np.testing.assert_allclose(estimate, real, rtol=0.25)
    budget = 3000
    sizes = []
    original = model._evaluate

    def spy(chunk, *args):
        sizes.append(len(chunk))
        return original(chunk, *args)

    monkeypatch.setattr(model, "_evaluate", spy)
    model.evaluate(structures, chunk_pairs=budget)
    assert sum(sizes) == len(structures) and len(sizes) > 5
    start = 0
    for n in sizes:
        chunk_real = sum(real[start:start + n])
        assert n == 1 or chunk_real <= 1.25 * budget
        start += n


def test_progress_bar_and_bad_budget(model, capsys):
    structures = _structures(np.random.default_rng(3), 9)
    model.evaluate(structures, chunk_pairs=2000, progress=True)
    assert "acepy evaluate" in capsys.readouterr().err
    model.evaluate(structures, chunk_pairs=2000)  # 9 structures: no bar by default
    assert "acepy evaluate" not in capsys.readouterr().err
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="chunk_pairs must be a positive integer"):
            model.evaluate(structures, chunk_pairs=bad)


def test_molecules_and_single_structures_are_untouched(model):
    water_like = molecule("CH4")
    water_like.set_chemical_symbols(["Ti", "Al", "Al", "Al", "Al"])
    out = model.evaluate(water_like, chunk_pairs=1)
    assert out["energy"].shape == (1,) and "stress" not in out
    assert model.evaluate([water_like], chunk_pairs=1)["energy"].item() == out["energy"].item()


def test_errors_name_the_structure_of_the_whole_input(model):
    structures = _structures(np.random.default_rng(4), 9)
    bad = structures[7].copy()
    bad.positions[1] = np.nan
    structures[7] = bad
    budget = int(estimated_pairs(structures[:7], model.cutoff).sum() / 4)
    for chunk_pairs in (budget, 10**9):  # chunked or not, the same structure is named
        with pytest.raises(acepy.errors.StructureError, match=r"structure 7, atom 1: position is not finite"):
            model.evaluate(structures, chunk_pairs=chunk_pairs)
