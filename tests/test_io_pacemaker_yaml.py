"""pacemaker B-basis `.yaml` potentials, read directly (acepy.io.pacemaker_yaml).

References, both independent of our reader: python-ace's `PyACECalculator`, which evaluates the
B basis itself (`ACEBEvaluator`), and python-ace's own B -> C-tilde conversion
(`ACEBBasisSet(...).to_ACECTildeBasisSet()`, what `pace_yaml2yace` writes). Our C-tilde
coefficients come from acepy.coupling, never from pyace.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pytest
import yaml
from ase.build import bulk

import acepy
from acepy.io import PotentialFileError, read_pacemaker_yaml, read_potential

import data_paths as D
from data_paths import ALNI_YACE

# every pacemaker .yaml here is python-ace's (ASL, not in tests/data): read from ../shared/reference or
# generated stand-ins (tests/generated_data.py)
YAML_FILES = [D.pacemaker_yaml_path(n) for n in D.PACEMAKER_YAML_FILES]
ALNI = D.pacemaker_yaml_path("python-ace__tests__Al-Ni_opt_all.yaml")


def _ids(paths):
    return [p.name.replace("python-ace__tests__", "") for p in paths]


# --------------------------------------------------------------------------------------------
# Against PyACECalculator (the B-basis evaluator of python-ace)
# --------------------------------------------------------------------------------------------


def _structure(elements, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "fcc":
        atoms = bulk("Cu", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
    elif kind == "triclinic":
        atoms = bulk("Cu", "fcc", a=4.1).repeat((3, 3, 3))
        strain = np.eye(3) + rng.uniform(-0.06, 0.06, (3, 3))
        atoms.set_cell(atoms.cell[:] @ strain, scale_atoms=True)
    elif kind == "small":  # two atoms, cell vectors far shorter than the cutoff
        atoms = bulk("Cu", "fcc", a=4.05).repeat((2, 1, 1))
    else:  # cluster
        atoms = bulk("Cu", "fcc", a=4.05, cubic=True).repeat((2, 2, 2))
        atoms.pbc = False
        atoms.cell = [0, 0, 0]
    atoms.rattle(0.15, seed=seed)
    symbols = rng.choice(elements, len(atoms)).tolist()
    symbols[: len(elements)] = elements  # every element present
    atoms.set_chemical_symbols(symbols)
    return atoms


def _compare_with_pyace(path, model, atoms, kind, errors=None):
    """Energy per atom, forces and stress of ``model`` against PyACECalculator on ``path``."""
    pyace = pytest.importorskip("pyace")
    if kind == "cluster":  # PyACE wants a cell: a box wider than twice the cutoff, periodic
        ref_atoms = atoms.copy()
        ref_atoms.cell = np.eye(3) * (40 + 2 * model.cutoff)
        ref_atoms.center()
        ref_atoms.pbc = True
        atoms = ref_atoms.copy()
        atoms.pbc = False
    else:
        ref_atoms = atoms.copy()
    ref_atoms.calc = pyace.PyACECalculator(str(path))
    n = len(atoms)
    e_ref = ref_atoms.get_potential_energy() / n
    f_ref = ref_atoms.get_forces()
    out = model.evaluate(atoms)
    e = float(out["energy"][0]) / n
    f = out["forces"].numpy()
    assert e == pytest.approx(e_ref, abs=1e-8 + 1e-11 * abs(e_ref))
    np.testing.assert_allclose(f, f_ref, rtol=1e-9, atol=1e-6)
    if errors is not None:
        errors["energy/atom"] = max(errors.get("energy/atom", 0.0), abs(e - e_ref))
        errors["forces"] = max(errors.get("forces", 0.0), float(np.abs(f - f_ref).max()))
    if kind != "cluster":
        s_ref = ref_atoms.get_stress()
        s = out["stress"][0].numpy()
        voigt = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        np.testing.assert_allclose(voigt, s_ref, rtol=1e-9, atol=1e-7)
        if errors is not None:
            errors["stress"] = max(errors.get("stress", 0.0), float(np.abs(voigt - s_ref).max()))
    return f_ref


@pytest.mark.parametrize("path", D.params(YAML_FILES, ids=lambda p: _ids([p])[0]))
def test_matches_pyace_calculator(path):
    model = acepy.load(path)
    seed = 1000 + YAML_FILES.index(path)
    nonzero_forces = 0.0
    for k, kind in enumerate(["fcc", "triclinic", "small", "cluster"]):
        f_ref = _compare_with_pyace(path, model, _structure(model.elements, kind, seed + k), kind)
        nonzero_forces = max(nonzero_forces, float(np.abs(f_ref).max()))
    assert nonzero_forces > 1e-3  # the structures probe the forces, not just zeros


@D.needs(ALNI)
def test_ase_calculator_and_read_potential_dispatch():
    """`acepy.ACECalculator` and `read_potential` take the .yaml directly."""
    spec = read_potential(ALNI)
    assert spec.source == str(ALNI) and spec.elements == ["Al", "Ni"]
    atoms = _structure(["Al", "Ni"], "fcc", 3)
    atoms.calc = acepy.ACECalculator(str(ALNI))
    e = atoms.get_potential_energy()
    ref = acepy.load(ALNI).evaluate(atoms)
    assert e == pytest.approx(float(ref["energy"][0]), rel=1e-14, abs=1e-12)


# --------------------------------------------------------------------------------------------
# The C-tilde spec against python-ace's own conversion
# --------------------------------------------------------------------------------------------


def _canonical(functions, key_of):
    """{sorted factors (mu, n, l): {sorted (mu, n, l, m) per factor: coefficients}} summed over
    functions. python-ace reorders a function's factors only when its compression step shortens
    the m-tuple list, which depends on round-off in its floating-point Clebsch-Gordan values; the
    product of A's does not depend on the factor order, so the comparison is up to that order."""
    out = defaultdict(lambda: defaultdict(float))
    for fn in functions:
        mus, ns, ls, ms_combs, ctildes = key_of(fn)
        fkey = tuple(sorted(zip(mus, ns, ls)))
        for ms, c in zip(ms_combs, ctildes):
            tkey = tuple(sorted(zip(mus, ns, ls, ms)))
            out[fkey][tkey] = out[fkey][tkey] + np.asarray(c, dtype=float)
    return out


