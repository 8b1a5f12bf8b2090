"""kernels/numba_cpu/cells.py: one cell's checks in one compiled call, against the NumPy code that
batches use (acepy.batch._check_periodic_vectors, acepy.graph_checks._is_reduced, np.linalg)."""

from __future__ import annotations

import numpy as np
import pytest

from acepy.batch import check_periodic_cells
from acepy.errors import StructureError
from acepy.graph_checks import _cell_layout, _is_reduced
from acepy.kernels.numba_cpu.cells import cell_facts


def _normalized_volume(cell, pbc):  # the formula of acepy.batch._check_periodic_vectors, written again
    lengths = np.linalg.norm(cell, axis=1)
    unit = np.where(pbc[:, None], cell / np.maximum(lengths, 1e-300)[:, None], 0.0)
    gram = unit @ unit.T + np.diag((~pbc).astype(float))
    return np.sqrt(max(np.linalg.det(gram), 0.0))


def _random_cells(rng, n=300):
    for _ in range(n):
        kind = rng.integers(4)
        cell = rng.normal(0.0, 1.0, (3, 3)) * rng.uniform(1.0, 30.0)
        if kind == 1:  # near-cubic (reduced)
            cell = np.diag(rng.uniform(2.0, 20.0, 3)) + rng.normal(0.0, 0.05, (3, 3))
        elif kind == 2:  # sheared far out of reduction
            cell = np.diag(rng.uniform(2.0, 20.0, 3))
            cell[1] += rng.integers(-5, 6) * cell[0]
        elif kind == 3:  # nearly dependent vectors
            cell[2] = cell[0] + cell[1] + rng.normal(0.0, 10.0 ** -rng.uniform(3, 12), 3)
        pbc = rng.random(3) < 0.8
        yield cell, pbc


def test_facts_against_numpy_on_random_cells():
    rng = np.random.default_rng()
    for cell, pbc in _random_cells(rng):
        inverse = np.full((3, 3), np.nan)
        zero, nv, reduced, det = cell_facts(cell, pbc, inverse)
        assert not zero
        assert abs(det - np.linalg.det(cell)) <= 1e-12 * np.prod(np.linalg.norm(cell, axis=1))
        # (compared squared: the Gram determinant, whose rounding is ~1e-16 near a dependent set)
        assert abs(nv ** 2 - _normalized_volume(cell, pbc) ** 2) <= 1e-14
        assert reduced == bool(_is_reduced(cell[None])[0])
        if abs(det) > 1e-6 * np.prod(np.linalg.norm(cell, axis=1)):  # well conditioned: the inverse
            np.testing.assert_allclose(inverse @ cell, np.eye(3), rtol=0, atol=1e-9)


def test_zero_periodic_vector_and_singular_cells_still_raise_named_errors():
    cell = np.diag([4.0, 4.0, 4.0])
    flat = cell.copy()
    flat[2] = 0.0
    zero, *_ = cell_facts(flat, np.array([True, True, True]), np.empty((3, 3)))
    assert zero
    assert not cell_facts(flat, np.array([True, True, False]), np.empty((3, 3)))[0]  # not periodic: allowed
    with pytest.raises(StructureError, match="cell vector 2 is zero along a periodic direction"):
        check_periodic_cells(flat[None], np.ones((1, 3), dtype=bool))
    check_periodic_cells(flat[None], np.array([[True, True, False]]))  # a slab: fine
    dependent = cell.copy()
    dependent[2] = dependent[0] * 2.0
    with pytest.raises(StructureError, match="linearly dependent"):
        check_periodic_cells(dependent[None], np.ones((1, 3), dtype=bool))
    nearly = cell.copy()
    nearly[2] = np.array([4.0, 0.0, 4e-5])  # thin but a lattice
    check_periodic_cells(nearly[None], np.ones((1, 3), dtype=bool))


def test_one_cell_layout_equals_the_batch_layout():
    """The search box of one periodic cell from the compiled call: the same decisions and volumes
    as the NumPy layout of a batch holding that cell (the inverses to rounding)."""
    rng = np.random.default_rng()
    for cell, pbc in _random_cells(rng, 100):
        if abs(np.linalg.det(cell)) < 1e-6 * np.prod(np.linalg.norm(cell, axis=1)):
            continue
        pbc = np.ones(3, dtype=bool)
        one = _cell_layout(cell[None], pbc[None])
        two = _cell_layout(np.stack([cell, cell]), np.stack([pbc, pbc]))  # (two cells: the NumPy path)
        assert one[0].tolist() == two[0][:1].tolist()
        np.testing.assert_allclose(one[1], two[1][: one[1].size], rtol=1e-13)
        np.testing.assert_array_equal(one[2][0], two[2][0])
        np.testing.assert_allclose(one[3][0], two[3][0], rtol=1e-10, atol=1e-14)
        assert one[4].keys() == {k for k in two[4] if k == 0}
        np.testing.assert_array_equal(one[4].get(0, np.eye(3)), two[4].get(0, np.eye(3)))
