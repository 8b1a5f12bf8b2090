"""Reader of pacemaker B-basis `.yaml` potentials (`output_potential.yaml`; ACE_SPEC.md 1.10).

pacemaker writes its fitted potentials as B-basis functions: products of atomic bases coupled to a
rotation invariant with the intermediate angular momenta `lint`. The evaluator works on the C-tilde
form (spec 1.7), so this reader expands every B function into its m-tuples with the generalized
Clebsch-Gordan coefficients of :mod:`acepy.coupling` and merges them exactly as python-ace's
`ACEBBasisSet(...).to_ACECTildeBasisSet()` does (what `pace_yaml2yace` writes), giving an
`ACEPotentialSpec` like the `.yace` reader's.

The file layout and its defaults follow python-ace's reader (`ace/ace_yaml_input.cpp`,
`Input::parse_input`) and `ACEBBasisSet::initialize_basis` (`ace/ace_b_basis.cpp`):

* `global.DeltaSplineBins` (> 0) and a list `species` of blocks. `metadata` and `auxdata` are ignored.
* Elements are every name in any `speciesblock`, sorted lexicographically (species index = position).
  E0 is zero (the B-basis format has none).
* A single-species block (`Al`) carries the embedding (`ndensityi`, `npoti`, `parameters`, optional
  `rho_core_cut` = 100000 and `drho_core_cut` = 250) and the radial basis of the bond (Al, Al).
  A two-species block (`Al Ni`) carries the bond (Al, Ni); a block without a radial basis takes it
  from its dual block (`Ni Al`), and core repulsion likewise. Blocks with three or more species only
  hold functions.
* Radial basis keys: `lmaxi`, `nradmaxi`, `nradbaseij`, `radbase`, `radparameters`,
  `radcoefficients` ([n][l][k], or the deprecated flat list in k-outer, n, l-inner order), `rcutij`,
  `dcutij`; then `core-repulsion: [prehc, lambdahc]` (default [0, 0]), `inner_cutoff_type` (default
  `density`, and it must be the same in every one- and two-species block), `r_in`, `delta_in`
  (default 0).
* `nbody`: functions `{type: "Al Al Ni", nr, nl, lint (rank > 2), c, skip}`; `c` has one value per
  density of the central species (a bare number for one density); `skip: true` drops the function.

Conversion (python-ace `ace_couplings.cpp::generate_equivariant_ms_cg_list`, `ace_b_basis.cpp`
`order_and_compress_b_basis_function`, `summation_over_LS`):

1. each B function's m-tuples with a non-zero coefficient, in the "half basis": tuples whose first
   non-zero m is negative are dropped and the coefficients of those whose first non-zero m is
   positive are doubled (Re of a product at -ms equals that at ms for even sum(ls));
2. "compression": within each tuple, the factors are sorted by (mu, n, l, m); equal sorted tuples are
   summed and sums below 1e-15 dropped. Only if that shortens the list are the sorted factors and
   tuples kept (otherwise the function stays as written);
3. functions with the same (mu0, mus, ns, ls) are merged: the C-tilde coefficient of each m-tuple and
   density p is the sum over them of c_p * coefficient.

Deliberate differences from python-ace, where it would read past what the file gives or silently
use garbage: every element needs a single-species block; a too short flat `radcoefficients` list is
an error (python-ace prints a message and fills zeros); an unknown `npoti`, `radbase` or
`inner_cutoff_type` is an error; a C-tilde function left without any m-tuple (every generalized
coefficient of its B functions zero) is not kept; the blocks may come in any order (python-ace wants
an element's single-species block before the blocks of functions centred on it).
python-ace also drops the round-off coefficients (~1e-17) its floating-point Clebsch-Gordan values
give to m-tuples whose exact coefficient is zero; when that is all its compression step removes, it
still keeps the factors sorted, where this reader (exact coefficients) keeps them as written. The
product of A's does not depend on the factor order, so the potential is the same.
Like python-ace, an element pair that no block describes gets an empty bond (no radial functions,
no core repulsion; the cutoff 1.0 and the other defaults of python-ace's radial tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from acepy.spec import (
    INNER_CUTOFF_TYPES,
    LMAX_LIMIT,
    NPOTI_NAMES,
    ACEPotentialSpec,
    is_pace_radbasename,
)
from .pacemaker_spec import bonds_from_blocks, check_radial_tables, ctilde_functions_from_blocks, embedding_from_block
from .yaml_doc import SYMBOLS, YamlDoc, describe, key_path, open_yaml_mapping

__all__ = ["read_pacemaker_yaml"]

# Defaults of python-ace's reader and radial tables.
_RHO_CORE_CUT_DEFAULT = 100000.0
_DRHO_CORE_CUT_DEFAULT = 250.0
# ACERadialFunctions defaults for a pair without a bond block (python-ace fills cut = dcut =
# lambda = lambdahc = 1, prehc = 0, crad = 0, radbase ChebExpCos; checked with pyace 0.4).
# order_and_compress_b_basis_function drops merged coefficients below this.
# yaml-cpp's `as<bool>` spellings (the yace loader keeps YAML booleans as strings).
_TRUE = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
_FALSE = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}
_RADIAL_KEYS = ("lmaxi", "nradmaxi", "nradbaseij", "radbase", "radparameters", "radcoefficients")


@dataclass
class _Radial:
    lmax: int
    nradmax: int
    nradbase: int
    radbase: str
    radparameters: np.ndarray
    crad: np.ndarray  # (nradmax, lmax + 1, nradbase)
    rcut: float
    dcut: float

    def same(self, other: "_Radial") -> bool:
        return (self.lmax == other.lmax and self.nradmax == other.nradmax and self.nradbase == other.nradbase
                and self.radbase == other.radbase
                and np.array_equal(self.radparameters, other.radparameters)
                and np.array_equal(self.crad, other.crad)
                and self.rcut == other.rcut and self.dcut == other.dcut)


@dataclass
class _BFunc:
    where: str
    elements: list[str]
    rank: int
    ns: list[int]
    ls: list[int]
    LS: list[int]
    coeffs: np.ndarray
    skip: bool


@dataclass
class _Block:
    where: str
    name: str
    elements_vec: list[str]  # 'Al' -> ['Al', 'Al']
    nspecies: int
    ndensity: int = 0
    npoti: str = ""
    fs_parameters: np.ndarray | None = None
    rho_cut: float = _RHO_CORE_CUT_DEFAULT
    drho_cut: float = _DRHO_CORE_CUT_DEFAULT
    radial: _Radial | None = None
    core: tuple[float, float] | None = None  # (prehc, lambdahc) if the block gives `core-repulsion`
    inner_cutoff_type: str = "density"
    r_in: float = 0.0
    delta_in: float = 0.0
    functions: list[_BFunc] = field(default_factory=list)

    @property
    def mu0(self) -> str:
        return self.elements_vec[0]

    @property
    def core_parameters(self) -> tuple[float, float]:
        return self.core if self.core is not None else (0.0, 0.0)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_pacemaker_yaml(path, max_table_bytes: int | None = None) -> ACEPotentialSpec:
    """Read a pacemaker B-basis `.yaml` potential and convert it to an `ACEPotentialSpec`.

    Raises FileNotFoundError for a missing file and `PotentialFileError` (naming the file and the
    key path, e.g. ``species[1].nbody[3].lint``) for anything malformed or unsupported, and for
    the value checks and table size of :func:`acepy.io.read_yace` (``max_table_bytes``).
    """
    doc, top = open_yaml_mapping(path)
    if "global" not in top and "functions" in top and "bonds" in top:
        raise doc.error("global", "required key is missing: this looks like a C-tilde .yace document, "
                        "not a pacemaker B-basis file; give it the .yace extension")
    glob = doc.mapping(doc.get(top, "global", ""), "global")
    delta = doc.float_(doc.get(glob, "DeltaSplineBins", "global"), "global.DeltaSplineBins")
    if delta <= 0:
        raise doc.error("global.DeltaSplineBins", f"must be > 0, got {delta}")
    raw_blocks = doc.seq(doc.get(top, "species", ""), "species")
    if not raw_blocks:
        raise doc.error("species", "no species blocks")

    blocks = [_read_block_head(doc, b, key_path("species", i)) for i, b in enumerate(raw_blocks)]
    elements = sorted({e for b in blocks for e in b.elements_vec})
    ndensity = _ndensities(doc, raw_blocks, blocks, elements)
    for raw, block in zip(raw_blocks, blocks):
        _read_block_body(doc, raw, block, ndensity)
    _share_dual_blocks(doc, blocks)
    for block in blocks:
        _check_block_functions(doc, block)

    index = {e: i for i, e in enumerate(elements)}
    inner = _global_inner_cutoff_type(doc, blocks)
    if inner == "zbl":
        unknown = [e for e in elements if e not in SYMBOLS]
        if unknown:
            raise doc.error("species", f"zbl inner cutoff needs chemical symbols; unknown {unknown}")
    bonds = bonds_from_blocks(doc, blocks, index, inner)
    embeddings = [embedding_from_block(doc, next(b for b in blocks if b.nspecies == 1 and b.mu0 == e)) for e in elements]
    spec = ACEPotentialSpec(
        elements=elements, E0=np.zeros(len(elements)), delta_spline_bins=delta, embeddings=embeddings,
        bonds=bonds, functions=[], lmax=max(b.lmax for b in bonds.values()), inner_cutoff_type=inner,
        radial_kind="pace", source=str(path))
    check_radial_tables(doc, blocks, spec, max_table_bytes)
    spec.functions = ctilde_functions_from_blocks(doc, blocks, index, bonds, spec)
    return spec


def _read_block_head(doc: YamlDoc, value, where: str) -> _Block:
    b = doc.mapping(value, where)
    name = doc.str_(doc.get(b, "speciesblock", where), key_path(where, "speciesblock"))
    vec = name.split()
    if not vec:
        raise doc.error(key_path(where, "speciesblock"), "empty species block name")
    nspecies = len(set(vec))
    if len(vec) == 1:
        vec = vec * 2  # 'Al' is the pair block 'Al Al'
    return _Block(where=where, name=name, elements_vec=vec, nspecies=nspecies)


def _ndensities(doc: YamlDoc, raw_blocks, blocks: list[_Block], elements: list[str]) -> dict[str, int]:
    """ndensityi of every element, from its single-species block (exactly one per element)."""
    out: dict[str, int] = {}
    for raw, block in zip(raw_blocks, blocks):
        if block.nspecies != 1:
            continue
        key = key_path(block.where, "ndensityi")
        nd = doc.int_(doc.get(raw, "ndensityi", block.where), key, minimum=1)
        if block.mu0 in out:
            raise doc.error(block.where, f"second single-species block for {block.mu0!r} (ndensity already defined)")
        out[block.mu0] = nd
    missing = [e for e in elements if e not in out]
    if missing:
        raise doc.error("species", f"element(s) {missing} have no single-species block (speciesblock: "
                        f"{missing[0]}) giving the embedding and the radial basis of the bond "
                        f"({missing[0]}, {missing[0]})")
    return out


def _read_block_body(doc: YamlDoc, b: dict, block: _Block, ndensity: dict[str, int]) -> None:
    where = block.where

    def num(key, default=KeyError):
        return doc.float_(doc.get(b, key, where, default), key_path(where, key))

    block.ndensity = ndensity[block.mu0]
    if block.nspecies == 1:
        npoti = doc.str_(doc.get(b, "npoti", where), key_path(where, "npoti"))
        if npoti not in NPOTI_NAMES:
            raise doc.error(key_path(where, "npoti"), f"unknown embedding {npoti!r}; expected one of {NPOTI_NAMES}")
        block.npoti = npoti
        block.fs_parameters = doc.floats(doc.get(b, "parameters", where), key_path(where, "parameters"))
        if block.fs_parameters.size != 2 * block.ndensity:
            raise doc.error(key_path(where, "parameters"), f"has {block.fs_parameters.size} values; ndensityi = "
                            f"{block.ndensity} needs {2 * block.ndensity} (weight and exponent per density)")
        block.rho_cut = num("rho_core_cut", _RHO_CORE_CUT_DEFAULT)
        block.drho_cut = num("drho_core_cut", _DRHO_CORE_CUT_DEFAULT)

    if block.nspecies <= 2:
        if "lmaxi" in b:
            block.radial = _read_radial(doc, b, where)
        else:
            partial = [k for k in _RADIAL_KEYS if k in b]
            if partial:
                raise doc.error(key_path(where, "lmaxi"), f"required key is missing: the radial basis of block "
                                f"{block.name!r} is only partially defined ({', '.join(partial)} given)")
            if block.nspecies == 1:
                raise doc.error(key_path(where, "lmaxi"), f"required key is missing: single-species block "
                                f"{block.name!r} must define the radial basis (lmaxi, nradmaxi, nradbaseij, "
                                "radbase, radparameters, radcoefficients, rcutij, dcutij)")
        if "core-repulsion" in b:
            key = key_path(where, "core-repulsion")
            pre, lam = doc.floats(b["core-repulsion"], key, length=2)
            block.core = (float(pre), float(lam))
        inner = doc.str_(doc.get(b, "inner_cutoff_type", where, "density"), key_path(where, "inner_cutoff_type"))
        if inner not in INNER_CUTOFF_TYPES:
            raise doc.error(key_path(where, "inner_cutoff_type"),
                            f"unknown value {inner!r}; expected one of {INNER_CUTOFF_TYPES}")
        block.inner_cutoff_type = inner
        block.r_in = num("r_in", 0.0)
        block.delta_in = num("delta_in", 0.0)

    nbody = b.get("nbody")
    if nbody is not None:  # python-ace only warns about a block without functions
        allowed = set(block.elements_vec)
        block.functions = [_read_function(doc, f, key_path(key_path(where, "nbody"), i), block, allowed)
                           for i, f in enumerate(doc.seq(nbody, key_path(where, "nbody")))]


def _read_radial(doc: YamlDoc, b: dict, where: str) -> _Radial:
    def integer(key):
        return doc.int_(doc.get(b, key, where), key_path(where, key), minimum=0)

    lmax, nradmax, nradbase = integer("lmaxi"), integer("nradmaxi"), integer("nradbaseij")
    if lmax > LMAX_LIMIT:
        raise doc.error(key_path(where, "lmaxi"), f"{lmax} is above {LMAX_LIMIT}, the largest l acepy's "
                        "spherical harmonics take")
    radbase = doc.str_(doc.get(b, "radbase", where), key_path(where, "radbase"))
    if not is_pace_radbasename(radbase):
        raise doc.error(key_path(where, "radbase"), f"unknown radial basis {radbase!r}; expected one of "
                        "ChebExpCos, ChebPow, ChebLinear, SBessel, TEST_*")
    radparameters = doc.floats(doc.get(b, "radparameters", where), key_path(where, "radparameters"))
    if radparameters.size == 0:  # python-ace reads radparameters[0] for every basis
        raise doc.error(key_path(where, "radparameters"), "must not be empty")
    key = key_path(where, "radcoefficients")
    crad = _read_radcoefficients(doc, doc.get(b, "radcoefficients", where), key, (nradmax, lmax + 1, nradbase))
    rcut = doc.float_(doc.get(b, "rcutij", where), key_path(where, "rcutij"))
    if rcut <= 0:
        raise doc.error(key_path(where, "rcutij"), f"must be > 0, got {rcut}")
    dcut = doc.float_(doc.get(b, "dcutij", where), key_path(where, "dcutij"))
    return _Radial(lmax=lmax, nradmax=nradmax, nradbase=nradbase, radbase=radbase, radparameters=radparameters,
                   crad=crad, rcut=rcut, dcut=dcut)


def _read_radcoefficients(doc: YamlDoc, value, where: str, shape: tuple[int, int, int]) -> np.ndarray:
    """[n][l][k] with at least the declared sizes (extra entries are ignored, as upstream), or the
    deprecated flat list, ordered k outer, then n, then l (`Input::read_radcoefficients`)."""
    rows = doc.seq(value, where)
    if rows and not any(isinstance(r, list) for r in rows):  # deprecated flat form
        need = shape[0] * shape[1] * shape[2]
        if len(rows) < need:
            raise doc.error(where, f"flat (deprecated) list has {len(rows)} values; nradmaxi * (lmaxi + 1) * "
                            f"nradbaseij = {need} needed")
        flat = [doc.float_(v, key_path(where, i)) for i, v in enumerate(rows[:need])]
        return np.asarray(flat, dtype=np.float64).reshape(shape[2], shape[0], shape[1]).transpose(1, 2, 0).copy()
    if len(rows) < shape[0]:  # sizes checked against the entries before any array is made
        raise doc.error(where, f"has {len(rows)} entries for n, nradmaxi = {shape[0]} needed")
    values = []
    for n in range(shape[0]):
        ls = doc.seq(rows[n], key_path(where, n))
        if len(ls) < shape[1]:
            raise doc.error(key_path(where, n), f"has {len(ls)} entries for l, lmaxi + 1 = {shape[1]} needed")
        for l in range(shape[1]):
            ks = doc.seq(ls[l], f"{where}[{n}][{l}]")
            if len(ks) < shape[2]:
                raise doc.error(f"{where}[{n}][{l}]", f"has {len(ks)} entries for k, nradbaseij = {shape[2]} needed")
            values.append([doc.float_(ks[k], f"{where}[{n}][{l}][{k}]") for k in range(shape[2])])
    return np.array(values, dtype=np.float64).reshape(shape)


def _bool(doc: YamlDoc, value, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _TRUE:
        return True
    if isinstance(value, str) and value in _FALSE:
        return False
    raise doc.error(where, f"expected true or false, got {describe(value)}")


def _read_function(doc: YamlDoc, value, where: str, block: _Block, allowed: set[str]) -> _BFunc:
    f = doc.mapping(value, where)
    type_key = key_path(where, "type")
    elements = doc.str_(doc.get(f, "type", where), type_key).split()
    if len(elements) < 2:
        raise doc.error(type_key, f"{' '.join(elements)!r} needs the central element and at least one "
                        "neighbour element (rank >= 1)")
    if elements[0] != block.mu0:
        raise doc.error(type_key, f"central element {elements[0]!r} differs from the block's {block.mu0!r} "
                        f"(speciesblock {block.name!r})")
    stray = [e for e in elements[1:] if e not in allowed]
    if stray:
        raise doc.error(type_key, f"element(s) {stray} are not in speciesblock {block.name!r}")
    rank = len(elements) - 1
    ns = doc.ints(doc.get(f, "nr", where), key_path(where, "nr"), length=rank).tolist()
    ls = doc.ints(doc.get(f, "nl", where), key_path(where, "nl"), length=rank).tolist()
    if min(ns) < 1:
        raise doc.error(key_path(where, "nr"), f"values are 1-based; got {ns}")
    if min(ls) < 0:
        raise doc.error(key_path(where, "nl"), f"values must be >= 0; got {ls}")
    c_key = key_path(where, "c")
    c = doc.get(f, "c", where)
    coeffs = doc.floats(c, c_key) if isinstance(c, list) else np.array([doc.float_(c, c_key)])
    if coeffs.size != block.ndensity:
        raise doc.error(c_key, f"has {coeffs.size} coefficients but the embedding of {block.mu0!r} has "
                        f"ndensityi = {block.ndensity}")
    LS: list[int] = []
    if rank > 2:  # python-ace reads `lint` only for rank > 2 (and requires it there)
        LS = doc.ints(doc.get(f, "lint", where), key_path(where, "lint"), length=rank - 2).tolist()
        if min(LS) < 0:
            raise doc.error(key_path(where, "lint"), f"values must be >= 0; got {LS}")
    problem = _ls_LS_problem(ls, LS)
    if problem:
        raise doc.error(key_path(where, "lint" if problem.startswith("lint") else "nl"), problem)
    skip = _bool(doc, f["skip"], key_path(where, "skip")) if "skip" in f else False
    return _BFunc(where=where, elements=elements, rank=rank, ns=ns, ls=ls, LS=LS, coeffs=coeffs, skip=skip)


def _ls_LS_problem(ls: list[int], LS: list[int]) -> str | None:
    """python-ace's `validate_ls_LS`: the constraints the root of the coupling tree puts on ls/lint."""
    rank = len(ls)
    if rank == 1 and ls[0] != 0:
        return f"nl = {ls} must be [0] for a rank-1 function"
    if rank == 2 and ls[0] != ls[1]:
        return f"nl = {ls}: both values must be equal for a rank-2 function"
    if rank in (3, 5) and LS[-1] != ls[-1]:
        return f"lint = {LS}: its last value must equal the last nl value ({ls[-1]}) for rank {rank}"
    if rank == 4 or rank >= 6:
        if LS[-1] != LS[-2]:
            return f"lint = {LS}: its last two values must be equal for rank {rank}"
    if sum(ls) % 2:
        return f"nl = {ls}: the sum must be even (parity invariance)"
    return None


