"""The Numba cell-list search (``acepy/kernels/numba_cpu/neighbors.py``) against ASE's
``neighbor_list`` and vesin (two independent implementations), pair for pair and in the CSR order
its contract states, on the shapes that break cell lists: cells much smaller than the cutoff (many
images), strongly triclinic cells, atoms far outside the cell, slabs, wires and clusters, a
cluster in a huge box, empty and one-atom structures, and whole batches; the serial and parallel
variants give the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list
from vesin import NeighborList

from acepy.kernels.numba_cpu import neighbors as nb


def _box(atoms: Atoms) -> np.ndarray:
    """An invertible box: non-periodic rows replaced by unit vectors orthogonal to the periodic ones."""
    cell, pbc = atoms.cell.array.copy(), atoms.pbc
    if pbc.all():
        return cell
    periodic = cell[pbc]
    complement = np.linalg.svd(periodic)[2][len(periodic):] if len(periodic) else np.eye(3)
    cell[pbc], cell[~pbc] = periodic, complement
    return cell


def _sorted(i, j, s):
    order = np.lexsort((s[:, 2], s[:, 1], s[:, 0], j, i))
    return i[order], j[order], s[order]


# both searches: pair by pair (structures up to SMALL_STRUCTURE atoms) and the cell list (the rest)
SEARCHES = {"pairwise": 10**9, "cell_list": 0}


def _search(structures, cutoff, small=nb.SMALL_STRUCTURE):
    pos = np.concatenate([a.positions for a in structures]) if structures else np.zeros((0, 3))
    boxes = np.array([_box(a) for a in structures]).reshape(-1, 3, 3)
    pbc = np.array([a.pbc for a in structures], dtype=bool).reshape(-1, 3)
    starts = np.concatenate([[0], np.cumsum([len(a) for a in structures])]).astype(np.int64)
    return nb.batch_pairs(pos, boxes, pbc, starts, cutoff, small)


def _check_against_ase(structures, cutoff, small=nb.SMALL_STRUCTURE):
    centers, neighbors, shifts, offsets = _search(structures, cutoff, small)
    lo, expected = 0, []
    for a in structures:
        i, j, s = neighbor_list("ijS", a, cutoff)
        expected.append((i + lo, j + lo, s))
        lo += len(a)
    i = np.concatenate([e[0] for e in expected]).astype(np.int64)
    j = np.concatenate([e[1] for e in expected]).astype(np.int64)
    s = np.concatenate([e[2] for e in expected]).reshape(-1, 3).astype(np.int64)
    i, j, s = _sorted(i, j, s)
    assert centers.shape == i.shape, (len(centers), len(i))
    np.testing.assert_array_equal(centers, i)
    np.testing.assert_array_equal(neighbors, j)
    np.testing.assert_array_equal(shifts, s)
    np.testing.assert_array_equal(offsets, np.searchsorted(centers, np.arange(lo + 1)))
    return centers


def _rattled(atoms, rng, amount=0.1):
    atoms = atoms.copy()
    atoms.positions += amount * rng.standard_normal(atoms.positions.shape)
    return atoms


@pytest.mark.parametrize("case", ["fcc8_big_cutoff", "fcc_far_outside", "triclinic", "skewed_small", "slab", "wire",
                                  "cluster", "cluster_in_huge_box", "one_atom_small_cell", "dimer_line"])
@pytest.mark.parametrize("search", sorted(SEARCHES))
def test_single_structures_match_ase(case, search):
    rng = np.random.default_rng()
    cutoff = 5.0
    if case == "fcc8_big_cutoff":  # 8 atoms, cutoff > 2 cell heights: images in every direction
        atoms, cutoff = _rattled(bulk("Al", "fcc", a=4.05, cubic=True).repeat((1, 1, 2)), rng, 0.05), 8.75
    elif case == "fcc_far_outside":  # unwrapped positions many cells away (MD without wrapping)
        atoms = _rattled(bulk("Cu", "fcc", a=3.6).repeat((3, 3, 3)), rng)
        atoms.positions += rng.integers(-40, 40, size=(len(atoms), 1)) * atoms.cell.array[0] + 13.7
    elif case == "triclinic":
        atoms = _rattled(bulk("Cu", "fcc", a=3.6).repeat((2, 3, 2)), rng)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.3 * rng.uniform(-1, 1, (3, 3))), scale_atoms=True)
    elif case == "skewed_small":  # a strongly sheared 2-atom cell: heights far below the cutoff
        atoms = Atoms("Cu2", cell=[[2.6, 0, 0], [2.2, 2.5, 0], [1.9, 0.7, 2.4]], pbc=True,
                      scaled_positions=[[0, 0, 0], [0.45, 0.55, 0.5]])
        atoms = _rattled(atoms, rng, 0.05)
        cutoff = 6.5
    elif case == "slab":
        atoms = _rattled(bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 3)), rng)
        atoms.pbc = [True, True, False]
        atoms.positions[:, 2] -= 30.0  # all below the cell along its non-periodic direction
    elif case == "wire":
        atoms = _rattled(bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 2, 2)), rng)
        atoms.pbc = [True, False, False]
    elif case == "cluster":
        atoms = Atoms("Cu40", positions=rng.uniform(-6, 6, (40, 3)), pbc=False)
    elif case == "cluster_in_huge_box":  # periodic, 300 A box: the grid is capped by the atom count
        atoms = Atoms("Cu30", positions=rng.uniform(0, 9, (30, 3)), cell=np.eye(3) * 300.0, pbc=True)
    elif case == "one_atom_small_cell":
        atoms = Atoms("Cu", positions=[[0.3, 0.2, 0.1]], cell=np.diag([2.1, 2.4, 2.2]), pbc=True)
        cutoff = 7.0
    else:  # two atoms on a line, a zero-volume extent along the other directions
        atoms = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]], pbc=False)
    found = _check_against_ase([atoms], cutoff, SEARCHES[search])
    assert len(found) > 0


@pytest.mark.parametrize("search", sorted(SEARCHES) + ["mixed"])
def test_batch_of_mixed_structures_matches_ase_and_vesin(search):
    rng = np.random.default_rng()
    structures = [
        _rattled(bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2)), rng),
        Atoms(),  # an empty structure keeps its place in the batch
        Atoms("Cu12", positions=rng.uniform(0, 7, (12, 3)), pbc=False),
        _rattled(bulk("Ni", "bcc", a=2.9, cubic=True).repeat((3, 1, 2)), rng),
        Atoms("Cu", positions=[[0.1, 0.2, 0.3]], cell=np.eye(3) * 20.0, pbc=True),  # alone, no pair
        _rattled(bulk("Cu", "fcc", a=3.6).repeat((3, 3, 3)), rng),
    ]
    cutoff = 5.5
    small = {"mixed": 12, **SEARCHES}[search]  # mixed: the 12-atom structures pair by pair, the others binned
    centers = _check_against_ase(structures, cutoff, small)
    # vesin, another independent search, structure by structure
    _, neighbors, shifts, _ = _search(structures, cutoff, small)
    lo = 0
    for a in structures:
        if len(a):
            i, j, s = NeighborList(cutoff=cutoff, full_list=True).compute(
                a.positions, _box(a), periodic=a.pbc, quantities="ijS")
            i, j, s = _sorted(i.astype(np.int64) + lo, j.astype(np.int64) + lo, s.astype(np.int64))
            mine = (centers >= lo) & (centers < lo + len(a))
            np.testing.assert_array_equal(centers[mine], i)
            np.testing.assert_array_equal(neighbors[mine], j)
            np.testing.assert_array_equal(shifts[mine], s)
        lo += len(a)


@pytest.mark.parametrize("search", sorted(SEARCHES))
def test_serial_and_parallel_variants_agree(monkeypatch, search):
    rng = np.random.default_rng()
    atoms = _rattled(bulk("Cu", "fcc", a=3.6).repeat((5, 5, 5)), rng)
    serial = _search([atoms], 6.0, SEARCHES[search])
    monkeypatch.setattr(nb, "pick", lambda pair, work: pair[1])
    parallel = _search([atoms], 6.0, SEARCHES[search])
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)



def test_one_launch_small_search_equals_the_launched_one(monkeypatch):
    """Batches of small structures below the parallel threshold are searched in one serial launch
    (``_small_pairs``: no bins, no cell-list arrays); it gives exactly the pairs, shifts and order
    of the launched pair-by-pair search, over slabs, wires, clusters, skewed and tiny cells, images
    of an atom itself and empty structures."""
    rng = np.random.default_rng()
    slab = _rattled(bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1)), rng)
    slab.pbc = [True, True, False]
    wire = _rattled(bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 2, 2)), rng)
    wire.pbc = [True, False, False]
    skewed = _rattled(Atoms("Cu2", cell=[[2.6, 0, 0], [2.2, 2.5, 0], [1.9, 0.7, 2.4]], pbc=True,
                            scaled_positions=[[0, 0, 0], [0.45, 0.55, 0.5]]), rng, 0.05)
    structures = [_rattled(bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1)), rng, 0.05), Atoms(), slab, wire,
                  Atoms("Cu9", positions=rng.uniform(-4, 4, (9, 3)), pbc=False), skewed,
                  Atoms("Cu", positions=[[0.3, 0.2, 0.1]], cell=np.diag([2.1, 2.4, 2.2]), pbc=True)]
    for batch in ([structures[0]], [structures[2]], [structures[5]], structures):
        monkeypatch.setattr(nb, "use_parallel", lambda work: False)
        one = _search(batch, 6.5, 10**9)
        monkeypatch.setattr(nb, "use_parallel", lambda work: True)  # the launched kernels (pick still decides)
        launched = _search(batch, 6.5, 10**9)
        for a, b in zip(one, launched):
            np.testing.assert_array_equal(a, b)
        assert len(one[0]) > 0

def test_no_atoms_at_all():
    centers, neighbors, shifts, offsets = _search([], 5.0)
    assert centers.shape == (0,) and shifts.shape == (0, 3) and offsets.tolist() == [0]
    centers, neighbors, shifts, offsets = _search([Atoms(), Atoms()], 5.0)
    assert centers.shape == (0,) and offsets.tolist() == [0]


def test_cutoff_far_beyond_the_cell_is_refused_not_wrapped():
    atoms = Atoms("Cu", positions=[[0, 0, 0]], cell=np.eye(3) * 1e-3, pbc=True)
    with pytest.raises(ValueError, match="images"):
        _search([atoms], 1e4, 0)


def test_edge_vectors_without_gradient_equal_the_differentiable_formula():
    """``acepy.graph.edge_vectors`` takes a Numba pass when no gradient is wanted (float64, CPU) and
    the torch formula otherwise: the same vectors, on a batch of several structures (per-edge cells)
    and on one structure."""
    import torch

    from acepy import batch_from_atoms
    from acepy.graph import edge_vectors, neighbor_graph

    rng = np.random.default_rng()
    structures = [_rattled(bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2)), rng),
                  Atoms("Cu9", positions=rng.uniform(0, 6, (9, 3)), pbc=False),
                  _rattled(bulk("Cu", "fcc", a=3.7, cubic=True).repeat((1, 2, 1)), rng)]
    structures[2].set_cell(structures[2].cell[:] + rng.normal(scale=0.2, size=(3, 3)), scale_atoms=True)
    for batch_structures in (structures, structures[:1]):
        batch = batch_from_atoms(batch_structures)
        graph = neighbor_graph(batch, 5.0)
        fast = edge_vectors(batch.positions, batch.cell, graph)
        positions = batch.positions.clone().requires_grad_(True)
        exact = edge_vectors(positions, batch.cell, graph)
        assert exact.requires_grad and not fast.requires_grad
        np.testing.assert_allclose(fast.numpy(), exact.detach().numpy(), rtol=0, atol=1e-13)
