"""A stack of components summed into energies, forces and stresses for a batch of structures.

Every component receives one :class:`~acepy.models.component.BatchGraph` (the batch, the species
of its atoms, and the graph at the component's cutoff with its edge vectors; DESIGN.md "The
component contract"). The stack owns the species map (its ``elements``) and the per-cutoff graph
cache (one neighbour search per geometry, a filtered view per smaller cutoff).

Two paths (DESIGN.md "Fast path and exact path"):

- :meth:`Stack.energy`: the total energy per structure on the exact path (torch reference
  kernels), differentiable in positions and cell, twice. Forces, stress, Hessians are its
  derivatives.
- :meth:`Stack.evaluate`: energies, forces and stresses. With Numba (CPU) or Triton (CUDA) every
  graph component runs its fast path, ``energies_and_edge_grads``, without autograd; the per-edge
  gradients g_ij = dE/dr_ij of the components sharing a graph are summed and go through one
  scatter per graph into forces (F_i += g, F_j -= g) and virials (-sum r (x) g), and
  stress = -virial / volume (ACE_SPEC.md 2.13). With ``backend="torch"`` every component runs the
  exact path and the per-edge gradients come from autograd. Structure-level components
  (``structure_energies``) are differentiated by autograd on either path.
"""

from __future__ import annotations

import contextlib
import time
from typing import Sequence

import numpy as np
import torch

from acepy.batch import Batch, batch_from_atoms
from acepy.errors import StructureError
from acepy.graph import GraphCache, edge_vectors, reuse_edge_values
from acepy.kernels import resolve_backend, scatter_forces_virials

from .component import BatchGraph