def _share_dual_blocks(doc: YamlDoc, blocks: list[_Block]) -> None:
    """Two-species blocks A-B and B-A share radial basis and core repulsion (python-ace's order of
    copying and checking, `Input::parse_input`)."""
    for block in blocks:
        if block.nspecies != 2:
            continue
        dual_vec = [block.elements_vec[1], block.elements_vec[0]]
        for dual in blocks:
            if dual.elements_vec != dual_vec:
                continue
            if block.radial is None:
                if dual.radial is None:
                    raise doc.error(key_path(block.where, "lmaxi"), f"the radial basis is defined neither in block "
                                    f"{block.name!r} nor in its dual block {dual.name!r} ({dual.where})")
                block.radial = dual.radial
            elif dual.radial is None:
                dual.radial = block.radial
            elif not (block.radial.same(dual.radial) and block.r_in == dual.r_in
                      and block.delta_in == dual.delta_in and block.inner_cutoff_type == dual.inner_cutoff_type):
                raise doc.error(block.where, f"radial basis (or r_in, delta_in, inner_cutoff_type) of block "
                                f"{block.name!r} differs from that of its dual block {dual.name!r} ({dual.where})")
            if block.core is None and dual.core is not None:
                _copy_core(dual, block)
            elif block.core is not None and dual.core is None:
                _copy_core(block, dual)
            elif block.core is not None and dual.core is not None:
                if block.core != dual.core:
                    raise doc.error(key_path(block.where, "core-repulsion"), f"differs from that of the dual block "
                                    f"{dual.name!r} ({dual.where})")
                if block.r_in != dual.r_in or block.delta_in != dual.delta_in:
                    raise doc.error(key_path(block.where, "r_in"), f"r_in/delta_in differ from those of the dual "
                                    f"block {dual.name!r} ({dual.where})")
        if block.radial is None:
            raise doc.error(key_path(block.where, "lmaxi"), f"required key is missing: block {block.name!r} has no "
                            f"radial basis and no dual block '{dual_vec[0]} {dual_vec[1]}' defines one")