def _ours(fn):
    return fn.mus.tolist(), fn.ns.tolist(), fn.ls.tolist(), fn.ms_combs.tolist(), fn.ctildes.tolist()


def _theirs(fn):
    return list(fn.mus), list(fn.ns), list(fn.ls), [list(m) for m in fn.ms_combs], [list(c) for c in fn.ctildes]


def _assert_canonical_equal(ours, theirs, where):
    assert sorted(ours) == sorted(theirs), f"{where}: different functions"
    scale = max((np.abs(c).max() for f in theirs.values() for c in f.values()), default=1.0)
    for fkey in theirs:
        a, b = ours[fkey], theirs[fkey]
        # python-ace may keep m-tuples with round-off coefficients (~1e-17) that are exactly 0 here
        for tkey in set(a) | set(b):
            ca = a.get(tkey, 0.0)
            cb = b.get(tkey, 0.0)
            np.testing.assert_allclose(ca, cb, rtol=0, atol=1e-13 * max(1.0, scale), err_msg=f"{where} {fkey} {tkey}")


def _pyace_ctilde(path):
    pyace = pytest.importorskip("pyace")
    return pyace.ACEBBasisSet(str(path)).to_ACECTildeBasisSet()


@pytest.mark.parametrize("path", D.params(YAML_FILES, ids=lambda p: _ids([p])[0]))
def test_ctilde_spec_matches_pyace_conversion(path):
    spec = read_pacemaker_yaml(path)
    ref = _pyace_ctilde(path)
    assert spec.elements == list(ref.elements_name)
    assert np.all(spec.E0 == 0.0)
    assert spec.lmax == ref.lmax and spec.nradmax == ref.nradmax and spec.nradbase == ref.nradbase
    assert spec.cutoffmax == ref.cutoffmax
    assert spec.delta_spline_bins == ref.radial_functions.deltaSplineBins
    assert spec.inner_cutoff_type == ref.radial_functions.inner_cutoff_type
    for mu, emb in ref.map_embedding_specifications.items():
        ours = spec.embeddings[mu]
        assert (ours.ndensity, ours.npoti) == (emb.ndensity, emb.npoti)
        assert ours.fs_parameters.tolist() == list(emb.FS_parameters)
        assert (ours.rho_core_cutoff, ours.drho_core_cutoff) == (emb.rho_core_cutoff, emb.drho_core_cutoff)
    for pair, bond in ref.map_bond_specifications.items():
        ours = spec.bonds[tuple(pair)]
        assert ours.radbasename == bond.radbasename
        assert ours.radparameters.tolist() == list(bond.radparameters)
        assert (ours.nradmax, ours.lmax, ours.nradbasemax) == (bond.nradmax, bond.lmax, bond.nradbasemax)
        assert (ours.prehc, ours.lambdahc, ours.rcut, ours.dcut) == (bond.prehc, bond.lambdahc, bond.rcut, bond.dcut)
        assert (ours.rcut_in, ours.dcut_in, ours.inner_cutoff_type) == (bond.rcut_in, bond.dcut_in,
                                                                        bond.inner_cutoff_type)
        if bond.nradmax:  # exact: the flat (deprecated) layout of two files is reshaped here
            assert ours.crad.tolist() == bond.radcoefficients
    for mu in range(spec.nelements):
        theirs_list = list(ref.basis_rank1[mu]) + list(ref.basis[mu])
        assert len(spec.functions[mu]) == len(theirs_list), f"species {mu}: number of C-tilde functions"
        for fn in spec.functions[mu]:
            assert fn.mu0 == mu and fn.ndensity == spec.embeddings[mu].ndensity
        _assert_canonical_equal(_canonical(spec.functions[mu], _ours), _canonical(theirs_list, _theirs),
                                f"{path.name} species {mu}")


