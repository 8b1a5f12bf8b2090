"""Basis rows (the design matrix) of a linear ACE potential, with their derivatives.

With one density and a linear embedding (F(rho) = w rho: the kind ACEpotentials.jl fits and
:func:`acepy.basis.default_embedding` gives) the site energy is linear in the coefficients:

    E_i = E0[mu_i] + ref_i + sum_k c_k w s_i B_ik

with B_ik the basis functions (rank 1: A1; rank >= 2: Re of coupled products of the atomic base A;
ACE_SPEC.md 2.10), w the embedding weight and s_i the energy-level inner cutoff (1 away from core
overlap, ACE_SPEC.md 2.12). ``ref_i`` is the coefficient-free part: core repulsion and a pair table
(for the zbl inner cutoff, ``(1 - f_zbl) rho_core``). :meth:`LinearBasis.rows` returns the rows of
energies, forces, virials, per-atom energies and Hessians (dense per structure, or products with
probe vectors) with that reference part, so that ``rows @ c + reference`` equals the model's values
to rounding.

For a nonlinear embedding (several densities, or a square-root one) the rows are the Jacobian of
the same quantities with respect to the coefficients at the current ones (``kind = "jacobian"``,
``is_linear = False``), with one column per function and density; ``reference`` then holds the
model's values at those coefficients (the linearisation point).

Forces follow acepy's sign (F = -dE/dx); virials are ``-sum_edges r_ij (x) dE/dr_ij`` per structure,
the same as :meth:`acepy.models.Stack.evaluate`'s ``virials`` (stress = -virial / volume; DeePMD's
``virial.npy`` has this sign too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from acepy.errors import UnsupportedInputError
from acepy.spec import ACEPotentialSpec, CTildeFunction

from . import rows_columns
from .rows_eval import chunks
from .rows_plan import RowPlan
from .rows_scatter import columns_of_chunk, reference_values, scatter_chunk

__all__ = ["LinearBasis", "Rows"]

# Dense Hessian rows (n_b, 3, n_b, 3, K) of all structures of a call may take at most this many bytes.
MAX_HESSIAN_BYTES = 2**30


@dataclass
class Rows:
    """Rows of one call (numpy float64; None where not asked). Column k of every array belongs to
    :attr:`LinearBasis.columns` [k]; ``reference`` holds the coefficient-free part (same keys)."""

    energy: np.ndarray | None = None  # (B, K)
    forces: np.ndarray | None = None  # (N, 3, K)
    virial: np.ndarray | None = None  # (B, 3, 3, K)
    per_atom: np.ndarray | None = None  # (N, K)
    hessian: list | None = None  # [(n_b, 3, n_b, 3, K)]
    hvp: np.ndarray | None = None  # (P, N, 3, K)
    reference: dict = field(default_factory=dict)
    kind: str = "linear"
    system_idx: np.ndarray | None = None  # (N,) structure of each atom
    site_scale: np.ndarray | None = None  # (N,) s_i, the energy-level inner cutoff factor (1 away from cores)


def _linear_embedding(emb) -> bool:
    fs = np.asarray(emb.fs_parameters, dtype=np.float64)
    return emb.ndensity == 1 and abs(fs[1] - 1.0) < 1e-10


class LinearBasis:
    """A linear ACE basis: ``E_i = E0[mu_i] + ref_i + sum_k c_k B_ik`` (module docstring).

    Attributes: ``elements``, ``ncoefficients`` (K), ``species_slices`` (the columns of each central
    species), ``columns`` (a label per column: species, rank, mus, ns (1-based), ls, LS, density),
    ``degrees`` (sum of the 1-based radial indices n_t of each column) and ``l_sums`` (sum of l_t),
    ``is_linear``, ``coefficients`` (the file's, or the current ones for a Jacobian; None if unknown).
    """

    def __init__(self, table, template: ACEPotentialSpec, E0=None, pair_table=None, coefficients=None,
                 source: str = ""):
        self._table = table
        self._template = template
        self.elements = list(template.elements)
        nel = len(self.elements)
        self.E0 = np.zeros(nel) if E0 is None else _per_element(E0, self.elements, "E0")
        self.pair_table = pair_table
        self.source = source
        self.is_linear = all(_linear_embedding(e) for e in template.embeddings)
        self.kind = "linear" if self.is_linear else "jacobian"
        self.embeddings = list(template.embeddings)
        dens = [1 if self.is_linear else e.ndensity for e in template.embeddings]
        col_f, col_p = [], []
        only = table.densities if table.densities is not None else np.full(table.nfunctions, -1)
        for f in range(table.nfunctions):
            for p in range(dens[int(table.species[f])]):
                if only[f] < 0 or only[f] == p:
                    col_f.append(f)
                    col_p.append(p)
        self._col_function = np.asarray(col_f, dtype=np.int64)
        self._col_density = np.asarray(col_p, dtype=np.int64)
        self.ncoefficients = len(col_f)
        col_species = table.species[self._col_function]
        self.species_slices = []
        for mu in range(nel):
            idx = np.nonzero(col_species == mu)[0]
            self.species_slices.append(slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0))
        self.columns = [dict(table.labels[f], density=int(p)) for f, p in zip(col_f, col_p)]
        self.degrees = np.array([sum(c["ns"]) for c in self.columns], dtype=np.int64)
        self.l_sums = np.array([sum(c["ls"]) for c in self.columns], dtype=np.int64)
        self.coefficients = coefficients
        self._ref = None
        self._plan = None

    @property
    def coefficients(self) -> np.ndarray | None:
        """(K,) the file's coefficients, or the current ones of a Jacobian (None: none given)."""
        return self._coefficients

    @coefficients.setter
    def coefficients(self, value) -> None:
        self._coefficients = None if value is None else self._check_coefficients(value)

    # ---- construction -----------------------------------------------------------------------------
    @classmethod
    def from_generated(cls, basis, E0=None, pair_table=None, coefficients=None) -> "LinearBasis":
        """From a :class:`~acepy.basis.GeneratedBasis`. ``coefficients`` (K,) are needed only for
        the Jacobian rows of a nonlinear embedding; for a linear one they are optional."""
        template = basis.to_spec([np.zeros((basis.nfunctions(mu), e.ndensity))
                                  for mu, e in enumerate(basis.embeddings)])
        return cls(rows_columns.from_generated(basis), template, E0=E0, pair_table=pair_table,
                   coefficients=coefficients, source="acepy.basis.generate_basis")

    @classmethod
    def from_file(cls, path, E0=None, pair_table=None) -> "LinearBasis":
        """From a pacemaker B-basis ``.yaml`` (its B functions are the basis, as python-ace's
        ``ACEBEvaluator`` projections) or a ``.yace`` (each C-tilde function scaled to unit norm is
        a basis function). ``coefficients`` are the file's; E0 the ``.yace``'s unless given."""
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            spec, table, per_function = rows_columns.from_bbasis_yaml(path)
        else:
            from acepy.io import read_potential

            spec = read_potential(path)
            if spec.pair is not None:
                raise UnsupportedInputError(f"{path}: a SHIPs pair potential inside the file is not supported "
                                            "by basis rows (give the pair part as a LAMMPS pair table)")
            table, per_function = rows_columns.from_ctilde_spec(spec)
            if E0 is None:
                E0 = spec.E0
        template = ACEPotentialSpec(
            elements=spec.elements, E0=np.zeros(len(spec.elements)), delta_spline_bins=spec.delta_spline_bins,
            embeddings=spec.embeddings, bonds=spec.bonds, functions=[[] for _ in spec.elements], lmax=spec.lmax,
            inner_cutoff_type=spec.inner_cutoff_type, radial_kind=spec.radial_kind, pair=spec.pair, source=str(path))
        out = cls(table, template, E0=E0, pair_table=pair_table, source=str(path))
        out.coefficients = np.array([per_function[f][p] for f, p in zip(out._col_function, out._col_density)])
        return out

    # ---- coefficients to potential -------------------------------------------------------------------
    def _check_coefficients(self, coefficients) -> np.ndarray:
        c = np.asarray(coefficients, dtype=np.float64)
        if c.shape != (self.ncoefficients,):
            raise ValueError(f"coefficients: expected shape ({self.ncoefficients},) (one per column of this "
                             f"basis), got {c.shape}")
        if not np.all(np.isfinite(c)):
            bad = int(np.nonzero(~np.isfinite(c))[0][0])
            raise ValueError(f"coefficients[{bad}] is {c[bad]}: coefficients must be finite")
        return c

    def _per_function(self, c: np.ndarray) -> np.ndarray:
        """(Kf, Pmax) coefficient of each function and density."""
        pmax = max(e.ndensity for e in self.embeddings)
        out = np.zeros((self._table.nfunctions, pmax))
        out[self._col_function, self._col_density] = c
        return out

    def spec(self, coefficients) -> ACEPotentialSpec:
        """The C-tilde potential with these coefficients (E0 included), for ``acepy.io.write_yace``."""
        c = self._per_function(self._check_coefficients(coefficients))
        functions = [[] for _ in self.elements]
        for g in self._table.groups:
            p = self.embeddings[g.mu0].ndensity
            cg = c[g.functions, :p]
            if not np.any(cg):
                continue
            ctildes = g.coupling.T @ cg
            keep = np.any(ctildes != 0.0, axis=1)
            functions[g.mu0].append(CTildeFunction(
                mu0=g.mu0, rank=g.rank, ndensity=p, mus=g.mus.copy(), ns=g.ns.copy(), ls=g.ls.copy(),
                ms_combs=g.ms_combs[keep].copy(), ctildes=ctildes[keep]))
        t = self._template
        return ACEPotentialSpec(elements=list(self.elements), E0=self.E0.copy(), delta_spline_bins=t.delta_spline_bins,
                                embeddings=list(t.embeddings), bonds=dict(t.bonds), functions=functions, lmax=t.lmax,
                                inner_cutoff_type=t.inner_cutoff_type, radial_kind=t.radial_kind,
                                source=f"acepy.fit.LinearBasis({self.source})")

    def model(self, coefficients, dtype=torch.float64, device="cpu", backend=None, **stack_kwargs):
        """A ready :class:`acepy.models.Stack` (OneBody(E0) + ACE (+ Pair)) with these coefficients."""
        return _stack(self.spec(coefficients), self.pair_table, dtype, device, backend, stack_kwargs)

    def _reference_model(self):
        if self._ref is None:
            self._ref = self.model(np.zeros(self.ncoefficients))
            self._plan = RowPlan(self._table, self._ref.components[1])
        return self._ref

    # ---- rows ---------------------------------------------------------------------------------------
    def rows(self, structures, energy: bool = True, forces: bool = True, virial: bool = True,
             per_atom: bool = False, hessian: bool | str = False, probes=None, chunk_atoms: int | None = None,
             progress: bool = False, max_hessian_bytes: int = MAX_HESSIAN_BYTES,
             num_threads: int | None = None) -> Rows:
        """Rows of ``structures`` (an ``ase.Atoms``, a list of them or an :class:`acepy.Batch`).

        ``hessian``: ``True``/``"full"`` for dense rows per structure (refused beyond
        ``max_hessian_bytes`` in all: use probes), ``"hvp"`` (or giving ``probes (P, N, 3)``) for
        the rows of Hessian-vector products. ``chunk_atoms``: atoms per chunk (default: what keeps
        the work arrays near 200 MB). ``progress``: a tqdm bar over the chunks. ``num_threads``: the
        CPU threads of the Numba kernels (torch's own ops run on one thread inside, as in every acepy
        call: two thread pools oversubscribe the cores).
        """
        ref = self._reference_model()
        with ref._threads(num_threads):
            return self._rows(structures, energy, forces, virial, per_atom, hessian, probes, chunk_atoms, progress,
                              max_hessian_bytes)

    def _rows(self, structures, energy, forces, virial, per_atom, hessian, probes, chunk_atoms, progress,
              max_hessian_bytes) -> Rows:
        full, want_hvp = _hessian_mode(hessian, probes)
        ref = self._reference_model()
        plan = self._plan
        batch = ref._batch(structures)
        if self.is_linear:
            c = None
        else:
            if self.coefficients is None:
                raise ValueError(f"rows: the embedding is not linear ({_embedding_names(self.embeddings)}): the "
                                 "rows are the Jacobian at the current coefficients, and this basis has none "
                                 "(give coefficients= to LinearBasis.from_generated, or set basis.coefficients)")
            c = torch.as_tensor(self._per_function(self.coefficients), dtype=torch.float64)
        if (full or want_hvp) and not self.is_linear:
            raise UnsupportedInputError(f"rows: Hessian rows need a linear embedding; this basis has "
                                        f"{_embedding_names(self.embeddings)}")
        n, b, k = batch.n_atoms, batch.n_systems, self.ncoefficients
        sizes = (batch.atom_offsets[1:] - batch.atom_offsets[:-1]).tolist()
        if full:
            need = sum(9 * s * s for s in sizes) * k * 8
            if need > max_hessian_bytes:
                raise ValueError(f"rows: dense Hessian rows of these structures ({max(sizes)} atoms at most, {k} "
                                 f"columns) would take {need / 2**30:.2f} GiB, above max_hessian_bytes = "
                                 f"{max_hessian_bytes / 2**30:.2f} GiB: ask for products with probe vectors "
                                 "(hessian='hvp', probes=...) or raise the limit")
        pvec = None
        if want_hvp:
            from acepy.models.hessian import check_vectors

            pvec, _ = check_vectors(batch, probes)
            if not bool(torch.isfinite(pvec).all()):
                raise ValueError("rows: probes contain NaN or inf")
        out = _Accumulator(n, b, k, batch, energy, forces, virial, per_atom, full, pvec)
        species = ref.species_of(batch.numbers, batch)
        graphs = ref.graph_cache.graphs(batch)
        ace = ref.components[1]
        inputs = ref._inputs(batch, species, graphs, ace.cutoff, {}, detach=True)
        it = chunks(ace, plan, inputs, chunk_atoms, hessian=full or want_hvp)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="basis rows", unit="chunk")
        for chunk in it:
            vals, grads = columns_of_chunk(self, chunk, c)
            scatter_chunk(out, chunk, vals, grads, batch.system_idx)
            out.site_scale[chunk.a0:chunk.a1] = chunk.scale
            if full or want_hvp:
                from .rows_hessian import hessian_chunk

                hessian_chunk(out, self, plan, chunk, batch)
        if full:
            from .rows_hessian import finish_dense

            finish_dense(out, self, plan)
        result = out.result(self.kind)
        result.reference = reference_values(self, batch, result, full, pvec)
        return result

    def __repr__(self) -> str:
        return (f"LinearBasis(elements={self.elements}, ncoefficients={self.ncoefficients}, kind={self.kind!r}, "
                f"source={self.source!r})")


