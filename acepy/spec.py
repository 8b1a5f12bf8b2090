"""Plain-data description of a potential (C-tilde ACE, LAMMPS pair tables): what readers build and models consume.

Only numpy arrays and Python scalars live here (no torch), so the readers stay cheap to import and
the model layer decides devices and dtypes. Field names follow the `.yace` keys
(`../shared/reference/ACE_SPEC.md` section 1) so that a reader of the spec can find them in a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Union

import numpy as np

from acepy.kernels.sph_harm import LMAX_LIMIT

__all__ = [
    "Embedding",
    "PaceBond",
    "ShipsBond",
    "SplineBond",
    "RepulsiveCore",
    "ShipsPairPotential",
    "CTildeFunction",
    "ACEPotentialSpec",
    "NPOTI_NAMES",
    "INNER_CUTOFF_TYPES",
    "PACE_RADBASE_NAMES",
    "is_pace_radbasename",
    "function_problem",
    "Problem",
    "TableProblem",
    "LMAX_LIMIT",
    "MAX_RADIAL_TABLE_BYTES",
    "embedding_problems",
    "pace_bond_problems",
    "ships_basis_problems",
    "repulsive_core_problems",
    "radial_table_problem",
    "PairTable",
    "PairTableSection",
]

NPOTI_NAMES = ("FinnisSinclair", "FinnisSinclairShiftedScaled")
INNER_CUTOFF_TYPES = ("density", "distance", "zbl")
# `TEST_*` names are also accepted (every g_k = 0), see `is_pace_radbasename`.
PACE_RADBASE_NAMES = ("ChebExpCos", "ChebPow", "ChebLinear", "SBessel")


def is_pace_radbasename(name: str) -> bool:
    """True for the radial bases that PACE tabulates itself (spec 1.4)."""
    return name in PACE_RADBASE_NAMES or name.startswith("TEST_")


@dataclass(eq=False)
class Embedding:
    """Embedding F(rho_1..rho_P) and energy-level inner cutoff of one central species (spec 1.3).

    ``fs_parameters`` is ``[w_1, m_1, w_2, m_2, ...]`` (weight, exponent per density).
    """

    ndensity: int
    fs_parameters: np.ndarray  # (2 * ndensity,)
    npoti: str  # 'FinnisSinclair' | 'FinnisSinclairShiftedScaled'
    rho_core_cutoff: float
    drho_core_cutoff: float


@dataclass(eq=False)
class PaceBond:
    """A PACE radial basis for one ordered species pair (spec 1.4).

    ``crad[n, l, k]`` are the coefficients of R_nl = sum_k crad[n, l, k] g_k, shape
    ``(nradmax, lmax + 1, nradbasemax)`` of this bond (the evaluator pads them to the global sizes).
    ``inner_cutoff_type`` is the bond's own value; only the global one in `ACEPotentialSpec` is used.
    """

    radbasename: str
    radparameters: np.ndarray  # non-empty; lambda = radparameters[0]
    nradmax: int
    lmax: int
    nradbasemax: int
    crad: np.ndarray
    prehc: float
    lambdahc: float
    rcut: float
    dcut: float
    rcut_in: float = 0.0
    dcut_in: float = 0.0
    inner_cutoff_type: str = "density"


@dataclass(eq=False)
class ShipsBond:
    """ACE.jl / SHIPs polynomial radial basis (spec 1.5, 2.7): x = ((1+r0)/(1+r))^p, envelope
    (x-xl)^pl (x-xr)^pr, three-term recursion with coefficients A, B, C (each of length maxn).
    Also used as the basis of the SHIPs pair potential."""

    rcut: float
    r0: float
    p: int
    xl: float
    xr: float
    pl: int
    pr: int
    maxn: int
    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    radbasename: str = "ACE.jl.base"


@dataclass(eq=False)
class SplineBond:
    """ACEpotentials v0.6 spline radial table (spec 1.6): nodes at r_n = n * rcut / nbins,
    ``values[i, n]`` = R_i(r_n) and ``derivatives[i, n]`` = R_i'(r_n), i < nradial, n <= nbins."""

    rcut: float
    nradial: int
    nbins: int
    values: np.ndarray  # (nradial, nbins + 1)
    derivatives: np.ndarray  # (nradial, nbins + 1)


