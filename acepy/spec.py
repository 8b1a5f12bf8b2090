"""Plain-data description of a potential (C-tilde ACE, LAMMPS pair tables): what readers build and models consume.

Only numpy arrays and Python scalars live here (no torch), so the readers stay cheap to import and
the model layer decides devices and dtypes. Field names follow the `.yace` keys
(`../shared/reference/ACE_SPEC.md` section 1) so that a reader of the spec can find them in a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Union

import numpy as np

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
