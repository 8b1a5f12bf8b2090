"""Batches, neighbour graphs and the graph cache, checked against ASE's neighbour list.

ASE's ``neighbor_list`` is an independent implementation (not vesin), so the sets of edges
``(i, j, S)`` must agree exactly.
"""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list
from scipy.spatial.transform import Rotation

from acepy.batch import Batch, batch_from_atoms
from acepy.graph import GraphCache, edge_distances, edge_vectors, filter_graph, neighbor_graph

CUDA = torch.cuda.is_available()


# --------------------------------------------------------------------------- structures


def random_atoms(n, cell, pbc, seed, min_dist=0.7):
    """``n`` atoms at random fractional positions, no two closer than ``min_dist`` (in-cell)."""
    rng = np.random.default_rng(seed)
    cell = np.asarray(cell, dtype=float)
    pts = []
    extent = np.where(np.linalg.norm(cell, axis=1) > 0, 1.0, 0.0)
    while len(pts) < n:
        p = (rng.random(3) * extent) @ cell
        if all(np.linalg.norm(p - q) >= min_dist for q in pts):
            pts.append(p)
    numbers = rng.choice([1, 6, 8, 29], size=n)
    return Atoms(numbers=numbers, positions=np.array(pts).reshape(-1, 3), cell=cell, pbc=pbc)


def cubic():
    return random_atoms(20, np.eye(3) * 6.0, True, seed=1)


def triclinic():
    cell = [[6.0, 0.0, 0.0], [2.5, 5.5, 0.0], [-1.5, 1.8, 6.2]]
    return random_atoms(18, cell, True, seed=2)


def small_cell():
    # Every cell vector is much shorter than the cutoff: many periodic images of each atom.
    cell = [[2.1, 0.0, 0.0], [0.7, 2.3, 0.0], [0.4, -0.5, 2.6]]
    return random_atoms(2, cell, True, seed=3, min_dist=0.5)


def slab():
    # pbc (T, T, F) with a zero cell vector along z, as ASE builds slabs without vacuum.
    atoms = random_atoms(16, [[5.0, 0, 0], [1.0, 5.5, 0], [0, 0, 7.0]], [True, True, False], seed=4)
    atoms.cell[2] = 0.0
    return atoms


def tilted_slab():
    # pbc (T, T, F) with a tilted non-periodic vector: it must play no role.
    cell = [[4.0, 0.0, 0.0], [0.0, 4.5, 0.0], [3.0, 2.0, 8.0]]
    return random_atoms(12, cell, [True, True, False], seed=5)


def wire():
    atoms = random_atoms(8, [[6.0, 0, 0], [0, 6.0, 0], [0, 0, 3.0]], [False, False, True], seed=6)
    atoms.cell[0] = atoms.cell[1] = 0.0
    return atoms


def cluster():
    pos = random_atoms(15, np.eye(3) * 7.0, False, seed=7).positions - 20.0
    return Atoms(numbers=[6] * 15, positions=pos)  # no cell at all


def one_atom_cluster():
    return Atoms("Cu", positions=[[1.0, 2.0, 3.0]])


def one_atom_periodic():
    return Atoms("Cu", positions=[[0.3, 0.2, 0.1]], cell=np.eye(3) * 2.5, pbc=True)


def sparse_gas():
    # Atoms further apart than the cutoff in a big periodic box: no neighbours at all.
    return Atoms("H3", positions=[[0, 0, 0], [10, 0, 0], [0, 10, 0]], cell=np.eye(3) * 20.0, pbc=True)


def empty():
    return Atoms(cell=np.eye(3) * 5.0, pbc=True)


ALL = [cubic, triclinic, small_cell, slab, tilted_slab, wire, cluster, one_atom_cluster,
       one_atom_periodic, sparse_gas, empty]
CUTOFF = 4.5


# --------------------------------------------------------------------------- helpers


def ase_edges(atoms, cutoff, start=0):
    """ASE's edges as a set of (i, j, S) with atom indices offset by ``start``."""
    if len(atoms) == 0:
        return set()
    i, j, s = neighbor_list("ijS", atoms, cutoff)
    return {(int(a) + start, int(b) + start, *map(int, c)) for a, b, c in zip(i, j, s)}


def graph_edges(graph):
    return {(int(a), int(b), *map(int, c)) for a, b, c in zip(graph.centers, graph.neighbors, graph.shifts)}