class RepulsiveCore(NamedTuple):
    """Inner repulsive core of the SHIPs pair potential: V = e0 + B exp(-A (r/ri - 1)) ri/r for r <= ri."""

    ri: float
    e0: float
    A: float
    B: float


@dataclass(eq=False)
class ShipsPairPotential:
    """SHIPs polynomial pair potential (spec 1.5 `polypairpot` / `reppot`, 2.8).

    ``coefficients`` holds every ordered pair; a pair the file does not list gets zeros (as upstream,
    which zero-initialises the table). ``reppot`` holds only the pairs the file lists; a missing
    pair has ri = 0, i.e. the polynomial branch is always taken.
    """

    basis: ShipsBond
    coefficients: dict[tuple[int, int], np.ndarray]  # each (basis.maxn,)
    reppot: dict[tuple[int, int], RepulsiveCore] = field(default_factory=dict)


Bond = Union[PaceBond, ShipsBond, SplineBond]


@dataclass(eq=False)
class CTildeFunction:
    """One C-tilde basis function (spec 1.7).

    ``ns`` are **1-based** radial indices exactly as written in the file (the evaluator uses
    ``ns - 1``). ``ms_combs[s, t]`` is m of factor t in m-tuple s, and ``ctildes[s, p]`` the
    coefficient of that tuple for density p.
    """

    mu0: int
    rank: int
    ndensity: int
    mus: np.ndarray  # int (rank,)
    ns: np.ndarray  # int (rank,), 1-based
    ls: np.ndarray  # int (rank,)
    ms_combs: np.ndarray  # int (num_ms_combs, rank)
    ctildes: np.ndarray  # float (num_ms_combs, ndensity)

    @property
    def num_ms_combs(self) -> int:
        return int(self.ms_combs.shape[0])


@dataclass(eq=False)
class ACEPotentialSpec:
    """A complete C-tilde ACE potential as read from a `.yace` or `.ace` file.

    * ``embeddings[mu]`` and ``functions[mu]`` are indexed by species (position in ``elements``);
      ``functions`` keeps the file order, duplicates included (the evaluator sums them).
    * ``bonds`` holds every ordered pair (i, j).
    * ``lmax`` is global: the maximum over PACE bonds, or the top-level ``lmax`` of ACE.jl files.
    * ``inner_cutoff_type`` is the single global value the C++ evaluator uses: that of bond
      [n-1, n-1] (a missing key means 'density'); 'density' for ACE.jl and `.ace` files.
    * ``radial_kind``: 'pace' (PaceBond), 'ships' (ShipsBond), 'spline' (SplineBond).
    * ``pair``: the SHIPs pair potential stored inside the file (ACE.jl 'ships' files only).
    * ``delta_spline_bins``: PACE table spacing; None where the file has none (ACE.jl files).
    """

    elements: list[str]
    E0: np.ndarray
    delta_spline_bins: float | None
    embeddings: list[Embedding]
    bonds: dict[tuple[int, int], Bond]
    functions: list[list[CTildeFunction]]
    lmax: int
    inner_cutoff_type: str
    radial_kind: str
    pair: ShipsPairPotential | None = None
    source: str = ""

    @property
    def nelements(self) -> int:
        return len(self.elements)

    @property
    def nradmax(self) -> int:
        """Number of radial functions R_n (global maximum over bonds)."""
        return max((_bond_sizes(b)[0] for b in self.bonds.values()), default=0)

    @property
    def nradbase(self) -> int:
        """Number of radial basis functions g_k (global maximum over bonds)."""
        return max((_bond_sizes(b)[1] for b in self.bonds.values()), default=0)

    @property
    def rankmax(self) -> int:
        return max((f.rank for fs in self.functions for f in fs), default=0)

    @property
    def ndensitymax(self) -> int:
        return max((e.ndensity for e in self.embeddings), default=0)

    @property
    def cutoffmax(self) -> float:
        rc = max((b.rcut for b in self.bonds.values()), default=0.0)
        if self.pair is not None:
            rc = max(rc, self.pair.basis.rcut)
        return rc

    def cutoff(self, i: int, j: int) -> float:
        """Neighbour cutoff of the ordered pair (i, j): a neighbour counts iff r < cutoff.

        For SHIPs files the C++ code uses the global maximum (bonds and pair potential) for every
        pair (spec 1.5), so this returns ``cutoffmax`` there.
        """
        if self.radial_kind == "ships":
            return self.cutoffmax
        return self.bonds[(i, j)].rcut


