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


import numpy as np

from acepy.spec import (
    INNER_CUTOFF_TYPES,
    NPOTI_NAMES,
    ACEPotentialSpec,
    CTildeFunction,
    Embedding,
    PaceBond,
    RepulsiveCore,
    ShipsBond,
    ShipsPairPotential,
    LMAX_LIMIT,
    SplineBond,
    embedding_problems,
    function_problem,
    is_pace_radbasename,
    pace_bond_problems,
    radial_table_problem,
    repulsive_core_problems,
    ships_basis_problems,
)

from .yaml_doc import SYMBOLS, YamlDoc, key_path, open_yaml_mapping

__all__ = ["read_yace"]

def read_yace(path, max_table_bytes: int | None = None) -> ACEPotentialSpec:
    """Read a `.yace` potential file into an `ACEPotentialSpec`.

    Raises FileNotFoundError for a missing file and `PotentialFileError` for anything the C++
    evaluator could not use (see the module docstring), for values that make an embedding, radial
    basis or cutoff meaningless (:mod:`acepy.spec`'s value checks; values python-ace accepts with a
    well-defined meaning get a :class:`~acepy.errors.PotentialFileWarning` instead), and for radial
    tables larger than ``max_table_bytes`` (default :data:`acepy.spec.MAX_RADIAL_TABLE_BYTES`),
    computed from the sizes before anything is allocated.
    """
    doc, top = open_yaml_mapping(path)

    elements = [doc.str_(e, key_path("elements", i))
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
        bonds = {k: _read_pace_bond(doc, doc.mapping(raw_bonds[k], key_path("bonds", k)), key_path("bonds", k))
                 for k in sorted(raw_bonds)}
        delta = doc.float_(doc.get(top, "deltaSplineBins", ""), "deltaSplineBins")
        if delta <= 0:
            raise doc.error("deltaSplineBins", f"must be > 0, got {delta}")
        lmax = max(b.lmax for b in bonds.values())
        # Quirk kept from the C++ reader: one global value, the last bond of its loop, [n-1, n-1].
        inner = bonds[(n - 1, n - 1)].inner_cutoff_type
        for k, bond in bonds.items():
            doc.check(pace_bond_problems(bond, inner), key_path("bonds", k))
        if inner == "zbl":
            unknown = [e for e in elements if e not in SYMBOLS]
            if unknown:
                raise doc.error("elements", f"zbl inner cutoff needs chemical symbols; unknown {unknown}")
    else:
        reader = _read_ships_bond if kind == "ships" else _read_spline_bond
        bonds = {k: reader(doc, doc.mapping(raw_bonds[k], key_path("bonds", k)), key_path("bonds", k))
                 for k in sorted(raw_bonds)}
        delta = None if delta is None else doc.float_(delta, "deltaSplineBins")  # unused there
        lmax = doc.int_(doc.get(top, "lmax", ""), "lmax", minimum=0)  # required for ACE.jl files
        if lmax > LMAX_LIMIT:
            raise doc.error("lmax", f"{lmax} is above {LMAX_LIMIT}, the largest l acepy's spherical harmonics take")
        inner = "density"
        if kind == "ships" and "polypairpot" in top:
            pair = _read_ships_pair(doc, top, n)

    spec = ACEPotentialSpec(
        elements=elements, E0=E0, delta_spline_bins=delta, embeddings=embeddings, bonds=bonds,
        functions=[], lmax=lmax, inner_cutoff_type=inner, radial_kind=kind, pair=pair, source=str(path))
    problem = radial_table_problem(spec, max_table_bytes)
    if problem is not None:
        raise doc.error(problem.field if problem.pair is None else key_path(key_path("bonds", problem.pair),
                                                                            problem.field), problem.message)
    spec.functions = _read_functions(doc, doc.get(top, "functions", ""), spec)
    return spec


def _radial_kind(doc: YamlDoc, raw_bonds: dict) -> str:
    """'pace', 'ships' or 'spline', decided over all bonds at once as the C++ reader does."""
    kinds = {}
    for key, bond in raw_bonds.items():
        where = key_path("bonds", key)
        name = doc.str_(doc.get(doc.mapping(bond, where), "radbasename", where), key_path(where, "radbasename"))
        if name.startswith("ACE.jl"):
            kinds[key] = "spline" if "splinenodalvals" in bond else "ships"
        elif is_pace_radbasename(name):
            kinds[key] = "pace"
        else:
            raise doc.error(key_path(where, "radbasename"), f"unknown radial basis {name!r}")
    found = set(kinds.values())
    if "pace" in found and len(found) > 1:
        raise doc.error("bonds", "only ACE.jl.* or PACE's radial basis are possible, but both types are used")
    if found == {"ships", "spline"}:
        raise doc.error("bonds", "ACE.jl spline-table bonds and SHIPs polynomial bonds are mixed")
    return found.pop()


def _read_embeddings(doc: YamlDoc, value, n: int) -> list[Embedding]:
    raw = doc.species_map(value, "embeddings", n)
    out = []
    for mu in range(n):
        where = key_path("embeddings", mu)
        if mu not in raw:
            raise doc.error(where, "missing: every species needs an embedding")
        e = doc.mapping(raw[mu], where)
        ndensity = doc.int_(doc.get(e, "ndensity", where), key_path(where, "ndensity"), minimum=1)
        npoti = doc.str_(doc.get(e, "npoti", where), key_path(where, "npoti"))
        if npoti not in NPOTI_NAMES:  # upstream silently leaves F unset
            raise doc.error(key_path(where, "npoti"), f"unknown embedding {npoti!r}; expected one of {NPOTI_NAMES}")
        out.append(Embedding(
            ndensity=ndensity,
            fs_parameters=doc.floats(doc.get(e, "FS_parameters", where), key_path(where, "FS_parameters"),
                                     length=2 * ndensity),
            npoti=npoti,
            rho_core_cutoff=doc.float_(doc.get(e, "rho_core_cutoff", where), key_path(where, "rho_core_cutoff")),
            drho_core_cutoff=doc.float_(doc.get(e, "drho_core_cutoff", where), key_path(where, "drho_core_cutoff")),
        ))
        doc.check(embedding_problems(out[-1]), where)
    return out


def _read_pace_bond(doc: YamlDoc, b: dict, where: str) -> PaceBond:
    def num(key, default=KeyError):
        return doc.float_(doc.get(b, key, where, default), key_path(where, key))

    nradmax = doc.int_(doc.get(b, "nradmax", where), key_path(where, "nradmax"), minimum=0)
    lmax = doc.int_(doc.get(b, "lmax", where), key_path(where, "lmax"), minimum=0)
    nradbasemax = doc.int_(doc.get(b, "nradbasemax", where), key_path(where, "nradbasemax"), minimum=0)
    radparameters = doc.floats(doc.get(b, "radparameters", where), key_path(where, "radparameters"))
    if radparameters.size == 0:  # upstream reads radparameters[0] for every basis, SBessel included
        raise doc.error(key_path(where, "radparameters"), "must not be empty")
    inner = doc.str_(doc.get(b, "inner_cutoff_type", where, "density"), key_path(where, "inner_cutoff_type"))
    if inner not in INNER_CUTOFF_TYPES:
        raise doc.error(key_path(where, "inner_cutoff_type"),
                        f"unknown value {inner!r}; expected one of {INNER_CUTOFF_TYPES}")
    rcut = num("rcut")
    if rcut <= 0:
        raise doc.error(key_path(where, "rcut"), f"must be > 0, got {rcut}")
    return PaceBond(
        radbasename=b["radbasename"], radparameters=radparameters, nradmax=nradmax, lmax=lmax,
        nradbasemax=nradbasemax,
        crad=_read_crad(doc, doc.get(b, "radcoefficients", where), key_path(where, "radcoefficients"),
                        (nradmax, lmax + 1, nradbasemax)),
        prehc=num("prehc"), lambdahc=num("lambdahc"), rcut=rcut, dcut=num("dcut"),
        rcut_in=num("rcut_in", 0.0), dcut_in=num("dcut_in", 0.0), inner_cutoff_type=inner)


def _read_crad(doc: YamlDoc, value, where: str, shape: tuple[int, int, int]) -> np.ndarray:
    """radcoefficients[n][l][k]: at least the declared sizes (upstream reads with .at() and
    ignores any extra entries, so they are ignored here too). The sizes are checked against the
    entries the file holds before the array is made, so no declared size allocates more than that."""
    rows = doc.seq(value, where)
    if len(rows) < shape[0]:
        raise doc.error(where, f"has {len(rows)} entries for n, nradmax = {shape[0]} needed")
    values = []
    for n in range(shape[0]):
        ls = doc.seq(rows[n], f"{where}[{n}]")
        if len(ls) < shape[1]:
            raise doc.error(f"{where}[{n}]", f"has {len(ls)} entries for l, lmax + 1 = {shape[1]} needed")
        for l in range(shape[1]):
            ks = doc.seq(ls[l], f"{where}[{n}][{l}]")
            if len(ks) < shape[2]:
                raise doc.error(f"{where}[{n}][{l}]", f"has {len(ks)} entries for k, nradbasemax = {shape[2]} needed")
            values.append([doc.float_(ks[k], f"{where}[{n}][{l}][{k}]") for k in range(shape[2])])
    return np.array(values, dtype=np.float64).reshape(shape)


def _read_ships_basis(doc: YamlDoc, b: dict, where: str, radbasename: str = "ACE.jl.base") -> ShipsBond:
    """The SHIPs polynomial parameters, shared by bonds and `polypairpot`."""
    def num(key):
        return doc.float_(doc.get(b, key, where), key_path(where, key))

    def integer(key, minimum=None):
        return doc.int_(doc.get(b, key, where), key_path(where, key), minimum=minimum)

    maxn = integer("maxn", minimum=1)
    rwhere = key_path(where, "recursion_coefficients")
    rec = doc.mapping(doc.get(b, "recursion_coefficients", where), rwhere)
    A, B, C = (doc.floats(doc.get(rec, k, rwhere), key_path(rwhere, k), length=maxn) for k in "ABC")
    bond = ShipsBond(rcut=num("rcut"), r0=num("r0"), p=integer("p"), xl=num("xl"), xr=num("xr"),
                     pl=integer("pl", 0), pr=integer("pr", 0), maxn=maxn, A=A, B=B, C=C,
                     radbasename=radbasename)
    doc.check(ships_basis_problems(bond), where)
    return bond


def _read_ships_bond(doc: YamlDoc, b: dict, where: str) -> ShipsBond:
    return _read_ships_basis(doc, b, where, radbasename=b["radbasename"])


def _read_spline_bond(doc: YamlDoc, b: dict, where: str) -> SplineBond:
    rcut = doc.float_(doc.get(b, "rcut", where), key_path(where, "rcut"))
    if rcut <= 0:
        raise doc.error(key_path(where, "rcut"), f"must be > 0, got {rcut}")
    nradial = doc.int_(doc.get(b, "nradial", where), key_path(where, "nradial"), minimum=1)
    nbins = doc.int_(doc.get(b, "nbins", where), key_path(where, "nbins"), minimum=1)
    tables = []
    for key in ("splinenodalvals", "splinenodalderivs"):
        kw = key_path(where, key)
        raw = doc.species_map(doc.get(b, key, where), kw, nradial, limit="nradial")
        if sorted(raw) != list(range(nradial)):
            raise doc.error(kw, f"needs the keys 0..{nradial - 1} (nradial), got {sorted(raw)}")
        # one value per node r_n = n * rcut / nbins, n = 0..nbins
        tables.append(np.stack([doc.floats(raw[i], key_path(kw, i), length=nbins + 1) for i in range(nradial)]))
    return SplineBond(rcut=rcut, nradial=nradial, nbins=nbins, values=tables[0], derivatives=tables[1])


def _read_ships_pair(doc: YamlDoc, top: dict, n: int) -> ShipsPairPotential:
    where = "polypairpot"
    pp = doc.mapping(top["polypairpot"], where)
    basis = _read_ships_basis(doc, pp, where)
    cwhere = key_path(where, "coefficients")
    raw = doc.pair_map(doc.get(pp, "coefficients", where), cwhere, n)
    coefficients = {(i, j): np.zeros(basis.maxn) for i in range(n) for j in range(n)}
    for key, value in raw.items():
        coefficients[key] = doc.floats(value, key_path(cwhere, key), length=basis.maxn)
    reppot = {}
    rp = top.get("reppot")
    if rp is not None:
        rp = doc.mapping(rp, "reppot")
        if "coefficients" in rp:  # upstream reads reppot only through reppot.coefficients
            for key, value in doc.pair_map(rp["coefficients"], "reppot.coefficients", n).items():
                kw = key_path("reppot.coefficients", key)
                v = doc.mapping(value, kw)
                reppot[key] = RepulsiveCore(*(doc.float_(doc.get(v, k, kw), key_path(kw, k))
                                              for k in ("ri", "e0", "A", "B")))
                doc.check(repulsive_core_problems(reppot[key]), kw)
    return ShipsPairPotential(basis=basis, coefficients=coefficients, reppot=reppot)


def _read_functions(doc: YamlDoc, value, spec: ACEPotentialSpec) -> list[list[CTildeFunction]]:
    n = spec.nelements
    raw = doc.species_map(value, "functions", n)
    sizes = (n, spec.nradbase, spec.nradmax, spec.lmax)
    out = []
    for mu in range(n):
        where = key_path("functions", mu)
        if mu not in raw:
            raise doc.error(where, "missing: every species needs a functions key (an empty list is allowed)")
        items = doc.seq(raw[mu], where)
        out.append([_read_function(doc, f, key_path(where, i), mu, spec.embeddings[mu].ndensity, sizes)
                    for i, f in enumerate(items)])
    return out


def _read_function(doc: YamlDoc, value, where: str, mu: int, ndensity: int, sizes) -> CTildeFunction:
    f = doc.mapping(value, where)

    def integer(key, minimum=None):
        return doc.int_(doc.get(f, key, where), key_path(where, key), minimum=minimum)

    mu0 = integer("mu0")
    if mu0 != mu:
        raise doc.error(key_path(where, "mu0"), f"is {mu0} but the function is listed under species {mu}")
    rank = integer("rank", minimum=1)
    nd = integer("ndensity")
    if nd != ndensity:  # the evaluator indexes ctildes with the species' ndensity
        raise doc.error(key_path(where, "ndensity"), f"is {nd} but embeddings[{mu}].ndensity is {ndensity}")
    m = integer("num_ms_combs", minimum=1)
    fn = CTildeFunction(
        mu0=mu0, rank=rank, ndensity=nd,
        mus=doc.ints(doc.get(f, "mus", where), key_path(where, "mus"), length=rank),
        ns=doc.ints(doc.get(f, "ns", where), key_path(where, "ns"), length=rank),
        ls=doc.ints(doc.get(f, "ls", where), key_path(where, "ls"), length=rank),
        ms_combs=doc.ints(doc.get(f, "ms_combs", where), key_path(where, "ms_combs"), length=rank * m).reshape(m, rank),
        ctildes=doc.floats(doc.get(f, "ctildes", where), key_path(where, "ctildes"), length=m * nd).reshape(m, nd),
    )
    problem = function_problem(fn, *sizes)
    if problem:
        raise doc.error(where, problem)
    return fn