def edges_of(structures, cutoff):
    out, start = set(), 0
    for atoms in structures:
        out |= ase_edges(atoms, cutoff, start)
        start += len(atoms)
    return out


def check_csr(graph, batch):
    c = graph.centers
    assert graph.offsets.shape == (batch.n_atoms + 1,)
    assert int(graph.offsets[0]) == 0 and int(graph.offsets[-1]) == graph.n_edges
    assert bool((graph.offsets[1:] >= graph.offsets[:-1]).all())
    assert torch.equal(graph.offsets[1:] - graph.offsets[:-1], torch.bincount(c, minlength=batch.n_atoms))
    assert bool((c[1:] >= c[:-1]).all()), "edges not sorted by centre"
    # Within a centre the order is (neighbour, shift), lexicographic.
    keys = torch.cat([c[:, None], graph.neighbors[:, None], graph.shifts], dim=1).tolist()
    assert keys == sorted(keys)
    assert torch.equal(graph.edge_system, batch.system_idx[c])
    assert torch.equal(graph.edge_system, batch.system_idx[graph.neighbors])
    self_zero = (c == graph.neighbors) & (graph.shifts == 0).all(dim=1)
    assert not bool(self_zero.any())
    # Full list: (i, j, S) and (j, i, -S) both present.
    edges = graph_edges(graph)
    assert {(j, i, -a, -b, -cc) for i, j, a, b, cc in edges} == edges
    for t in (graph.centers, graph.neighbors, graph.shifts, graph.edge_system, graph.offsets):
        assert t.dtype == torch.int64


# --------------------------------------------------------------------------- batch


def test_batch_layout_and_volumes():
    structures = [cubic(), empty(), cluster(), small_cell()]
    batch = batch_from_atoms(structures)
    counts = [len(a) for a in structures]
    assert batch.n_systems == 4 and batch.n_atoms == sum(counts)
    assert batch.atom_offsets.tolist() == [0, *np.cumsum(counts).tolist()]
    assert batch.system_idx.tolist() == sum(([b] * n for b, n in enumerate(counts)), [])
    assert batch.numbers.dtype == torch.int64 and batch.pbc.dtype == torch.bool
    expected = [abs(np.linalg.det(a.cell[:])) for a in structures]
    np.testing.assert_allclose(batch.volumes().numpy(), expected, rtol=1e-12)
    assert float(batch.volumes()[2]) == 0.0  # the cluster has no cell: callers decide
    b32 = batch.to(dtype=torch.float32)
    assert b32.positions.dtype == torch.float32 and b32.cell.dtype == torch.float32
    assert b32.numbers.dtype == torch.int64 and torch.equal(b32.atom_offsets, batch.atom_offsets)
    single = batch_from_atoms(cubic(), dtype=torch.float32)
    assert single.n_systems == 1 and single.positions.dtype == torch.float32


# --------------------------------------------------------------------------- graph vs ASE


@pytest.mark.parametrize("make", ALL, ids=lambda f: f.__name__)
def test_single_structure_matches_ase(make):
    atoms = make()
    batch = batch_from_atoms(atoms)
    graph = neighbor_graph(batch, CUTOFF)
    check_csr(graph, batch)
    assert graph.cutoff == CUTOFF and graph.n_atoms == len(atoms) and graph.n_systems == 1
    assert graph_edges(graph) == ase_edges(atoms, CUTOFF)
    if make in (one_atom_cluster, sparse_gas, empty):
        assert graph.n_edges == 0
    if make is small_cell:
        assert graph.n_edges > 100  # many images
        assert int(((graph.centers == graph.neighbors)).sum()) > 0  # an atom sees its own images


def test_mixed_batch_matches_ase():
    structures = [f() for f in ALL] + [empty(), cubic()]
    batch = batch_from_atoms(structures)
    graph = neighbor_graph(batch, CUTOFF)
    check_csr(graph, batch)
    assert graph.n_systems == len(structures)
    assert graph_edges(graph) == edges_of(structures, CUTOFF)
    # A batch is its structures one by one, with atom indices offset.
    for b, atoms in enumerate(structures):
        lo = int(batch.atom_offsets[b])
        one = neighbor_graph(batch_from_atoms(atoms), CUTOFF)
        mine = graph.edge_system == b
        assert torch.equal(graph.centers[mine] - lo, one.centers)
        assert torch.equal(graph.neighbors[mine] - lo, one.neighbors)
        assert torch.equal(graph.shifts[mine], one.shifts)


