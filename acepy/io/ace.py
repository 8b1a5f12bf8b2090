"""Reader of the legacy `.ace` text format (spec `ACE_SPEC.md` section 1.9).

The C++ reader (`ACECTildeBasisSet::load`) is a sequence of `fscanf` calls, so the format is a
token stream rather than a line format: labels such as ``nradbase=`` are followed by
whitespace-separated values, and line breaks carry no meaning. `_Scanner` reproduces that
(a blank in a label matches any run of whitespace, a value is a run of non-blanks) and reports the
line of every problem.

Differences from the C++ reader, all on the strict side:
* Only single-species files are read. The format stores the embedding (FS parameters, npoti,
  ndensity) for species 0 only, so upstream leaves the other species' embeddings uninitialised.
* ``radbasename=ACE.jl.Basic`` (the ACE1 text export of SHIPs potentials) raises "unsupported":
  upstream PACE itself now throws "deprecated" for it, and no public file of that kind is known.
* Labels that upstream matches without checking the result (``elements:``, ``crad=``, ...) must
  be present.
"""

from __future__ import annotations

import bisect
import math
import re
from pathlib import Path

import numpy as np

from acepy.errors import PotentialFileError
from acepy.spec import (
    LMAX_LIMIT,
    NPOTI_NAMES,
    ACEPotentialSpec,
    CTildeFunction,
    Embedding,
    PaceBond,
    embedding_problems,
    function_problem,
    pace_bond_problems,
    radial_table_problem,
)

from .yaml_doc import INT_LIMIT, check_problems

__all__ = ["read_ace"]

# The radial bases that `.ace` files can name (upstream `_load_radial_ACERadial`).
_ACE_RADBASES = ("ChebExpCos", "ChebPow")


class _Scanner:
    """scanf-like reading of a text with line numbers in every error."""

    def __init__(self, path: Path, text: str, pos: int = 0):
        self.path, self.text, self.pos = path, text, pos
        self._last = pos  # start of the last token read, for error lines
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._nlines = max(1, len(text.splitlines()))

    def line(self, pos: int | None = None) -> int:
        # clamped so that "end of file" errors name the last line, not the one after it
        line = bisect.bisect_right(self._line_starts, self.pos if pos is None else pos)
        return min(line, self._nlines)

    def error(self, problem: str, pos: int | None = None) -> PotentialFileError:
        return PotentialFileError(self.path, f"line {self.line(pos)}", problem)

    def _skip_blanks(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos].isspace():
            pos += 1
        return pos

    def try_label(self, label: str) -> bool:
        """Match ``label`` here (leading blanks skipped, inner blanks = any whitespace); on a
        mismatch consume nothing and return False."""
        pos = self._skip_blanks(self.pos)
        for ch in label:
            if ch.isspace():
                pos = self._skip_blanks(pos)
            elif pos < len(self.text) and self.text[pos] == ch:
                pos += 1
            else:
                return False
        self.pos = pos
        return True

    def label(self, label: str) -> None:
        if not self.try_label(label):
            pos = self._skip_blanks(self.pos)
            found = self.text[pos:pos + 40].split("\n")[0] if pos < len(self.text) else "end of file"
            raise self.error(f"expected {label.strip()!r}, found {found!r}", pos)

    def word(self, what: str) -> str:
        pos = self._skip_blanks(self.pos)
        end = pos
        while end < len(self.text) and not self.text[end].isspace():
            end += 1
        if end == pos:
            raise self.error(f"unexpected end of file while reading {what}", pos)
        self.pos = end
        self._last = pos
        return self.text[pos:end]

    def float_(self, what: str) -> float:
        token = self.word(what)
        try:
            value = float(token)
        except ValueError:
            raise self.error(f"{what}: expected a number, got {token!r}", self._last) from None
        if not math.isfinite(value):
            raise self.error(f"{what}: non-finite number {token!r}", self._last)
        return value

    def int_(self, what: str, minimum: int | None = None) -> int:
        token = self.word(what)
        try:
            value = int(token)
        except ValueError:
            raise self.error(f"{what}: expected an integer, got {token!r}", self._last) from None
        if abs(value) > INT_LIMIT:
            raise self.error(f"{what}: integer {value} is out of range (|n| <= {INT_LIMIT})", self._last)
        if minimum is not None and value < minimum:
            raise self.error(f"{what}: must be >= {minimum}, got {value}", self._last)
        return value

    def floats(self, count: int, what: str) -> list[float]:
        return [self.float_(what) for _ in range(count)]