class Stack:
    """Sum of components sharing one species map and one per-cutoff graph cache.

    ``elements`` is the species order (species index = position in the list); every component
    that was built for a species order (``component.elements`` not None) must use the same one.
    Every component must have the stack's ``dtype`` and ``device``. ``num_threads`` is the CPU
    thread count of the Numba kernels for this model's calls (None: acepy's default, see
    :func:`acepy.kernels.default_num_threads`).
    """

    last_hessian_info: dict | None = None  # what the last hessian() call ran (method, routes, step, seconds)
    last_hvp_info: dict | None = None  # the same for the last hessian_vector_product() call

    def __init__(self, components: Sequence, elements: Sequence[str], dtype=torch.float64, device="cpu",
                 backend: str | None = None, skin: float = 0.0, num_threads: int | None = None,
                 max_pairs: int | None = GraphCache.DEFAULT_MAX_PAIRS):
        from ase.data import atomic_numbers

        from acepy.batch import check_device, check_dtype

        self.elements = list(elements)
        # a composite component (Coulomb: a graph part and a structure-level part) stands for its parts
        self.components = [part for comp in components for part in
                           (comp.stack_parts(self.elements) if callable(getattr(comp, "stack_parts", None)) else [comp])]
        self.dtype = check_dtype(dtype)  # float32/float64; UnsupportedInputError otherwise
        self.device = check_device(device)  # cpu, or cuda where there is one (DeviceUnavailableError)
        self.backend = resolve_backend(backend, self.device)
        self.num_threads = _check_threads(num_threads)
        self.load_options: dict | None = None  # what acepy.load was given (set there)
        for k, comp in enumerate(self.components):
            name = f"component {k} ({type(comp).__name__})"
            if getattr(comp, "dtype", dtype) != dtype:
                raise ValueError(f"{name} has dtype {comp.dtype}, the stack {dtype}: build every component "
                                 "with the same dtype")
            if torch.device(getattr(comp, "device", self.device)) != self.device:
                raise ValueError(f"{name} lives on {comp.device}, the stack on {self.device}: build every "
                                 "component on the same device")
            own = getattr(comp, "elements", None)
            if own is not None and list(own) != self.elements:
                raise ValueError(f"{name} was built for the elements {list(own)}, the stack has {self.elements}: "
                                 "one species order for every component")
        bad = [el for el in self.elements if el not in atomic_numbers]
        if bad:
            raise ValueError(f"unknown element symbol(s) {bad} in the stack's elements {self.elements}")
        table = torch.full((119,), -1, dtype=torch.long)
        for mu, el in enumerate(self.elements):
            table[atomic_numbers[el]] = mu
        self._species_table_host = table
        # max_pairs: the limit of the pair estimate before each neighbour search (TooManyPairsError)
        self.graph_cache = GraphCache([c.cutoff for c in self.components], skin=skin, max_pairs=max_pairs)

    @property
    def cutoff(self) -> float:
        cuts = [c.cutoff for c in self.components if c.cutoff is not None]
        return max(cuts) if cuts else 0.0

    def __repr__(self) -> str:
        from .summary import stack_repr

        return stack_repr(self)

    def summary(self) -> str:
        """A readable multi-line description: elements, components, cutoffs, backend, dtype, ..."""
        from .summary import stack_summary

        return stack_summary(self)

    # ---- inputs -------------------------------------------------------------------------------
    def species_of(self, numbers: torch.Tensor, batch: Batch | None = None) -> torch.Tensor:
        """Species index of every atom, on the device of ``numbers``; an element the stack lacks
        raises, naming the atom (and, given the batch, its structure and its index there).

        The check reads values (host syncs on a GPU): :meth:`_evaluate` gives it the host copy of
        the numbers and uploads the result."""
        from ase.data import chemical_symbols

        def where(i: int) -> str:
            return f"atom {i}" if batch is None else BatchGraph(batch, numbers).describe_atom(i)

        # checked and looked up in numpy on the host values (one copy down for device numbers):
        # torch's per-op dispatch cost more than the work (~25 us of an 8-atom call)
        nums = numbers.detach().cpu().numpy()
        if nums.size and (int(nums.min()) < 0 or int(nums.max()) > 118):
            i = int(np.flatnonzero((nums < 0) | (nums > 118))[0])
            raise StructureError(f"{where(i)}: atomic number {int(nums[i])} is not in 0..118")
        species = self._species_table_host.numpy()[nums]
        bad = np.flatnonzero(species < 0)
        if bad.size:
            i = int(bad[0])
            raise StructureError(
                f"{where(i)} is {chemical_symbols[int(nums[i])]}, which the potential does not have "
                f"(elements {self.elements})"
            )
        return torch.from_numpy(species).to(numbers.device)

    def _batch(self, structures) -> Batch:
        """The call's batch, its values checked once (``batch_from_atoms`` checks what it builds; a
        Batch given is checked here): the neighbour search is then told not to check again."""
        return self._host_inputs(structures)[0]

    def _host_inputs(self, structures) -> tuple[Batch, Batch]:
        """``(batch, host)``: the call's batch on the model's device and dtype, and the same values
        on the CPU (the same object on a CPU model). On CUDA every value check of the call (the
        batch's, the species', the stress decision, the graph cache's equality tests, the Numba
        neighbour search) reads the host copy, so none of them waits for the device; an ASE input
        is built on the host and uploaded once."""
        if isinstance(structures, Batch):
            host = structures.to("cpu").validate()  # one copy down of a device batch, checked there
            batch = structures.to(self.device, self.dtype)
            host = batch if batch.device.type == "cpu" else host.to("cpu", self.dtype)
        else:
            host = batch_from_atoms(structures, "cpu", self.dtype, charges=self._needs("charges"))
            # cast on the host (float64 -> float32 with its shift to the origin: the same
            # arithmetic as on the device), then one upload
            batch = host.to(self.device)
        for comp in self.components:
            for name in getattr(comp, "per_atom_data", ()):
                if getattr(batch, name, None) is None:
                    raise ValueError(f"{type(comp).__name__} needs per-atom {name}; the batch has none (build it "
                                     f"with acepy.batch_from_atoms(..., {name}=True))")
        return batch, host

    def _single_pass(self):
        """The lean pass of one structure (:mod:`acepy.models.single_structure`), built on first
        use; None for a model it does not apply to."""
        if "_single" not in self.__dict__:
            from .single_structure import SingleStructurePass

            self._single = SingleStructurePass.for_stack(self)
        return self._single

    def _needs(self, name: str) -> bool:
        return any(name in getattr(c, "per_atom_data", ()) for c in self.components)

    def _threads(self, num_threads: int | None):
        """The thread scope of one call: the call's count, else the model's, else acepy's default
        (:func:`acepy.kernels.default_num_threads`)."""
        n = _check_threads(num_threads) if num_threads is not None else self.num_threads
        if self.device.type != "cpu":
            return contextlib.nullcontext()
        from acepy.kernels.threads import num_threads as scope

        return scope(n)

    # ---- the exact path -----------------------------------------------------------------------
    def energy(self, structures) -> torch.Tensor:
        """Total energy per structure ``(B,)`` on the exact path (torch reference kernels).

        Differentiable (twice) in ``batch.positions`` and ``batch.cell``: give a :class:`Batch`
        whose tensors require grad (``batch.requires_grad_()``) and take forces, stress, Hessians
        from autograd. ``evaluate`` gives the same forces and stress to rounding.
        """
        batch, host = self._host_inputs(structures)
        species = self.species_of(host.numbers, host).to(self.device)
        graphs = self.graph_cache.graphs(batch, validated=True, host=host)
        shared: dict[float, BatchGraph] = {}
        energies = batch.positions.new_zeros(batch.n_atoms)
        energy = batch.positions.new_zeros(batch.n_systems)
        for comp in self.components:
            inputs = self._inputs(batch, species, graphs, comp.cutoff, shared, detach=False)
            if comp.is_structure_level:
                energy = energy + comp.structure_energies(inputs)
            else:
                energies = energies + comp.site_energies(inputs, backend="torch")
        return energy.index_add(0, batch.system_idx, energies)

    # ---- extrapolation grade (acepy/fit/extrapolation.py) ---------------------------------------
    extrapolation = None  # a callable structures -> (N,) gamma, set by acepy.fit.extrapolation.attach

    def extrapolation_grade(self, structures) -> torch.Tensor:
        """pacemaker's extrapolation grade gamma per atom ``(N,)`` (max over the active set of
        |B_i A^-1|; > 1 outside the training data's D-optimal volume), of the active set attached
        with ``acepy.fit.extrapolation.attach(model, ExtrapolationGrade(yaml, asi))``."""
        if self.extrapolation is None:
            raise ValueError("extrapolation_grade: this model has no active set; attach one: "
                             "acepy.fit.extrapolation.attach(model, ExtrapolationGrade('potential.yaml', "
                             "'potential.asi')), or use ACECalculator(path, active_set='potential.asi')")
        return torch.as_tensor(self.extrapolation(structures), dtype=self.dtype)

    # ---- second derivatives (acepy/models/hessian.py) ------------------------------------------
    def hessian(self, structures, method: str = "auto", step: float | None = None, return_info: bool = False,
                num_threads: int | None = None):
        """d2E/dx dx at fixed cell in eV/A^2: ``(N, 3, N, 3)`` for one ``ase.Atoms``, a list of
        them for a list (or a :class:`Batch`), computed in one call.

        ``method``: ``"auto"`` (= ``"sites"``: exact per-site blocks, see
        :mod:`acepy.models.hessian`), ``"autograd"`` (dense autograd of :meth:`energy`, the slow
        reference) or ``"fd"`` (central differences of the fast forces with ``step`` A, default
        1e-3). ``return_info=True`` also returns what ran: the method, each component's route, the
        step and the seconds (kept in ``self.last_hessian_info`` too).
        """
        from .hessian import stack_hessian

        with self._threads(num_threads):
            batch = self._batch(structures)
            out, info = stack_hessian(self, batch, method, step)
        self.last_hessian_info = info
        result = out[0] if _is_single(structures) else out
        return (result, info) if return_info else result

    def hessian_vector_product(self, structures, vectors, method: str = "auto", step: float | None = None,
                               num_threads: int | None = None, return_info: bool = False):
        """H v over the whole batch without forming H: ``vectors (N_total, 3)`` or ``(K, N_total, 3)``
        in, the same shape out (eV/A^2 times the vectors' unit). ``method`` as in :meth:`hessian`
        (``"fd"``: -(F(x + h v) - F(x - h v)) / 2h with v scaled to a largest component of 1).

        ``return_info=True`` also returns what ran (kept in ``self.last_hvp_info`` too): the
        method, the number of vectors, per component its route (for ACE on the Numba backend: the
        forward-mode tangent route up to ``acepy.models.ace_hvp.MAX_VECTORS`` vectors, the per-site
        route above), the fd step, the seconds."""
        from .hessian import check_vectors, stack_hvp

        with self._threads(num_threads):
            batch = self._batch(structures)
            v, flat = check_vectors(batch, vectors)
            out, info = stack_hvp(self, batch, v, method, step)
        self.last_hvp_info = info
        out = out[0] if flat else out
        return (out, info) if return_info else out

    @staticmethod
    def _inputs(batch, species, graphs, cutoff, shared: dict, detach: bool) -> BatchGraph:
        """The BatchGraph of a cutoff, made once per cutoff and shared by its components."""
        if cutoff is None:
            return BatchGraph(batch, species)
        if cutoff not in shared:
            graph = graphs[cutoff]
            # the search's own vectors when these are its positions (the fast path, CPU float64)
            own = reuse_edge_values(graph, batch.positions, batch.cell)
            if own is not None:
                shared[cutoff] = BatchGraph(batch, species, graph, own.vectors, _distances=own.distances)
                return shared[cutoff]
            vectors = edge_vectors(batch.positions, batch.cell, graph)
            shared[cutoff] = BatchGraph(batch, species, graph, vectors.detach() if detach else vectors)
        return shared[cutoff]

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate(self, structures, compute_forces: bool = True, compute_stress: bool | None = None,
                 timings: dict | None = None, num_threads: int | None = None,
                 chunk_pairs: int | None = None, progress: bool | None = None) -> dict:
        """Energies, forces and stresses of one ``ase.Atoms``, a list of them, or a :class:`Batch`.

        Returns a dict of tensors in the model's dtype: ``energy (B,)``, ``energies (N,)``,
        ``forces (N, 3)``, ``virials (B, 3, 3)``, ``stress (B, 3, 3)`` (ASE sign) and
        ``system_idx (N,)``. Stress is computed with the forces when every structure has a cell of
        non-zero volume (``compute_stress=None``), or on request, which raises for a structure
        without one; ``compute_forces=False`` with the default computes energies only (no
        adjoint pass).

        ``timings``: a dict that receives the seconds spent in each phase (``neighbours``, one entry
        per component class, ``scatter``), synchronising the GPU around each phase (for profiling).
        ``num_threads``: the CPU thread count of this call (default: the model's).

        Many structures (a list or a Batch) are evaluated in chunks of whole structures whose
        estimated neighbour pairs stay under ``chunk_pairs`` (default 2^19, about 0.2 GB), so that
        memory stays bounded however many structures come in one call; the result is that of one
        call. ``progress``: a progress bar over the chunks (None: for 1000 structures or more).
        """
        from .chunking import DEFAULT_CHUNK_PAIRS, check_chunk_pairs, evaluate_in_chunks

        chunk_pairs = DEFAULT_CHUNK_PAIRS if chunk_pairs is None else check_chunk_pairs(chunk_pairs)
        with self._threads(num_threads):
            if isinstance(structures, (list, tuple, Batch)):
                return evaluate_in_chunks(self, structures, compute_forces, compute_stress, timings, chunk_pairs,
                                          progress)
            return self._evaluate(structures, compute_forces, compute_stress, timings)

    def _evaluate(self, structures, compute_forces, compute_stress, timings) -> dict:
        if timings is None and _is_single(structures):  # one ase.Atoms: the lean pass where it applies
            single = self._single_pass()
            out = None if single is None else single.evaluate(structures, compute_forces, compute_stress)
            if out is not None:
                return out
        clock = _Clock(timings, self.device)
        batch, host = self._host_inputs(structures)
        compute_stress, host_volumes = _stress_decision(host, compute_forces, compute_stress)
        species = self.species_of(host.numbers, host).to(self.device)
        n, b = batch.n_atoms, batch.n_systems
        energies = torch.zeros(n, dtype=self.dtype, device=self.device)
        energy = torch.zeros(b, dtype=self.dtype, device=self.device)
        forces = virials = None  # the first term's tensors (a sum only from the second term on)
        with clock("neighbours"):
            graphs = self.graph_cache.graphs(batch, validated=True, host=host)
        need_grad = bool(compute_forces or compute_stress)
        shared: dict[float, BatchGraph] = {}
        summed: dict[float, torch.Tensor] = {}  # cutoff -> summed edge gradients: one scatter per graph
        for comp in self.components:
            name = type(comp).__name__.lower()
            with clock(name):
                if comp.is_structure_level:
                    e_b, f, v = _structure_term(comp, batch, species, need_grad)
                    energy = energy + e_b
                    if f is not None:
                        forces, virials = (f, v) if forces is None else (forces + f, virials + v)
                    continue
                inputs = self._inputs(batch, species, graphs, comp.cutoff, shared, detach=True)
                if comp.cutoff is None or not need_grad:  # energies only: the forward pass, no gradients
                    with torch.no_grad():
                        e_i, g = comp.site_energies(inputs, backend=self.backend), None
                elif self.backend == "torch":
                    e_i, g = _exact_edge_grads(comp, inputs)
                else:
                    e_i, g = comp.energies_and_edge_grads(inputs, backend=self.backend)
                energies = energies + e_i.detach()
                if g is not None:
                    summed[comp.cutoff] = g if comp.cutoff not in summed else summed[comp.cutoff] + g
        if need_grad:
            with clock("scatter"):
                for cutoff, g in summed.items():
                    inputs = shared[cutoff]
                    # the indices are the graph's own (in range by construction): no range checks, no host reads
                    f, v = scatter_forces_virials(g, inputs.vectors, inputs.centers, inputs.neighbors,
                                                  inputs.edge_system, n, b, backend=self.backend, check=False)
                    forces, virials = (f, v) if forces is None else (forces + f, virials + v)
        if forces is None:
            forces = torch.zeros((n, 3), dtype=self.dtype, device=self.device)
            virials = torch.zeros((b, 3, 3), dtype=self.dtype, device=self.device)
        energy = energy.index_add(0, batch.system_idx, energies)
        out = {"energy": energy, "energies": energies, "system_idx": batch.system_idx}
        if compute_forces:
            out["forces"] = forces
        if compute_stress:
            out["virials"] = virials
            # a CPU model's batch is its host copy: its volumes are computed already
            volumes = host_volumes if batch is host else batch.volumes()
            out["stress"] = -virials / volumes.reshape(-1, 1, 1)
        return out