def test_edge_vectors_match_ase_and_are_deterministic():
    structures = [triclinic(), small_cell(), slab(), cluster()]
    batch = batch_from_atoms(structures)
    graph = neighbor_graph(batch, CUTOFF)
    again = neighbor_graph(batch, CUTOFF)
    for a, b in zip((graph.centers, graph.neighbors, graph.shifts), (again.centers, again.neighbors, again.shifts)):
        assert torch.equal(a, b)
    vec = edge_vectors(batch.positions, batch.cell, graph)
    keys = [(int(a), int(b), *map(int, c)) for a, b, c in zip(graph.centers, graph.neighbors, graph.shifts)]
    ours = dict(zip(keys, vec.tolist()))
    assert len(ours) == graph.n_edges
    start = 0
    for atoms in structures:
        i, j, s, d = neighbor_list("ijSD", atoms, CUTOFF)
        for a, b, c, v in zip(i, j, s, d):
            np.testing.assert_allclose(ours[(a + start, b + start, *c)], v, atol=1e-12)
        start += len(atoms)
    dist = edge_distances(batch.positions, batch.cell, graph)
    assert bool((dist < CUTOFF).all()) and bool((dist > 0).all())


def test_edge_vectors_gradient_matches_finite_differences():
    atoms = small_cell()
    batch = batch_from_atoms(atoms)
    graph = neighbor_graph(batch, 3.5)
    pos = batch.positions.clone().requires_grad_(True)
    cell = batch.cell.clone().requires_grad_(True)

    def energy(p, c):  # any smooth function of the edge vectors
        r = edge_vectors(p, c, graph).norm(dim=1)
        return torch.cos(r).sum() + (r**2).sum()

    assert torch.autograd.gradcheck(energy, (pos, cell))
    assert torch.autograd.gradgradcheck(energy, (pos, cell))


def test_rotation_and_translation_give_same_edges():
    rng = np.random.default_rng(11)
    base = [triclinic(), slab(), cluster()]
    moved = []
    for atoms in base:
        rot = Rotation.random(random_state=12).as_matrix()
        shift = rng.normal(size=3) * 5.0
        new = atoms.copy()
        new.positions = atoms.positions @ rot.T + shift
        new.cell = atoms.cell[:] @ rot.T
        moved.append(new)
    b0, b1 = batch_from_atoms(base), batch_from_atoms(moved)
    g0, g1 = neighbor_graph(b0, CUTOFF), neighbor_graph(b1, CUTOFF)
    assert graph_edges(g0) == graph_edges(g1)
    d0 = edge_distances(b0.positions, b0.cell, g0)
    d1 = edge_distances(b1.positions, b1.cell, g1)
    torch.testing.assert_close(d0, d1, rtol=0, atol=1e-11)


def test_translation_across_the_cell_keeps_distances():
    # Unwrapped positions (atoms outside the cell) are fine: shifts refer to the given positions.
    # The slab ends up with all z < 0 along its non-periodic direction (vesin < 0.5.8 lost pairs there).
    for make in (cubic, slab, tilted_slab):
        atoms = make()
        outside = atoms.copy()
        outside.positions += np.array([13.0, -25.0, -47.5])
        b0, b1 = batch_from_atoms(atoms), batch_from_atoms(outside)
        g0, g1 = neighbor_graph(b0, CUTOFF), neighbor_graph(b1, CUTOFF)
        assert graph_edges(g1) == ase_edges(outside, CUTOFF)
        assert graph_edges(g0) == graph_edges(g1)


def test_degenerate_non_periodic_vectors_play_no_role():
    # ASE's own neighbour list fails on these cells (it inverts the whole cell); the non-periodic
    # vectors never enter r_ij, so the reference is the same atoms with a sensible cell.
    for make, bad_cell in ((tilted_slab, lambda c: [c[0], c[1], c[0]]),
                           (wire, lambda c: [[0, 0, 3.0], [0, 0, 0], c[2]]),
                           (cluster, lambda c: [[1.0, 0, 0], [2.0, 0, 0], [0, 0, 0]])):
        reference = make()
        atoms = reference.copy()
        atoms.cell = bad_cell(reference.cell[:])
        assert graph_edges(neighbor_graph(batch_from_atoms(atoms), CUTOFF)) == ase_edges(reference, CUTOFF)