@D.needs(ALNI)
def test_canonical_comparison_detects_a_wrong_coefficient():
    """The comparison above is not vacuous: a half-basis doubling left out is caught."""
    spec = read_pacemaker_yaml(ALNI)
    ref = _pyace_ctilde(ALNI)
    theirs = _canonical(list(ref.basis_rank1[0]) + list(ref.basis[0]), _theirs)
    fn = next(f for f in spec.functions[0] if f.rank == 2 and (f.ms_combs != 0).any())
    s = next(i for i, ms in enumerate(fn.ms_combs.tolist()) if any(ms))
    fn.ctildes[s] *= 0.5
    with pytest.raises(AssertionError):
        _assert_canonical_equal(_canonical(spec.functions[0], _ours), theirs, "mutated")


@D.needs(ALNI)
def test_merge_and_half_basis_by_hand():
    """Al-Ni: 'Al Al Al' with nr [1, 1], nl [1, 1], c = -29.0495...: <1 m 1 -m | 0 0> = (-1)^(1-m)/sqrt(3),
    half basis keeps m = 0 and doubles m = 1: ctildes c * [-1/sqrt(3), 2/sqrt(3)] on [[0, 0], [1, -1]]."""
    spec = read_pacemaker_yaml(ALNI)
    line = next(line for line in ALNI.read_text().splitlines()
                if re.search(r"type: Al Al Al, nr: \[ ?1, 1 ?\], nl: \[ ?1, 1 ?\], c:", line))
    c = yaml.safe_load(line.strip()[2:])["c"][0]
    if D.upstream(ALNI):
        assert c == -29.049514584280232
    fn = next(f for f in spec.functions[0] if f.rank == 2 and f.mus.tolist() == [0, 0] and f.ls.tolist() == [1, 1]
              and f.ns.tolist() == [1, 1])
    assert fn.ms_combs.tolist() == [[0, 0], [1, -1]]
    np.testing.assert_allclose(fn.ctildes[:, 0], [-c / np.sqrt(3), 2 * c / np.sqrt(3)], rtol=1e-15)