def _bond_sizes(bond: Bond) -> tuple[int, int]:
    """(nradmax, nradbase) of one bond; for the ACE.jl kinds both are the number of functions."""
    if isinstance(bond, PaceBond):
        return bond.nradmax, bond.nradbasemax
    if isinstance(bond, ShipsBond):
        return bond.maxn, bond.maxn
    return bond.nradial, bond.nradial


def function_problem(fn: CTildeFunction, nelements: int, nradbase: int, nradmax: int, lmax: int) -> str | None:
    """Why the evaluator could not use ``fn`` (an index out of the potential's ranges), or None.

    The C++ reader does not check these; an out-of-range index there reads past its arrays, so a
    reader here rejects the file instead. Rank-1 functions index g_k (up to nradbase), higher
    ranks index R_nl (up to nradmax) and Y_lm (l up to lmax, |m| <= l).
    """
    if np.any(fn.mus < 0) or np.any(fn.mus >= nelements):
        return f"mus {fn.mus.tolist()} out of range 0..{nelements - 1}"
    nmax = nradbase if fn.rank == 1 else nradmax
    what = "nradbase" if fn.rank == 1 else "nradmax"
    if np.any(fn.ns < 1) or np.any(fn.ns > nmax):
        return f"ns {fn.ns.tolist()} out of range 1..{nmax} (1-based, {what} = {nmax})"
    if fn.rank == 1:
        return None  # the evaluator reads neither l nor m of a rank-1 function (Y00 = 1)
    if np.any(fn.ls < 0) or np.any(fn.ls > lmax):
        return f"ls {fn.ls.tolist()} out of range 0..{lmax} (lmax)"
    bad = np.abs(fn.ms_combs) > fn.ls[None, :]
    if np.any(bad):
        s = int(np.argwhere(bad)[0][0])
        return f"ms_combs row {s} = {fn.ms_combs[s].tolist()} has |m| > l for ls {fn.ls.tolist()}"
    return None


# ---- value checks shared by the readers and the writer ----------------------------------------
# Each returns Problems naming the field of the object at fault; the caller turns them into errors
# (or warnings) naming the file and its own key path for that field.


class Problem(NamedTuple):
    field: str  # key under the checked object, e.g. "FS_parameters[3]", "dcut"
    message: str
    warning: bool = False  # python-ace accepts the value (and acepy computes what it computes)


# F(rho) = |rho|^m overflows float64 for |rho| > 10^(308/m): above this exponent a warning says so
FS_EXPONENT_WARN = 10.0


