"""Tests of the `.yace` reader against the saved public files and python-ace (pyace).

pyace's `ACECTildeBasisSet` is the C++ reader behind LAMMPS `pair_style pace`, so it is the
independent reference for what a file means. yace files print floats with round-trip precision,
so everything is compared exactly.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from acepy.io import (
    ACEPotentialSpec,
    PaceBond,
    PotentialFileError,
    ShipsBond,
    SplineBond,
    read_potential,
    read_yace,
)

import data_paths as D

# ALNI and the derived files are python-ace's (ASL), TA FitSNAP's (GPL-2.0): not in tests/data, read from
# ../shared/reference or generated stand-ins; TIAL is in tests/data (MIT).
ALNI = D.potential_path("python-ace__tests__Al-Ni_opt_all.yace")
TIAL = D.TIAL_YACE
TA = D.potential_path("FitSNAP__examples__Ta_PACE_RIDGE__30Mar23_RIDGE__Ta_pot.yace")
YACE_FILES = [D.potential_path(n) for n in D.YACE_FILES + D.DERIVED_FILES]
# pyace reads every file here; the ACE.jl one is compared separately (its radial part is SHIPs).
PACE_YACE_FILES = [p for p in YACE_FILES if p != TIAL]


def _ids(paths):
    return [p.name[:60] for p in paths]


def _function_lines(text: str, species: int) -> list[str]:
    """The flow-style function lines of species ``species`` in a pacemaker ``.yace`` text, in file order."""
    block = text[text.index("functions:"):]
    block = block[block.index(f"\n  {species}:\n") + 1:]
    lines = block.splitlines(keepends=True)[1:]
    return [line for line in lines[: next((i for i, l in enumerate(lines) if not l.startswith("    - {")), None)]]


def _first_function(text: str, species: int, **want) -> tuple[int, str, dict]:
    """(index, line, parsed) of the first function of ``species`` whose fields equal ``want``."""
    for i, line in enumerate(_function_lines(text, species)):
        f = yaml.safe_load(line.strip()[2:])
        if all(f[k] == v for k, v in want.items()):
            return i, line, f
    raise AssertionError(f"no function of species {species} with {want}")


def _bond_line(text: str, key: str) -> str:
    return next(line for line in text.splitlines(keepends=True) if line.startswith(f"  {key}: {{"))


# --------------------------------------------------------------------------------------------
# Helpers shared with test_io_ace.py
# --------------------------------------------------------------------------------------------


def pyace_basis(path):
    pyace = pytest.importorskip("pyace")
    return pyace.ACECTildeBasisSet(str(path))


def pyace_isolated_atom_energy(basis, element):
    """Energy of one atom without neighbours: F(0) = 0 and rho_core = 0, so it is exactly E0."""
    pyace = pytest.importorskip("pyace")
    from ase import Atoms

    atoms = Atoms(element, positions=[[0.0, 0.0, 0.0]], cell=[30.0, 30.0, 30.0], pbc=False)
    atoms.calc = pyace.PyACECalculator(basis)
    return atoms.get_potential_energy()


def _padded_crad(spec: ACEPotentialSpec, i, j):
    """The bond's crad zero-padded to the global sizes, as the C++ code stores it."""
    out = np.zeros((spec.nradmax, spec.lmax + 1, spec.nradbase))
    c = spec.bonds[(i, j)].crad
    out[: c.shape[0], : c.shape[1], : c.shape[2]] = c
    return out


def _assert_function_equal(ours, theirs, where):
    assert ours.mu0 == theirs.mu0, where
    assert ours.rank == theirs.rank, where
    assert ours.ndensity == theirs.ndensity, where
    assert ours.num_ms_combs == theirs.num_ms_combs, where
    assert ours.mus.tolist() == list(theirs.mus), where
    assert ours.ns.tolist() == list(theirs.ns), where  # both 1-based
    assert ours.ls.tolist() == list(theirs.ls), where
    assert ours.ms_combs.tolist() == [list(m) for m in theirs.ms_combs], where
    assert ours.ctildes.tolist() == [list(c) for c in theirs.ctildes], where  # exact