# --------------------------------------------------------------------------------------------
# Layout rules, checked against python-ace on edited copies of the Al-Ni file
# --------------------------------------------------------------------------------------------


def _blocks(text):
    head, *rest = text.split("  - speciesblock: ")
    return head, {b.split("\n")[0].strip(): "  - speciesblock: " + b for b in rest}


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def _radial_lines_removed(block):
    keep = ("nradmaxi", "lmaxi", "rcutij", "dcutij", "NameOfCutoffFunctionij", "nradbaseij", "radbase",
            "radparameters", "radcoefficients", "core-repulsion")
    return "\n".join(line for line in block.split("\n") if not line.strip().startswith(keep))


@D.needs(ALNI)
def test_dual_block_sharing_and_skip_match_pyace(tmp_path):
    """'Ni Al' without radial basis and core repulsion takes them from 'Al Ni'; `skip: true` drops
    a function (and that changes the energy, so the check is not vacuous)."""
    head, blocks = _blocks(ALNI.read_text())
    shared = blocks["Ni Al"]
    assert "radcoefficients" in shared
    shared = _radial_lines_removed(shared)
    assert "radcoefficients" not in shared and "core-repulsion" not in shared
    text = head + blocks["Al"] + blocks["Al Ni"] + blocks["Ni"] + shared
    base = _write(tmp_path, "shared.yaml", text)
    last = [line for line in blocks["Al Ni"].split("\n") if line.strip().startswith("- {")][-1]
    skipped = _write(tmp_path, "skipped.yaml", text.replace(last, re.sub(r" ?\}$", ", skip: true }", last)))
    assert skipped.read_text() != text
    atoms = _structure(["Al", "Ni"], "fcc", 11)
    energies = []
    for path in (base, skipped):
        model = acepy.load(path)
        _compare_with_pyace(path, model, atoms, "fcc")
        energies.append(float(model.evaluate(atoms)["energy"][0]))
    assert abs(energies[0] - energies[1]) > 1e-6
    assert read_pacemaker_yaml(base).bonds[(1, 0)].prehc == 550.0


@D.needs(ALNI)
@pytest.mark.parametrize("which", ["no pair blocks", "one pair block"])
def test_pairs_without_blocks_match_pyace(tmp_path, which):
    """A pair that no block describes has no radial functions and no core repulsion in python-ace;
    so here (an empty bond), whether neither or only one of 'Al Ni' / 'Ni Al' is given."""
    head, blocks = _blocks(ALNI.read_text())
    names = ["Al", "Ni"] if which == "no pair blocks" else ["Al", "Al Ni", "Ni"]
    path = _write(tmp_path, "pairs.yaml", head + "".join(blocks[k] for k in names))
    spec = read_pacemaker_yaml(path)
    assert spec.bonds[(1, 0)].nradmax == 0 and spec.bonds[(1, 0)].prehc == 0.0
    _compare_with_pyace(path, acepy.load(path), _structure(["Al", "Ni"], "fcc", 12), "fcc")


