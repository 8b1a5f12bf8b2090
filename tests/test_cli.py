"""The `acepy` command line: `--help`, `acepy info`, `acepy eval` (checked against ACECalculator
structure by structure), its errors, and the subcommand interface other modules plug into."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from acepy.calculators import ACECalculator
from acepy.cli import SUBCOMMANDS, build_parser, main
from acepy.io import read_yace
from acepy.loading import load
from data_paths import POTENTIALS, TIAL_STEM

TIAL = POTENTIALS / f"{TIAL_STEM}.yace"
TABLE = POTENTIALS / f"{TIAL_STEM}_pairpot.table"


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: acepy")
    for name in SUBCOMMANDS:
        assert f"    {name} " in out
    assert main([]) == 2 and "usage: acepy" in capsys.readouterr().out


def test_every_subcommand_module_registers_a_handler():
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"][0]
    assert list(actions.choices) == list(SUBCOMMANDS)
    for name, sub in actions.choices.items():
        assert callable(sub.get_default("handler")), name
        assert sub.description, name


def test_info_tial(capsys):
    assert main(["info", str(TIAL), "--pair-table", str(TABLE)]) == 0
    text = capsys.readouterr().out
    spec = read_yace(TIAL)
    for el, fs in zip(spec.elements, spec.functions):  # functions per rank, counted independently
        counts = Counter(int(f.rank) for f in fs)
        assert f"{el}: {len(fs)} (" + ", ".join(f"rank {r}: {counts[r]}" for r in sorted(counts)) + ")" in text
    assert "radial basis: ships" in text
    assert "E0: Al -105.5954, Ti -1586.0195 eV" in text
    assert "Al-Ti: ACE 5.5, pair table 7 A" in text
    assert "  pace: yes" in text and "  pace/kk: no (" in text and "hybrid/overlay pace table: yes" in text


def test_info_pace_basis(capsys):
    assert main(["info", "Cu-synthetic-pbe-core-rep"]) == 0
    text = capsys.readouterr().out
    assert "SYNTHETIC" in text and "Cu-Cu: ACE 7.4 A" in text and "  pace/kk: yes" in text


def structures():
    tial = Atoms("Ti2Al2", scaled_positions=[[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                 cell=[4.0, 4.0, 4.07], pbc=True)
    out = []
    for k, rep in enumerate([(1, 1, 1), (2, 1, 1), (2, 2, 1), (1, 1, 3)]):
        atoms = tial.repeat(rep)
        atoms.set_cell(atoms.cell[:] @ np.array([[1, 0.04 * k, 0], [0, 1, 0.02], [0, 0, 1]]), scale_atoms=True)
        atoms.rattle(0.05, seed=k)
        out.append(atoms)
    cluster = bulk("Al", "fcc", a=4.05).repeat((2, 2, 2))
    cluster.symbols[::3] = "Ti"
    cluster.set_cell(np.zeros((3, 3)))
    cluster.pbc = False
    out.insert(2, cluster)
    return out


def test_eval_matches_the_calculator(tmp_path, capsys):
    """Several files (extxyz + POSCAR), small batches, a cluster without a cell among crystals:
    every frame's energy, per-atom energies, forces and Voigt stress equal ACECalculator's."""
    frames = structures()
    write(tmp_path / "a.extxyz", frames[:4])
    write(tmp_path / "b.vasp", frames[4], format="vasp")
    out = tmp_path / "out.extxyz"
    assert main(["eval", str(TIAL), str(tmp_path / "a.extxyz"), str(tmp_path / "b.vasp"), "-o", str(out),
                 "--pair-table", str(TABLE), "--batch-atoms", "20", "-q"]) == 0
    assert "5 structures, " in capsys.readouterr().out
    got = read(out, ":")
    assert len(got) == 5
    model = load(TIAL, pair_table=TABLE)
    inputs = read(tmp_path / "a.extxyz", ":") + [read(tmp_path / "b.vasp")]  # as eval read them
    for k, (frame, ref) in enumerate(zip(got, inputs)):
        assert frame.get_chemical_symbols() == ref.get_chemical_symbols()
        assert np.abs(frame.positions - frames[k].positions).max() < 1e-7  # the files' precision
        ref.calc = ACECalculator(model)
        assert abs(frame.get_potential_energy() - ref.get_potential_energy()) < 1e-9, k
        # extxyz writes per-atom columns with 8 decimals (ase.io.extxyz): half a unit of the last one
        np.testing.assert_allclose(frame.get_forces(), ref.get_forces(), rtol=0, atol=5.1e-9)
        np.testing.assert_allclose(frame.calc.results["energies"], ref.get_potential_energies(), rtol=0, atol=5.1e-9)
        if ref.cell.volume > 0:
            np.testing.assert_allclose(frame.get_stress(), ref.get_stress(), rtol=0, atol=1e-10)
            assert abs(ref.get_stress()[5]) > 1e-4  # the sheared cells give an xy stress: Voigt order is tested
        else:
            assert "stress" not in frame.calc.results


def test_eval_prefix_keeps_the_labels(tmp_path):
    frames = structures()[:2]
    for k, f in enumerate(frames):
        f.calc = SinglePointCalculator(f, energy=-100.0 - k, forces=np.full((len(f), 3), 0.25))
    write(tmp_path / "in.extxyz", frames)
    out = tmp_path / "out.extxyz"
    assert main(["eval", str(TIAL), str(tmp_path / "in.extxyz"), "-o", str(out), "--prefix", "ace_",
                 "--pair-table", str(TABLE), "-q"]) == 0
    got = read(out, ":")
    model = load(TIAL, pair_table=TABLE)
    for k, (frame, given) in enumerate(zip(got, read(tmp_path / "in.extxyz", ":"))):
        assert frame.get_potential_energy() == -100.0 - k
        assert np.all(frame.get_forces() == 0.25)
        ref = model.evaluate(Atoms(given.numbers, positions=given.positions, cell=given.cell, pbc=given.pbc))
        assert abs(frame.info["ace_energy"] - float(ref["energy"][0])) < 1e-9
        np.testing.assert_allclose(frame.arrays["ace_forces"], ref["forces"].numpy(), rtol=0, atol=1e-7)


def test_eval_error_names_the_structure_and_writes_nothing(tmp_path, capsys):
    frames = structures()[:3]
    frames.append(molecule("H2O", vacuum=5.0))
    write(tmp_path / "in.extxyz", frames)
    out = tmp_path / "out.extxyz"
    assert main(["eval", str(TIAL), str(tmp_path / "in.extxyz"), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'in.extxyz'}@3" in err and "which the potential does not have" in err
    assert not out.exists() and not list(tmp_path.glob(".out.extxyz*"))
    assert main(["eval", "no-such-potential", str(tmp_path / "in.extxyz"), "-o", str(out)]) == 1
    assert "no-such-potential" in capsys.readouterr().err


def test_python_m_acepy_cli_and_the_progress_bar(tmp_path):
    """`python -m acepy.cli` (what the `acepy` script runs) in a fresh process; the bar on stderr."""
    write(tmp_path / "in.extxyz", structures()[:2])
    run = subprocess.run([sys.executable, "-m", "acepy.cli", "eval", "AlTi-synthetic-linear", str(tmp_path / "in.extxyz"),
                          "-o", str(tmp_path / "out.extxyz")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "acepy eval (2 structures)" in run.stderr and "atom" in run.stderr
    assert run.stdout.startswith("2 structures, 12 atoms -> ")


@pytest.mark.parametrize("argv", [["eval", "Cu-synthetic-pbe-core-rep", "x.xyz"], ["info"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: acepy" in capsys.readouterr().err