class _Accumulator:
    """The output arrays of one rows call (torch float64 until the end)."""

    def __init__(self, n, b, k, batch, energy, forces, virial, per_atom, full, pvec):
        z = dict(dtype=torch.float64)
        self.batch = batch
        self.energy = torch.zeros((b, k), **z) if energy else None
        self.forces = torch.zeros((n, 3, k), **z) if forces else None
        self.virial = torch.zeros((b, 3, 3, k), **z) if virial else None
        self.per_atom = torch.zeros((n, k), **z) if per_atom else None
        self.pvec = pvec
        self.hvp = torch.zeros((pvec.shape[0], n, 3, k), **z) if pvec is not None else None
        self.hessian = None
        self.site_scale = torch.ones(n, **z)
        if full:  # one flat buffer: structure b holds (K, n_b, 3, n_b, 3) from self.base[b]
            sizes = batch.atom_offsets[1:] - batch.atom_offsets[:-1]
            self.n_b = sizes
            per = 9 * k * sizes * sizes
            self.base = torch.cumsum(per, 0) - per
            self.k = k
            self.hessian = torch.zeros(int(per.sum()), **z)

    def structure_hessian(self, b: int) -> torch.Tensor:
        """A view of structure b's dense rows, ``(K, n_b, 3, n_b, 3)``."""
        n, base = int(self.n_b[b]), int(self.base[b])
        return self.hessian[base:base + 9 * self.k * n * n].view(self.k, n, 3, n, 3)

    def result(self, kind: str) -> Rows:
        def np_(t):
            return None if t is None else t.numpy()

        hess = None
        if self.hessian is not None:
            hess = []
            for b in range(len(self.n_b)):
                hess.append(self.structure_hessian(b).permute(1, 2, 3, 4, 0).contiguous().numpy())
        return Rows(energy=np_(self.energy), forces=np_(self.forces),
                    virial=np_(self.virial), per_atom=np_(self.per_atom), hessian=hess, hvp=np_(self.hvp), kind=kind,
                    system_idx=self.batch.system_idx.numpy(), site_scale=self.site_scale.numpy())


