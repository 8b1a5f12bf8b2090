"""The bundled ``Cu-EMT-fit`` potential: a linear ACE for Cu fitted to ASE's EMT calculator.

``python -m acepy.fit.cu_emt [--out acepy/data/Cu-EMT-fit.yace] [--data FOLDER] [--plot PNG]``
regenerates it (and writes its errors on training and validation frames to
``profiling/results/Cu-EMT-fit_fit.json``, a parity plot next to it, the data as DeePMD npy with
``--data``): labels from EMT (ASE's effective-medium theory, Jacobsen, Stoltze and Norskov,
Surf. Sci. 366, 394 (1996); ASE's ``ase.calculators.emt``) on

- fcc, bcc and hcp cells under isotropic and random strain, rattled;
- fcc with a vacancy, (111) and (100) slabs, rattled;
- snapshots of EMT Langevin MD with baths at 300-2000 K (weakly coupled: the snapshots span
  temperatures up to the bath's);
- energies, forces and stresses of every frame, and Hessians by central differences of EMT
  forces (step 0.005 A) on a few 32-atom fcc cells (ideal, strained, rattled, with a vacancy).

Every random number comes from fixed seeds, so the data and the fit are the same on every run. The
fit: E0 = EMT's isolated-atom energy, a core repulsion as reference, a linear ACE basis of
correlation order 4 with a total-degree rule (173 functions), weighted least squares (LAPACK, full
rank) of E, F, V and H rows. What it is fitted to, and
how it compares with EMT: README "A physically fitted bundled potential" and
``profiling/fitted_cu_checks.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["SEED", "BASIS", "FIT", "emt_frames", "cu_basis", "fit_cu", "main"]

SEED = 20240611
NAME = "Cu-EMT-fit"
# the basis: rcut past EMT's neighbour cutoff for Cu (about 5.1 A)
BASIS = dict(nradmax_by_orders=[12, 8, 4, 2], lmax_by_orders=[0, 4, 3, 1], max_degree=12, l_weight=1.5,
             radbasename="ChebExpCos", radparameters=[3.0], rcut=5.4, prehc=50.0, lambdahc=3.0)
FIT = dict(weights={"energy": 30.0, "forces": 1.0, "virial": 5.0, "hessian": 0.3}, solver="lstsq",
           energy_normalization="per_atom")


def _emt_labels(atoms, config_type: str, hessian_step: float | None = None):
    """A labelled frame (acepy.io.frames) of ``atoms`` from EMT; the Hessian by central differences
    of EMT forces when ``hessian_step`` is given."""
    from ase.calculators.emt import EMT

    from acepy.io.frames import make_frame

    atoms = atoms.copy()
    atoms.calc = EMT()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=False) if atoms.pbc.all() else None
    hess = None
    if hessian_step is not None:
        n = len(atoms)
        hess = np.empty((3 * n, 3 * n))
        x0 = atoms.get_positions()
        for i in range(n):
            for a in range(3):
                cols = []
                for sign in (1.0, -1.0):
                    x = x0.copy()
                    x[i, a] += sign * hessian_step
                    atoms.set_positions(x)
                    cols.append(atoms.get_forces().reshape(-1))
                hess[3 * i + a] = -(cols[0] - cols[1]) / (2 * hessian_step)
        atoms.set_positions(x0)
        hess = 0.5 * (hess + hess.T)  # FD rounding only: the exact Hessian is symmetric
    return make_frame(atoms.get_chemical_symbols(), atoms.get_positions(), atoms.cell[:], atoms.pbc, energy=energy,
                      forces=forces, stress=stress, hessian=hess, config_type=config_type)


def _strain(rng, size: float) -> np.ndarray:
    e = rng.uniform(-size, size, (3, 3))
    return np.eye(3) + 0.5 * (e + e.T)


def thermalize(atoms, temperature: float, rng) -> None:
    """Maxwell-Boltzmann momenta (ASE's thermalize_momenta, MaxwellBoltzmannDistribution before 3.29)."""
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)