@D.needs(ALNI)
def test_block_order_and_defaults(tmp_path):
    """Blocks may come in any order (python-ace wants the single-species block first); missing
    rho_core_cut/drho_core_cut/core-repulsion/r_in/delta_in/inner_cutoff_type take the defaults."""
    head, blocks = _blocks(ALNI.read_text())
    text = head + blocks["Ni Al"] + blocks["Al Ni"] + blocks["Ni"] + blocks["Al"]
    spec = read_pacemaker_yaml(_write(tmp_path, "order.yaml", text))
    ref = read_pacemaker_yaml(ALNI)
    for mu in range(2):
        assert _canonical(spec.functions[mu], _ours).keys() == _canonical(ref.functions[mu], _ours).keys()
    lean = "\n".join(line for line in blocks["Al"].split("\n")
                     if not line.strip().startswith(("rho_core_cut", "drho_core_cut", "core-repulsion")))
    spec = read_pacemaker_yaml(_write(tmp_path, "lean.yaml", head + lean))
    emb, bond = spec.embeddings[0], spec.bonds[(0, 0)]
    assert (emb.rho_core_cutoff, emb.drho_core_cutoff) == (100000.0, 250.0)
    assert (bond.prehc, bond.lambdahc, bond.rcut_in, bond.dcut_in) == (0.0, 0.0, 0.0, 0.0)
    assert spec.inner_cutoff_type == "density"


# --------------------------------------------------------------------------------------------
# Malformed and unsupported files: PotentialFileError naming the file and the key
# --------------------------------------------------------------------------------------------

BASE = """\
global: {DeltaSplineBins: 0.001}
species:
  - speciesblock: Al
    ndensityi: 1
    npoti: FinnisSinclair
    parameters: [1, 1]
    nradmaxi: 1
    lmaxi: 1
    rcutij: 5.0
    dcutij: 0.01
    nradbaseij: 2
    radbase: ChebExpCos
    radparameters: [3]
    radcoefficients: [[[1, 0.5], [0.3, 0.2]]]
    core-repulsion: [10, 5]
    nbody:
      - {type: Al Al, nr: [1], nl: [0], c: [1.0]}
      - {type: Al Al Al, nr: [1, 1], nl: [1, 1], c: [0.5]}
      - {type: Al Al Al Al, nr: [1, 1, 1], nl: [1, 1, 0], lint: [0], c: [0.25]}
"""


def test_base_document_is_valid(tmp_path):
    spec = read_pacemaker_yaml(_write(tmp_path, "base.yaml", BASE))
    assert [f.rank for f in spec.functions[0]] == [1, 2, 3]
    assert spec.bonds[(0, 0)].crad.tolist() == [[[1, 0.5], [0.3, 0.2]]]


def _edit(text, old, new, count=1):
    assert text.count(old) == count, old
    return text.replace(old, new)


AL_NI = """\
  - speciesblock: Ni
    ndensityi: 1
    npoti: FinnisSinclair
    parameters: [1, 1]
    nradmaxi: 1
    lmaxi: 1
    rcutij: 5.0
    dcutij: 0.01
    nradbaseij: 2
    radbase: ChebExpCos
    radparameters: [3]
    radcoefficients: [[[1, 0.5], [0.3, 0.2]]]
    nbody:
      - {type: Ni Ni, nr: [1], nl: [0], c: [1.0]}
"""

