"""Physical checks of the bundled ``Cu-EMT-fit`` potential against EMT, the calculator it was fitted to.

    python profiling/fitted_cu_checks.py [--potential Cu-EMT-fit] [--nve-ps 10] [--out profiling/results]

Each property is computed the same way for both calculators (ASE's EMT and acepy's ACECalculator):

- lattice constant a0 and bulk modulus B: Birch-Murnaghan fit (``ase.eos``) of E(V) of the fcc
  primitive cell over +-3% in a;
- C11, C12, C44: stress-strain of the cubic cell at each one's a0, strains +-0.5% (central
  differences; fcc needs no internal relaxation);
- phonons at X and L: phonopy, 4x4x4 conventional supercell (256 atoms), finite displacements of
  0.01 A for both (the same route), frequencies in THz;
- vacancy formation energy (108-atom cell) and (111) surface energy (2x2x7 slab, 8 A vacuum),
  unrelaxed and relaxed (BFGS, fmax 0.01 eV/A) at each one's a0;
- NVE: 108 atoms at the fitted a0, 2 ps of Langevin at 1000 K (friction 0.02/fs), velocities
  scaled to the mean total energy of the last Langevin ps, then velocity Verlet with 2 fs steps for ``--nve-ps`` ps; drift = slope of a line fitted to the total energy
  per atom (meV/atom/ps), the largest excursion from the start, and the temperatures (mean over
  the last 80% of the run).

Writes ``<out>/Cu-EMT-fit_checks.json`` and ``.md`` (a table with the tolerances of README).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

TOLERANCES = {"a0": 0.005, "B": 0.05, "C11": 0.05, "C12": 0.05, "C44": 0.05, "X": 0.05, "L": 0.05}


def _calc(which: str, potential: str):
    if which == "EMT":
        from ase.calculators.emt import EMT

        return EMT()
    import acepy

    return acepy.ACECalculator(potential)


def lattice(calc):
    from ase.build import bulk
    from ase.eos import EquationOfState
    from ase.units import GPa

    vols, energies = [], []
    for a in np.linspace(3.59 * 0.97, 3.59 * 1.03, 13):
        atoms = bulk("Cu", "fcc", a=a)
        atoms.calc = calc
        vols.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    v0, e0, B = EquationOfState(vols, energies, eos="birchmurnaghan").fit()
    return {"a0": float((4 * v0) ** (1 / 3)), "E_coh": float(e0), "B": float(B / GPa)}


def elastic(calc, a0: float, delta: float = 0.005):
    from ase.build import bulk
    from ase.units import GPa

    def stress(eps):
        atoms = bulk("Cu", "fcc", a=a0, cubic=True)
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
        atoms.calc = calc
        return atoms.get_stress(voigt=False) / GPa

    exx = np.zeros((3, 3))
    exx[0, 0] = delta
    eyz = np.zeros((3, 3))
    eyz[1, 2] = eyz[2, 1] = delta / 2  # engineering shear strain delta
    sxx = (stress(exx) - stress(-exx)) / (2 * delta)
    syz = (stress(eyz) - stress(-eyz)) / (2 * delta)
    return {"C11": float(sxx[0, 0]), "C12": float(sxx[1, 1]), "C44": float(syz[1, 2])}


def phonons(calc, a0: float):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms
    from ase import Atoms
    from ase.build import bulk

    unit = bulk("Cu", "fcc", a=a0, cubic=True)
    cell = PhonopyAtoms(symbols=unit.get_chemical_symbols(), cell=unit.cell[:],
                        scaled_positions=unit.get_scaled_positions())
    ph = Phonopy(cell, supercell_matrix=np.diag([4, 4, 4]), primitive_matrix="F")
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        atoms = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        atoms.calc = calc
        forces.append(atoms.get_forces())
    ph.forces = forces
    ph.produce_force_constants()
    ph.run_qpoints([[0.5, 0.0, 0.5], [0.5, 0.5, 0.5]])  # X and L in the fcc primitive basis
    f = ph.qpoints.frequencies
    return {"X": [float(x) for x in np.sort(f[0])], "L": [float(x) for x in np.sort(f[1])]}


def _relax(atoms, fmax=0.01):
    from ase.optimize import BFGS

    BFGS(atoms, logfile=None).run(fmax=fmax, steps=300)
    return atoms.get_potential_energy()


def defects(calc, a0: float):
    from ase.build import bulk, fcc111

    perfect = bulk("Cu", "fcc", a=a0, cubic=True).repeat(3)
    perfect.calc = calc
    e_bulk = perfect.get_potential_energy() / len(perfect)
    vac = perfect.copy()
    del vac[0]
    vac.calc = calc
    unrelaxed = vac.get_potential_energy() - len(vac) * e_bulk
    relaxed = _relax(vac) - len(vac) * e_bulk
    slab = fcc111("Cu", size=(2, 2, 7), a=a0, vacuum=8.0, periodic=True)
    slab.calc = calc
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    to_j = 16.0217663  # eV/A^2 -> J/m^2
    s_unrel = (slab.get_potential_energy() - len(slab) * e_bulk) / (2 * area) * to_j
    s_rel = (_relax(slab) - len(slab) * e_bulk) / (2 * area) * to_j
    return {"E_vac_unrelaxed": float(unrelaxed), "E_vac_relaxed": float(relaxed),
            "gamma111_unrelaxed": float(s_unrel), "gamma111_relaxed": float(s_rel)}


def nve(calc, a0: float, ps: float, temperature: float = 1000.0, seed: int = 7):
    from ase.build import bulk
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary
    from ase.md.verlet import VelocityVerlet
    from ase.units import fs

    from acepy.fit.cu_emt import thermalize

    atoms = bulk("Cu", "fcc", a=a0, cubic=True).repeat(3)
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    thermalize(atoms, temperature, rng)
    langevin = Langevin(atoms, 2 * fs, temperature_K=temperature, friction=0.02 / fs, rng=rng, fixcm=False)
    langevin.run(500)
    energies = []
    langevin.attach(lambda: energies.append(atoms.get_total_energy()), interval=5)
    langevin.run(500)
    Stationary(atoms)  # no drift of the centre of mass in the NVE run
    # start the NVE run at the canonical mean total energy at this temperature (the last ps of
    # Langevin): its mean temperature is then the target, not one instant's fluctuation
    kinetic = atoms.get_kinetic_energy()
    target = float(np.mean(energies)) - atoms.get_potential_energy()
    atoms.set_momenta(atoms.get_momenta() * np.sqrt(max(target, 0.0) / kinetic))
    dt = 2.0
    dyn = VelocityVerlet(atoms, dt * fs)
    times, etot, temps = [], [], []

    def record():
        times.append(dyn.nsteps * dt / 1000.0)
        etot.append(atoms.get_total_energy() / len(atoms))
        temps.append(atoms.get_temperature())

    dyn.attach(record, interval=10)
    t0 = time.perf_counter()
    dyn.run(int(round(ps * 1000 / dt)))
    seconds = time.perf_counter() - t0
    times, etot, temps = map(np.asarray, (times, etot, temps))
    slope = np.polyfit(times, etot, 1)[0]
    return {"ps": float(ps), "dt_fs": dt, "atoms": len(atoms), "drift_meV_per_atom_ps": float(slope * 1000),
            "max_dev_meV_per_atom": float(np.abs(etot - etot[0]).max() * 1000),
            "T_mean": float(temps[len(temps) // 5:].mean()),  # the last 80% of the run
            "T_min": float(temps.min()), "T_max": float(temps.max()), "seconds": seconds}


def run(potential: str = "Cu-EMT-fit", nve_ps: float = 10.0, skip_nve: bool = False) -> dict:
    out = {}
    for which in ("EMT", "ACE"):
        calc = _calc(which, potential)
        res = lattice(calc)
        res.update(elastic(calc, res["a0"]))
        res.update(phonons(calc, res["a0"]))
        res.update(defects(calc, res["a0"]))
        out[which] = res
    if not skip_nve:
        out["nve"] = nve(_calc("ACE", potential), out["ACE"]["a0"], nve_ps)
    dev = {}
    for key in ("a0", "B", "C11", "C12", "C44", "E_vac_unrelaxed", "E_vac_relaxed", "gamma111_unrelaxed",
                "gamma111_relaxed"):
        dev[key] = out["ACE"][key] / out["EMT"][key] - 1.0
    for q in ("X", "L"):
        dev[q] = float(np.max(np.abs(np.array(out["ACE"][q]) / np.array(out["EMT"][q]) - 1.0)))
    out["relative_deviation"] = dev
    out["passed"] = {k: bool(abs(dev[k]) <= tol) for k, tol in TOLERANCES.items()}
    if "nve" in out:
        out["passed"]["nve_drift"] = bool(abs(out["nve"]["drift_meV_per_atom_ps"]) < 1.0)
    return out


def markdown(res: dict) -> str:
    e, a, d = res["EMT"], res["ACE"], res["relative_deviation"]
    rows = [("lattice constant a0 (A)", "a0", "{:.4f}"), ("bulk modulus B (GPa)", "B", "{:.1f}"),
            ("C11 (GPa)", "C11", "{:.1f}"), ("C12 (GPa)", "C12", "{:.1f}"), ("C44 (GPa)", "C44", "{:.1f}"),
            ("vacancy formation, unrelaxed (eV)", "E_vac_unrelaxed", "{:.3f}"),
            ("vacancy formation, relaxed (eV)", "E_vac_relaxed", "{:.3f}"),
            ("(111) surface energy, unrelaxed (J/m^2)", "gamma111_unrelaxed", "{:.3f}"),
            ("(111) surface energy, relaxed (J/m^2)", "gamma111_relaxed", "{:.3f}")]
    lines = ["| property | EMT | Cu-EMT-fit | deviation | tolerance |", "|---|---:|---:|---:|---:|"]
    for label, key, fmt in rows:
        tol = f"{TOLERANCES[key] * 100:.1f}%" if key in TOLERANCES else "reported"
        lines.append(f"| {label} | {fmt.format(e[key])} | {fmt.format(a[key])} | {d[key] * 100:+.2f}% | {tol} |")
    for q in ("X", "L"):
        ef = ", ".join(f"{x:.3f}" for x in e[q][::2] if True)
        af = ", ".join(f"{x:.3f}" for x in a[q][::2])
        lines.append(f"| phonons at {q} (THz; TA, LA) | {ef} | {af} | {d[q] * 100:.2f}% (max) | 5.0% |")
    if "nve" in res:
        n = res["nve"]
        lines.append(f"\nNVE: {n['atoms']} atoms, {n['ps']:.0f} ps, dt {n['dt_fs']:.0f} fs, mean T {n['T_mean']:.0f} K "
                     f"({n['T_min']:.0f}-{n['T_max']:.0f} K): drift {n['drift_meV_per_atom_ps']:+.4f} meV/atom/ps, "
                     f"largest excursion {n['max_dev_meV_per_atom']:.3f} meV/atom ({n['seconds']:.0f} s).")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--potential", default="Cu-EMT-fit")
    parser.add_argument("--nve-ps", type=float, default=10.0)
    parser.add_argument("--skip-nve", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    res = run(args.potential, args.nve_ps, args.skip_nve)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.potential).stem
    (out / f"{stem}_checks.json").write_text(json.dumps(res, indent=1) + "\n")
    text = markdown(res)
    (out / f"{stem}_checks.md").write_text(text + "\n")
    print(text)
    print("passed:", res["passed"])
    return 0 if all(res["passed"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