def _hessian_mode(hessian, probes):
    if hessian in (False, None):
        full, hvp = False, probes is not None
    elif hessian is True or hessian == "full":
        full, hvp = True, probes is not None
    elif hessian == "hvp":
        if probes is None:
            raise ValueError("rows: hessian='hvp' needs probes (P, N, 3): the vectors to multiply the Hessian with")
        full, hvp = False, True
    else:
        raise ValueError(f"rows: hessian must be False, True, 'full' or 'hvp', got {hessian!r}")
    return full, hvp


def _embedding_names(embeddings) -> str:
    return ", ".join(f"{e.npoti} with {e.ndensity} densit{'y' if e.ndensity == 1 else 'ies'} "
                     f"(fs_parameters {np.asarray(e.fs_parameters).tolist()})" for e in embeddings[:1]) + (
        " ..." if len(embeddings) > 1 else "")


def _per_element(values, elements, what: str) -> np.ndarray:
    if isinstance(values, dict):
        missing = [e for e in elements if e not in values]
        if missing:
            raise ValueError(f"{what}: no value for {missing}")
        return np.array([float(values[e]) for e in elements])
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape != (len(elements),):
        raise ValueError(f"{what}: need one value per element {elements}, got {arr.shape[0]}")
    return arr


def _stack(spec, pair_table, dtype, device, backend, stack_kwargs):
    from acepy.models.ace import ACE
    from acepy.models.onebody import OneBody
    from acepy.models.stack import Stack

    components = [OneBody(spec.E0, spec.elements, dtype=dtype, device=device), ACE(spec, dtype=dtype, device=device)]
    if pair_table is not None:
        from acepy.io import read_pair_table
        from acepy.models.pair import Pair

        table = read_pair_table(pair_table) if isinstance(pair_table, (str, Path)) else pair_table
        components.append(Pair(table, spec.elements, dtype=dtype, device=device))
    return Stack(components, spec.elements, dtype=dtype, device=device, backend=backend, **stack_kwargs)