MALFORMED = [
    # missing keys
    ("missing global", lambda t: _edit(t, "global: {DeltaSplineBins: 0.001}\n", ""), "global", "missing"),
    ("missing DeltaSplineBins", lambda t: _edit(t, "{DeltaSplineBins: 0.001}", "{}"), "global.DeltaSplineBins",
     "missing"),
    ("missing npoti", lambda t: _edit(t, "    npoti: FinnisSinclair\n", ""), "species[0].npoti", "missing"),
    ("missing ndensityi", lambda t: _edit(t, "    ndensityi: 1\n", ""), "species[0].ndensityi", "missing"),
    ("missing nr", lambda t: _edit(t, "{type: Al Al Al, nr: [1, 1], ", "{type: Al Al Al, "),
     "species[0].nbody[1].nr", "missing"),
    ("missing lint", lambda t: _edit(t, "lint: [0], ", ""), "species[0].nbody[2].lint", "missing"),
    ("missing c", lambda t: _edit(t, "nl: [0], c: [1.0]", "nl: [0]"), "species[0].nbody[0].c", "missing"),
    ("missing rcutij", lambda t: _edit(t, "    rcutij: 5.0\n", ""), "species[0].rcutij", "missing"),
    ("partial radial basis", lambda t: _edit(t, "    lmaxi: 1\n", ""), "species[0].lmaxi", "partially"),
    # wrong types
    ("species not a list", lambda t: t.split("species:")[0] + "species: {a: 1}\n", "species", "expected a list"),
    ("nr not integers", lambda t: _edit(t, "nr: [1, 1], nl: [1, 1]", "nr: [a, 1], nl: [1, 1]"),
     "species[0].nbody[1].nr[0]", "expected"),
    ("c not a number", lambda t: _edit(t, "c: [0.5]", "c: [x]"), "species[0].nbody[1].c[0]", "expected a number"),
    ("lmaxi fractional", lambda t: _edit(t, "lmaxi: 1", "lmaxi: 1.5"), "species[0].lmaxi", "integer"),
    ("skip not boolean", lambda t: _edit(t, "c: [0.5]}", "c: [0.5], skip: maybe}"), "species[0].nbody[1].skip",
     "true or false"),
    ("radcoefficients not a list", lambda t: _edit(t, "[[[1, 0.5], [0.3, 0.2]]]", "7"),
     "species[0].radcoefficients", "expected a list"),
    # unknown names
    ("unknown radial basis", lambda t: _edit(t, "radbase: ChebExpCos", "radbase: Gaussian"), "species[0].radbase",
     "unknown radial basis 'Gaussian'"),
    ("unknown embedding", lambda t: _edit(t, "npoti: FinnisSinclair", "npoti: Quadratic"), "species[0].npoti",
     "unknown embedding"),
    ("unknown inner cutoff", lambda t: _edit(t, "    nbody:", "    inner_cutoff_type: soft\n    nbody:"),
     "species[0].inner_cutoff_type", "unknown value"),
    ("unknown element in type", lambda t: _edit(t, "type: Al Al Al,", "type: Al Al Cu,"),
     "species[0].nbody[1].type", "not in speciesblock"),
    ("wrong central element", lambda t: _edit(t, "type: Al Al Al,", "type: Cu Al Al,"),
     "species[0].nbody[1].type", "central element"),
    # inconsistent lengths and values
    ("nr length", lambda t: _edit(t, "nr: [1, 1], nl: [1, 1]", "nr: [1, 1, 1], nl: [1, 1]"),
     "species[0].nbody[1].nr", "expected 2 values"),
    ("nl length", lambda t: _edit(t, "nr: [1, 1], nl: [1, 1]", "nr: [1, 1], nl: [1]"),
     "species[0].nbody[1].nl", "expected 2 values"),
    ("c length", lambda t: _edit(t, "c: [0.5]", "c: [0.5, 1.0]"), "species[0].nbody[1].c", "ndensityi = 1"),
    ("lint length", lambda t: _edit(t, "lint: [0]", "lint: [0, 0]"), "species[0].nbody[2].lint", "expected 1 values"),
    ("parameters length", lambda t: _edit(t, "parameters: [1, 1]", "parameters: [1, 1, 1]"),
     "species[0].parameters", "needs 2"),
    ("core-repulsion length", lambda t: _edit(t, "core-repulsion: [10, 5]", "core-repulsion: [10, 5, 1]"),
     "species[0].core-repulsion", "expected 2 values"),
    ("radcoefficients too short in l", lambda t: _edit(t, "[[[1, 0.5], [0.3, 0.2]]]", "[[[1, 0.5]]]"),
     "species[0].radcoefficients[0]", "lmaxi + 1 = 2"),
    ("radcoefficients too short in k", lambda t: _edit(t, "[[[1, 0.5], [0.3, 0.2]]]", "[[[1, 0.5], [0.3]]]"),
     "species[0].radcoefficients[0][1]", "nradbaseij = 2"),
    ("flat radcoefficients too short", lambda t: _edit(t, "[[[1, 0.5], [0.3, 0.2]]]", "[1, 0.5, 0.3]"),
     "species[0].radcoefficients", "4 needed"),
    ("nr beyond nradmaxi", lambda t: _edit(t, "nr: [1, 1], nl: [1, 1]", "nr: [1, 2], nl: [1, 1]"),
     "species[0].nbody[1].nr", "nradmaxi = 1"),
    ("rank-1 nr beyond nradbaseij", lambda t: _edit(t, "nr: [1], nl: [0]", "nr: [3], nl: [0]"),
     "species[0].nbody[0].nr", "nradbaseij = 2"),
    ("nl beyond lmaxi", lambda t: _edit(t, "nr: [1, 1], nl: [1, 1]", "nr: [1, 1], nl: [2, 2]"),
     "species[0].nbody[1].nl", "lmaxi = 1"),
    ("nr zero", lambda t: _edit(t, "nr: [1], nl: [0]", "nr: [0], nl: [0]"), "species[0].nbody[0].nr", "1-based"),
    ("odd sum of nl", lambda t: _edit(t, "nl: [1, 1, 0], lint: [0]", "nl: [1, 1, 1], lint: [1]"),
     "species[0].nbody[2].nl", "even"),
    ("lint against root", lambda t: _edit(t, "nl: [1, 1, 0], lint: [0]", "nl: [1, 1, 0], lint: [1]"),
     "species[0].nbody[2].lint", "last nl value"),
    ("rank-2 unequal nl", lambda t: _edit(t, "nr: [1, 1], nl: [1, 1]", "nr: [1, 1], nl: [1, 0]"),
     "species[0].nbody[1].nl", "equal"),
    ("rank 0", lambda t: _edit(t, "type: Al Al,", "type: Al,"), "species[0].nbody[0].type", "rank >= 1"),
    ("DeltaSplineBins zero", lambda t: _edit(t, "DeltaSplineBins: 0.001", "DeltaSplineBins: 0"),
     "global.DeltaSplineBins", "> 0"),
    ("no species", lambda t: t.split("species:")[0] + "species: []\n", "species", "no species blocks"),
    ("invalid YAML", lambda t: t + "  - {type: [\n", "line", "invalid YAML"),
    # multi-species layout
    ("element without its block", lambda t: t + "  - speciesblock: Al Ni\n    nbody: []\n", "species",
     "['Ni'] have no single-species block"),
    ("pair block without radial basis", lambda t: t + AL_NI + "  - speciesblock: Al Ni\n    nbody: []\n",
     "species[2].lmaxi", "no radial basis"),
    ("second block for an element", lambda t: t + t.split("species:\n")[1], "species[1]", "second single-species"),
    ("mixed inner cutoff types", lambda t: t + AL_NI.replace("    nbody:", "    inner_cutoff_type: distance\n    nbody:"),
     "species[1].inner_cutoff_type", "must be the same"),
    ("zbl with a non-element name", lambda t: _edit(t, "    nbody:", "    inner_cutoff_type: zbl\n    nbody:")
     .replace("Al", "Xx"), "species", "chemical symbols"),
]