def assert_functions_match_pyace(spec: ACEPotentialSpec, basis):
    """pyace splits each species' list into rank-1 and rank>1 functions, keeping file order."""
    for mu in range(spec.nelements):
        rank1 = [f for f in spec.functions[mu] if f.rank == 1]
        higher = [f for f in spec.functions[mu] if f.rank > 1]
        assert len(rank1) == len(basis.basis_rank1[mu])
        assert len(higher) == len(basis.basis[mu])
        for k, (a, b) in enumerate(zip(rank1, basis.basis_rank1[mu])):
            _assert_function_equal(a, b, f"species {mu} rank-1 function {k}")
        for k, (a, b) in enumerate(zip(higher, basis.basis[mu])):
            _assert_function_equal(a, b, f"species {mu} function {k}")


def assert_matches_pyace(spec: ACEPotentialSpec, path):
    """Everything pyace exposes about a PACE-radial potential equals what we parsed.

    One known difference: after loading an `.ace` file, pyace's radial_functions.dcut_in keeps its
    initial value 1e-5 (the .ace reader never sets it), while its bond specification, its
    save_yaml() output and our spec say 0. With the 'density' inner cutoff of .ace files neither
    value changes any result, so for .ace files the bond specification is the reference.
    """
    from_ace = Path(path).suffix == ".ace"
    basis = pyace_basis(path)
    n = spec.nelements
    assert list(basis.elements_name) == spec.elements
    assert basis.nelements == n
    assert basis.lmax == spec.lmax
    assert basis.nradbase == spec.nradbase
    assert basis.nradmax == spec.nradmax
    assert basis.ndensitymax == spec.ndensitymax
    assert basis.cutoffmax == spec.cutoffmax
    for mu, el in enumerate(spec.elements):
        assert pyace_isolated_atom_energy(basis, el) == spec.E0[mu]

    for mu in range(n):
        theirs, ours = basis.map_embedding_specifications[mu], spec.embeddings[mu]
        assert theirs.ndensity == ours.ndensity
        assert list(theirs.FS_parameters) == ours.fs_parameters.tolist()
        assert theirs.npoti == ours.npoti
        assert theirs.rho_core_cutoff == ours.rho_core_cutoff
        assert theirs.drho_core_cutoff == ours.drho_core_cutoff

    rf = basis.radial_functions
    assert rf.deltaSplineBins == spec.delta_spline_bins
    assert rf.inner_cutoff_type == spec.inner_cutoff_type
    assert rf.nradbase == spec.nradbase and rf.nradial == spec.nradmax and rf.lmax == spec.lmax
    for i in range(n):
        for j in range(n):
            b = spec.bonds[(i, j)]
            assert isinstance(b, PaceBond)
            assert rf.cut[i][j] == b.rcut
            assert rf.dcut[i][j] == b.dcut
            assert rf.cut_in[i][j] == b.rcut_in
            assert rf.dcut_in[i][j] == (1e-5 if from_ace else b.dcut_in)
            assert rf.prehc[i][j] == b.prehc
            assert rf.lambhc[i][j] == b.lambdahc
            assert rf.lamb[i][j] == b.radparameters[0]
            assert rf.radbasenameij[i][j] == b.radbasename
            expected = _padded_crad(spec, i, j)  # pyace gives [] when nradmax = 0
            assert np.array_equal(np.array(rf.crad[i][j], dtype=float).reshape(expected.shape), expected)
            bs = basis.map_bond_specifications[(i, j)]
            assert (bs.nradmax, bs.lmax, bs.nradbasemax) == (b.nradmax, b.lmax, b.nradbasemax)
            assert list(bs.radparameters) == b.radparameters.tolist()
            assert bs.inner_cutoff_type == b.inner_cutoff_type
            assert (bs.rcut, bs.dcut, bs.rcut_in, bs.dcut_in) == (b.rcut, b.dcut, b.rcut_in, b.dcut_in)
            assert (bs.prehc, bs.lambdahc, bs.radbasename) == (b.prehc, b.lambdahc, b.radbasename)
            if b.nradmax:
                assert np.array_equal(np.array(bs.radcoefficients), b.crad)
    assert_functions_match_pyace(spec, basis)