def _stress_decision(host: Batch, compute_forces: bool, compute_stress: bool | None) -> tuple[bool, torch.Tensor]:
    """Whether the call computes stress, from the host copy of the cells: by default when every
    structure has a cell of non-zero volume; on request, raising for a structure without one.
    Returns the decision and the host volumes (B,)."""
    volumes = host.volumes()
    flat = volumes.detach().numpy()  # (host values: numpy tests, no torch dispatch)
    if compute_stress is None:
        return bool(compute_forces and host.n_systems > 0 and bool((flat > 0).all())), volumes
    if compute_stress and bool((flat <= 0).any()):
        b = int(np.flatnonzero(flat <= 0)[0])
        raise ValueError(f"structure {b}: stress needs a cell of non-zero volume")
    return bool(compute_stress), volumes


def _exact_edge_grads(comp, inputs: BatchGraph):
    """Site energies on the torch reference and per-edge gradients by autograd."""
    vectors = inputs.vectors.detach().requires_grad_(True)
    local = BatchGraph(inputs.batch, inputs.species, inputs.graph, vectors)
    with torch.enable_grad():
        e_i = comp.site_energies(local, backend="torch")
        if vectors.shape[0] > 0 and e_i.requires_grad:
            (g,) = torch.autograd.grad(e_i.sum(), vectors)
        else:
            g = torch.zeros_like(vectors)
    return e_i.detach(), g


