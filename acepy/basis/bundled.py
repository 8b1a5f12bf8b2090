"""Synthetic benchmark potentials shipped with acepy (``acepy/data/*.yace``), and how they are made.

**They are synthetic: for benchmarks and tests, not for science.** Their basis shapes match
potentials in real use; their coefficients are pseudo-random (fixed seeds), decay with rank and
degree, and are scaled so that energies and forces are of ordinary size on ordinary structures.

* ``Cu-synthetic-pbe-core-rep``: the shape of LAMMPS's ``Cu-PBE-core-rep.ace``: Cu, ChebPow
  (lambda 2), rcut 7.4, nradmax 5, lmax 6, ranks 1-6 (pacemaker box nradmax_by_orders
  [10, 5, 4, 2, 1, 1], lmax_by_orders [0, 6, 4, 2, 1, 1]: 745 functions in 732 C-tilde functions),
  core repulsion, two densities with FinnisSinclairShiftedScaled (linear + square root).
* ``AlCuNi-synthetic-r4``: a small three-element potential: ChebExpCos bonds with per-pair lambda
  and rcut near 5 A, ranks 1-4, two densities, weak core repulsion.
* ``AlTi-synthetic-linear``: ACEpotentials.jl's usual shape: linear (ndensity 1) energy, correlation
  order 3, total degree sum(n + 1.5 l) <= 10, SBessel radial basis, rcut 5.5, one-body E0.

Regenerate the files with ``python -m acepy.basis.bundled [output folder]`` (default: the package's
``data`` folder). The construction is deterministic: the same acepy gives the same files.

Coefficient recipe, per potential: c_{f,p} = s_{r,p} * z_f * exp(-decay * (sum(n_t - 1) + sum l_t))
with z_f standard normal (numpy PCG64, fixed seed; of fixed sign for rank 1, so that the linear
density is repulsive and the square-root density attractive, or attractive for the linear potential), and one scale s_{r,p} per rank r and
density p, chosen so that the rank's contribution to density p has a set root-mean-square per atom
over a few calibration structures (fcc/bcc, rattled and strained).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acepy.spec import Embedding

from .generator import BondSpec, GeneratedBasis, generate_basis

__all__ = ["RECIPES", "build", "build_all", "data_folder"]


def data_folder() -> Path:
    """The folder of the bundled ``.yace`` files (``acepy/data``)."""
    return Path(__file__).resolve().parents[1] / "data"


@dataclass
class Recipe:
    name: str
    elements: list[str]
    nradmax_by_orders: list[int]
    lmax_by_orders: list[int]
    bonds: dict  # (i, j) -> BondSpec
    embedding: Embedding
    # targets[r-1][p]: RMS per atom of rank r's contribution to density p on the calibration set
    targets: list[list[float]]
    rank1_signs: list[float]  # sign of the rank-1 coefficients per density (0: random sign)
    seed: int
    decay: float = 0.25
    max_degree: float | None = None
    l_weight: float = 1.0
    E0: list[float] = field(default_factory=list)
    crad_noise: float = 0.1


def _crad(seed: int, noise: float):
    """crad[n, l, k] = delta_nk + noise * z e^{-|n - k|}: R_nl near g_n, mixed a little, per l.
    z depends only on (seed, n, l, k), so the values do not depend on the order of the calls."""
    def f(n, l, k):
        z = np.random.default_rng([seed, n, l, k]).standard_normal()
        return (1.0 if n == k else 0.0) + noise * z * np.exp(-abs(n - k))
    return f


def _recipes() -> dict[str, Recipe]:
    out = {}
    cu = BondSpec(radbasename="ChebPow", radparameters=[2.0], rcut=7.4, dcut=0.01, prehc=100.0, lambdahc=5.0,
                  crad=_crad(11, 0.1))
    out["Cu-synthetic-pbe-core-rep"] = Recipe(
        name="Cu-synthetic-pbe-core-rep", elements=["Cu"],
        nradmax_by_orders=[10, 5, 4, 2, 1, 1], lmax_by_orders=[0, 6, 4, 2, 1, 1],
        bonds={(0, 0): cu},
        embedding=Embedding(ndensity=2, fs_parameters=np.array([1.0, 1.0, 1.0, 0.5]),
                            npoti="FinnisSinclairShiftedScaled", rho_core_cutoff=100000.0, drho_core_cutoff=250.0),
        targets=[[1.5, 12.0], [0.3, 0.6], [0.2, 0.4], [0.1, 0.2], [0.05, 0.1], [0.03, 0.05]],
        rank1_signs=[1.0, -1.0], seed=1, E0=[0.0])

    els = ["Al", "Cu", "Ni"]
    bonds = {}
    for i in range(3):
        for j in range(3):
            a, b = min(i, j), max(i, j)  # symmetric parameters, per unordered pair
            bonds[(i, j)] = BondSpec(radbasename="ChebExpCos", radparameters=[4.0 + 0.5 * (a + b)],
                                     rcut=4.8 + 0.1 * (a + b), dcut=0.01, prehc=10.0, lambdahc=4.0,
                                     crad=_crad(100 + 3 * a + b, 0.1))
    out["AlCuNi-synthetic-r4"] = Recipe(
        name="AlCuNi-synthetic-r4", elements=els, nradmax_by_orders=[5, 2, 1, 1], lmax_by_orders=[0, 3, 2, 1],
        bonds=bonds,
        embedding=Embedding(ndensity=2, fs_parameters=np.array([1.0, 1.0, 1.0, 0.5]),
                            npoti="FinnisSinclairShiftedScaled", rho_core_cutoff=100000.0, drho_core_cutoff=250.0),
        targets=[[1.0, 10.0], [0.3, 0.5], [0.15, 0.3], [0.08, 0.15]],
        rank1_signs=[1.0, -1.0], seed=2, E0=[0.0, 0.0, 0.0])

    lin = BondSpec(radbasename="SBessel", radparameters=[1.0], rcut=5.5, dcut=0.01, prehc=20.0, lambdahc=3.0,
                   crad=_crad(7, 0.05))
    D = 10
    out["AlTi-synthetic-linear"] = Recipe(
        name="AlTi-synthetic-linear", elements=["Al", "Ti"],
        nradmax_by_orders=[D, D - 1, D - 2], lmax_by_orders=[0, int((D - 2) / 3), int((D - 3) / 1.5)],
        bonds={(i, j): lin for i in range(2) for j in range(2)},
        embedding=Embedding(ndensity=1, fs_parameters=np.array([1.0, 1.0]), npoti="FinnisSinclairShiftedScaled",
                            rho_core_cutoff=100000.0, drho_core_cutoff=1.0),
        targets=[[3.0], [0.4], [0.2]], rank1_signs=[-1.0], seed=3, max_degree=D, l_weight=1.5,
        E0=[-0.35, -1.6])
    return out


RECIPES = _recipes()


def _calibration_structures(elements: list[str]):
    from ase.build import bulk

    rng = np.random.default_rng(5)
    structures = []
    for lattice, a in (("fcc", 3.61), ("bcc", 2.87), ("fcc", 3.45), ("bcc", 3.0)):
        atoms = bulk("Cu", lattice, a=a, cubic=True).repeat((2, 2, 2))
        atoms.rattle(0.08, seed=int(rng.integers(1 << 30)))
        atoms.set_chemical_symbols(rng.choice(elements, len(atoms)).tolist())
        structures.append(atoms)
    return structures


def _per_atom(gb: GeneratedBasis, coefficients, structures) -> np.ndarray:
    """Per-atom values of the linear density made of ``coefficients`` (one column)."""
    from acepy.io import read_yace, write_yace
    from acepy.models.ace import ACE
    from acepy.models.onebody import OneBody
    from acepy.models.stack import Stack

    lin = Embedding(ndensity=1, fs_parameters=np.array([1.0, 1.0]), npoti="FinnisSinclairShiftedScaled",
                    rho_core_cutoff=100000.0, drho_core_cutoff=250.0)
    trial = GeneratedBasis(elements=gb.elements, bonds=gb.bonds, embeddings=[lin] * len(gb.elements),
                           blocks=gb.blocks, delta_spline_bins=gb.delta_spline_bins)
    spec = trial.to_spec(coefficients)
    # the core repulsion is not part of the density (copies: the basis keeps its bonds)
    spec.bonds = {k: dataclasses.replace(b, prehc=0.0) for k, b in spec.bonds.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = write_yace(spec, Path(tmp) / "trial.yace")
        spec = read_yace(path)  # through the file, as acepy.load would read it
        model = Stack([OneBody(spec.E0, spec.elements), ACE(spec)], spec.elements, backend="torch")
        out = model.evaluate(structures, compute_forces=False, compute_stress=False)
    return out["energies"].numpy()


def build(name: str):
    """The ``ACEPotentialSpec`` of the bundled potential ``name`` (deterministic)."""
    if name not in RECIPES:
        raise KeyError(f"unknown bundled potential {name!r}; available: {sorted(RECIPES)}")
    rc = RECIPES[name]
    gb = generate_basis(rc.elements, rc.nradmax_by_orders, rc.lmax_by_orders, bonds=rc.bonds,
                        embeddings=rc.embedding, max_degree=rc.max_degree, l_weight=rc.l_weight)
    rng = np.random.default_rng(rc.seed)
    nel, P = len(rc.elements), rc.embedding.ndensity
    raw, ranks = [], []
    for mu0 in range(nel):
        rows, rk = [], []
        for block in gb.blocks[mu0]:
            degree = float(np.sum(block.ns - 1) + np.sum(block.ls))
            for _ in range(block.nfunctions):
                z = rng.standard_normal(P)
                if block.rank == 1:
                    signs = np.array(rc.rank1_signs)
                    z = np.where(signs != 0, signs * np.abs(z), z)
                rows.append(z * np.exp(-rc.decay * degree))
                rk.append(block.rank)
        raw.append(np.array(rows).reshape(-1, P))
        ranks.append(np.array(rk))
    structures = _calibration_structures(rc.elements)
    final = [np.zeros_like(r) for r in raw]
    for rank in range(1, len(rc.nradmax_by_orders) + 1):
        for p in range(P):
            trial = [np.where(ranks[mu0] == rank, raw[mu0][:, p], 0.0)[:, None] for mu0 in range(nel)]
            if not any(np.any(t) for t in trial):
                continue
            values = _per_atom(gb, trial, structures)
            rms = float(np.sqrt(np.mean(values**2)))
            scale = rc.targets[rank - 1][p] / rms if rms > 0 else 0.0
            for mu0 in range(nel):
                final[mu0][:, p] += scale * trial[mu0][:, 0]
    spec = gb.to_spec(final, E0=rc.E0, source=f"acepy bundled synthetic potential {name}")
    return spec


def build_all(folder=None) -> list[Path]:
    """Write every bundled potential to ``folder`` (default: the package data folder)."""
    from acepy.io.yace_writer import write_yace

    folder = data_folder() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_yace(build(name), folder / f"{name}.yace") for name in RECIPES]


if __name__ == "__main__":
    for path in build_all(sys.argv[1] if len(sys.argv) > 1 else None):
        print(path)