def assert_spec_equal(a, b, where="spec"):
    """Field-by-field equality of two specs (arrays exactly), ignoring `source`."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            if f.name != "source":
                assert_spec_equal(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_spec_equal(a[k], b[k], f"{where}[{k}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_spec_equal(x, y, f"{where}[{k}]")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def expect_error(path, *fragments):
    """Reading ``path`` raises PotentialFileError whose message names the file and each fragment."""
    with pytest.raises(PotentialFileError) as info:
        read_potential(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


# --------------------------------------------------------------------------------------------
# Real files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", D.params(YACE_FILES, ids=lambda p: _ids([p])[0]))
def test_every_yace_loads(path):
    spec = read_yace(path)
    assert spec.source == str(path)
    n = spec.nelements
    assert set(spec.bonds) == {(i, j) for i in range(n) for j in range(n)}
    assert len(spec.embeddings) == len(spec.functions) == len(spec.E0) == n
    for mu, fns in enumerate(spec.functions):
        assert fns, f"species {mu} has no functions"
        for f in fns:
            assert f.mu0 == mu and f.ndensity == spec.embeddings[mu].ndensity
            assert f.ms_combs.shape == (f.num_ms_combs, f.rank)
            assert f.ctildes.shape == (f.num_ms_combs, f.ndensity)
            assert np.all(np.isfinite(f.ctildes))
    assert read_potential(path).elements == spec.elements


@pytest.mark.parametrize("path", D.params(PACE_YACE_FILES, ids=lambda p: _ids([p])[0]))
def test_yace_matches_pyace(path):
    assert_matches_pyace(read_yace(path), path)


@D.needs(ALNI)
def test_alni_details():
    spec = read_yace(ALNI)
    assert spec.elements == ["Al", "Ni"] and spec.E0.tolist() == [0.0, 0.0]
    assert spec.radial_kind == "pace" and spec.inner_cutoff_type == "density"  # key absent
    assert [e.npoti for e in spec.embeddings] == ["FinnisSinclair", "FinnisSinclairShiftedScaled"]
    assert spec.embeddings[1].fs_parameters.tolist() == [1, 1, 1, 0.5]
    text = ALNI.read_text()
    b01 = spec.bonds[(0, 1)]
    bond = yaml.safe_load("{" + _bond_line(text, "[0, 1]").split("{", 1)[1])
    crad = bond["radcoefficients"]
    assert b01.crad.shape == (bond["nradmax"], bond["lmax"] + 1, bond["nradbasemax"]) == np.shape(crad)
    assert b01.crad[-1, 1, 0] == crad[-1][1][0]  # radcoefficients[n=last][l=1][k=0]
    assert spec.bonds[(1, 1)].radbasename == "ChebPow"
    assert spec.cutoff(0, 1) == 8.71 and spec.cutoff(1, 1) == 8.75 and spec.cutoffmax == 8.75
    i, _, parsed = _first_function(text, 0, rank=2, num_ms_combs=2)
    f = spec.functions[0][i]
    assert f.ms_combs.tolist() == [[0, 0], [1, -1]]
    assert f.ctildes[:, 0].tolist() == parsed["ctildes"]
    j, _, parsed = _first_function(text, 1, num_ms_combs=3)
    ctildes = spec.functions[1][j].ctildes
    assert ctildes.shape == (3, 2) and ctildes.ravel().tolist() == parsed["ctildes"]
    assert spec.rankmax == 4 and spec.ndensitymax == 2
    if D.upstream(ALNI):  # upstream's numbers
        assert b01.crad.shape == (2, 2, 1) and b01.crad[1, 1, 0] == 2.5167897981916529 and i == 3
        assert f.ctildes[:, 0].tolist() == [16.771745065062149, -33.543490130124297]
        assert spec.functions[1][6].ctildes.shape == (6, 2)


@D.needs(TA)
def test_fitsnap_distance_cutoff():
    spec = read_yace(TA)
    b = spec.bonds[(0, 0)]
    assert spec.inner_cutoff_type == "distance"
    assert (b.rcut_in, b.dcut_in, b.prehc, b.rcut) == (1.2, 0.01, 0.0, 4.25)
    assert spec.E0.tolist() == [-6.228984]
    assert spec.delta_spline_bins == 0.001


def test_tial_acejl_ships():
    spec = read_yace(TIAL)
    assert spec.radial_kind == "ships"
    assert spec.elements == ["Al", "Ti"]
    assert spec.E0.tolist() == [-105.5954, -1586.0195]
    assert spec.lmax == 1 and spec.inner_cutoff_type == "density"
    assert spec.delta_spline_bins == 0.001
    assert spec.pair is None  # this export wrote its pair potential to the _pairpot.table file
    for e in spec.embeddings:
        assert (e.ndensity, e.npoti, e.fs_parameters.tolist()) == (1, "FinnisSinclairShiftedScaled", [1.0, 1.0])
        assert (e.rho_core_cutoff, e.drho_core_cutoff) == (100000.0, 1.0)
    for key, b in spec.bonds.items():
        assert isinstance(b, ShipsBond), key
        assert (b.rcut, b.r0, b.p, b.pl, b.pr, b.maxn) == (5.5, 2.88, 2, 2, 2, 6)
        assert (b.xl, b.xr) == (0.3563171597633136, 2.022901419836431)
        assert b.A.tolist() == [3.253577614437167, 3.980146542617523, 3.208896730258186,
                                2.9171788456892846, 2.7660000991755456, 2.675144850592528]
        assert b.B.tolist() == [0.0, -4.73481930186265, -3.8173333603235693, -3.470303054839645,
                                -3.2904594135665928, -3.1823771658251663]
        assert b.C.tolist() == [0.0, 0.0, -0.8062257748298494, -0.9090909090909298,
                                -0.948176387355483, -0.967152839723303]
    assert spec.nradmax == spec.nradbase == 6 and spec.cutoff(0, 1) == 5.5
    f = spec.functions[0][0]  # first entry, keys in YAML.jl's order
    assert (f.rank, f.ns.tolist(), f.ctildes.tolist()) == (1, [2], [[0.16294040015646302]])
    assert all(f.num_ms_combs == 1 for fs in spec.functions for f in fs)


def test_tial_functions_and_e0_match_pyace():
    """pyace (upstream SHIPs reader) also reads this ACE.jl file: its functions, E0, sizes agree."""
    spec = read_yace(TIAL)
    basis = pyace_basis(TIAL)
    assert list(basis.elements_name) == spec.elements
    assert (basis.lmax, basis.nradmax, basis.nradbase) == (spec.lmax, spec.nradmax, spec.nradbase)
    assert basis.cutoffmax == spec.cutoffmax
    assert basis.radial_functions.cut == [[spec.cutoff(i, j) for j in range(2)] for i in range(2)]
    for mu, el in enumerate(spec.elements):
        assert pyace_isolated_atom_energy(basis, el) == spec.E0[mu]
    assert_functions_match_pyace(spec, basis)


# --------------------------------------------------------------------------------------------
# Synthetic files: other styles and features
# --------------------------------------------------------------------------------------------


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ships_polypairpot_and_reppot(tmp_path):
    pair = """