def test_edge_order_packed_key_and_fallback_agree():
    from acepy.graph import _lexicographic_order

    rng = np.random.default_rng(3)
    i, j = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    s = rng.integers(-3, 4, (500, 3))
    expected = sorted(range(500), key=lambda e: (i[e], j[e], *s[e], e))
    assert _lexicographic_order(i, j, s, 7).tolist() == expected
    assert _lexicographic_order(i, j, s, 2**40).tolist() == expected  # too big to pack: lexsort


def test_cutoff_is_strict():
    atoms = Atoms("H2", positions=[[0, 0, 0], [3.0, 0, 0]])
    batch = batch_from_atoms(atoms)
    assert neighbor_graph(batch, 3.0).n_edges == 0
    assert neighbor_graph(batch, 3.0 + 1e-12).n_edges == 2


def test_float32_batch_gives_same_graph():
    structures = [triclinic(), slab(), small_cell()]
    g64 = neighbor_graph(batch_from_atoms(structures), CUTOFF)
    g32 = neighbor_graph(batch_from_atoms(structures, dtype=torch.float32), CUTOFF)
    assert graph_edges(g32) == graph_edges(g64)


def test_filter_graph_equals_fresh_search():
    structures = [triclinic(), small_cell(), cluster()]
    batch = batch_from_atoms(structures)
    big = neighbor_graph(batch, CUTOFF)
    vec = edge_vectors(batch.positions, batch.cell, big)
    for rc in (3.0, 2.2, 0.1):
        view = filter_graph(big, vec, rc)
        fresh = neighbor_graph(batch, rc)
        check_csr(view, batch)
        assert view.cutoff == rc
        for a, b in zip((view.centers, view.neighbors, view.shifts, view.edge_system, view.offsets),
                        (fresh.centers, fresh.neighbors, fresh.shifts, fresh.edge_system, fresh.offsets)):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match="larger cutoff"):
        filter_graph(big, vec, CUTOFF + 1.0)


# --------------------------------------------------------------------------- cache


def test_cache_one_search_for_all_cutoffs():
    structures = [triclinic(), slab(), cluster()]
    batch = batch_from_atoms(structures)
    cache = GraphCache([4.5, None, 3.0, 4.5, 3.0])
    graphs = cache.graphs(batch)
    assert set(graphs) == {3.0, 4.5}
    assert cache.n_searches == 1 and cache.n_views == 1  # one view: the 3.0 cutoff
    big, small = graphs[4.5], graphs[3.0]
    assert graph_edges(small) <= graph_edges(big)
    assert graph_edges(big) == edges_of(structures, 4.5)
    assert graph_edges(small) == edges_of(structures, 3.0)
    check_csr(small, batch)

    cache.reset_counters()
    again = cache.graphs(batch)
    assert cache.n_searches == 0 and cache.n_views == 0
    assert again[3.0] is small and again[4.5] is big

    # An equal batch built anew (other tensor objects, same values) is still a cache hit.
    cache.graphs(batch_from_atoms(structures))
    assert cache.n_searches == 0

    moved = Batch(batch.positions + 0.01, batch.numbers, batch.cell, batch.pbc, batch.system_idx)
    cache.graphs(moved)
    assert cache.n_searches == 1 and cache.n_views == 1

    cache.invalidate()
    cache.graphs(moved)
    assert cache.n_searches == 2


def test_cache_notices_in_place_changes_and_other_inputs():
    batch = batch_from_atoms([triclinic(), cubic()])
    cache = GraphCache([4.0])
    cache.graphs(batch)
    batch.positions[3, 0] += 0.5  # in place: the same tensor object, new values
    cache.graphs(batch)
    assert cache.n_searches == 2 and cache.n_views == 0
    other_numbers = Batch(batch.positions, batch.numbers.flip(0), batch.cell, batch.pbc, batch.system_idx)
    cache.graphs(other_numbers)
    assert cache.n_searches == 3
    assert GraphCache([None, None]).graphs(batch) == {}