def read_ace(path, max_table_bytes: int | None = None) -> ACEPotentialSpec:
    """Read a single-species `.ace` potential file into an `ACEPotentialSpec`.

    As the C++ reader: leading lines before ``nelements=`` (comments) are skipped, E0 defaults to
    0, a missing ``embedding-function:`` means FinnisSinclair (allowed only for a linear
    embedding), ``inner_cutoff_type`` is 'density', and ``crad`` (written k-outer, then n, then
    l) is returned in [n][l][k] order. Values are checked as by :func:`acepy.io.read_yace`
    (errors and warnings name the line), and so is the size of the radial tables
    (``max_table_bytes``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "potential file not found", str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PotentialFileError(path, None, f"not a UTF-8 text file ({exc})") from None
    # Upstream retries `nelements=` line by line, so anything before it is ignored.
    start = re.search(r"^[ \t]*nelements=", text, flags=re.MULTILINE)
    if start is None:
        raise PotentialFileError(path, None, "no line starting with 'nelements=' (not an .ace file?)")
    s = _Scanner(path, text, start.start())

    s.label("nelements=")
    n = s.int_("nelements", minimum=1)
    if n != 1:
        raise s.error(f"nelements = {n}: multi-species .ace files are not supported (the format stores "
                      "the embedding of species 0 only); use the .yace format")
    s.label("elements:")
    elements = [s.word("elements") for _ in range(n)]
    s.label("lmax=")
    lmax = s.int_("lmax", minimum=0)
    if lmax > LMAX_LIMIT:
        raise s.error(f"lmax = {lmax} is above {LMAX_LIMIT}, the largest l acepy's spherical harmonics take", s._last)

    npoti = s.word("embedding-function") if s.try_label("embedding-function:") else None
    npoti_line = s.line()
    nfs = s.int_("number of FS parameters", minimum=0)
    s.label("FS parameters:")
    lines = {"FS_parameters": s.line()}
    fs = np.array(s.floats(nfs, "FS parameters"))
    if npoti is None:
        if np.any(fs[1::2] != 1.0):
            raise s.error("no 'embedding-function:' given for a non-linear embedding (FS exponents != 1)")
        npoti = "FinnisSinclair"
    elif npoti not in NPOTI_NAMES:
        raise PotentialFileError(path, f"line {npoti_line}", f"unknown embedding-function {npoti!r}")

    s.label("core energy-cutoff parameters:")
    lines["rho_core_cutoff"] = lines["drho_core_cutoff"] = s.line()
    rho_cut = [s.floats(2, "core energy-cutoff parameters") for _ in range(n)]
    E0 = np.array(s.floats(n, "E0")) if s.try_label("E0:") else np.zeros(n)

    s.label("radbasename=")
    radbasename = s.word("radbasename")
    if radbasename == "ACE.jl.Basic":
        raise s.error("radbasename=ACE.jl.Basic (ACE1 text export of SHIPs potentials) is unsupported; "
                      "upstream PACE rejects it as deprecated. Export the potential to .yace instead.", s._last)
    if radbasename not in _ACE_RADBASES:
        raise s.error(f"unknown radbasename {radbasename!r} for .ace files; expected one of {_ACE_RADBASES}", s._last)
    bonds, delta = _read_radial(s, n, lmax, radbasename, lines)

    s.label("rankmax=")
    rankmax = s.int_("rankmax", minimum=0)
    s.label("ndensitymax=")
    ndensity = s.int_("ndensitymax", minimum=1)
    if nfs != 2 * ndensity:
        raise s.error(f"{nfs} FS parameters given, but ndensitymax = {ndensity} needs {2 * ndensity}")
    s.label("num_c_tilde_max=")
    s.int_("num_c_tilde_max", minimum=0)  # sizes of upstream work arrays: not needed here
    s.label("num_ms_combinations_max=")
    s.int_("num_ms_combinations_max", minimum=0)

    embeddings = [Embedding(ndensity=ndensity, fs_parameters=fs, npoti=npoti,
                            rho_core_cutoff=rho_cut[0][0], drho_core_cutoff=rho_cut[0][1])]
    spec = ACEPotentialSpec(
        elements=elements, E0=E0, delta_spline_bins=delta, embeddings=embeddings,
        bonds=bonds, functions=[[] for _ in range(n)], lmax=lmax, inner_cutoff_type="density",
        radial_kind="pace", pair=None, source=str(path))
    _check_values(path, spec, lines, max_table_bytes)

    sizes = (n, spec.nradbase, spec.nradmax, lmax)
    for label in ("total_basis_size_rank1:", "total_basis_size:"):
        s.label(label)
        counts = [s.int_(label.rstrip(":"), minimum=0) for _ in range(n)]
        for mu in range(n):
            for _ in range(counts[mu]):
                fn = _read_function(s, mu, ndensity, sizes)
                if (fn.rank == 1) != (label == "total_basis_size_rank1:"):
                    raise s.error(f"rank-{fn.rank} function in the {label.rstrip(':')} block")
                if fn.rank > rankmax:
                    raise s.error(f"function of rank {fn.rank} exceeds rankmax = {rankmax}")
                spec.functions[mu].append(fn)
    s.pos = s._skip_blanks(s.pos)
    if s.pos < len(text):
        raise s.error(f"unexpected text after the last basis function: {text[s.pos:s.pos + 40]!r}")
    return spec


def _check_values(path: Path, spec: ACEPotentialSpec, lines: dict[str, int], max_table_bytes) -> None:
    """The value checks of :mod:`acepy.spec`, naming the line of each field's label."""
    def where(field):
        return f"line {lines[field.split('[')[0]]} ({field})"

    check_problems(path, embedding_problems(spec.embeddings[0]), where)
    for bond in spec.bonds.values():
        check_problems(path, pace_bond_problems(bond, spec.inner_cutoff_type), where)
    problem = radial_table_problem(spec, max_table_bytes)
    if problem is not None:
        raise PotentialFileError(path, where(problem.field), problem.message)