polypairpot:
  rcut: 6.0
  xl: 0.3
  xr: 2.0
  pl: 2
  pr: 2
  r0: 2.9
  p: 2
  maxn: 3
  recursion_coefficients:
    A: [1.0, 2.0, 3.0]
    B: [0.0, -1.0, -2.0]
    C: [0.0, 0.0, -0.5]
  coefficients:
    [0, 0]: [0.1, 0.2, 0.3]
    [0, 1]: [1e-1, 2e-1, 3e-1]
reppot:
  coefficients:
    [1, 1]: {ri: 1.5, e0: 0.25, A: 3.0, B: 1e1}
"""
    path = _write(tmp_path, "tial_pair.yace", TIAL.read_text() + pair)
    spec = read_yace(path)
    p = spec.pair
    assert (p.basis.rcut, p.basis.maxn, p.basis.p, p.basis.pl, p.basis.pr) == (6.0, 3, 2, 2, 2)
    assert p.basis.C.tolist() == [0.0, 0.0, -0.5]
    assert p.coefficients[(0, 1)].tolist() == [0.1, 0.2, 0.3]  # `1e-1` (a string to PyYAML) coerced
    assert p.coefficients[(1, 0)].tolist() == [0.0, 0.0, 0.0]  # unlisted pair: zeros, as upstream
    assert set(p.reppot) == {(1, 1)}
    assert tuple(p.reppot[(1, 1)]) == (1.5, 0.25, 3.0, 10.0)
    assert p.reppot[(1, 1)].ri == 1.5
    assert spec.cutoffmax == 6.0 and spec.cutoff(0, 0) == 6.0  # SHIPs: one global cutoff

    bad = TIAL.read_text() + pair.replace("[0, 1]: [1e-1, 2e-1, 3e-1]", "[0, 1]: [1e-1, 2e-1]")
    expect_error(_write(tmp_path, "bad_pair.yace", bad), "polypairpot.coefficients[0, 1]", "expected 3 values")


SPLINE_YACE = """\
elements:
  - "Si"
E0:
  - -158.5
