"""The extrapolation grade of a pacemaker potential: projections per atom and gamma.

python-ace's **linear** projections of an atom (its default) are the values of its species'
B-basis functions, in python-ace's order: sorted by (rank, neighbour species, n, l) of the
function's factors, ties in file order (checked against python-ace's ``ACEBEvaluator`` on every
pacemaker file of the tests). Its **full** projections (``pace_activeset -f``, the ``.asi.nonlinear``
file) are dE_i/dc over the coefficients c_fp of the atom's species, one per (density p, function f),
**density-major** (all functions of density 0, then density 1, ...): dE_i/dc_fp = F'_p(rho_i) B_if
with F the embedding and rho_p = sum_f c_fp B_f, *without* the energy-level inner cutoff factor
(python-ace's ``ACEBEvaluator::compute_atom`` fills ``dE_dc`` before it multiplies dF/drho by
f_cut; checked to 1e-15 on a file whose core cutoff switches). An ``.asi`` file holds, per element,
the inverse of the active set of those rows (:mod:`acepy.fit.active_set`); the grade is
gamma_i = max_k |(b_i A^-1)_k|.

Which projections an ``.asi`` holds is told by its sizes, as python-ace's calculator and LAMMPS
(``load_active_set``, auto mode) tell it: K x K per element is linear, (K P) x (K P) full. Where
both are possible (one density) python-ace takes linear; so does ``kind="auto"`` here (pass
``kind="full"`` for a one-density full set). Potentials with different density counts per element
are refused by python-ace's full mode (its ``dE_dc`` buffer has the largest count for every
element); acepy computes them per element as defined above.

    grade = ExtrapolationGrade("potential.yaml", "potential.asi")
    gamma = grade(structures)                      # (N,) numpy, one batched call
    aset = select_active_set("potential.yaml", training_structures)   # MaxVol, then aset.write(...)

The projections are torch ops: they run on the grade's device (``device=``, or the model's after
``attach``), whatever backend the model computes its forces with. ``attach(model, grade)`` gives
a stack ``model.extrapolation_grade(structures)``, and ``ACECalculator(path,
active_set="potential.asi")`` the per-atom ``gamma`` result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from acepy.kernels import atomic_base
from acepy.models.embedding import embedding_energy_and_derivative

from .active_set import ActiveSet, read_asi
from .rows import LinearBasis
from .rows_plan import RowPlan

__all__ = ["ExtrapolationGrade", "b_projections", "projections", "select_active_set", "attach"]

# atoms per chunk of the projection pass (values only: a few kB per atom). On the CPU small chunks
# stay in cache: 1024 atoms took 30-45 us per atom on 2 cores where 4096 took 55-170 (Al-Ni, 2048 atoms)
CHUNK_ATOMS = {"cpu": 1024, "cuda": 16384}
KINDS = ("auto", "linear", "full")


def _basis(potential) -> LinearBasis:
    if isinstance(potential, LinearBasis):
        return potential
    path = Path(potential)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ValueError(f"{path}: the extrapolation grade needs the pacemaker B-basis .yaml of the potential "
                         "(python-ace's active sets are made of its B-basis projections; a .yace has C-tilde "
                         "functions only)")
    return LinearBasis.from_file(path)


def _python_ace_columns(basis: LinearBasis) -> list[np.ndarray]:
    """Per species: its basis functions (indices into B's columns, one per function: the
    density-0 basis column of each) in python-ace's order."""
    out = []
    for mu, el in enumerate(basis.elements):
        cols = [k for k, c in enumerate(basis.columns) if c["species"] == el and c.get("density", 0) == 0]

        def key(k):
            c = basis.columns[k]
            return (c["rank"], tuple(basis.elements.index(m) for m in c["mus"]), tuple(c["ns"]), tuple(c["ls"]))

        ordered = sorted(cols, key=key)  # sorted() is stable: file order in ties
        out.append(np.asarray([basis._col_function[k] for k in ordered], dtype=np.int64))
    return out