@pytest.mark.parametrize("name,edit,key,fragment", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_name_file_and_key(tmp_path, name, edit, key, fragment):
    path = _write(tmp_path, "bad_potential.yaml", edit(BASE))
    with pytest.raises(PotentialFileError) as info:
        read_potential(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    assert info.value.where is not None and info.value.where.startswith(key), msg
    assert fragment in msg, msg


def _two_species(tmp_path, ni_al_block):
    text = BASE + AL_NI + """\
  - speciesblock: Al Ni
    nradmaxi: 1
    lmaxi: 1
    rcutij: 5.0
    dcutij: 0.01
    nradbaseij: 2
    radbase: ChebExpCos
    radparameters: [3]
    radcoefficients: [[[1, 0.5], [0.3, 0.2]]]
    core-repulsion: [10, 5]
    nbody:
      - {type: Al Ni, nr: [1], nl: [0], c: [1.0]}
      - {type: Al Al Ni, nr: [1, 1], nl: [1, 1], c: [1.0]}
""" + ni_al_block
    return _write(tmp_path, "two_species.yaml", text)


def test_two_species_dual_blocks(tmp_path):
    """Dual blocks must agree; a function needs the bonds of its species pairs."""
    ok = _two_species(tmp_path, "  - speciesblock: Ni Al\n    nbody: []\n")
    ok_text = ok.read_text()  # the file name is reused below
    spec = read_pacemaker_yaml(ok)
    assert spec.bonds[(1, 0)].crad.tolist() == spec.bonds[(0, 1)].crad.tolist()
    assert spec.bonds[(1, 0)].prehc == 10.0
    bad = _two_species(tmp_path, "  - speciesblock: Ni Al\n    nradmaxi: 1\n    lmaxi: 1\n    rcutij: 5.5\n"
                       "    dcutij: 0.01\n    nradbaseij: 2\n    radbase: ChebExpCos\n    radparameters: [3]\n"
                       "    radcoefficients: [[[1, 0.5], [0.3, 0.2]]]\n    nbody: []\n")
    with pytest.raises(PotentialFileError, match=re.escape(f"{bad}: species[2]: radial basis")):
        read_pacemaker_yaml(bad)
    bad = _two_species(tmp_path, "  - speciesblock: Ni Al\n    core-repulsion: [11, 5]\n    nbody: []\n")
    with pytest.raises(PotentialFileError, match=re.escape("species[2].core-repulsion")):
        read_pacemaker_yaml(bad)
    # a function of a three-species block needs the bond of every neighbour species
    text = ok_text + AL_NI.replace("Ni", "Cu") + (
        "  - speciesblock: Al Ni Cu\n    nbody:\n      - {type: Al Ni Cu, nr: [1, 1], nl: [1, 1], c: [1.0]}\n")
    with pytest.raises(PotentialFileError, match=re.escape("species[5].nbody[0].type: needs the bond (Al, Cu)")):
        read_pacemaker_yaml(_write(tmp_path, "three.yaml", text))
    # ... and with an 'Al Cu' block it is read as python-ace reads it
    al_cu = ok_text.split("  - speciesblock: Al Ni\n")[1].split("  - speciesblock: Ni Al")[0]
    al_cu = "  - speciesblock: Al Cu\n" + al_cu.replace("Ni", "Cu").replace("rcutij: 5.0", "rcutij: 4.5")
    path = _write(tmp_path, "three_ok.yaml", text + al_cu)
    spec = read_pacemaker_yaml(path)
    assert spec.elements == ["Al", "Cu", "Ni"] and spec.bonds[(0, 1)].rcut == 4.5
    assert any(f.mus.tolist() in ([1, 2], [2, 1]) for f in spec.functions[0])
    _compare_with_pyace(path, acepy.load(path), _structure(["Al", "Cu", "Ni"], "fcc", 13), "fcc")


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no_such.yaml"):
        read_potential(D.PACEMAKER_YAML / "no_such.yaml")


@D.needs(ALNI_YACE)
def test_yace_content_with_yaml_extension(tmp_path):
    pot = ALNI_YACE
    path = _write(tmp_path, "renamed.yaml", pot.read_text())
    with pytest.raises(PotentialFileError, match=re.escape(f"{path}: global: required key is missing: this looks "
                                                           "like a C-tilde .yace")):
        read_potential(path)