bonds:
  [0, 0]:
    splinenodalderivs:
      1:
        - 0.0
        - -0.5
        - -0.25
        - -0.125
        - 0.0
      0:
        - 0.0
        - 1.0
        - 0.5
        - 0.25
        - 0.0
    nbins: 4
    rcut: 5.0
    radbasename: "ACE.jl"
    nradial: 2
    splinenodalvals:
      0:
        - 1.0
        - 0.75
        - 0.5
        - 0.25
        - 0.0
      1:
        - -1.0
        - -0.5
        - 0.0
        - 0.5
        - 0.0
lmax: 2
embeddings:
  0:
    npoti: "FinnisSinclairShiftedScaled"
    FS_parameters:
      - 1.0
      - 1.0
    ndensity: 1
    rho_core_cutoff: 100000
    drho_core_cutoff: 1.0
functions:
  0:
    - rank: 1
      mu0: 0
      ndensity: 1
      num_ms_combs: 1
      mus:
        - 0
      ns:
        - 2
      ls:
        - 0
      ms_combs:
        - 0
      ctildes:
        - 0.5
    - ctildes:
        - 0.125
        - -0.0625
      ms_combs:
        - 0
        - 0
        - 1
        - -1
      ls:
        - 2
        - 2
      ns:
        - 1
        - 2
      mus:
        - 0
        - 0
      num_ms_combs: 2
      ndensity: 1
      mu0: 0
      rank: 2
"""


def test_acejl_v06_spline_bond(tmp_path):
    spec = read_yace(_write(tmp_path, "si_spline.yace", SPLINE_YACE))
    assert spec.radial_kind == "spline" and spec.pair is None
    b = spec.bonds[(0, 0)]
    assert isinstance(b, SplineBond)
    assert (b.rcut, b.nradial, b.nbins) == (5.0, 2, 4)
    assert b.values.shape == b.derivatives.shape == (2, 5)
    assert b.values[1].tolist() == [-1.0, -0.5, 0.0, 0.5, 0.0]
    assert b.derivatives[0].tolist() == [0.0, 1.0, 0.5, 0.25, 0.0]  # key order in the file is 1, 0
    assert spec.lmax == 2 and spec.nradmax == spec.nradbase == 2 and spec.cutoff(0, 0) == 5.0
    assert spec.delta_spline_bins is None and spec.E0.tolist() == [-158.5]
    f = spec.functions[0][1]
    assert f.ms_combs.tolist() == [[0, 0], [1, -1]] and f.ctildes.tolist() == [[0.125], [-0.0625]]

    short = SPLINE_YACE.replace("        - 0.5\n        - 0.0\nlmax", "        - 0.5\nlmax")
    expect_error(_write(tmp_path, "short.yace", short), "bonds[0, 0].splinenodalvals[1]", "expected 5 values")
    no_lmax = SPLINE_YACE.replace("lmax: 2\n", "")
    expect_error(_write(tmp_path, "no_lmax.yace", no_lmax), "lmax", "required key is missing")
    big_n = SPLINE_YACE.replace("      ns:\n        - 1\n        - 2\n      mus",
                                "      ns:\n        - 1\n        - 3\n      mus")
    expect_error(_write(tmp_path, "big_n.yace", big_n), "functions[0][1]", "ns [1, 3] out of range")


@D.needs(ALNI)
def test_number_forms_and_symbol_no(tmp_path):
    """`1e5` (a string to PyYAML), `1.0` integers and the symbol `No` (YAML 1.1 false)."""
    text = ALNI.read_text()
    text = text.replace("elements: [Al, Ni]", "elements: [No, Ni]")
    text = text.replace("rho_core_cutoff: 100000,", "rho_core_cutoff: 1e5,")
    text = text.replace("dcut: 0.01}", "dcut: 1e-2}")
    nradmax = int(re.search(r"\[0, 0\]: \{nradmax: (\d+),", text).group(1))
    text = text.replace(f"[0, 0]: {{nradmax: {nradmax},", f"[0, 0]: {{nradmax: {nradmax}.0,")
    spec = read_yace(_write(tmp_path, "forms.yace", text))
    assert spec.elements == ["No", "Ni"]
    assert spec.embeddings[0].rho_core_cutoff == 100000.0
    assert spec.bonds[(0, 1)].dcut == 0.01
    assert spec.bonds[(0, 0)].nradmax == nradmax and isinstance(spec.bonds[(0, 0)].nradmax, int)


@D.needs(ALNI)
def test_duplicate_functions_are_kept(tmp_path):
    lines = ALNI.read_text().splitlines(keepends=True)
    k = next(i for i, line in enumerate(lines) if "ns: [2]" in line)
    lines.insert(k + 1, lines[k])
    spec = read_yace(_write(tmp_path, "dup.yace", "".join(lines)))
    ref = read_yace(ALNI)
    assert len(spec.functions[0]) == len(ref.functions[0]) + 1
    assert_spec_equal(spec.functions[0][2], spec.functions[0][1])
    ns = [f.ns.tolist() for f in spec.functions[0][:4]]
    assert ns == [[1], [2], [2], [1]]  # file order, duplicate in place


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no_such.yace"):
        read_yace(D.POTENTIALS / "no_such.yace")
    with pytest.raises(FileNotFoundError, match="no_such.yace"):
        read_potential(D.POTENTIALS / "no_such.yace")


def test_unknown_extension(tmp_path):
    expect_error(_write(tmp_path, "pot.txt", "x"), "unrecognized file type")
    expect_error(_write(tmp_path, "pot.yaml", "x"), "top level must be a mapping")  # .yaml: pacemaker B-basis reader


# --------------------------------------------------------------------------------------------
# Malformed files
# --------------------------------------------------------------------------------------------

def _break_function(species, want, edit, *fragments):
    """A break of the first function of ``species`` matching ``want``: ``edit(line, parsed)`` gives the new
    line; ``{i}`` in a fragment is that function's index, ``{f}`` its parsed fields."""
    def make(text):
        i, line, parsed = _first_function(text, species, **want)
        return line, edit(line, parsed), [frag.format(i=i, f=parsed) for frag in fragments]
    return make