def _md_snapshots(rng, temperature: float, n: int, every: int = 40):
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.langevin import Langevin
    from ase.units import fs

    atoms = bulk("Cu", "fcc", a=3.61 * (1 + 1.5e-5 * temperature), cubic=True).repeat(2)
    atoms.calc = EMT()
    thermalize(atoms, temperature, rng)
    # friction 0.02 in ASE's time unit (about 0.002/fs): weak coupling, so the first snapshots are
    # cooler than the bath (the lattice takes up half the initial kinetic energy): a spread of
    # temperatures below each nominal one
    dyn = Langevin(atoms, 2 * fs, temperature_K=temperature, friction=0.02, rng=rng, fixcm=False)
    dyn.run(100)
    out = []
    for _ in range(n):
        dyn.run(every)
        out.append(atoms.copy())
    return out


def emt_frames(seed: int = SEED, hessians: bool = True, progress: bool = False) -> list:
    """The labelled training frames (deterministic for a seed)."""
    from ase.build import bulk, fcc100, fcc111

    rng = np.random.default_rng(seed)
    todo = []  # (atoms, config_type, hessian step or None)

    def add(atoms, cfg, rattle=0.0, hstep=None):
        atoms = atoms.copy()
        if rattle:
            atoms.rattle(rattle, seed=int(rng.integers(2**31)))
        todo.append((atoms, cfg, hstep))

    fcc = bulk("Cu", "fcc", a=1.0, cubic=True)
    for a in np.linspace(3.15, 4.1, 15):  # isotropic, past both sides of the minimum (3.59)
        cell = fcc.copy()
        cell.set_cell(cell.cell * a, scale_atoms=True)
        add(cell.repeat(2), "fcc_eos", rattle=0.01)
    for _ in range(24):  # random small strains (elastic constants)
        cell = bulk("Cu", "fcc", a=rng.uniform(3.55, 3.65), cubic=True).repeat(2)
        cell.set_cell(cell.cell[:] @ _strain(rng, 0.03), scale_atoms=True)
        add(cell, "fcc_strained", rattle=0.02)
    for _ in range(24):  # small strains about the minimum, no rattle: the elastic constants
        cell = bulk("Cu", "fcc", a=3.59, cubic=True)
        cell.set_cell(cell.cell[:] @ _strain(rng, 0.012), scale_atoms=True)
        add(cell, "fcc_elastic")
    for sigma in np.linspace(0.03, 0.2, 16):
        add(bulk("Cu", "fcc", a=rng.uniform(3.5, 3.7), cubic=True).repeat(2), "fcc_rattled", rattle=sigma)
    for lattice, lo, hi, rep in (("bcc", 2.6, 3.2, 3), ("sc", 2.2, 2.8, 3)):
        for a in np.linspace(lo, hi, 7):
            add(bulk("Cu", lattice, a=a, cubic=True).repeat(rep), f"{lattice}", rattle=0.05)
    for a in np.linspace(2.35, 2.8, 7):
        add(bulk("Cu", "hcp", a=a, c=a * 1.633).repeat((2, 2, 2)), "hcp", rattle=0.05)
    for _ in range(8):
        cell = bulk("Cu", "fcc", a=rng.uniform(3.55, 3.65), cubic=True).repeat(2)
        del cell[int(rng.integers(len(cell)))]
        add(cell, "vacancy", rattle=0.04)
    for make in (fcc111, fcc100):
        for k in range(6):
            slab = make("Cu", size=(2, 2, 5), a=3.59 + 0.02 * (k - 2), vacuum=6.0, periodic=True)
            add(slab, "surface", rattle=0.02 + 0.02 * k)
    for temperature, n in ((300, 6), (800, 8), (1200, 10), (1600, 10), (2000, 8)):
        for atoms in _md_snapshots(rng, temperature, n):
            add(atoms, "md")
    if hessians:
        step = 0.005
        base = bulk("Cu", "fcc", a=3.59, cubic=True).repeat(2)
        add(base, "fcc_hessian", hstep=step)
        for scale in (0.98, 1.02):
            cell = base.copy()
            cell.set_cell(cell.cell * scale, scale_atoms=True)
            add(cell, "fcc_hessian", hstep=step)
        for sigma in (0.05, 0.1):
            add(base, "fcc_hessian", rattle=sigma, hstep=step)
        vac = base.copy()
        del vac[0]
        add(vac, "vacancy", rattle=0.02, hstep=step)
    it = todo
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(todo, desc="EMT labels", unit="frame")
    return [_emt_labels(atoms, cfg, hstep) for atoms, cfg, hstep in it]