class _Projector:
    """The coefficient-free ACE component of a basis on one device, with its row plan, the
    python-ace column order and the coefficients (Kf, P) that the full projections need."""

    def __init__(self, basis: LinearBasis, device, backend: str | None = None):
        device = torch.device(device)
        shared = basis._reference_model() if device.type == "cpu" else None  # shared with the basis rows
        if shared is not None and backend in (None, shared.backend):
            self.ref, self.plan = shared, basis._plan
        else:
            self.ref = basis.model(np.zeros(basis.ncoefficients), device=device, backend=backend)
            self.plan = RowPlan(basis._table, self.ref.components[1])
        self.device = device
        self.basis = basis
        self.columns = [torch.as_tensor(c, device=device) for c in _python_ace_columns(basis)]
        c = basis.coefficients
        self.coefficients = None if c is None else torch.as_tensor(basis._per_function(c), device=device)

    def values(self, structures, graph_cache=None, num_threads=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``B (N, Kf)`` float64 and the species ``(N,)`` of every atom, on the device.
        ``graph_cache``: a float64 model's cache of the same potential, whose search of these
        positions (made by its force call) is then reused instead of a second one."""
        ref, plan = self.ref, self.plan
        ace = ref.components[1]
        with ref._threads(num_threads):
            batch = ref._batch(structures)
            species = ref.species_of(batch.numbers, batch)
            cache = graph_cache if graph_cache is not None and ace.cutoff in graph_cache.cutoffs else ref.graph_cache
            graphs = cache.graphs(batch, validated=True)  # _batch checked it
            inputs = ref._inputs(batch, species, graphs, ace.cutoff, {}, detach=True)
            edges_all = ace._prepare(inputs)
            offsets = edges_all.offsets.cpu().numpy()
            out = torch.zeros((batch.n_atoms, plan.nfunctions), dtype=torch.float64, device=self.device)
            step = CHUNK_ATOMS.get(self.device.type, CHUNK_ATOMS["cpu"])
            for a0 in range(0, batch.n_atoms, step):
                a1 = min(batch.n_atoms, a0 + step)
                e0, e1 = int(offsets[a0]), int(offsets[a1])
                out[a0:a1] = _values(ace, plan, species[a0:a1], edges_all.slice(a0, a1, e0, e1), ref.backend)
        return out, species

    def rows(self, values: torch.Tensor, species: torch.Tensor, mu: int, full: bool) -> torch.Tensor:
        """The projection rows of the atoms of species ``mu`` in python-ace's column order: B
        (n, K), or full (n, K P) = [F'_0 B, F'_1 B, ...] (density-major)."""
        atoms = torch.nonzero(species == mu).squeeze(1)
        b = values[atoms][:, self.columns[mu]]
        if not full:
            return b
        if self.coefficients is None:
            raise ValueError("full projections need the potential's coefficients (dE/dc = F'(rho) B at them); "
                             "this basis has none")
        emb = self.basis.embeddings[mu]
        rho = values[atoms] @ self.coefficients[:, :emb.ndensity]
        _, d1 = embedding_energy_and_derivative(rho, emb.fs_parameters, emb.npoti)  # (n, P)
        return (d1[:, :, None] * b[:, None, :]).reshape(b.shape[0], -1)


def _values(ace, plan, species, edges, backend=None) -> torch.Tensor:
    """B (n, Kf) of one chunk's atoms: the forward pass of acepy.fit.rows_eval without gradients,
    on the device's kernels (Numba on CPU, Triton on CUDA, the torch reference where ACEPY_BACKEND
    says so; they agree to rounding): the radial tables and the atomic base with its harmonics
    fused per edge, as the model's own forward pass."""
    n = species.shape[0]
    with torch.no_grad():
        r = torch.linalg.vector_norm(edges.vectors, dim=1)
        rad = ace.radial.evaluate(r, edges.mu_i, edges.mu_j, backend=backend, check=False)
        rows = edges.centers * plan.nel + edges.mu_j
        a1 = rad.gk.new_zeros((n * plan.nel, plan.nb)).index_add(0, rows, rad.gk).reshape(n, plan.nel * plan.nb)
        a = None
        if plan.width:
            a_re, a_im = atomic_base(rad.rnl, None, None, edges.offsets, edges.mu_j, plan.nel, backend=backend,
                                     vectors=edges.vectors, check=False)
            a = torch.complex(a_re.reshape(n, plan.width), a_im.reshape(n, plan.width))
        b, _ = plan.values_and_gradients(a, a1, species, gradients=False)
    return b


def b_projections(potential, structures) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """B-basis projections of every atom: ``(values (N, Kf), species (N,), columns)`` where row i's
    projections in python-ace's order are ``values[i, columns[species[i]]]``."""
    basis = _basis(potential)
    values, species = _Projector(basis, "cpu").values(structures)
    return values.numpy(), species.cpu().numpy(), _python_ace_columns(basis)


def projections(potential, structures, full: bool = False, device=None) -> dict[str, np.ndarray]:
    """Per element, the projection rows of its atoms (in atom order) as python-ace's
    ``compute_B_projections(..., is_full=full)`` gives them per species: ``{element: (n, K)}``
    linear, ``{element: (n, K P)}`` full."""
    basis = _basis(potential)
    proj = _Projector(basis, device or "cpu")
    values, species = proj.values(structures)
    return {el: proj.rows(values, species, mu, full).cpu().numpy() for mu, el in enumerate(basis.elements)}


def _kind(inverses: dict, basis: LinearBasis, linear: dict, kind: str, where: str) -> str:
    """"linear" or "full" for these inverse active sets (python-ace's auto rule: the sizes)."""
    if kind not in KINDS:
        raise ValueError(f"ExtrapolationGrade: kind must be one of {KINDS}, got {kind!r}")
    dens = {el: e.ndensity for el, e in zip(basis.elements, basis.embeddings)}
    for el in basis.elements:
        if el not in inverses:
            raise ValueError(f"{where}: no entry for {el} (the active set has {sorted(inverses)})")
    extra = sorted(set(inverses) - set(basis.elements))
    if extra:
        raise ValueError(f"{where}: entries {extra} are not elements of the potential {basis.elements}")
    sizes = {el: int(inverses[el].shape[0]) for el in basis.elements}
    if kind == "auto":
        kind = "linear" if all(sizes[el] == linear[el] for el in sizes) else "full"
    for el, k in sizes.items():
        want = linear[el] * (dens[el] if kind == "full" else 1)
        if k != want:
            raise ValueError(f"{where}: entry {el!r} is {k} x {k}, the potential has {linear[el]} projections for "
                             f"{el} (linear B projections; {linear[el]} x {dens[el]} densit"
                             f"{'y' if dens[el] == 1 else 'ies'} = {linear[el] * dens[el]} full dE/dc ones), and the "
                             f"other entries are {kind}: an active set of another potential?")
    return kind