def _break_crad(key, edit, *fragments):
    """A break of bond ``key``'s radcoefficients: ``edit(crad)`` changes the nested list in place;
    ``{n}``, ``{l}``, ``{k}`` in a fragment are the last indices."""
    def make(text):
        line = _bond_line(text, key)
        old = re.search(r"radcoefficients: (\[.*?\]\]\]), ", line).group(1)
        crad = yaml.safe_load(old)
        n, l, k = len(crad) - 1, len(crad[0]) - 1, len(crad[0][0]) - 1
        edit(crad)
        new = line.replace(old, yaml.safe_dump(crad, default_flow_style=True).strip())
        return line, new, [frag.format(n=n, l=l, k=k) for frag in fragments]
    return make


def _set_last(crad):
    crad[-1][-1][-1] = float("nan")


_ALNI_BREAKS = [
    # (what is changed: old -> new, or a function of the text giving old, new and the fragments; fragments
    # the message must contain). Written for any Al-Ni file of upstream's layout: the upstream one and the stand-in.
    ("missing key",
     ("lambdahc: 8, rcut: 8.75, dcut", "lambdahc: 8, dcut"), ["bonds[1, 1].rcut", "required key is missing"]),
    ("short ctildes", _break_function(0, {"num_ms_combs": 2}, lambda line, f: re.sub(
        r"ctildes: \[([^,\]]+), [^\]]*\]", r"ctildes: [\1]", line),
        "functions[0][{i}].ctildes", "expected 2 values, got 1")),
    ("unknown radbasename", ("radbasename: ChebPow", "radbasename: ChebFoo"),
     ["bonds[1, 1].radbasename", "unknown radial basis 'ChebFoo'"]),
    ("bad number", ("prehc: 500,", "prehc: 5O0,"), ["bonds[1, 1].prehc", "expected a number"]),
    ("nan coefficient", _break_crad("[0, 0]", _set_last, "bonds[0, 0].radcoefficients[{n}][{l}][{k}]", "non-finite")),
    ("nan string", _break_function(0, {}, lambda line, f: re.sub(r"ctildes: \[[^\]]*\]", "ctildes: [nan]", line),
                                   "functions[0][0].ctildes[0]", "non-finite")),
    ("short radcoefficients", _break_crad("[1, 1]", lambda crad: crad[0].pop(),
                                          "bonds[1, 1].radcoefficients[0]", "lmax + 1 = 3 needed")),
    ("unknown npoti", ("npoti: FinnisSinclair,", "npoti: Linear,"), ["embeddings[0].npoti", "unknown embedding"]),
    ("ndensity mismatch", _break_function(1, {}, lambda line, f: line.replace("ndensity: 2,", "ndensity: 1,"),
                                          "functions[1][0].ndensity", "embeddings[1].ndensity is 2")),
    ("embedding key", ("  1: {ndensity: 2,", "  2: {ndensity: 2,"), ["embeddings[2]", "not below nelements = 2"]),
    ("duplicate bond key", ("  [1, 0]: {", "  [0, 0]: {"), ["duplicate key (0, 0)"]),
    ("mixed bases", ("radbasename: ChebPow", "radbasename: \"ACE.jl.base\""), ["bonds", "both types"]),
    ("short ms_combs", _break_function(0, {"rank": 2, "ms_combs": [0, 0, 1, -1]},
                                       lambda line, f: line.replace("ms_combs: [0, 0, 1, -1]", "ms_combs: [0, 0, 1]"),
                                       "functions[0][{i}].ms_combs", "expected 4 values")),
    ("mus range", _break_function(0, {"rank": 3}, lambda line, f: line.replace(
        "mus: [{}, {}, {}]".format(*f["mus"]), "mus: [{}, 2, {}]".format(f["mus"][0], f["mus"][2])),
        "functions[0][{i}]", "mus [{f[mus][0]}, 2, {f[mus][2]}] out of range")),
    ("m range", _break_function(0, {"rank": 2, "ls": [1, 1], "ms_combs": [0, 0, 1, -1]},
                                lambda line, f: line.replace("ms_combs: [0, 0, 1, -1]", "ms_combs: [0, 0, 2, -2]"),
                                "functions[0][{i}]", "|m| > l")),
    ("E0 length", ("E0: [0, 0]", "E0: [0]"), ["E0", "expected 2 values, got 1"]),
    ("integer",
     ("nradbasemax: 2, radbasename: ChebExpCos, radparameters: [3]",
      "nradbasemax: 2.5, radbasename: ChebExpCos, radparameters: [3]"),
     ["bonds[0, 0].nradbasemax", "expected an integer"]),
    ("duplicate species key", ("  1:\n    - {mu0: 1", "  0:\n    - {mu0: 1"), ["duplicate key 0"]),
    ("inner cutoff type",
     ("prehc: 500, lambdahc: 8, rcut: 8.75, dcut: 0.01}",
      "prehc: 500, lambdahc: 8, rcut: 8.75, dcut: 0.01, inner_cutoff_type: dens}"),
     ["bonds[1, 1].inner_cutoff_type", "unknown value 'dens'"]),
    ("yaml syntax", ("elements: [Al, Ni]", "elements: [Al, Ni"), ["line ", "invalid YAML"]),
]


