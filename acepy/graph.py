"""Neighbour graphs of a batch, and the per-cutoff graph cache.

An edge ``(i, j, S)`` stands for the vector ``r_ij = x_j - x_i + S @ cell[b]`` where ``b`` is the
structure of both atoms and ``S`` an integer cell shift (zero along non-periodic directions). Lists
are full (both ``(i, j, S)`` and ``(j, i, -S)``), contain no self-pair with zero shift, and hold
exactly the pairs with ``|r_ij| < cutoff`` as computed by :func:`edge_vectors` in the batch's dtype
(PACE's test is ``r < rcut``). Edges are sorted by ``(i, j, S)``, so the order is deterministic and
``offsets`` is the CSR index by centre.

A graph holds integer indices only, never coordinates: the same graph serves every geometry close
enough to the one it was searched for, and the vectors are recomputed (with autograd if wanted)
from the positions and cell by :func:`edge_vectors`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch

from acepy.kernels.numba_cpu.neighbors import batch_pairs, edge_vectors as _edge_vectors_numba

from .batch import Batch
from .graph_checks import DEFAULT_MAX_PAIRS, _check_cutoff, _check_max_pairs, search_boxes


@dataclass
class Graph:
    centers: torch.Tensor  # (E,) int64, sorted
    neighbors: torch.Tensor  # (E,) int64
    # (E, 3) int64 cell shifts. Integers, so one graph serves float32 and float64 alike;
    # edge_vectors casts them to the positions' dtype (exact for any realistic shift).
    shifts: torch.Tensor
    edge_system: torch.Tensor  # (E,) int64, structure of each edge (sorted, since centers are)
    offsets: torch.Tensor  # (N + 1,) int64, edges of centre i are offsets[i]:offsets[i + 1]
    cutoff: float
    n_atoms: int
    n_systems: int
    # the search's own edge vectors at the positions it was searched for (see EdgeValues)
    values: "EdgeValues | None" = field(default=None, repr=False, compare=False)

    @property
    def n_edges(self) -> int:
        return self.centers.shape[0]

    @property
    def device(self) -> torch.device:
        return self.centers.device

    def to(self, device) -> "Graph":
        device = torch.device(device)
        if device == self.device:
            return self  # already there (graphs are never changed in place)
        return Graph(
            centers=self.centers.to(device),
            neighbors=self.neighbors.to(device),
            shifts=self.shifts.to(device),
            edge_system=self.edge_system.to(device),
            offsets=self.offsets.to(device),
            cutoff=self.cutoff,
            n_atoms=self.n_atoms,
            n_systems=self.n_systems,
            values=None,  # reused on the CPU only (EdgeValues)
        )

    def select(self, keep: torch.Tensor, cutoff: float) -> "Graph":
        """The sub-graph of the edges where ``keep`` (E,) is true, in the same order."""
        # One nonzero and four index_selects: much faster than four boolean-mask gathers.
        idx = torch.nonzero(keep).squeeze(1)
        centers = self.centers.index_select(0, idx)
        return Graph(
            centers=centers,
            neighbors=self.neighbors.index_select(0, idx),
            shifts=self.shifts.index_select(0, idx),
            edge_system=self.edge_system.index_select(0, idx),
            offsets=csr_offsets(centers, self.n_atoms),
            cutoff=float(cutoff),
            n_atoms=self.n_atoms,
            n_systems=self.n_systems,
            values=None if self.values is None else self.values.select(idx),
        )


# Largest search whose edge vectors the graph keeps (32 bytes per edge, held with the graph):
# above it one more Numba pass is a small part of a call.
VALUES_MAX_EDGES = 1 << 20


@dataclass
class EdgeValues:
    """A graph's edge vectors ``(E, 3)`` and distances ``(E,)`` as its own search's final filter
    computed them, for (copies of) the positions and cell they were computed at.

    :func:`reuse_edge_values` hands them out again only for exactly equal positions and cell, and
    only where :func:`edge_vectors` would take its Numba branch (CPU float64, no gradient wanted),
    which would compute these very values: a graph reused for moved positions (a skin) never
    gives them. Shared, not copied: nothing writes into edge vectors."""

    positions: torch.Tensor
    cell: torch.Tensor
    vectors: torch.Tensor
    distances: torch.Tensor

    def select(self, idx: torch.Tensor) -> "EdgeValues":
        return EdgeValues(self.positions, self.cell, self.vectors.index_select(0, idx),
                          self.distances.index_select(0, idx))


def _numba_branch(positions: torch.Tensor, cell: torch.Tensor) -> bool:
    """Whether :func:`edge_vectors` computes with its Numba pass (no gradient wanted, CPU float64)."""
    return (positions.device.type == "cpu" and positions.dtype == torch.float64 and cell.dtype == torch.float64
            and not (torch.is_grad_enabled() and (positions.requires_grad or cell.requires_grad)))


def reuse_edge_values(graph: Graph, positions: torch.Tensor, cell: torch.Tensor) -> EdgeValues | None:
    """``graph.values`` when they are what :func:`edge_vectors` (and the norm of its result)
    would give for ``positions`` and ``cell``; otherwise None."""
    values = graph.values
    if values is None or not _numba_branch(positions, cell):
        return None
    if not (positions.shape == values.positions.shape and cell.shape == values.cell.shape
            and torch.equal(positions, values.positions) and torch.equal(cell, values.cell)):
        return None
    return values


def edge_vectors(positions: torch.Tensor, cell: torch.Tensor, graph: Graph) -> torch.Tensor:
    """``r_ij = x_j - x_i + S @ cell[b]`` (E, 3), differentiable w.r.t. positions and cell.

    The exact path gets forces and stress by autograd through this function (the cell gradient
    is what makes the virial), so it is plain torch indexing and arithmetic.
    """
    # index_select rather than fancy indexing: same autograd, a good deal faster on the CPU.
    if _numba_branch(positions, cell):
        # no gradient wanted (the fast path, the neighbour search's own filter): one Numba pass
        # over the edges; the torch formula below copies the cell once per edge for a batch of
        # several structures (~75 ns per edge) and costs a dozen small ops for a small one
        out = torch.empty((graph.n_edges, 3), dtype=torch.float64)
        _edge_vectors_numba(positions.detach().contiguous().numpy(), cell.detach().contiguous().numpy(),
                            graph.edge_system.numpy(), graph.centers.numpy(), graph.neighbors.numpy(),
                            graph.shifts.numpy(), out.numpy())
        return out
    shifts = graph.shifts.to(positions.dtype)
    if cell.shape[0] == 1:  # one structure: a plain product, no per-edge copy of the cell
        lattice = shifts @ cell[0]
    else:
        lattice = torch.einsum("ek,ekl->el", shifts, cell.index_select(0, graph.edge_system))
    return positions.index_select(0, graph.neighbors) - positions.index_select(0, graph.centers) + lattice


def edge_distances(positions: torch.Tensor, cell: torch.Tensor, graph: Graph) -> torch.Tensor:
    """``|r_ij|`` (E,). Differentiable, but the gradient is NaN for a zero-length edge."""
    return edge_vectors(positions, cell, graph).norm(dim=1)


def filter_graph(graph: Graph, vectors_or_distances: torch.Tensor, cutoff: float) -> Graph:
    """The view of ``graph`` keeping edges with ``|r_ij| < cutoff``, in the same (CSR) order.

    The second argument is either the graph's edge vectors (E, 3), from :func:`edge_vectors`,
    or their norms (E,): a caller filtering several cutoffs computes the norms once.
    """
    e = graph.n_edges
    x = vectors_or_distances.detach()
    if x.shape == (e, 3):
        distances = x.norm(dim=1)
    elif x.shape == (e,):
        distances = x
    else:
        raise ValueError(f"expected edge vectors ({e}, 3) or distances ({e},) for this graph, got {tuple(x.shape)}")
    _check_cutoff(cutoff)
    if cutoff > graph.cutoff:
        raise ValueError(f"cannot filter a graph built at cutoff {graph.cutoff} to a larger cutoff {cutoff}")
    return graph.select(distances < cutoff, cutoff)


def neighbor_graph(batch: Batch, cutoff: float, max_pairs: int | None = DEFAULT_MAX_PAIRS,
                   validated: bool = False, device=None, on_device: Batch | None = None) -> Graph:
    """All pairs with ``|r_ij| < cutoff`` in every structure of ``batch`` (see module docstring).

    One cell-list search over the whole batch (``acepy.kernels.numba_cpu.neighbors``: Numba,
    parallel over atoms), written straight in CSR order with global atom indices. The search runs
    on the CPU whatever the batch's device and the result is moved back to it (or to ``device``);
    ``on_device``, the same batch on a CUDA device: large periodic cells are searched there
    (``acepy.graph_cuda``: vesin on the device tensors, the same graph).

    Before each search the number of pairs is estimated (:func:`estimate_pairs`: atom density
    times the cutoff sphere); above ``max_pairs`` (None: no limit) :class:`TooManyPairsError`
    names the structure, the estimate and the cutoff, instead of a search that runs for minutes or
    exhausts memory. Periodic cell vectors are reduced first (a nearly singular, strongly skewed
    cell such as ``[[4, 0, 0], [4, 4e-4, 0], [0, 0, 4]]`` is searched as the equivalent
    ``[[4, 0, 0], [0, 4e-4, 0], [0, 0, 4]]``) and the shifts mapped back to the given vectors.
    """
    if not (type(cutoff) is float and 0.0 < cutoff < math.inf):  # the common case without the ABC checks
        _check_cutoff(cutoff)
    cpu = batch.to("cpu")
    if not validated:  # ``validated``: the caller checked this batch's values already (Stack, once per call)
        cpu.validate()
    positions = cpu.positions.detach()
    cell = cpu.cell.detach()
    pos64 = positions.double().numpy()
    cell64 = cell.double().numpy()
    pbc = cpu.pbc.numpy()
    starts = cpu.atom_offsets.numpy()

    boxes, inverses, unimodular, simple = search_boxes(pos64, cell64, pbc, starts, cutoff, max_pairs)
    # Search slightly beyond the cutoff so that the search's own float64 distance test (from
    # wrapped positions) can never drop a pair that ours (in the batch's dtype, from the given
    # positions) keeps: the final ``r < cutoff`` test below is the only one that decides.
    pad = _rounding_pad(pos64, cell64, _EPS[positions.dtype], cutoff)
    if on_device is not None and on_device.device.type == "cuda" and not unimodular:
        from .graph_cuda import device_graph, use_device_search

        if use_device_search(on_device, cpu, simple):
            return device_graph(on_device, cpu, cutoff, pad)
    i, j, s, offsets = batch_pairs(pos64, boxes, pbc, starts.astype(np.int64, copy=False), cutoff + pad,
                                   inverses=inverses)
    if unimodular:
        _map_back_shifts(i, j, s, offsets, starts, unimodular, batch.n_atoms)

    centers = torch.from_numpy(i)
    superset = Graph(
        centers=centers,
        neighbors=torch.from_numpy(j),
        shifts=torch.from_numpy(s),
        edge_system=torch.from_numpy(cpu.system_idx.numpy()[i]),
        offsets=torch.from_numpy(offsets),
        cutoff=float(cutoff),
        n_atoms=batch.n_atoms,
        n_systems=batch.n_systems,
    )
    vectors = edge_vectors(positions, cell, superset)
    distances = torch.linalg.vector_norm(vectors, dim=1)  # as BatchGraph.distances computes them
    keep = distances < cutoff
    if _numba_branch(positions, cell) and superset.n_edges <= VALUES_MAX_EDGES:  # see EdgeValues
        superset.values = EdgeValues(positions.clone(), cell.clone(), vectors, distances)
    graph = superset if bool(keep.all()) else superset.select(keep, cutoff)
    return graph.to(batch.device if device is None else device)


def _map_back_shifts(i, j, s, offsets, starts, unimodular: dict, n_atoms: int) -> None:
    """Shifts along reduced cell vectors -> along the given ones (``S @ U``), in place, and each
    centre's edges of those structures sorted again by (j, S)."""
    for b, u in unimodular.items():
        e0, e1 = int(offsets[starts[b]]), int(offsets[starts[b + 1]])
        if e1 == e0:
            continue
        shifts = s[e0:e1] @ u
        order = _lexicographic_order(i[e0:e1], j[e0:e1], shifts, n_atoms)
        j[e0:e1] = j[e0:e1][order]
        s[e0:e1] = shifts[order]