def cu_basis(**overrides):
    """The linear basis of the fit (a LinearBasis with E0 = EMT's isolated Cu atom)."""
    from ase import Atoms
    from ase.calculators.emt import EMT

    from acepy.basis.generator import BondSpec, default_embedding, generate_basis

    from .rows import LinearBasis

    p = dict(BASIS, **overrides)
    bond = BondSpec(radbasename=p["radbasename"], radparameters=list(p["radparameters"]), rcut=p["rcut"], dcut=0.01,
                    prehc=p["prehc"], lambdahc=p["lambdahc"])
    gb = generate_basis(["Cu"], p["nradmax_by_orders"], p["lmax_by_orders"], bonds=bond,
                        embeddings=default_embedding(1), max_degree=p["max_degree"], l_weight=p["l_weight"])
    atom = Atoms("Cu", positions=[[0.0, 0.0, 0.0]])
    atom.calc = EMT()
    return LinearBasis.from_generated(gb, E0=[atom.get_potential_energy()])


def fit_cu(frames, basis=None, progress: bool = False, **overrides):
    """The fit (a LinearFit) of ``frames`` with the settings of :data:`FIT` (``overrides`` replace some)."""
    from .linear import linear_fit

    settings = dict(FIT, **overrides)
    return linear_fit(cu_basis() if basis is None else basis, frames, progress=progress and "design rows",
                      **settings)


def main(argv=None) -> int:
    from acepy.io.deepmd import write_deepmd

    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m acepy.fit.cu_emt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / f"{NAME}.yace"))
    parser.add_argument("--data", default=None, help="also write the EMT data set here (DeePMD npy)")
    parser.add_argument("--report", default=str(root / "profiling" / "results" / f"{NAME}_fit.json"))
    parser.add_argument("--plot", default=str(root / "profiling" / "results" / f"{NAME}_parity.png"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    progress = not args.no_progress
    t0 = time.perf_counter()
    frames = emt_frames(progress=progress)
    validation = emt_frames(seed=SEED + 1, progress=progress)  # the same recipe, other random numbers
    t_data = time.perf_counter() - t0
    if args.data:
        write_deepmd(frames, Path(args.data) / "train", overwrite=True)
        write_deepmd(validation, Path(args.data) / "validation", overwrite=True)
    t0 = time.perf_counter()
    fit = fit_cu(frames, progress=progress, validation=validation)
    t_fit = time.perf_counter() - t0
    path = fit.write_yace(args.out)
    print(fit.error_table())
    print(f"{len(frames)} training frames ({sum(len(f) for f in frames)} atoms, "
          f"{sum('hessian' in f.info for f in frames)} Hessians), as many for validation (seed {SEED + 1}), "
          f"{fit.coefficients.shape[0]} coefficients; "
          f"EMT labels {t_data:.0f} s, fit {t_fit:.0f} s; wrote {path}")
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    summary = fit.summary()
    summary.update(name=NAME, seed=SEED, basis=BASIS, n_frames=len(frames), seconds_data=t_data, seconds_fit=t_fit)
    Path(args.report).write_text(json.dumps(summary, indent=1, default=float) + "\n")
    if args.plot:
        fit.parity_plot(args.plot, title=f"{NAME}: ACE vs EMT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
