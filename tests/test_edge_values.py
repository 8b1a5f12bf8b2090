"""The neighbour search's own edge vectors, reused by the evaluation at the same positions.

``neighbor_graph`` computes every edge vector once for its final ``r < cutoff`` filter; the graph
keeps them (``Graph.values``) with copies of the positions and cell they were computed at, and
``Stack._inputs`` takes them instead of a second Numba pass, only for exactly equal positions and
cell on the CPU float64 fast path. A graph reused for moved positions (a skin) must never hand out
the stale vectors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

import acepy
from acepy import graph as graph_module
from acepy.graph import edge_vectors, neighbor_graph, reuse_edge_values


def _cell(rng, repeat=(2, 2, 2)):
    atoms = bulk("Cu", "fcc", a=3.61 * rng.uniform(0.97, 1.03), cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
    return atoms


def test_graph_keeps_exactly_what_edge_vectors_computes():
    rng = np.random.default_rng()
    batch = acepy.batch_from_atoms([_cell(rng), _cell(rng, (1, 2, 2))])
    cutoff = float(rng.uniform(4.0, 6.0))
    graph = neighbor_graph(batch, cutoff)
    own = reuse_edge_values(graph, batch.positions.clone(), batch.cell.clone())  # equal, not the same tensors
    assert own is not None
    ref = edge_vectors(batch.positions, batch.cell, graph)
    assert torch.equal(own.vectors, ref) and torch.equal(own.distances, torch.linalg.vector_norm(ref, dim=1))
    assert float(own.distances.max()) < cutoff
    # anything else computes afresh: moved positions, another cell, float32, a gradient wanted
    moved = batch.positions.clone()
    moved[int(rng.integers(len(moved))), int(rng.integers(3))] += 1e-12
    assert reuse_edge_values(graph, moved, batch.cell) is None
    assert reuse_edge_values(graph, batch.positions, batch.cell * (1 + 1e-15)) is None
    assert reuse_edge_values(graph, batch.positions.float(), batch.cell.float()) is None
    assert reuse_edge_values(graph, batch.positions.clone().requires_grad_(True), batch.cell) is None
    # positions changed in place after the search: the graph kept a copy
    batch.positions[0, 0] += 0.01
    assert reuse_edge_values(graph, batch.positions, batch.cell) is None


def test_evaluation_equals_the_one_without_reuse(monkeypatch):
    """Same numbers, to the last bit, with and without the search's vectors."""
    rng = np.random.default_rng()
    atoms = _cell(rng)
    model = acepy.load("Cu-EMT-fit")
    calls = []
    monkeypatch.setattr(graph_module, "_edge_vectors_numba",
                        lambda *a, _f=graph_module._edge_vectors_numba: calls.append(1) or _f(*a))
    # timed calls take the general path (the lean pass of one structure: test_single_structure.py)
    reused = model.evaluate(atoms, timings={})
    assert len(calls) == 1  # the search's filter only: the evaluation took its vectors
    monkeypatch.setattr(graph_module, "VALUES_MAX_EDGES", 0)
    fresh = acepy.load("Cu-EMT-fit").evaluate(atoms, timings={})
    assert len(calls) == 3  # without values: the filter, then the evaluation's own pass
    for key in ("energies", "forces", "stress"):
        assert torch.equal(reused[key], fresh[key]), key


@pytest.mark.parametrize("skin", [0.0, 0.8])
def test_moved_structure_does_not_reuse_stale_vectors(skin):
    """An MD-like sequence on one model (with a skin the search is reused for the moved positions):
    every call equals a fresh model's call on the same positions, and a moved call recomputes."""
    rng = np.random.default_rng()
    atoms = _cell(rng)
    model = acepy.load("Cu-EMT-fit", skin=skin)
    model.evaluate(atoms, timings={})  # (timed: the general path, whose graphs are read below)
    for _ in range(3):
        atoms.positions += rng.normal(0.0, 0.02, atoms.positions.shape)  # well inside skin / 2
        got = model.evaluate(atoms, timings={})
        ref = acepy.load("Cu-EMT-fit").evaluate(atoms, timings={})
        for key in ("energies", "forces", "stress"):
            torch.testing.assert_close(got[key], ref[key], rtol=0, atol=1e-12)
    assert model.graph_cache.n_searches == (1 if skin else 4)
    graph = model.graph_cache.graphs(acepy.batch_from_atoms(atoms))[model.components[1].cutoff]
    if skin:  # the reused search's values belong to the first positions: never handed out again
        assert reuse_edge_values(graph, acepy.batch_from_atoms(atoms).positions, graph.values.cell) is None
