"""Host synchronisations of the CUDA fast path, counted on the CPU (issue 21).

On a GPU every read of a device tensor's values by the host (``.item()``, ``bool()``/``int()``/
``float()`` of a tensor, ``.tolist()``, ``.cpu()``/``.numpy()``, ``torch.equal``, ``torch.nonzero``
and the other ops whose output shape depends on values) waits for every queued kernel: a stall of
the whole pipeline. No GPU runs the tests, so ``Stack.evaluate(backend="triton")`` runs here on
the CPU under the Triton interpreter (the same Python as on CUDA) with a counter of those
operations: a ``TorchDispatchMode`` for the aten ops (``_local_scalar_dense`` is what ``item``,
``bool``, ``int``, ``float`` and ``__index__`` of a tensor reach; ``equal``, ``nonzero``,
``masked_select``, ``unique*``) and wrappers of ``Tensor.tolist/.cpu/.numpy/__array__`` (no aten
op on the CPU). Each event is attributed to the acepy function that made it.

Host-side code is not counted: on CUDA it works on the host's own copy of the batch (built from
ASE on the host, or copied down once per call by ``Batch.validate``), never on device tensors:
the batch's checks, the Numba neighbour search, the CPU-only Numba branch of ``edge_vectors``,
and the stack's host copy of the inputs. The test asserts the per-call count of everything else
against a budget that names what each remaining sync is for, so that a new one fails here.
"""

from __future__ import annotations

import collections
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import acepy
from acepy.kernels import available_backends

ROOT = str(Path(acepy.__file__).resolve().parent.parent)
TESTS = str(Path(__file__).resolve().parent)

# aten ops that read device values on the host, or whose output shape depends on them
SYNC_OPS = {"_local_scalar_dense", "equal", "nonzero", "masked_select", "unique", "_unique", "_unique2", "bincount",
            "unique_dim", "unique_consecutive", "repeat_interleave", "nonzero_static"}

# (file stem, function): code that runs on host data only, on CUDA too (module docstring)
HOST_SIDE = {
    ("batch", "validate"), ("batch", "batch_from_atoms"), ("batch", "_check_periodic_vectors"),
    ("graph", "neighbor_graph"), ("graph", "_rounding_pad"), ("graph", "_map_back_shifts"),
    ("graph_checks", "search_boxes"), ("graph_checks", "_check_pair_estimate"), ("graph_checks", "estimate_pairs"),
    ("graph_checks", "_reduced_cell"),
    ("graph", "_make_views"),  # the views of a host search are filtered on the host, then uploaded
    # the cache's equality tests compare the host copy that the stack passes (checked by a spy below)
    ("graph", "_all_equal"), ("graph", "_equal"),
    ("stack", "species_of"), ("stack", "_stress_decision"),
    ("chunking", "_geometry"), ("chunking", "estimated_pairs"),
}
# the Numba branch of edge_vectors runs for CPU float64 tensors only (CUDA takes the torch formula)
CPU_ONLY = {("graph", "edge_vectors"),
            # the search's own edge vectors are compared and reused on that branch only (on CUDA
            # the graph moved to the device has none, and the function returns before any read)
            ("graph", "reuse_edge_values"),
            # its shortcut (no density cutoff reached: a host read) is taken on the CPU only
            ("embedding", "density_inner_cutoff")}

# The budget per call of what still syncs on CUDA, by (file stem, function, what):
BUDGET = {
    # the one fused check of the ACE call: distances inside the tables, finite energies and forces
    ("ace", "energies_and_edge_grads", "_local_scalar_dense"): 1,
    # the pair table's range check, one flag read (acepy/models/pair.py; its edges inside the cutoff
    # need no nonzero when the graph's cutoff is not above the smallest table cutoff, as here)
    ("pair", "_edges", "_local_scalar_dense"): 1,
}


def _callers():
    """(file stem, function) of the acepy/kernels frames on the stack, innermost first."""
    out = []
    for frame in reversed(traceback.extract_stack()[:-2]):
        f = frame.filename
        if f.startswith(ROOT) and not f.startswith(TESTS) and "/.venv/" not in f:
            out.append((Path(f).stem, frame.name))
    return out


class SyncCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.events = collections.Counter()
        self._patched = []

    def record(self, what):
        callers = _callers()
        if not callers or callers[0] in CPU_ONLY or any(c in HOST_SIDE for c in callers):
            return
        self.events[(*callers[0], what)] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        # repeat_interleave reads its repeats' sum unless given the output size
        if name in SYNC_OPS and not (name == "repeat_interleave" and (kwargs or {}).get("output_size") is not None):
            self.record(name)
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        for name in ("tolist", "cpu", "numpy", "__array__"):
            original = getattr(torch.Tensor, name)

            def wrapper(t, *a, _original=original, _name=name, **k):
                self.record(_name)
                return _original(t, *a, **k)

            setattr(torch.Tensor, name, wrapper)
            self._patched.append((name, original))
        return super().__enter__()

    def __exit__(self, *exc):
        for name, original in self._patched:
            setattr(torch.Tensor, name, original)
        self._patched.clear()
        return super().__exit__(*exc)