@dataclass(frozen=True)
class _CacheEntry:
    """One thread's cached search and views (replaced whole, never changed in place)."""
    search: Graph
    search_positions: torch.Tensor  # positions at the search (skin test)
    topology: tuple  # cell, pbc, numbers, system_idx at the search
    positions: torch.Tensor  # positions the views were filtered for
    views: dict  # {cutoff: Graph} on ``device``
    device: torch.device
    generation: int  # the cache's generation when searched (``invalidate`` moves it on)


@dataclass(frozen=True)
class _SingleEntry:
    """One thread's cached search for :meth:`GraphCache.single` (NumPy arrays; replaced whole)."""
    search: "SingleEdges"  # at the largest cutoff + skin
    search_positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    numbers: np.ndarray
    positions: np.ndarray  # positions the edges were filtered for
    edges: "SingleEdges"  # at the largest cutoff
    generation: int


class GraphCache:
    """One neighbour search per geometry for a stack of components with different cutoffs.

    ``cutoffs`` are the components' cutoffs (``None`` for a component that needs no graph).
    :meth:`graphs` returns one graph per distinct cutoff: a single search at the largest cutoff
    (plus ``skin``), and for every other cutoff a view filtered from it, made once per search.

    - ``skin == 0``: the graphs are reused while positions, cell, pbc, numbers and system_idx are
      exactly equal to those of the last call.
    - ``skin > 0``: the search is reused while cell, pbc, numbers and system_idx are unchanged and
      no atom has moved more than ``skin / 2`` since the search (then every pair now closer than
      the largest cutoff was closer than cutoff + skin then). The views are refiltered from the
      search each call whose positions changed, since distances did.

    Thread safety: each Python thread has its own cached search ("the last call" is that thread's
    last call), kept as one immutable entry that a call reads once and replaces whole. A cache
    shared between threads was a race: a thread could pass the equality test on its own positions
    and then return the views another thread had just stored for a different structure of the same
    cell and numbers (energies off by ~1e-6 relative in about one call in 600).

    ``n_searches`` and ``n_views`` count neighbour searches and filtered views since the last
    :meth:`reset_counters` (all threads together), so tests can assert "one search per call".
    ``max_pairs`` (an attribute, may be changed) is the limit of :func:`neighbor_graph`'s pair
    estimate (None: no limit).
    """

    DEFAULT_MAX_PAIRS = DEFAULT_MAX_PAIRS

    def __init__(self, cutoffs: Iterable[float | None], skin: float = 0.0,
                 max_pairs: int | None = DEFAULT_MAX_PAIRS):
        distinct = sorted({float(c) for c in cutoffs if c is not None})
        for c in distinct:
            _check_cutoff(c)
        skin = float(skin)
        if not (skin >= 0.0 and np.isfinite(skin)):
            raise ValueError(f"skin must be a finite number >= 0, got {skin}")
        self.cutoffs = distinct
        self.skin = skin
        self.max_pairs = _check_max_pairs(max_pairs)
        self._local = threading.local()  # .entry: this thread's _CacheEntry
        self._counter_lock = threading.Lock()  # ``+=`` on an attribute is not atomic across threads
        self._generation = 0
        self.reset_counters()

    def __getstate__(self):  # pickling (a model sent to a worker process): no thread state
        state = dict(self.__dict__)
        del state["_local"], state["_counter_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()
        self._counter_lock = threading.Lock()

    def __deepcopy__(self, memo):  # a copied model starts with an empty cache of the same settings
        return GraphCache(self.cutoffs, skin=self.skin, max_pairs=self.max_pairs)

    def reset_counters(self) -> None:
        with self._counter_lock:
            self.n_searches = 0
            self.n_views = 0

    def invalidate(self) -> None:
        """Forget the cached searches and views (of every thread): the next call searches."""
        self._generation += 1
        self._local.entry = None
        self._local.single = None

    def _count(self, searches: int, views: int) -> None:
        with self._counter_lock:
            self.n_searches += searches
            self.n_views += views

    def graphs(self, batch: Batch, validated: bool = False, host: Batch | None = None) -> dict[float, Graph]:
        """``{cutoff: Graph}`` for every distinct cutoff, valid for ``batch``'s geometry, on its
        device (``validated``: :meth:`Batch.validate` ran on it already in this call).

        ``host``: the same batch's values on the CPU (the stack keeps one per call). The equality
        tests, the search and the views then run on it and only the graphs are uploaded: no read
        of device values, so no host sync on a GPU."""
        if not self.cutoffs:
            return {}
        ref = batch if host is None else host  # the tensors the cache compares and searches
        positions = ref.positions.detach()
        topology = (ref.cell.detach(), ref.pbc, ref.numbers, ref.system_idx)

        entry: _CacheEntry | None = getattr(self._local, "entry", None)  # read once: this call's snapshot
        if (entry is not None and entry.generation == self._generation and entry.device == batch.device
                and _all_equal(topology, entry.topology)):
            if _equal(positions, entry.positions):
                return dict(entry.views)
            if self.skin > 0 and self._within_skin(positions, entry.search_positions):
                search = entry.search
                views = self._make_views(search, ref if search.device == ref.device else batch, batch.device)
                self._local.entry = _CacheEntry(search, entry.search_positions, entry.topology, positions.clone(),
                                                views, entry.device, entry.generation)
                return dict(views)

        generation = self._generation
        adopted = self._adopt_single(ref, positions, topology, batch.device, generation)
        if adopted is not None:  # this thread's lean pass searched this very geometry (e.g. a gamma after forces)
            return adopted
        on_device = batch if host is not None else None  # large CUDA cells: searched there (graph_cuda)
        search = neighbor_graph(ref, self.cutoffs[-1] + self.skin, max_pairs=self.max_pairs,
                                validated=validated, device=ref.device, on_device=on_device)
        self._count(1, 0)
        views = self._make_views(search, ref if search.device == ref.device else batch, batch.device)
        key = positions.clone()  # (one copy serves both: an entry is never changed)
        self._local.entry = _CacheEntry(search, key, tuple(t.clone() for t in topology), key, views, batch.device,
                                        generation)
        return dict(views)

    def _adopt_single(self, ref: Batch, positions, topology, device, generation) -> dict | None:
        """This thread's :meth:`single` search when ``ref`` is that structure, kept as its :meth:`graphs`
        entry too: one search serves a lean call and a general one (an ASE call and its gamma)."""
        from .graph_single import adopt

        entry: _SingleEntry | None = getattr(self._local, "single", None)
        ok = entry is not None and entry.generation == generation and device.type == "cpu" and len(self.cutoffs) == 1
        made = adopt(entry, ref, positions, topology, self.skin) if ok else None
        if made is None:
            return None
        search, search_positions, views = made
        self._local.entry = _CacheEntry(search, search_positions, tuple(t.clone() for t in topology),
                                        positions.clone(), views, device, generation)
        return dict(views)

    def single(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, numbers: np.ndarray):
        """The lean pass's edges (:class:`acepy.graph_single.SingleEdges`) at the largest cutoff of one
        structure (float64 ``positions (N, 3)``, ``cell (1, 3, 3)``, ``pbc (1, 3)``, ``numbers (N,)``)
        with :meth:`graphs`' reuse rules and counters; kept per thread beside :meth:`graphs`' entry."""
        from .graph_single import search_single, within

        cutoff = self.cutoffs[-1]
        entry: _SingleEntry | None = getattr(self._local, "single", None)
        if (entry is not None and entry.generation == self._generation and np.array_equal(cell, entry.cell)
                and np.array_equal(pbc, entry.pbc) and np.array_equal(numbers, entry.numbers)):
            if np.array_equal(positions, entry.positions):
                return entry.edges
            moved = positions - entry.search_positions
            if self.skin > 0 and (not moved.size or np.sqrt((moved * moved).sum(axis=1)).max() <= 0.5 * self.skin):
                edges = within(entry.search, positions, cell, cutoff)
                self._count(0, 1)
                self._local.single = dataclasses.replace(entry, positions=positions.copy(), edges=edges)
                return edges
        generation = self._generation
        search = search_single(positions, cell, pbc, cutoff + self.skin, self.max_pairs)
        self._count(1, 0)
        edges = within(search, positions, cell, cutoff) if self.skin > 0 else search  # the view at the cutoff
        self._count(0, int(self.skin > 0))
        self._local.single = _SingleEntry(search, (key := positions.copy()), cell.copy(), pbc.copy(), numbers.copy(),
                                          key, edges, generation)
        return edges

    def _within_skin(self, positions: torch.Tensor, search_positions: torch.Tensor) -> bool:
        # Same system_idx, so same shape; a structure without atoms has nothing to move.
        if positions.numel() == 0:
            return True
        moved = (positions - search_positions).norm(dim=1).max()
        return bool(moved <= 0.5 * self.skin)

    def _make_views(self, search: Graph, ref: Batch, device: torch.device) -> dict[float, Graph]:
        """The views of ``search`` for ``ref``'s geometry (on the search's device), moved to
        ``device``."""
        views: dict[float, Graph] = {}
        distances = None
        for c in self.cutoffs:
            if c == search.cutoff:
                views[c] = search  # the search itself is the largest cutoff's graph (skin == 0)
                continue
            if distances is None:
                own = reuse_edge_values(search, ref.positions.detach(), ref.cell.detach())
                distances = own.distances if own is not None else \
                    edge_distances(ref.positions.detach(), ref.cell.detach(), search)
            views[c] = filter_graph(search, distances, c)
            self._count(0, 1)
        return {c: g if g.device == device else g.to(device) for c, g in views.items()}


def _equal(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Exact equality, including shape, dtype and device (a moved batch is a new batch)."""
    if a is None or b is None:
        return False
    return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and bool(torch.equal(a, b))


def _all_equal(xs, ys) -> bool:
    """Exact equality of every pair; off the CPU one fused test, so one host read instead of one
    per tensor."""
    if ys is None:
        return False
    if not all(x.shape == y.shape and x.dtype == y.dtype and x.device == y.device for x, y in zip(xs, ys)):
        return False
    if all(x.device.type == "cpu" for x in xs):
        return all(bool(torch.equal(x, y)) for x, y in zip(xs, ys))
    return bool(torch.stack([(x == y).all() for x, y in zip(xs, ys)]).all())


def csr_offsets(centers: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """CSR offsets of sorted ``centers``: the first edge of each atom, then the edge count."""
    atoms = torch.arange(n_atoms + 1, dtype=centers.dtype, device=centers.device)
    return torch.searchsorted(centers, atoms)


def _lexicographic_order(i: np.ndarray, j: np.ndarray, s: np.ndarray, n_atoms: int) -> np.ndarray:
    """The permutation sorting edges by (i, j, S0, S1, S2).

    Packing the five keys into one int64 and sorting that is several times faster than
    ``np.lexsort``; the packed key needs N^2 (2m+1)^3 < 2^63 (m the largest |shift|), so huge
    batches with huge shifts fall back to lexsort.
    """
    m = int(np.abs(s).max()) if len(s) else 0
    width = 2 * m + 1
    if float(n_atoms) ** 2 * float(width) ** 3 < 2.0**62:
        key = i * n_atoms + j
        for k in range(3):
            key = key * width + (s[:, k] + m)
        return np.argsort(key, kind="stable")
    return np.lexsort((s[:, 2], s[:, 1], s[:, 0], j, i))


_EPS = {torch.float64: float(torch.finfo(torch.float64).eps), torch.float32: float(torch.finfo(torch.float32).eps)}


def _rounding_pad(positions: np.ndarray, cell: np.ndarray, eps: float, cutoff: float) -> float:
    """A bound on the rounding error of |r_ij| computed with machine epsilon ``eps`` (the batch's
    dtype) from ``positions (N, 3)`` and ``cell (B, 3, 3)``.

    ``x_j - x_i + S @ cell`` adds terms as large as the coordinates and the cell, so the error
    scales with them, not with r.
    """
    scale = cutoff
    if positions.size:
        scale += 2 * float(np.abs(positions).max())
    if cell.size:
        scale += 3 * float(np.sqrt((cell * cell).sum(axis=2)).max())
    return 16 * eps * scale
