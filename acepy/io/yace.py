"""Reader of `.yace` files (C-tilde ACE basis in YAML; spec `ACE_SPEC.md` section 1).

Three writers are in use and all are read here: pacemaker/pyace (yaml-cpp flow style), ACE1pack /
ACEpotentials.jl (YAML.jl block style, quoted strings, any key order) and FitSNAP (flow style,
trailing spaces). The checks follow the C++ reader (`ACECTildeBasisSet::load_yaml`) and add those
whose absence there means reading past an array; every problem raises `PotentialFileError` naming
the file and the key path.

Behaviour worth knowing:
* Unknown keys are ignored, as upstream does (e.g. `polypairpot` in a PACE-radial file).
* Every species must have `embeddings` and `functions` keys (an empty function list is fine);
  upstream leaves the missing ones uninitialised.
* ACE.jl bonds (`radbasename` starting with ``ACE.jl``) are spline tables when they carry
  `splinenodalvals` (ACEpotentials v0.6, read only by the PR16 fork of PACE), else SHIPs
  polynomials (ACE1pack `ACE.jl.base`, read by upstream PACE).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

from .spec import (
    INNER_CUTOFF_TYPES,
    NPOTI_NAMES,
    ACEPotentialSpec,
    CTildeFunction,
    Embedding,
    PaceBond,
    PotentialFileError,
    RepulsiveCore,
    ShipsBond,
    ShipsPairPotential,
    SplineBond,
    function_problem,
    is_pace_radbasename,
)

__all__ = ["read_yace", "load_yaml_document"]

# Chemical symbols Z = 1..118: the ZBL core needs Z from the element name (spec 2.5).
_SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm "
    "Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No "
    "Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()

# --------------------------------------------------------------------------------------------
# YAML loading
# --------------------------------------------------------------------------------------------

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TUPLE_TAG = "tag:acepy,2024:tuple"
_BOOL_TAG = "tag:yaml.org,2002:bool"


class _YaceLoader(_Base):
    """Safe loader with three changes that yace files need.

    * A sequence used as a mapping key (`[0, 1]: {...}`) becomes a tuple (PyYAML refuses it).
    * A duplicate key is an error (PyYAML silently keeps the last one).
    * No implicit booleans: YAML 1.1 reads the element symbol `No` as False; yace files have no
      booleans, so every such scalar stays a string.
    """

    yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
        for ch, resolvers in _Base.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark)
        self.flatten_mapping(node)
        mapping = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.SequenceNode):
                key = tuple(self.construct_sequence(key_node, deep=True))
            else:
                key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in mapping
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key",
                    key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}",
                    key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def load_yaml_document(path: Path):
    """Parse a YAML file with the safe yace loader; syntax errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PotentialFileError(path, None, f"not a UTF-8 text file ({exc})") from None
    try:
        return yaml.load(text, Loader=_YaceLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise PotentialFileError(path, where, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise PotentialFileError(path, None, f"invalid YAML: {exc}") from None


# --------------------------------------------------------------------------------------------
# Typed access with key paths in the error messages
# --------------------------------------------------------------------------------------------


def _sub(where: str, key) -> str:
    """Key path of a child: `a.b`, `a[3]`, `bonds[0, 1]`."""
    if isinstance(key, tuple):
        return f"{where}[{', '.join(str(k) for k in key)}]"
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


class _Doc:
    """The parsed document plus its file name; every accessor raises with the key path."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, where: str | None, problem: str) -> PotentialFileError:
        return PotentialFileError(self.path, where, problem)

    # containers --------------------------------------------------------------------------
    def mapping(self, value, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(where, f"expected a mapping, got {_describe(value)}")
        return value

    def seq(self, value, where: str) -> list:
        if not isinstance(value, list):
            raise self.error(where, f"expected a list, got {_describe(value)}")
        return value

    def get(self, node: dict, key: str, where: str, default=KeyError):
        if key in node:
            return node[key]
        if default is KeyError:
            raise self.error(_sub(where, key), "required key is missing")
        return default

    # scalars -----------------------------------------------------------------------------
    def float_(self, value, where: str) -> float:
        # PyYAML leaves `1e5` and `1e-05` as strings (YAML 1.1 wants a dot), yaml-cpp does not:
        # coerce with float(), then refuse NaN and infinities.
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                out = float(value)
            except ValueError:
                out = None
            if out is not None and math.isfinite(out):
                return out
            if out is not None:
                raise self.error(where, f"non-finite number {value!r}")
        raise self.error(where, f"expected a number, got {_describe(value)}")

    def int_(self, value, where: str, minimum: int | None = None) -> int:
        # Integers may be written as `1` or `1.0`; anything with a fraction is an error.
        if isinstance(value, int) and not isinstance(value, bool):
            out = value
        else:
            x = self.float_(value, where) if not isinstance(value, bool) else None
            if x is None or x != int(x):
                raise self.error(where, f"expected an integer, got {_describe(value)}")
            out = int(x)
        if minimum is not None and out < minimum:
            raise self.error(where, f"must be >= {minimum}, got {out}")
        return out

    def str_(self, value, where: str) -> str:
        if not isinstance(value, str):
            raise self.error(where, f"expected a string, got {_describe(value)}")
        return value

    # lists of scalars --------------------------------------------------------------------
    def floats(self, value, where: str, length: int | None = None) -> np.ndarray:
        items = self.seq(value, where)
        if length is not None and len(items) != length:
            raise self.error(where, f"expected {length} values, got {len(items)}")
        return np.array([self.float_(v, _sub(where, i)) for i, v in enumerate(items)], dtype=np.float64)

    def ints(self, value, where: str, length: int | None = None) -> np.ndarray:
        items = self.seq(value, where)
        if length is not None and len(items) != length:
            raise self.error(where, f"expected {length} values, got {len(items)}")
        return np.array([self.int_(v, _sub(where, i)) for i, v in enumerate(items)], dtype=np.int64)

    def species_map(self, value, where: str, nelements: int, limit: str = "nelements") -> dict[int, object]:
        """A mapping keyed by small integers (species in `embeddings`, `functions`; radial
        indices in spline tables): int keys below ``nelements``."""
        out: dict[int, object] = {}
        for key, item in self.mapping(value, where).items():
            mu = self.int_(key, f"{where} (key {key!r})", minimum=0)
            if mu >= nelements:
                raise self.error(_sub(where, mu), f"key {mu} is not below {limit} = {nelements}")
            if mu in out:
                raise self.error(_sub(where, mu), "key given twice")
            out[mu] = item
        return out

    def pair_map(self, value, where: str, nelements: int) -> dict[tuple[int, int], object]:
        """A mapping keyed by `[mu_i, mu_j]` flow sequences."""
        out: dict[tuple[int, int], object] = {}
        for key, item in self.mapping(value, where).items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise self.error(f"{where} (key {key!r})", "expected a species pair key like [0, 1]")
            pair = tuple(self.int_(k, f"{where} (key {key!r})", minimum=0) for k in key)
            if max(pair) >= nelements:
                raise self.error(_sub(where, pair), f"species index is not below nelements = {nelements}")
            if pair in out:
                raise self.error(_sub(where, pair), "pair key given twice")
            out[pair] = item
        return out


def _describe(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


# --------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------


def open_yaml_mapping(path) -> tuple["_Doc", dict]:
    """A YAML potential file's top-level mapping, with the ``_Doc`` that names file and key in errors:
    FileNotFoundError for a missing file, PotentialFileError when the top level is not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "potential file not found", str(path))
    doc = _Doc(path)
    top = load_yaml_document(path)
    if not isinstance(top, dict):
        raise doc.error(None, f"the top level must be a mapping, got {_describe(top)}")
    return doc, top


def read_yace(path) -> ACEPotentialSpec:
    """Read a `.yace` potential file into an `ACEPotentialSpec`.

    Raises FileNotFoundError for a missing file and `PotentialFileError` for anything the C++
    evaluator could not use (see the module docstring).
    """
    doc, top = open_yaml_mapping(path)

    elements = [doc.str_(e, _sub("elements", i))
                for i, e in enumerate(doc.seq(doc.get(top, "elements", ""), "elements"))]
    if not elements:
        raise doc.error("elements", "empty element list")
    if len(set(elements)) != len(elements):
        raise doc.error("elements", f"repeated element in {elements}")
    n = len(elements)
    E0 = doc.floats(doc.get(top, "E0", ""), "E0", length=n)

    embeddings = _read_embeddings(doc, doc.get(top, "embeddings", ""), n)

    raw_bonds = doc.pair_map(doc.get(top, "bonds", ""), "bonds", n)
    missing = [(i, j) for i in range(n) for j in range(n) if (i, j) not in raw_bonds]
    if missing:
        raise doc.error("bonds", f"every ordered species pair needs a bond; missing {missing}")
    kind = _radial_kind(doc, raw_bonds)

    pair = None
    delta = top.get("deltaSplineBins")
    if kind == "pace":
        bonds = {k: _read_pace_bond(doc, doc.mapping(raw_bonds[k], _sub("bonds", k)), _sub("bonds", k))
                 for k in sorted(raw_bonds)}
        delta = doc.float_(doc.get(top, "deltaSplineBins", ""), "deltaSplineBins")
        if delta <= 0:
            raise doc.error("deltaSplineBins", f"must be > 0, got {delta}")
        lmax = max(b.lmax for b in bonds.values())
        # Quirk kept from the C++ reader: one global value, the last bond of its loop, [n-1, n-1].
        inner = bonds[(n - 1, n - 1)].inner_cutoff_type
        if inner == "zbl":
            unknown = [e for e in elements if e not in _SYMBOLS]
            if unknown:
                raise doc.error("elements", f"zbl inner cutoff needs chemical symbols; unknown {unknown}")
    else:
        reader = _read_ships_bond if kind == "ships" else _read_spline_bond
        bonds = {k: reader(doc, doc.mapping(raw_bonds[k], _sub("bonds", k)), _sub("bonds", k))
                 for k in sorted(raw_bonds)}
        delta = None if delta is None else doc.float_(delta, "deltaSplineBins")  # unused there
        lmax = doc.int_(doc.get(top, "lmax", ""), "lmax", minimum=0)  # required for ACE.jl files
        inner = "density"
        if kind == "ships" and "polypairpot" in top:
            pair = _read_ships_pair(doc, top, n)

    spec = ACEPotentialSpec(
        elements=elements, E0=E0, delta_spline_bins=delta, embeddings=embeddings, bonds=bonds,
        functions=[], lmax=lmax, inner_cutoff_type=inner, radial_kind=kind, pair=pair, source=str(path))
    spec.functions = _read_functions(doc, doc.get(top, "functions", ""), spec)
    return spec


def _radial_kind(doc: _Doc, raw_bonds: dict) -> str:
    """'pace', 'ships' or 'spline', decided over all bonds at once as the C++ reader does."""
    kinds = {}
    for key, bond in raw_bonds.items():
        where = _sub("bonds", key)
        name = doc.str_(doc.get(doc.mapping(bond, where), "radbasename", where), _sub(where, "radbasename"))
        if name.startswith("ACE.jl"):
            kinds[key] = "spline" if "splinenodalvals" in bond else "ships"
        elif is_pace_radbasename(name):
            kinds[key] = "pace"
        else:
            raise doc.error(_sub(where, "radbasename"), f"unknown radial basis {name!r}")
    found = set(kinds.values())
    if "pace" in found and len(found) > 1:
        raise doc.error("bonds", "only ACE.jl.* or PACE's radial basis are possible, but both types are used")
    if found == {"ships", "spline"}:
        raise doc.error("bonds", "ACE.jl spline-table bonds and SHIPs polynomial bonds are mixed")
    return found.pop()


def _read_embeddings(doc: _Doc, value, n: int) -> list[Embedding]:
    raw = doc.species_map(value, "embeddings", n)
    out = []
    for mu in range(n):
        where = _sub("embeddings", mu)
        if mu not in raw:
            raise doc.error(where, "missing: every species needs an embedding")
        e = doc.mapping(raw[mu], where)
        ndensity = doc.int_(doc.get(e, "ndensity", where), _sub(where, "ndensity"), minimum=1)
        npoti = doc.str_(doc.get(e, "npoti", where), _sub(where, "npoti"))
        if npoti not in NPOTI_NAMES:  # upstream silently leaves F unset
            raise doc.error(_sub(where, "npoti"), f"unknown embedding {npoti!r}; expected one of {NPOTI_NAMES}")
        out.append(Embedding(
            ndensity=ndensity,
            fs_parameters=doc.floats(doc.get(e, "FS_parameters", where), _sub(where, "FS_parameters"),
                                     length=2 * ndensity),
            npoti=npoti,
            rho_core_cutoff=doc.float_(doc.get(e, "rho_core_cutoff", where), _sub(where, "rho_core_cutoff")),
            drho_core_cutoff=doc.float_(doc.get(e, "drho_core_cutoff", where), _sub(where, "drho_core_cutoff")),
        ))
    return out


def _read_pace_bond(doc: _Doc, b: dict, where: str) -> PaceBond:
    def num(key, default=KeyError):
        return doc.float_(doc.get(b, key, where, default), _sub(where, key))

    nradmax = doc.int_(doc.get(b, "nradmax", where), _sub(where, "nradmax"), minimum=0)
    lmax = doc.int_(doc.get(b, "lmax", where), _sub(where, "lmax"), minimum=0)
    nradbasemax = doc.int_(doc.get(b, "nradbasemax", where), _sub(where, "nradbasemax"), minimum=0)
    radparameters = doc.floats(doc.get(b, "radparameters", where), _sub(where, "radparameters"))
    if radparameters.size == 0:  # upstream reads radparameters[0] for every basis, SBessel included
        raise doc.error(_sub(where, "radparameters"), "must not be empty")
    inner = doc.str_(doc.get(b, "inner_cutoff_type", where, "density"), _sub(where, "inner_cutoff_type"))
    if inner not in INNER_CUTOFF_TYPES:
        raise doc.error(_sub(where, "inner_cutoff_type"),
                        f"unknown value {inner!r}; expected one of {INNER_CUTOFF_TYPES}")
    rcut = num("rcut")
    if rcut <= 0:
        raise doc.error(_sub(where, "rcut"), f"must be > 0, got {rcut}")
    return PaceBond(
        radbasename=b["radbasename"], radparameters=radparameters, nradmax=nradmax, lmax=lmax,
        nradbasemax=nradbasemax,
        crad=_read_crad(doc, doc.get(b, "radcoefficients", where), _sub(where, "radcoefficients"),
                        (nradmax, lmax + 1, nradbasemax)),
        prehc=num("prehc"), lambdahc=num("lambdahc"), rcut=rcut, dcut=num("dcut"),
        rcut_in=num("rcut_in", 0.0), dcut_in=num("dcut_in", 0.0), inner_cutoff_type=inner)


def _read_crad(doc: _Doc, value, where: str, shape: tuple[int, int, int]) -> np.ndarray:
    """radcoefficients[n][l][k]: at least the declared sizes (upstream reads with .at() and
    ignores any extra entries, so they are ignored here too)."""
    crad = np.zeros(shape, dtype=np.float64)
    rows = doc.seq(value, where)
    for n in range(shape[0]):
        if n >= len(rows):
            raise doc.error(where, f"has {len(rows)} entries for n, nradmax = {shape[0]} needed")
        ls = doc.seq(rows[n], f"{where}[{n}]")
        for l in range(shape[1]):
            if l >= len(ls):
                raise doc.error(f"{where}[{n}]", f"has {len(ls)} entries for l, lmax + 1 = {shape[1]} needed")
            ks = doc.seq(ls[l], f"{where}[{n}][{l}]")
            if len(ks) < shape[2]:
                raise doc.error(f"{where}[{n}][{l}]", f"has {len(ks)} entries for k, nradbasemax = {shape[2]} needed")
            crad[n, l] = [doc.float_(ks[k], f"{where}[{n}][{l}][{k}]") for k in range(shape[2])]
    return crad


def _read_ships_basis(doc: _Doc, b: dict, where: str, radbasename: str = "ACE.jl.base") -> ShipsBond:
    """The SHIPs polynomial parameters, shared by bonds and `polypairpot`."""
    def num(key):
        return doc.float_(doc.get(b, key, where), _sub(where, key))

    def integer(key, minimum=None):
        return doc.int_(doc.get(b, key, where), _sub(where, key), minimum=minimum)

    maxn = integer("maxn", minimum=1)
    rwhere = _sub(where, "recursion_coefficients")
    rec = doc.mapping(doc.get(b, "recursion_coefficients", where), rwhere)
    A, B, C = (doc.floats(doc.get(rec, k, rwhere), _sub(rwhere, k), length=maxn) for k in "ABC")
    return ShipsBond(rcut=num("rcut"), r0=num("r0"), p=integer("p"), xl=num("xl"), xr=num("xr"),
                     pl=integer("pl", 0), pr=integer("pr", 0), maxn=maxn, A=A, B=B, C=C,
                     radbasename=radbasename)


def _read_ships_bond(doc: _Doc, b: dict, where: str) -> ShipsBond:
    return _read_ships_basis(doc, b, where, radbasename=b["radbasename"])


def _read_spline_bond(doc: _Doc, b: dict, where: str) -> SplineBond:
    rcut = doc.float_(doc.get(b, "rcut", where), _sub(where, "rcut"))
    if rcut <= 0:
        raise doc.error(_sub(where, "rcut"), f"must be > 0, got {rcut}")
    nradial = doc.int_(doc.get(b, "nradial", where), _sub(where, "nradial"), minimum=1)
    nbins = doc.int_(doc.get(b, "nbins", where), _sub(where, "nbins"), minimum=1)
    tables = []
    for key in ("splinenodalvals", "splinenodalderivs"):
        kw = _sub(where, key)
        raw = doc.species_map(doc.get(b, key, where), kw, nradial, limit="nradial")
        if sorted(raw) != list(range(nradial)):
            raise doc.error(kw, f"needs the keys 0..{nradial - 1} (nradial), got {sorted(raw)}")
        # one value per node r_n = n * rcut / nbins, n = 0..nbins
        tables.append(np.stack([doc.floats(raw[i], _sub(kw, i), length=nbins + 1) for i in range(nradial)]))
    return SplineBond(rcut=rcut, nradial=nradial, nbins=nbins, values=tables[0], derivatives=tables[1])


def _read_ships_pair(doc: _Doc, top: dict, n: int) -> ShipsPairPotential:
    where = "polypairpot"
    pp = doc.mapping(top["polypairpot"], where)
    basis = _read_ships_basis(doc, pp, where)
    cwhere = _sub(where, "coefficients")
    raw = doc.pair_map(doc.get(pp, "coefficients", where), cwhere, n)
    coefficients = {(i, j): np.zeros(basis.maxn) for i in range(n) for j in range(n)}
    for key, value in raw.items():
        coefficients[key] = doc.floats(value, _sub(cwhere, key), length=basis.maxn)
    reppot = {}
    rp = top.get("reppot")
    if rp is not None:
        rp = doc.mapping(rp, "reppot")
        if "coefficients" in rp:  # upstream reads reppot only through reppot.coefficients
            for key, value in doc.pair_map(rp["coefficients"], "reppot.coefficients", n).items():
                kw = _sub("reppot.coefficients", key)
                v = doc.mapping(value, kw)
                reppot[key] = RepulsiveCore(*(doc.float_(doc.get(v, k, kw), _sub(kw, k))
                                              for k in ("ri", "e0", "A", "B")))
    return ShipsPairPotential(basis=basis, coefficients=coefficients, reppot=reppot)


def _read_functions(doc: _Doc, value, spec: ACEPotentialSpec) -> list[list[CTildeFunction]]:
    n = spec.nelements
    raw = doc.species_map(value, "functions", n)
    sizes = (n, spec.nradbase, spec.nradmax, spec.lmax)
    out = []
    for mu in range(n):
        where = _sub("functions", mu)
        if mu not in raw:
            raise doc.error(where, "missing: every species needs a functions key (an empty list is allowed)")
        items = doc.seq(raw[mu], where)
        out.append([_read_function(doc, f, _sub(where, i), mu, spec.embeddings[mu].ndensity, sizes)
                    for i, f in enumerate(items)])
    return out


def _read_function(doc: _Doc, value, where: str, mu: int, ndensity: int, sizes) -> CTildeFunction:
    f = doc.mapping(value, where)

    def integer(key, minimum=None):
        return doc.int_(doc.get(f, key, where), _sub(where, key), minimum=minimum)

    mu0 = integer("mu0")
    if mu0 != mu:
        raise doc.error(_sub(where, "mu0"), f"is {mu0} but the function is listed under species {mu}")
    rank = integer("rank", minimum=1)
    nd = integer("ndensity")
    if nd != ndensity:  # the evaluator indexes ctildes with the species' ndensity
        raise doc.error(_sub(where, "ndensity"), f"is {nd} but embeddings[{mu}].ndensity is {ndensity}")
    m = integer("num_ms_combs", minimum=1)
    fn = CTildeFunction(
        mu0=mu0, rank=rank, ndensity=nd,
        mus=doc.ints(doc.get(f, "mus", where), _sub(where, "mus"), length=rank),
        ns=doc.ints(doc.get(f, "ns", where), _sub(where, "ns"), length=rank),
        ls=doc.ints(doc.get(f, "ls", where), _sub(where, "ls"), length=rank),
        ms_combs=doc.ints(doc.get(f, "ms_combs", where), _sub(where, "ms_combs"), length=rank * m).reshape(m, rank),
        ctildes=doc.floats(doc.get(f, "ctildes", where), _sub(where, "ctildes"), length=m * nd).reshape(m, nd),
    )
    problem = function_problem(fn, *sizes)
    if problem:
        raise doc.error(where, problem)
    return fn