def _read_radial(s: _Scanner, n: int, lmax: int, radbasename: str, lines: dict[str, int]) -> tuple[dict, float]:
    """The radial block (upstream `_load_radial_ACERadial`): global sizes, then per-pair values
    in mu_i-outer, mu_j-inner order. Returns the bonds and deltaSplineBins; ``lines`` receives the
    line of each field (for the value checks)."""
    s.label("nradbase=")
    lines["nradbasemax"] = s.line()
    nradbase = s.int_("nradbase", minimum=0)
    s.label("nradmax=")
    lines["nradmax"] = lines["lmax"] = s.line()
    nradmax = s.int_("nradmax", minimum=0)
    s.label("cutoffmax=")
    s.float_("cutoffmax")  # recomputed from the per-pair cutoffs
    s.label("deltaSplineBins=")
    lines["deltaSplineBins"] = s.line()
    delta = s.float_("deltaSplineBins")
    if delta <= 0:
        raise s.error(f"deltaSplineBins must be > 0, got {delta}", s._last)
    pairs = [(i, j) for i in range(n) for j in range(n)]

    s.label("core repulsion parameters:")
    lines["prehc"] = lines["lambdahc"] = s.line()
    core = {p: s.floats(2, "core repulsion parameters") for p in pairs}
    s.label("radparameter=")
    lines["radparameters"] = s.line()
    lam = {p: s.float_("radparameter") for p in pairs}
    s.label("cutoff=")
    lines["rcut"] = lines["rcut_in"] = lines["dcut_in"] = s.line()
    rcut = {p: s.float_("cutoff") for p in pairs}
    for p in pairs:
        if rcut[p] <= 0:
            raise s.error(f"cutoff of pair {p} must be > 0, got {rcut[p]}")
    s.label("dcut=")
    lines["dcut"] = s.line()
    dcut = {p: s.float_("dcut") for p in pairs}
    s.label("crad=")
    crad = {}
    for p in pairs:
        # Written k-outer, then n, then l (upstream l.1002-1011); the spec wants [n][l][k].
        flat = s.floats(nradbase * nradmax * (lmax + 1), "crad")
        crad[p] = np.array(flat, dtype=np.float64).reshape(nradbase, nradmax, lmax + 1).transpose(1, 2, 0).copy()

    bonds = {p: PaceBond(
        radbasename=radbasename, radparameters=np.array([lam[p]]), nradmax=nradmax, lmax=lmax,
        nradbasemax=nradbase, crad=crad[p], prehc=core[p][0], lambdahc=core[p][1], rcut=rcut[p],
        dcut=dcut[p], rcut_in=0.0, dcut_in=0.0, inner_cutoff_type="density") for p in pairs}
    return bonds, delta


def _read_function(s: _Scanner, mu: int, ndensity: int, sizes) -> CTildeFunction:
    """One `ctilde_basis_func:` block (upstream `fread_c_tilde_b_basis_func`)."""
    start = s._skip_blanks(s.pos)
    s.label("ctilde_basis_func:")
    s.label("rank=")
    rank = s.int_("rank", minimum=1)
    s.label("ndens=")
    nd = s.int_("ndens")
    if nd != ndensity:
        raise s.error(f"ndens = {nd} but ndensitymax = {ndensity}", s._last)
    s.label("mu0=")
    mu0 = s.int_("mu0")
    if mu0 != mu:
        raise s.error(f"mu0 = {mu0} in the block of species {mu}", s._last)
    vectors = []
    for name in ("mu", "n", "l"):
        s.label(f"{name}=(")
        vectors.append(np.array([s.int_(name) for _ in range(rank)], dtype=np.int64))
        s.label(")")
    s.label("num_ms=")
    m = s.int_("num_ms", minimum=1)
    ms_rows, ct_rows = [], []  # lists first: a huge num_ms meets the end of the file, not numpy
    for _ in range(m):
        s.label("<")
        ms_rows.append([s.int_("m") for _ in range(rank)])
        s.label(">:")
        ct_rows.append(s.floats(nd, "ctilde"))
    ms = np.array(ms_rows, dtype=np.int64).reshape(m, rank)
    ct = np.array(ct_rows, dtype=np.float64).reshape(m, nd)
    fn = CTildeFunction(mu0=mu0, rank=rank, ndensity=nd, mus=vectors[0], ns=vectors[1], ls=vectors[2],
                        ms_combs=ms, ctildes=ct)
    problem = function_problem(fn, *sizes)
    if problem:
        raise s.error(f"basis function: {problem}", start)
    return fn