@D.needs(ALNI)
@pytest.mark.parametrize("break_", [b[1] if callable(b[1]) else (*b[1], b[2]) for b in _ALNI_BREAKS],
                         ids=[b[0] for b in _ALNI_BREAKS])
def test_malformed_yace(tmp_path, break_):
    text = ALNI.read_text()
    old, new, fragments = break_(text) if callable(break_) else break_
    assert text.count(old) == 1 and new != old, old
    expect_error(_write(tmp_path, "broken.yace", text.replace(old, new)), *fragments)


@D.needs(ALNI)
def test_missing_pair_and_species_keys(tmp_path):
    text = ALNI.read_text()
    no_bond = re.sub(r"  \[1, 0\]: \{.*\}\n", "", text)
    expect_error(_write(tmp_path, "nobond.yace", no_bond), "bonds", "missing [(1, 0)]")
    no_fun = text[: text.index("  1:\n    - {mu0: 1")]
    expect_error(_write(tmp_path, "nofun.yace", no_fun), "functions[1]", "every species needs a functions key")
    no_top = text.replace("deltaSplineBins: 0.001\n", "")
    expect_error(_write(tmp_path, "nodsb.yace", no_top), "deltaSplineBins", "required key is missing")
    zbl = text.replace("elements: [Al, Ni]", "elements: [Al, Xx]").replace(
        "rcut: 8.75, dcut: 0.01}", "rcut: 8.75, dcut: 0.01, inner_cutoff_type: zbl}")
    expect_error(_write(tmp_path, "zbl.yace", zbl), "elements", "unknown ['Xx']")
    zbl_ok = read_yace(_write(tmp_path, "zbl_ok.yace", zbl.replace("[Al, Xx]", "[Al, Ni]")))
    assert zbl_ok.inner_cutoff_type == "zbl" and zbl_ok.bonds[(0, 0)].inner_cutoff_type == "density"