class ExtrapolationGrade:
    """gamma per atom of ``potential`` (a pacemaker ``.yaml``, or a :class:`LinearBasis` of one)
    against ``active_set`` (an ``.asi`` path or an :class:`ActiveSet`).

    ``kind``: ``"auto"`` (the sizes tell linear from full, as python-ace's calculator does),
    ``"linear"`` or ``"full"``. ``device``: where the projections run (default CPU); every call
    may name another (:meth:`gamma`)."""

    def __init__(self, potential, active_set, kind: str = "auto", device=None):
        self.basis = _basis(potential)
        self.columns = _python_ace_columns(self.basis)
        linear = {el: len(c) for el, c in zip(self.basis.elements, self.columns)}
        if isinstance(active_set, ActiveSet):
            inverses, where = active_set.inverses, "active set"
        else:
            inverses, where = read_asi(active_set), str(active_set)
        self.kind = _kind(inverses, self.basis, linear, kind, where)
        self.active_set = active_set if isinstance(active_set, ActiveSet) else ActiveSet(inverses=inverses)
        self.device = torch.device(device or "cpu")
        self._projectors: dict[str, _Projector] = {}
        self._inverses: dict[str, list[torch.Tensor]] = {}

    @property
    def full(self) -> bool:
        return self.kind == "full"

    def _on(self, device, backend=None) -> tuple[_Projector, list[torch.Tensor]]:
        device = torch.device(device) if device is not None else self.device
        key = str(device) if backend is None else f"{device}/{backend}"
        if key not in self._projectors:
            self._projectors[key] = _Projector(self.basis, device, backend)
            self._inverses[key] = [torch.as_tensor(self.active_set.inverses[el], dtype=torch.float64, device=device)
                                   for el in self.basis.elements]
        return self._projectors[key], self._inverses[key]

    def gamma(self, structures, device=None, model=None, backend: str | None = None) -> torch.Tensor:
        """gamma ``(N,)`` float64 on ``device`` (default: the grade's, or ``model``'s), one batched
        pass; ``backend``: the kernels of the projections (default: the device's). ``model``: a
        Stack of the same potential that has just evaluated ``structures``: its device and backend
        are used, and (a float64 model) its neighbour search."""
        cache, threads = None, None
        if model is not None:
            threads = getattr(model, "num_threads", None)
            device = model.device if device is None else device
            backend = model.backend if backend is None else backend
            if model.dtype == torch.float64 and torch.device(device) == model.device:
                cache = getattr(model, "graph_cache", None)
        proj, inverses = self._on(device, backend)
        # acepy's thread scope for the whole call (torch on one thread inside, as every acepy call: a
        # second thread pool beside Numba's made a 32 x 9 product take 30 ms on two cores)
        with proj.ref._threads(threads):
            values, species = proj.values(structures, cache, threads)
            gamma = values.new_zeros(species.shape[0])
            for mu in range(len(self.basis.elements)):
                atoms = species == mu
                if bool(atoms.any()):
                    rows = proj.rows(values, species, mu, self.full)
                    gamma[atoms] = (rows @ inverses[mu]).abs().amax(dim=1)
        return gamma

    def __call__(self, structures) -> np.ndarray:
        return self.gamma(structures).cpu().numpy()

    def __repr__(self) -> str:
        return (f"ExtrapolationGrade({self.basis.source!r}, kind={self.kind!r}, "
                f"sizes={self.active_set.sizes()}, device={str(self.device)!r})")


def select_active_set(potential, structures, tol: float = 1.001, max_iters: int = 300, full: bool = False,
                      device=None) -> ActiveSet:
    """MaxVol active sets of the projections of every atom of ``structures`` (python-ace's
    ``pace_activeset``; ``full=True``: its ``-f``, dE/dc); ``.write(path)`` gives the ``.asi`` file."""
    rows = projections(potential, structures, full=full, device=device)
    return ActiveSet.select(rows, tol=tol, max_iters=max_iters)


def attach(model, grade: ExtrapolationGrade) -> None:
    """Give ``model`` (a Stack of the same potential) ``model.extrapolation_grade(structures)``,
    computed on the model's device."""
    if list(model.elements) != list(grade.basis.elements):
        raise ValueError(f"attach: the model's elements {model.elements} are not the potential's "
                         f"{grade.basis.elements}")
    def extrapolation(structures):
        return grade.gamma(structures, model=model)

    extrapolation.grade = grade
    model.extrapolation = extrapolation