def embedding_problems(e: Embedding) -> list[Problem]:
    """Embedding values that make F meaningless: exponents m <= 0 (FinnisSinclairShiftedScaled
    raises nu = 1/m to the power nu/(1 - nu), undefined for m < 0; both forms diverge or flatten),
    negative density cutoffs; a huge exponent gets a warning (it overflows at moderate density)."""
    out = []
    fs = np.asarray(e.fs_parameters, dtype=np.float64).ravel()
    for p in range(min(int(e.ndensity), fs.size // 2)):
        m = float(fs[2 * p + 1])
        key = f"FS_parameters[{2 * p + 1}]"
        if not m > 0:
            out.append(Problem(key, f"exponent m = {m!r} of density {p} must be > 0 for {e.npoti} "
                                    "(F(rho) = |rho|^m with m <= 0 is no embedding; FinnisSinclairShiftedScaled "
                                    "is undefined there)"))
        elif m > FS_EXPONENT_WARN:
            out.append(Problem(key, f"exponent m = {m!r} of density {p}: |rho|^m overflows float64 for "
                                    f"|rho| > {10 ** (308 / m):.4g}; an evaluation that reaches it raises "
                                    "NonFiniteError", warning=True))
    for key, value in (("rho_core_cutoff", e.rho_core_cutoff), ("drho_core_cutoff", e.drho_core_cutoff)):
        if not value >= 0:
            out.append(Problem(key, f"must be >= 0, got {value!r} (the energy-level inner cutoff switches "
                                    "the embedding off below it)"))
    return out


def pace_bond_problems(b: PaceBond, inner_cutoff_type: str) -> list[Problem]:
    """Values of a PACE radial basis that make it meaningless (``inner_cutoff_type``: the
    potential's global value, which decides what prehc means)."""
    out = []
    if b.lmax > LMAX_LIMIT:
        out.append(Problem("lmax", f"{b.lmax} is above {LMAX_LIMIT}, the largest l acepy's spherical "
                                   "harmonics take"))
    lam = float(np.asarray(b.radparameters).ravel()[0]) if np.size(b.radparameters) else 1.0
    if b.radbasename in ("ChebExpCos", "ChebPow") and not lam > 0:
        out.append(Problem("radparameters[0]", f"lambda = {lam!r} must be > 0 for {b.radbasename} "
                                               "(its distance transform divides by it or raises to it)"))
    if not b.rcut > 0:
        out.append(Problem("rcut", f"must be > 0, got {b.rcut!r}"))
    for key, value in (("dcut", b.dcut), ("rcut_in", b.rcut_in), ("dcut_in", b.dcut_in)):
        if not value >= 0:
            out.append(Problem(key, f"must be >= 0, got {value!r}"))
    if b.rcut_in > 0 and b.rcut_in >= b.rcut:
        out.append(Problem("rcut_in", f"the inner cutoff {b.rcut_in!r} is not below the outer cutoff "
                                      f"rcut = {b.rcut!r}"))
    if inner_cutoff_type == "zbl":
        if b.prehc < 0:
            out.append(Problem("prehc", f"the ZBL prefactor {b.prehc!r} is negative: the core would attract"))
    elif b.prehc != 0:
        if b.lambdahc == 0:
            out.append(Problem("lambdahc", f"is 0 with prehc = {b.prehc!r}: the core repulsion "
                                           "|prehc| exp(-lambdahc r^2)/r would not decay"))
        elif b.lambdahc < 0:
            out.append(Problem("lambdahc", f"is negative ({b.lambdahc!r}); PACE uses its absolute value, "
                                           "and so does acepy", warning=True))
        if b.prehc < 0:
            out.append(Problem("prehc", f"is negative ({b.prehc!r}); PACE uses its absolute value, and so "
                                        "does acepy", warning=True))
    return out


def ships_basis_problems(b: ShipsBond) -> list[Problem]:
    """SHIPs polynomial parameters that make x = ((1 + r0)/(1 + r))^p or its envelope meaningless."""
    out = []
    if not b.rcut > 0:
        out.append(Problem("rcut", f"must be > 0, got {b.rcut!r}"))
    if not b.p > 0:
        out.append(Problem("p", f"must be > 0, got {b.p!r}"))
    if not b.r0 >= 0:
        out.append(Problem("r0", f"must be >= 0, got {b.r0!r}"))
    if not b.xl < b.xr:
        out.append(Problem("xl", f"xl = {b.xl!r} must be below xr = {b.xr!r} (the envelope's interval)"))
    return out


def repulsive_core_problems(core: RepulsiveCore) -> list[Problem]:
    return [] if core.ri >= 0 else [Problem("ri", f"must be >= 0, got {core.ri!r}")]


# The largest radial table acepy.load builds unless told otherwise (the readers' max_table_bytes).
MAX_RADIAL_TABLE_BYTES = 1 << 30
# bytes per spline node and function while the table is built: 4 float64 coefficients + value and slope
_TABLE_BYTES_PER_ENTRY = 48


class TableProblem(NamedTuple):
    """What makes a PACE radial table impossible: ``pair`` None blames the global deltaSplineBins,
    else ``field`` (rcut, nradbasemax, nradmax, lmax) of that bond."""

    pair: tuple[int, int] | None
    field: str
    message: str


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


def radial_table_problem(spec: ACEPotentialSpec, limit: int | None = None) -> TableProblem | None:
    """Why the PACE spline tables of ``spec`` cannot be built (fewer than 2 nodes for a bond, or more
    memory than ``limit`` bytes, default :data:`MAX_RADIAL_TABLE_BYTES`), computed from the sizes
    alone, before anything is allocated; None when they can. The tables hold one row of
    nradbase + nradmax (lmax + 1) + 1 functions per node, rcut/deltaSplineBins nodes per pair,
    every pair padded to the longest."""
    if spec.radial_kind != "pace" or not spec.bonds:
        return None
    limit = MAX_RADIAL_TABLE_BYTES if limit is None else limit
    delta = spec.delta_spline_bins
    nodes = {}
    for pair, b in spec.bonds.items():
        ratio = b.rcut / delta if delta and delta > 0 else math.inf
        if not ratio >= 2:
            return TableProblem(None, "deltaSplineBins", f"{delta!r} leaves fewer than 2 spline nodes below "
                                f"rcut = {b.rcut!r} of bond {list(pair)} (nodes = int(rcut / deltaSplineBins))")
        nodes[pair] = ratio
    worst = max(nodes, key=nodes.get)
    functions = spec.nradbase + spec.nradmax * (spec.lmax + 1) + 1
    need = float(len(nodes)) * (nodes[worst] + 2) * functions * _TABLE_BYTES_PER_ENTRY
    if need <= limit:
        return None
    b = spec.bonds[worst]
    detail = (f"the radial spline tables would need about {_gib(need)} (the limit is {_gib(limit)}; "
              f"acepy.load(..., max_table_bytes=...) raises it): {len(nodes)} pair tables x "
              f"{nodes[worst]:.4g} nodes (rcut {b.rcut!r} of bond {list(worst)} / deltaSplineBins {delta!r}) x "
              f"{functions} functions (nradbase {spec.nradbase} + nradmax {spec.nradmax} x (lmax {spec.lmax} + 1) + 1)")
    # blame what is furthest from the usual (deltaSplineBins 0.001, rcut <= 10 A, <= 100 functions)
    blame = {"deltaSplineBins": 1e-3 / delta, "rcut": b.rcut / 10.0, "functions": functions / 100.0}
    culprit = max(blame, key=blame.get)
    if culprit == "deltaSplineBins":
        return TableProblem(None, culprit, detail)
    if culprit == "rcut":
        return TableProblem(worst, culprit, detail)
    field_ = "nradbasemax" if spec.nradbase >= spec.nradmax * (spec.lmax + 1) else "nradmax"
    pair = max(spec.bonds, key=lambda p: getattr(spec.bonds[p], field_))
    return TableProblem(pair, field_, detail)


# ---- LAMMPS pair tables (ACE_SPEC.md section 3): read by acepy.io.read_pair_table ----

@dataclass(eq=False)
class PairTableSection:
    keyword: str
    r: np.ndarray  # (n,) strictly increasing, > 0
    energy: np.ndarray  # (n,)
    force: np.ndarray  # (n,) = -dE/dr
    params: dict = field(default_factory=dict)  # {'N': n, 'R'|'RSQ': (lo, hi), 'FPRIME': (lo, hi)}
    r_file: np.ndarray | None = None
    line: int = 0  # line number of the keyword


@dataclass(eq=False)
class PairTable:
    path: str
    sections: dict[str, PairTableSection]

    def section_for(self, el_a: str, el_b: str) -> PairTableSection:
        """The section of the unordered pair: `A_B` or, failing that, `B_A`."""
        for key in (f"{el_a}_{el_b}", f"{el_b}_{el_a}"):
            if key in self.sections:
                return self.sections[key]
        raise KeyError(f"{self.path}: no section {el_a}_{el_b} or {el_b}_{el_a}; "
                       f"sections are {list(self.sections)}")