def _structure_term(comp, batch: Batch, species, need_grad: bool):
    """A structure-level component's energies (B,) and, by autograd in positions and cell, its
    forces (N, 3) and virials (B, 3, 3) in the stack's convention (stress = -virial / V)."""
    positions = batch.positions.detach().requires_grad_(need_grad)
    cell = batch.cell.detach().requires_grad_(need_grad)
    local = Batch(positions=positions, numbers=batch.numbers, cell=cell, pbc=batch.pbc,
                  system_idx=batch.system_idx, charges=batch.charges)
    with torch.enable_grad():
        e_b = comp.structure_energies(BatchGraph(local, species))
        if not (need_grad and e_b.requires_grad):
            return e_b.detach(), None, None
        gx, gc = torch.autograd.grad(e_b.sum(), (positions, cell), allow_unused=True)
    gx = torch.zeros_like(positions) if gx is None else gx
    gc = torch.zeros_like(cell) if gc is None else gc
    # dE/d(strain) = sum_i x_i (x) dE/dx_i + cell^T dE/dcell (rows of cell are vectors); virial = -that
    outer = torch.einsum("ia,ib->iab", positions.detach(), gx)
    strain = outer.new_zeros((batch.n_systems, 3, 3)).index_add(0, batch.system_idx, outer)
    strain = strain + cell.detach().transpose(1, 2) @ gc
    return e_b.detach(), -gx, -strain


def _is_single(structures) -> bool:
    from ase import Atoms

    return isinstance(structures, Atoms)


def _check_threads(n):
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_threads must be a positive integer or None, got {n!r}")
    return n


class _Clock:
    """Adds the wall time of each ``with clock(name)`` block to ``timings[name]`` (no-op without a dict)."""

    def __init__(self, timings: dict | None, device: torch.device):
        self.timings = timings
        self.cuda = device.type == "cuda"

    _OFF = contextlib.nullcontext()  # reusable: without a dict a block costs no generator

    def __call__(self, name: str):
        return self._OFF if self.timings is None else self._timed(name)

    @contextlib.contextmanager
    def _timed(self, name: str):
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        yield
        if self.cuda:
            torch.cuda.synchronize()
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