def _copy_core(src: _Block, dst: _Block) -> None:
    dst.core = src.core
    dst.inner_cutoff_type = src.inner_cutoff_type
    dst.r_in = src.r_in
    dst.delta_in = src.delta_in


def _check_block_functions(doc: YamlDoc, block: _Block) -> None:
    """The per-block size checks of `Input::parse_input` (one- and two-species blocks)."""
    if block.nspecies > 2:
        return
    rad = block.radial
    for f in block.functions:
        if f.rank == 1:
            if max(f.ns) > rad.nradbase:
                raise doc.error(key_path(f.where, "nr"), f"rank-1 nr = {f.ns} exceeds nradbaseij = {rad.nradbase} "
                                f"of block {block.name!r}")
            continue
        if max(f.ns) > rad.nradmax:
            raise doc.error(key_path(f.where, "nr"), f"nr = {f.ns} exceeds nradmaxi = {rad.nradmax} of block {block.name!r}")
        if max(f.ls) > rad.lmax:
            raise doc.error(key_path(f.where, "nl"), f"nl = {f.ls} exceeds lmaxi = {rad.lmax} of block {block.name!r}")
        if f.LS and max(f.LS) > 2 * rad.lmax:
            raise doc.error(key_path(f.where, "lint"), f"lint = {f.LS} exceeds 2 * lmaxi = {2 * rad.lmax} "
                            f"of block {block.name!r}")


def _global_inner_cutoff_type(doc: YamlDoc, blocks: list[_Block]) -> str:
    first = None
    for block in blocks:
        if block.nspecies > 2:
            continue
        if first is None:
            first = block
        elif block.inner_cutoff_type != first.inner_cutoff_type:
            raise doc.error(key_path(block.where, "inner_cutoff_type"), f"is {block.inner_cutoff_type!r} but "
                            f"{first.where} ({first.name!r}) has {first.inner_cutoff_type!r}; it must be the same "
                            "in every one- and two-species block")
    return first.inner_cutoff_type