def test_cache_skin_reuse():
    structures = [triclinic(), slab(), small_cell()]
    batch = batch_from_atoms(structures)
    cache = GraphCache([4.0, 2.5], skin=0.6)
    first = cache.graphs(batch)
    assert cache.n_searches == 1 and cache.n_views == 2  # with a skin every cutoff is a view

    rng = np.random.default_rng(5)
    positions = batch.positions.clone()
    for step in range(4):
        # Moves below skin/2 = 0.3 per atom: no new search, views refiltered each call.
        positions = batch.positions + torch.from_numpy(rng.uniform(-0.17, 0.17, positions.shape))
        moved = Batch(positions, batch.numbers, batch.cell, batch.pbc, batch.system_idx)
        graphs = cache.graphs(moved)
        assert cache.n_searches == 1 and cache.n_views == 2 * (step + 2)
        for rc, view in graphs.items():
            fresh = neighbor_graph(moved, rc)
            for a, b in zip((view.centers, view.neighbors, view.shifts, view.offsets),
                            (fresh.centers, fresh.neighbors, fresh.shifts, fresh.offsets)):
                assert torch.equal(a, b)
    assert first[4.0].n_edges > 0

    # One atom moves more than skin/2: a new search.
    far = positions.clone()
    far[0] += torch.tensor([0.35, 0.0, 0.0], dtype=far.dtype)
    cache.graphs(Batch(far, batch.numbers, batch.cell, batch.pbc, batch.system_idx))
    assert cache.n_searches == 2

    # A changed cell: a new search even for a tiny change.
    cell = batch.cell.clone()
    cell[0, 0, 0] += 1e-6
    cache.graphs(Batch(far, batch.numbers, cell, batch.pbc, batch.system_idx))
    assert cache.n_searches == 3


def _edge_key(graph):
    return (graph.centers.tolist(), graph.neighbors.tolist(), graph.shifts.tolist())


def test_cache_is_per_thread():
    """Each Python thread keeps its own last search: another thread's call on other positions
    neither evicts it nor is handed it."""
    import threading

    first, second = batch_from_atoms([cubic()]), batch_from_atoms([cubic()])
    second.positions[:] += torch.from_numpy(np.random.default_rng(7).uniform(-0.3, 0.3, (20, 3)))
    cache = GraphCache([4.0, 2.5])
    mine = cache.graphs(first)
    other = {}
    worker = threading.Thread(target=lambda: other.update(cache.graphs(second)))
    worker.start()
    worker.join()
    assert cache.n_searches == 2
    again = cache.graphs(first)
    assert cache.n_searches == 2, "the other thread's call evicted this thread's search"
    assert all(again[c] is mine[c] for c in mine)
    for c in (4.0, 2.5):
        assert _edge_key(other[c]) == _edge_key(neighbor_graph(second, c))
        assert _edge_key(again[c]) == _edge_key(neighbor_graph(first, c))
    cache.invalidate()  # from this thread: every thread's entry is stale
    cache.graphs(first)
    assert cache.n_searches == 3


@pytest.mark.parametrize("skin", [0.0, 0.4])
def test_cache_shared_by_two_threads_gives_each_its_own_graphs(skin):
    """Two threads calling one cache at once with structures of the same cell and numbers (the
    equality test sees no difference in topology) always get the graphs of their own positions.
    A cache shared between threads handed one thread the other's views about once in 600 calls."""
    import threading

    rng = np.random.default_rng()
    base = cubic()
    batches, want = [], []
    for k in range(2):
        atoms = base.copy()
        atoms.positions += rng.uniform(-0.15, 0.15, atoms.positions.shape)
        batch = batch_from_atoms([atoms])
        batches.append(batch)
        want.append({c: _edge_key(neighbor_graph(batch, c)) for c in (4.0, 2.5)})
    cache = GraphCache([4.0, 2.5], skin=skin)
    start, wrong = threading.Barrier(2), []

    def work(k):
        start.wait()
        for step in range(1500):
            batch = batches[k] if step % 3 else batch_from_atoms([base])  # a miss now and then
            graphs = cache.graphs(batch)
            if batch is batches[k]:
                wrong.extend((k, step, c) for c in graphs if _edge_key(graphs[c]) != want[k][c])

    workers = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not wrong, f"{len(wrong)} calls got another thread's graphs, first (thread, call, cutoff): {wrong[0]}"