def _pair_table(path: Path) -> Path:
    """A LAMMPS ``pair_style table`` file with a Cu_Cu Morse section (r = 1 .. 6 A)."""
    r = np.linspace(1.0, 6.0, 500)
    d, a, r0 = 0.3, 1.4, 2.5
    x = np.exp(-a * (r - r0))
    e = d * (x * x - 2 * x)
    f = 2 * a * d * (x * x - x)
    lines = [f"{k + 1} {float(ri)!r} {float(ei)!r} {float(fi)!r}" for k, (ri, ei, fi) in enumerate(zip(r, e, f))]
    path.write_text("Cu_Cu\nN 500 R 1.0 6.0\n\n" + "\n".join(lines) + "\n")
    return path


def _structures(rng):
    from ase.build import bulk

    # 16 atoms, periodic, every atom with its full neighbour shells (5.4 A): the syncs are counted per
    # call and per chunk (the "chunks" case), not per atom, so a larger cell only costs interpreter time
    cell = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    cell.positions += rng.normal(0.0, 0.05, cell.positions.shape)
    batch = []
    for _ in range(3):
        s = bulk("Cu", "fcc", a=3.61 * rng.uniform(0.98, 1.02)).repeat((2, 1, 1))  # 2-atom cells
        s.positions += rng.normal(0.0, 0.05, s.positions.shape)
        batch.append(s)
    return cell, batch


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    if "triton" not in available_backends("cpu"):
        pytest.skip("Triton (interpreter) is not available")
    table = _pair_table(tmp_path_factory.mktemp("table") / "cu.table")
    # the smallest bundled Cu potential (rank 4, 172 functions, cutoff 5.4 A): the interpreter runs
    # a 16-atom cell in about 5 s per call; the syncs do not depend on the basis size
    return acepy.load("Cu-EMT-fit", pair_table=table, backend="triton", table_n=500)


def count_syncs(model, structures, rng) -> collections.Counter:
    """The syncs of one call on ``structures`` after a call on the same structures slightly moved
    (an MD step: the cache compares, then searches again)."""
    model.evaluate(structures)  # warm up (imports, first calls) outside the count
    for s in structures if isinstance(structures, list) else [structures]:
        s.positions += rng.normal(0.0, 1e-3, s.positions.shape)
    cache = model.graph_cache
    hosts = []

    def spy(batch, validated=False, host=None, _graphs=cache.graphs):
        hosts.append(host)
        return _graphs(batch, validated=validated, host=host)

    cache.graphs = spy
    try:
        with SyncCounter() as counter:
            model.evaluate(structures)
    finally:
        del cache.graphs
    # the cache compared and searched the host copy (on CUDA: no device read)
    assert hosts and all(h is not None and h.device.type == "cpu" for h in hosts)
    return counter.events


def _report(events) -> str:
    return "\n".join(f"  {n} x {f}.py:{fn} {what}" for (f, fn, what), n in sorted(events.items()))


# several ACE chunks: their bounds come from the CSR offsets, read once per call (one copy down)
CHUNKS_BUDGET = {("ace", "energies_and_edge_grads", "cpu"): 1, ("ace", "energies_and_edge_grads", "numpy"): 1}


@pytest.mark.parametrize("case", ["cell16", "batch", "chunks"])
def test_fast_path_host_syncs_within_budget(model, case, monkeypatch):
    """A 16-atom periodic cell, and a batch of 3 small cells (in one ACE chunk, and in several):
    every remaining sync is budgeted."""
    from acepy.models import ace

    rng = np.random.default_rng()
    cell, batch = _structures(rng)
    budget = dict(BUDGET)
    if case == "chunks":
        monkeypatch.setattr(ace, "EDGE_CHUNK", 200)
        monkeypatch.setattr(ace, "EDGE_CHUNK_CUDA", 200)
        budget.update(CHUNKS_BUDGET)
    events = count_syncs(model, cell if case == "cell16" else batch, rng)
    if case == "chunks":
        assert events[("ace", "energies_and_edge_grads", "cpu")] == 1, "expected several chunks"
    over = {k: n for k, n in events.items() if n > budget.get(k, 0)}
    assert not over, f"host syncs beyond the budget (counted per call):\n{_report(events)}"


def test_counter_sees_syncs():
    """The counter counts what it should (a counter that sees nothing would pass any budget)."""
    from acepy.kernels.backend import check_offsets
    from acepy.graph import csr_offsets

    x = torch.arange(5.0)
    with SyncCounter() as counter:
        float(x.sum()), bool((x > 2).any()), x.tolist(), torch.nonzero(x)  # this file: not acepy code
        csr_offsets(torch.tensor([0, 0, 1]), 2)  # acepy code that reads no value
    assert not counter.events
    with SyncCounter() as counter:
        check_offsets("probe", "offsets", torch.tensor([0, 1, 3]), 3)  # int() and bool() of tensors
        torch.tensor([1.0, 2.0]).tolist()
    assert counter.events[("backend", "check_offsets", "_local_scalar_dense")] == 3, counter.events
    assert sum(counter.events.values()) == 3, counter.events


