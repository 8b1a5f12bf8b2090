"""Generation of ACE bases: canonical (mu, n, l) tuples, independent invariant products, C-tilde form.

Pipeline (see :func:`generate_basis`):

1. **Enumerate** for each central species mu0 and each rank r the canonical tuples: multisets of
   factors (mu, n, l), written sorted, with n <= nradmax_by_orders[r-1] (1-based, as in files),
   l <= lmax_by_orders[r-1], sum(l) even (reflection invariance), optionally the total-degree rule
   sum_t (n_t + w_L l_t) <= D. Rank 1 is (mu, n, 0) with n <= nradmax_by_orders[0]; it uses the radial
   basis g_{n-1} directly (ACE_SPEC.md 2.10).
2. **Couple** every tuple through every set of intermediate momenta LS that the coupling tree allows
   (`acepy.basis.coupling`, pacemaker's tree and normalisation). Products of A commute, so two
   m-tuples that differ by a permutation among identical factors are the same monomial, and (for
   even sum(l)) the monomial at -ms is the complex conjugate of the one at ms with the same
   coefficient: each coupling is therefore stored on *representatives* of these classes, as the
   coefficient of Re(prod_t A_t) (pacemaker's "half basis" idea, merged over permutations).
3. **Select** a linearly independent subset of those couplings (greedy Gram-Schmidt in the order of
   LS, relative tolerance 1e-9): identical factors make many couplings vanish or coincide.
4. **Emit** C-tilde functions (ACE_SPEC.md 1.7): one per tuple, m-tuples = the representatives,
   ``ctildes[s, p] = sum_f coefficient[f, p] * coupling[f, s]``.

Radial functions: each ordered species pair gets a `PaceBond` (ChebExpCos, ChebPow, SBessel, ...)
with crad[n, l, k]; by default crad[n, l, k] = delta_{nk} (R_nl = g_n, as pacemaker initialises it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence, Union

import numpy as np

from acepy.spec import NPOTI_NAMES, ACEPotentialSpec, CTildeFunction, Embedding, PaceBond, is_pace_radbasename

from acepy.coupling import coupling_table, coupling_tree

__all__ = ["BondSpec", "TupleBlock", "GeneratedBasis", "generate_basis", "default_embedding"]

# Relative tolerance of the greedy independence test (couplings are O(0.01-1) numbers; a dependent
# one leaves a residual at rounding level, about 1e-15 of its norm).
INDEPENDENCE_TOL = 1e-9
# Merged coupling entries below this (relative to the unit norm of the unmerged coupling table) are
# cancellation residue of exactly-zero sums (identical factors) and are dropped.
ZERO_TOL = 1e-13


@dataclass
class BondSpec:
    """Radial basis of one ordered species pair (ACE_SPEC.md 1.4, 2.2-2.5).

    ``crad`` is ``"delta"`` (crad[n, l, k] = 1 if n == k), an array ``(nradmax, lmax + 1, nradbase)``,
    or a callable ``f(n, l, k) -> float`` (0-based indices).
    """

    radbasename: str = "ChebExpCos"
    radparameters: Sequence[float] = (5.25,)
    rcut: float = 5.0
    dcut: float = 0.01
    prehc: float = 0.0
    lambdahc: float = 1.0
    rcut_in: float = 0.0
    dcut_in: float = 0.0
    inner_cutoff_type: str = "density"
    crad: Union[str, np.ndarray, Callable[[int, int, int], float]] = "delta"


def default_embedding(ndensity: int = 1) -> Embedding:
    """Linear first density, sqrt-like further ones (FinnisSinclairShiftedScaled), no rho-core cutoff."""
    fs = [1.0, 1.0]
    for _ in range(1, ndensity):
        fs += [1.0, 0.5]
    return Embedding(ndensity=ndensity, fs_parameters=np.array(fs), npoti="FinnisSinclairShiftedScaled",
                     rho_core_cutoff=100000.0, drho_core_cutoff=250.0)


@dataclass
class TupleBlock:
    """All independent invariant products of one canonical tuple of one central species.

    ``mus, ns, ls`` are sorted by (mu, n, l); ``ns`` is 1-based. ``LS[f]`` is the intermediate
    coupling of function f (pacemaker's full `lint` list); ``ms_combs[s]`` are the m-tuple
    representatives and ``coupling[f, s]`` the coefficient of Re(prod_t A[mus_t, ns_t, ls_t, m_st])
    in function f, i.e. function f = Re sum_s coupling[f, s] prod_t A_t.
    """

    mu0: int
    mus: np.ndarray
    ns: np.ndarray
    ls: np.ndarray
    LS: list[tuple[int, ...]]
    ms_combs: np.ndarray  # (S, rank) int64
    coupling: np.ndarray  # (F, S) float64

    @property
    def rank(self) -> int:
        return int(self.ls.shape[0])

    @property
    def nfunctions(self) -> int:
        return int(self.coupling.shape[0])


@dataclass
class GeneratedBasis:
    """A generated ACE basis: radial bonds, embeddings and, per central species, tuple blocks.

    Functions of species mu0 are numbered block by block in ``blocks[mu0]`` order (ranks ascending),
    and within a block in ``LS`` order; :meth:`to_spec` takes coefficients in that order.
    """

    elements: list[str]
    bonds: dict[tuple[int, int], PaceBond]
    embeddings: list[Embedding]
    blocks: list[list[TupleBlock]]
    delta_spline_bins: float = 0.001
    settings: dict = field(default_factory=dict)

    def nfunctions(self, mu0: int | None = None) -> int:
        """Number of independent functions of species mu0 (all species if None)."""
        if mu0 is None:
            return sum(self.nfunctions(m) for m in range(len(self.elements)))
        return sum(b.nfunctions for b in self.blocks[mu0])

    def nctilde(self, mu0: int | None = None) -> int:
        """Number of C-tilde functions (one per tuple) of species mu0 (all species if None)."""
        if mu0 is None:
            return sum(len(b) for b in self.blocks)
        return len(self.blocks[mu0])

    def function_table(self, mu0: int) -> list[tuple[int, int]]:
        """(block index, row in block) of every function of mu0, in coefficient order."""
        return [(i, f) for i, b in enumerate(self.blocks[mu0]) for f in range(b.nfunctions)]

    def to_spec(self, coefficients: Sequence[np.ndarray], E0: Sequence[float] | None = None,
                source: str = "acepy.basis.generate_basis") -> ACEPotentialSpec:
        """The C-tilde potential with ``coefficients[mu0]`` of shape (nfunctions(mu0), ndensity).

        A tuple whose coefficients are all zero is left out.
        """
        nel = len(self.elements)
        if len(coefficients) != nel:
            raise ValueError(f"coefficients: need one array per species ({nel}), got {len(coefficients)}")
        functions: list[list[CTildeFunction]] = []
        for mu0 in range(nel):
            p = self.embeddings[mu0].ndensity
            c = np.asarray(coefficients[mu0], dtype=np.float64)
            if c.ndim == 1 and p == 1:
                c = c[:, None]
            if c.shape != (self.nfunctions(mu0), p):
                raise ValueError(f"coefficients[{mu0}] ({self.elements[mu0]}): expected shape "
                                 f"{(self.nfunctions(mu0), p)}, got {c.shape}")
            if not np.all(np.isfinite(c)):
                raise ValueError(f"coefficients[{mu0}] ({self.elements[mu0]}): non-finite values")
            out = []
            start = 0
            for block in self.blocks[mu0]:
                cb = c[start:start + block.nfunctions]
                start += block.nfunctions
                if not np.any(cb):
                    continue
                ctildes = block.coupling.T @ cb  # (S, P)
                keep = np.any(ctildes != 0.0, axis=1)
                out.append(CTildeFunction(
                    mu0=mu0, rank=block.rank, ndensity=p, mus=block.mus.copy(), ns=block.ns.copy(),
                    ls=block.ls.copy(), ms_combs=block.ms_combs[keep].copy(), ctildes=ctildes[keep]))
            functions.append(out)
        n = nel
        return ACEPotentialSpec(
            elements=list(self.elements),
            E0=np.zeros(nel) if E0 is None else np.asarray(E0, dtype=np.float64).reshape(nel),
            delta_spline_bins=self.delta_spline_bins,
            embeddings=list(self.embeddings),
            bonds=dict(self.bonds),
            functions=functions,
            lmax=max(b.lmax for b in self.bonds.values()),
            inner_cutoff_type=self.bonds[(n - 1, n - 1)].inner_cutoff_type,
            radial_kind="pace",
            source=source,
        )


# ------------------------------------------------------------------------------------------------
# Input handling
# ------------------------------------------------------------------------------------------------


def _per_pair(value, elements: list[str], what: str) -> dict[tuple[int, int], object]:
    """One value for all ordered pairs, or a mapping keyed by (i, j) indices or element-name pairs."""
    n = len(elements)
    pairs = [(i, j) for i in range(n) for j in range(n)]
    if not isinstance(value, Mapping):
        return {p: value for p in pairs}
    out = {}
    for key, item in value.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"{what}: keys must be species pairs like (0, 1) or ('Al', 'Ni'), got {key!r}")
        idx = []
        for k in key:
            if isinstance(k, str):
                if k not in elements:
                    raise ValueError(f"{what}[{key!r}]: element {k!r} is not in {elements}")
                idx.append(elements.index(k))
            else:
                if not 0 <= int(k) < n:
                    raise ValueError(f"{what}[{key!r}]: species index out of range 0..{n - 1}")
                idx.append(int(k))
        out[tuple(idx)] = item
    missing = [p for p in pairs if p not in out]
    if missing:
        raise ValueError(f"{what}: every ordered species pair needs an entry; missing "
                         f"{[(elements[i], elements[j]) for i, j in missing]}")
    return out


def _make_bond(spec: BondSpec, where: str, nradmax: int, lmax: int, nradbase: int) -> PaceBond:
    if not isinstance(spec, BondSpec):
        raise ValueError(f"{where}: expected a BondSpec, got {type(spec).__name__}")
    if not is_pace_radbasename(spec.radbasename):
        raise ValueError(f"{where}.radbasename: unknown radial basis {spec.radbasename!r}")
    radparameters = np.atleast_1d(np.asarray(spec.radparameters, dtype=np.float64))
    if radparameters.size == 0:
        raise ValueError(f"{where}.radparameters: must not be empty (PACE reads radparameters[0])")
    if not spec.rcut > 0:
        raise ValueError(f"{where}.rcut: must be > 0, got {spec.rcut}")
    shape = (nradmax, lmax + 1, nradbase)
    if isinstance(spec.crad, str):
        if spec.crad != "delta":
            raise ValueError(f"{where}.crad: expected 'delta', an array or a callable, got {spec.crad!r}")
        crad = np.zeros(shape)
        for n in range(min(nradmax, nradbase)):
            crad[n, :, n] = 1.0
    elif callable(spec.crad):
        crad = np.array([[[float(spec.crad(n, l, k)) for k in range(nradbase)] for l in range(lmax + 1)]
                         for n in range(nradmax)]).reshape(shape)
    else:
        crad = np.asarray(spec.crad, dtype=np.float64)
        if crad.shape != shape:
            raise ValueError(f"{where}.crad: expected shape (nradmax, lmax + 1, nradbase) = {shape}, got {crad.shape}")
    if not np.all(np.isfinite(crad)):
        raise ValueError(f"{where}.crad: non-finite values")
    return PaceBond(radbasename=spec.radbasename, radparameters=radparameters, nradmax=nradmax, lmax=lmax,
                    nradbasemax=nradbase, crad=crad, prehc=float(spec.prehc), lambdahc=float(spec.lambdahc),
                    rcut=float(spec.rcut), dcut=float(spec.dcut), rcut_in=float(spec.rcut_in),
                    dcut_in=float(spec.dcut_in), inner_cutoff_type=spec.inner_cutoff_type)


def _int_list(value, what: str) -> list[int]:
    try:
        out = [int(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a list of integers, got {value!r}") from None
    if not out:
        raise ValueError(f"{what}: must not be empty (one entry per rank)")
    if any(v < 0 for v in out) or any(int(v) != v for v in value):
        raise ValueError(f"{what}: expected non-negative integers, got {list(value)}")
    return out


# ------------------------------------------------------------------------------------------------
# Enumeration and coupling
# ------------------------------------------------------------------------------------------------


def _LS_candidates(ls: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every full LS list whose tree obeys all triangle rules with a root L = 0, ascending."""
    rank = len(ls)
    if rank <= 2:
        return [()] if (rank == 1 and ls[0] == 0) or (rank == 2 and ls[0] == ls[1]) else []
    nodes = coupling_tree(rank)
    root = 2 * rank - 2
    labels: list[int] = list(ls) + [0] * (rank - 2) + [0]
    out: list[tuple[int, ...]] = []

    def walk(k: int) -> None:
        if k == len(nodes):
            out.append(tuple(labels[rank:root]))
            return
        a, b, c = nodes[k]
        la, lb = labels[a], labels[b]
        if c == root:
            if la == lb:
                walk(k + 1)
            return
        for L in range(abs(la - lb), la + lb + 1):
            labels[c] = L
            walk(k + 1)

    walk(0)
    return sorted(out)


def _representatives(ms: np.ndarray, groups: list[tuple[int, int]], lmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Class key of every m-tuple row: permutations inside groups of identical factors and the
    overall sign flip ms -> -ms give the same Re(prod A). Returns (keys, canonical rows)."""
    def canon(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        for a, b in groups:
            if b - a > 1:
                x[:, a:b] = -np.sort(-x[:, a:b], axis=1)  # descending within the group
        return x

    base = 2 * lmax + 1
    weights = base ** np.arange(ms.shape[1] - 1, -1, -1, dtype=np.int64)  # lexicographic
    pos, neg = canon(ms), canon(-ms)
    kp, kn = (pos + lmax) @ weights, (neg + lmax) @ weights
    take_pos = kp >= kn
    return np.where(take_pos, kp, kn), np.where(take_pos[:, None], pos, neg)


def _couple_tuple(ls: tuple[int, ...], groups: list[tuple[int, int]], lmax: int):
    """(LS list, representative rows, coupling matrix) of the independent products of one tuple."""
    candidates = _LS_candidates(ls)
    if not candidates:
        return [], None, None
    keyed = []
    for LS in candidates:
        ms, c = coupling_table(ls, LS)
        if ms.shape[0] == 0:
            continue
        keys, rows = _representatives(ms, groups, lmax)
        keyed.append((LS, keys, rows, c))
    if not keyed:
        return [], None, None
    all_keys = np.concatenate([k for _, k, _, _ in keyed])
    all_rows = np.concatenate([r for _, _, r, _ in keyed])
    uniq, first = np.unique(all_keys, return_index=True)
    rows = all_rows[first]
    matrix = np.zeros((len(keyed), uniq.size))
    for i, (_, keys, _, c) in enumerate(keyed):
        np.add.at(matrix[i], np.searchsorted(uniq, keys), c)
    # Scale of each candidate before merging: its full coefficient table has unit norm (the
    # coupling is orthonormal), so merged entries far below it are cancellation residue of exact
    # zeros, and a merged vector that small is the zero function.
    raw = np.array([np.linalg.norm(c) for _, _, _, c in keyed])[:, None]
    matrix[np.abs(matrix) < ZERO_TOL * raw] = 0.0
    # greedy Gram-Schmidt in LS order: keep a coupling if it is not in the span of those kept
    kept, basis = [], []
    for i in range(len(keyed)):
        r = matrix[i].copy()
        if not np.any(r):
            continue
        for _ in range(2):  # twice: re-orthogonalisation keeps the test sharp
            for q in basis:
                r -= (q @ r) * q
        rn = np.linalg.norm(r)
        if rn > INDEPENDENCE_TOL * raw[i, 0]:
            kept.append(i)
            basis.append(r / rn)
    coupling = matrix[kept]
    used = np.any(coupling != 0.0, axis=0)
    return [keyed[i][0] for i in kept], rows[used], coupling[:, used]


def _groups(triples: Sequence[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """[start, end) ranges of runs of identical factors in a sorted tuple."""
    out, start = [], 0
    for t in range(1, len(triples) + 1):
        if t == len(triples) or triples[t] != triples[start]:
            out.append((start, t))
            start = t
    return out


def generate_basis(
    elements: Sequence[str],
    nradmax_by_orders: Sequence[int],
    lmax_by_orders: Sequence[int],
    bonds: Union[BondSpec, Mapping] = None,
    embeddings: Union[Embedding, Mapping, Sequence[Embedding], None] = None,
    max_degree: float | None = None,
    l_weight: float = 1.0,
    nradbase: int | None = None,
    delta_spline_bins: float = 0.001,
) -> GeneratedBasis:
    """Enumerate and couple an ACE basis (module docstring); returns a :class:`GeneratedBasis`.

    * ``nradmax_by_orders[r-1]`` / ``lmax_by_orders[r-1]``: pacemaker's per-rank box (n 1-based,
      up to that many radial functions; l up to that value). The correlation order is their
      common length. ``lmax_by_orders[0]`` must be 0 (rank 1 has l = 0).
    * ``max_degree`` D with ``l_weight`` w_L: keep a tuple only if sum_t (n_t + w_L l_t) <= D
      (n 1-based); None for no degree rule.
    * ``bonds``: one :class:`BondSpec` for every ordered pair, or a mapping (i, j) / (El_i, El_j)
      -> BondSpec. ``embeddings``: one `Embedding` for every species, or a list / mapping by
      element. ``nradbase`` (number of g_k) defaults to max(nradmax_by_orders).
    """
    elements = [str(e) for e in elements]
    if not elements or len(set(elements)) != len(elements):
        raise ValueError(f"elements: need distinct element names, got {elements}")
    nel = len(elements)
    nrad = _int_list(nradmax_by_orders, "nradmax_by_orders")
    lmaxs = _int_list(lmax_by_orders, "lmax_by_orders")
    if len(nrad) != len(lmaxs):
        raise ValueError(f"nradmax_by_orders ({len(nrad)} ranks) and lmax_by_orders ({len(lmaxs)} ranks) "
                         "must have the same length")
    if lmaxs[0] != 0:
        raise ValueError(f"lmax_by_orders[0] must be 0 (rank-1 functions have l = 0), got {lmaxs[0]}")
    rankmax = len(nrad)
    nradmax = max(nrad[1:], default=0)
    lmax = max(lmaxs[1:], default=0)
    if nradbase is None:
        nradbase = max(nrad)
    if nradbase < nrad[0]:
        raise ValueError(f"nradbase = {nradbase} is below nradmax_by_orders[0] = {nrad[0]} (rank 1 uses g_k)")

    bond_specs = _per_pair(BondSpec() if bonds is None else bonds, elements, "bonds")
    pace_bonds = {p: _make_bond(b, f"bonds[{elements[p[0]]}, {elements[p[1]]}]", nradmax, lmax, nradbase)
                  for p, b in bond_specs.items()}
    emb_list = _embeddings(embeddings, elements)

    blocks: list[list[TupleBlock]] = [[] for _ in range(nel)]
    cache: dict = {}
    for mu0 in range(nel):
        # rank 1: one function per (mu, n)
        for mu in range(nel):
            for n in range(1, nrad[0] + 1):
                if max_degree is not None and n > max_degree:
                    continue
                blocks[mu0].append(TupleBlock(
                    mu0=mu0, mus=np.array([mu]), ns=np.array([n]), ls=np.array([0]), LS=[()],
                    ms_combs=np.zeros((1, 1), dtype=np.int64), coupling=np.ones((1, 1))))
        for rank in range(2, rankmax + 1):
            triples = [(mu, n, l) for mu in range(nel) for n in range(1, nrad[rank - 1] + 1)
                       for l in range(lmaxs[rank - 1] + 1)]
            for tup in itertools.combinations_with_replacement(triples, rank):
                ls = tuple(t[2] for t in tup)
                if sum(ls) % 2 or 2 * max(ls) > sum(ls):  # parity; a polygon rule for coupling to L = 0
                    continue
                if max_degree is not None and sum(t[1] + l_weight * t[2] for t in tup) > max_degree + 1e-12:
                    continue
                groups = _groups(tup)
                key = (ls, tuple(groups))
                if key not in cache:
                    cache[key] = _couple_tuple(ls, groups, lmax)
                LS, rows, coupling = cache[key]
                if not LS:
                    continue
                blocks[mu0].append(TupleBlock(
                    mu0=mu0, mus=np.array([t[0] for t in tup]), ns=np.array([t[1] for t in tup]),
                    ls=np.array(ls), LS=list(LS), ms_combs=rows, coupling=coupling))
    settings = dict(nradmax_by_orders=nrad, lmax_by_orders=lmaxs, max_degree=max_degree, l_weight=l_weight,
                    nradbase=nradbase)
    return GeneratedBasis(elements=elements, bonds=pace_bonds, embeddings=emb_list, blocks=blocks,
                          delta_spline_bins=float(delta_spline_bins), settings=settings)


def _embeddings(value, elements: list[str]) -> list[Embedding]:
    n = len(elements)
    if value is None:
        out = [default_embedding() for _ in range(n)]
    elif isinstance(value, Embedding):
        out = [value] * n
    elif isinstance(value, Mapping):
        missing = [e for e in elements if e not in value]
        if missing:
            raise ValueError(f"embeddings: missing an entry for {missing}")
        out = [value[e] for e in elements]
    else:
        out = list(value)
        if len(out) != n:
            raise ValueError(f"embeddings: need one per element ({n}), got {len(out)}")
    for e, emb in zip(elements, out):
        if not isinstance(emb, Embedding):
            raise ValueError(f"embeddings[{e}]: expected an Embedding, got {type(emb).__name__}")
        if emb.npoti not in NPOTI_NAMES:
            raise ValueError(f"embeddings[{e}].npoti: unknown {emb.npoti!r}; expected one of {NPOTI_NAMES}")
        if len(np.asarray(emb.fs_parameters)) != 2 * emb.ndensity:
            raise ValueError(f"embeddings[{e}].fs_parameters: need 2 * ndensity = {2 * emb.ndensity} values")
    return out