def test_cell_results_kept_per_cell_and_redone_for_a_changed_one():
    """The cell-only results kept between calls (singularity check, volumes, search boxes) are
    those of the cell as it is now: a cell changed in place, even to one bit, is a new cell."""
    from acepy.batch import CellMemo
    from acepy.errors import StructureError

    atoms = triclinic()
    batch = batch_from_atoms([atoms])
    want = abs(np.linalg.det(atoms.cell.array))
    assert float(batch.volumes()[0]) == want
    assert graph_edges(neighbor_graph(batch, 4.0)) == edges_of([atoms], 4.0)
    # the same cell object changed in place: skewed (a new reduction), then a new volume
    skewed = atoms.copy()
    skewed.set_cell(atoms.cell.array + np.outer([0, 1, 0], atoms.cell.array[0]) * 3.0, scale_atoms=False)
    batch.cell[0] = torch.from_numpy(skewed.cell.array)
    batch.validate()
    assert float(batch.volumes()[0]) == abs(np.linalg.det(skewed.cell.array))
    assert graph_edges(neighbor_graph(batch, 4.0)) == edges_of([skewed], 4.0)
    v = batch.volumes()
    v[0] = -1.0  # a caller writing into the result does not reach the kept value
    assert float(batch.volumes()[0]) == abs(np.linalg.det(skewed.cell.array))
    batch.cell[0, 1] = batch.cell[0, 0] * (1 + 2**-50)  # now singular along periodic directions
    with pytest.raises(StructureError, match="linearly dependent"):
        batch.validate()
    # bounded: the oldest entry goes
    memo = CellMemo(size=3)
    for k in range(10):
        assert memo.get(np.full((1, 3, 3), float(k)), np.ones((1, 3), bool), lambda: k) == k
    assert len(memo._entries) == 3
    # big batches are not kept
    assert memo.get(np.zeros((memo.max_structures + 1, 3, 3)), np.ones((memo.max_structures + 1, 3), bool),
                    lambda: "x") == "x" and len(memo._entries) == 3


# --------------------------------------------------------------------------- errors


def test_nan_position_names_structure_and_atom():
    structures = [cubic(), triclinic(), cubic()]
    structures[2].positions[17] = [0.0, np.nan, 1.0]
    with pytest.raises(ValueError, match=r"structure 2, atom 17: position is not finite"):
        batch_from_atoms(structures)
    # A batch built by hand is checked by the neighbour search as well.
    good = batch_from_atoms([cubic(), cubic()])
    pos = good.positions.clone()
    pos[25, 1] = float("inf")
    with pytest.raises(ValueError, match=r"structure 1, atom 5: position is not finite"):
        neighbor_graph(Batch(pos, good.numbers, good.cell, good.pbc, good.system_idx), 3.0)


def test_singular_periodic_cell():
    atoms = cubic()
    atoms.cell[2] = [6.0, 0.0, 0.0]  # parallel to the first vector
    with pytest.raises(ValueError, match=r"structure 1: the cell is singular \(volume 0\) but pbc is \(True, True, True\)"):
        batch_from_atoms([cubic(), atoms])
    zero = cubic()
    zero.cell[1] = 0.0
    with pytest.raises(ValueError, match=r"structure 0: the cell is singular .*cell vector 1 is zero"):
        batch_from_atoms(zero)
    # The same zero vector along a non-periodic direction is fine.
    zero.pbc = [True, False, True]
    assert graph_edges(neighbor_graph(batch_from_atoms(zero), CUTOFF)) == ase_edges(zero, CUTOFF)


def test_shape_and_order_errors():
    b = batch_from_atoms([cubic(), cubic()])
    with pytest.raises(ValueError, match="numbers must have shape"):
        Batch(b.positions, b.numbers[:-1], b.cell, b.pbc, b.system_idx)
    with pytest.raises(ValueError, match="pbc must be"):
        Batch(b.positions, b.numbers, b.cell, b.pbc[:1], b.system_idx)
    with pytest.raises(ValueError, match="system_idx must be sorted"):
        neighbor_graph(Batch(b.positions, b.numbers, b.cell, b.pbc, b.system_idx.flip(0)), 3.0)
    with pytest.raises(ValueError, match="cutoff"):
        neighbor_graph(b, 0.0)
    with pytest.raises(ValueError, match="at least one structure"):
        batch_from_atoms([])


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_graph_on_cuda_batch():
    structures = [triclinic(), slab(), cluster(), empty()]
    cpu = batch_from_atoms(structures)
    gpu = batch_from_atoms(structures, device="cuda")
    g_cpu, g_gpu = neighbor_graph(cpu, CUTOFF), neighbor_graph(gpu, CUTOFF)
    assert g_gpu.device.type == "cuda"
    assert graph_edges(g_gpu.to("cpu")) == graph_edges(g_cpu)
    cache = GraphCache([CUTOFF, 3.0], skin=0.4)
    graphs = cache.graphs(gpu)
    assert all(g.device.type == "cuda" for g in graphs.values())
    assert graph_edges(graphs[3.0].to("cpu")) == edges_of(structures, 3.0)