def test_several_species_fast_path_equals_reference():
    """The Triton path of a three-element potential (per-species embedding by masks, no
    nonzero) against the torch reference, on a random Al/Cu/Ni cell."""
    from ase.build import bulk

    if "triton" not in available_backends("cpu"):
        pytest.skip("Triton (interpreter) is not available")
    rng = np.random.default_rng()
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)  # 4 atoms
    atoms.symbols[:] = rng.permutation(["Al", "Cu", "Ni", rng.choice(["Al", "Cu", "Ni"])])
    atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
    fast = acepy.load("AlCuNi-synthetic-r4", backend="triton").evaluate(atoms)
    ref = acepy.load("AlCuNi-synthetic-r4", backend="torch").evaluate(atoms)
    for key in ("energies", "forces", "stress"):
        scale = float(ref[key].abs().max())
        err = float((fast[key] - ref[key]).abs().max())
        assert err <= 1e-10 * max(scale, 1.0), (key, err, scale)


def _graphs_equal(got, ref):
    for name in ("centers", "neighbors", "shifts", "edge_system", "offsets"):
        a, b = getattr(got, name).cpu(), getattr(ref, name).cpu()
        assert a.shape == b.shape and torch.equal(a, b), name
    assert got.cutoff == ref.cutoff and got.n_atoms == ref.n_atoms and got.n_systems == ref.n_systems


def _periodic_batch(rng, repeats):
    from ase.build import bulk

    structures = []
    for rep in repeats:
        a = 3.61 * rng.uniform(0.97, 1.03)
        s = bulk("Cu", "fcc", a=a, cubic=True).repeat(rep) if len(structures) % 2 == 0 else \
            bulk("Cu", "fcc", a=a).repeat(rep)  # cubic and primitive (triclinic, reduced) cells
        s.positions += rng.normal(0.0, 0.08, s.positions.shape)
        structures.append(s)
    return acepy.batch_from_atoms(structures)


def test_device_search_matches_host_search():
    """vesin's search on the batch's tensors (CPU tensors here: the same code as on CUDA), sorted
    into CSR order and filtered on the tensors' device, gives the host search's graph exactly."""
    from acepy import graph as graph_module
    from acepy.graph_cuda import device_graph

    rng = np.random.default_rng()
    host = _periodic_batch(rng, [(2, 2, 2), (3, 3, 3), (1, 1, 1)])
    cutoff = float(rng.uniform(4.0, 6.5))
    pad = graph_module._rounding_pad(host.positions.numpy(), host.cell.numpy(), torch.finfo(torch.float64).eps,
                                     cutoff)
    _graphs_equal(device_graph(host, host, cutoff, pad), graph_module.neighbor_graph(host, cutoff))


def test_graph_cache_with_the_device_search(monkeypatch):
    """The cache's wiring of the device search (forced on for CPU tensors): the graphs of the host
    search for both cutoffs, and no second search for the same geometry."""
    from acepy import graph_cuda
    from acepy.graph import GraphCache, neighbor_graph

    monkeypatch.setattr(graph_cuda, "use_device_search", lambda batch, host, simple: bool(simple.all()))
    rng = np.random.default_rng()
    host = _periodic_batch(rng, [(2, 2, 2), (2, 2, 2)])
    cache = GraphCache([5.4, 4.0])
    for _ in range(2):
        graphs = cache.graphs(host, validated=True, host=host)
        for cutoff in (5.4, 4.0):
            _graphs_equal(graphs[cutoff], neighbor_graph(host, cutoff))
    assert cache.n_searches == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graph_cache_searches_large_cuda_cells_on_the_device():
    """A CUDA batch of large periodic cells: the cache's search runs on the device (vesin) and
    gives the host search's graphs (the largest cutoff and a view), on the device."""
    from acepy.graph import GraphCache, neighbor_graph
    from acepy.graph_cuda import DEVICE_SEARCH_MIN_ATOMS

    rng = np.random.default_rng()
    host = _periodic_batch(rng, [(12, 12, 12), (11, 12, 13)])
    assert host.n_atoms >= 2 * DEVICE_SEARCH_MIN_ATOMS
    cuda = host.to("cuda")
    cache = GraphCache([5.4, 4.0])
    for _ in range(2):
        graphs = cache.graphs(cuda, validated=True, host=host)
        for cutoff in (5.4, 4.0):
            assert graphs[cutoff].device.type == "cuda"
            _graphs_equal(graphs[cutoff], neighbor_graph(host, cutoff))
    assert cache.n_searches == 1
