"""Damped shifted force electrostatics (Fennell & Gezelter 2006; LAMMPS pair_style coul/dsf).

An independent numpy DSF sum (explicit images, both self-energy conventions) to 1e-12, the
shifted-force property V(rc) = V'(rc) = 0, and DSF forces approaching Ewald forces as alpha falls
and the cutoff grows. DSF needs no torch-pme; the Ewald comparison skips without it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import erfc

from acepy.models import Coulomb, Stack
from acepy.models.coulomb_params import COULOMB_CONSTANT as K

from coulomb_cases import rattled_salt as _salt


def numpy_dsf(positions, cell, q, alpha, rc, convention):
    """E = 1/2 sum_(i, j, images; 0 < r < rc) K q_i q_j V(r) + self, V from Fennell & Gezelter eq. 18."""
    vc = erfc(alpha * rc) / rc
    slope = erfc(alpha * rc) / rc ** 2 + 2 * alpha / np.sqrt(np.pi) * np.exp(-(alpha * rc) ** 2) / rc
    recip = np.linalg.inv(cell).T
    reach = [int(np.ceil(rc * np.linalg.norm(b))) + 1 for b in recip]
    energy = 0.0
    for s in itertools.product(*[range(-m, m + 1) for m in reach]):
        d = positions[None, :, :] + np.array(s) @ cell - positions[:, None, :]
        r = np.linalg.norm(d, axis=2)
        mask = (r < rc) & (r > 1e-12)
        rr = np.where(mask, r, 1.0)
        v = erfc(alpha * rr) / rr - vc + slope * (rr - rc)
        energy += 0.5 * np.sum((q[:, None] * q[None, :] * v)[mask])
    if convention == "lammps":  # pair_coul_dsf.cpp: -(e_shift/2 + alpha/sqrt(pi)) q^2, e_shift = vc + slope rc
        energy -= np.sum(q ** 2) * (0.5 * (vc + slope * rc) + alpha / np.sqrt(np.pi))
    elif convention == "fennell-gezelter":
        energy -= np.sum(q ** 2) * (0.5 * vc + alpha / np.sqrt(np.pi))
    return K * energy


@pytest.mark.parametrize("convention", ["lammps", "fennell-gezelter", "none"])
def test_against_numpy_dsf(convention):
    rng = np.random.default_rng()
    atoms = _salt(rng)
    alpha, rc = float(rng.uniform(0.1, 0.3)), float(rng.uniform(6.0, 9.0))
    for backend in ("torch", "numba"):
        stack = Stack([Coulomb("initial_charges", method="dsf", alpha=alpha, cutoff=rc, dsf_self_energy=convention)],
                      ["Na", "Cl"], backend=backend)
        energy = float(stack.evaluate(atoms)["energy"][0])
        expected = numpy_dsf(atoms.positions, atoms.cell[:], atoms.get_initial_charges(), alpha, rc, convention)
        assert abs(energy - expected) <= 1e-12 * abs(expected), (backend, energy, expected)


def test_pair_energy_and_force_vanish_at_the_cutoff():
    """V(rc) = V'(rc) = 0 for one pair in a large empty box (the self energy does not move)."""
    rc = 7.5
    stack = Stack([Coulomb({"Na": 1.0, "Cl": -1.0}, method="dsf", alpha=0.2, cutoff=rc, dsf_self_energy="none")],
                  ["Na", "Cl"])
    from ase import Atoms

    for r in (rc - 1e-6, rc - 1e-9):
        dimer = Atoms("NaCl", positions=[[0, 0, 0], [r, 0, 0]])
        out = stack.evaluate(dimer)
        assert abs(float(out["energy"][0])) < 1e-10 * K
        assert float(out["forces"].abs().max()) < 1e-2 * K * (rc - r) + 1e-14  # |V"(rc)| < 1e-2 /A^3 here
    # and inside: V' = the analytic derivative (a value that can fail)
    dimer = Atoms("NaCl", positions=[[0, 0, 0], [3.0, 0, 0]])
    out = stack.evaluate(dimer)
    a = 0.2
    dv = (-math.erfc(a * 3) / 9 - 2 * a / math.sqrt(math.pi) * math.exp(-(a * 3) ** 2) / 3
          + math.erfc(a * rc) / rc ** 2 + 2 * a / math.sqrt(math.pi) * math.exp(-(a * rc) ** 2) / rc)
    assert abs(float(out["forces"][1, 0]) - (-K * -1.0 * dv)) < 1e-12 * K


def test_dsf_forces_approach_ewald_forces():
    """As alpha falls and rc grows (alpha rc kept large enough to damp), DSF forces converge to the
    Ewald forces (Fennell & Gezelter section IV)."""
    pytest.importorskip("torchpme")
    rng = np.random.default_rng()
    atoms = _salt(rng, (2, 2, 2))
    ewald = Stack([Coulomb("initial_charges", method="ewald", cutoff=8.0, accuracy=1e-10)], ["Na", "Cl"])
    ref = ewald.evaluate(atoms)["forces"]
    errors = []
    for alpha, rc in ((0.3, 8.0), (0.2, 12.0), (0.15, 16.0), (0.1, 20.0)):
        dsf = Stack([Coulomb("initial_charges", method="dsf", alpha=alpha, cutoff=rc)], ["Na", "Cl"])
        f = dsf.evaluate(atoms)["forces"]
        errors.append(float(torch.sqrt(((f - ref) ** 2).mean() / (ref ** 2).mean())))
    # measured: relative RMS differences about 0.36, 0.10, 0.02, 0.002
    assert errors[0] > errors[1] > errors[2] > errors[3], errors
    assert errors[3] < 1e-2, errors
