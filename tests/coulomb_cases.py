"""Structures shared by the Coulomb tests."""

import numpy as np
from ase.build import bulk


def rattled_salt(rng, repeat=(1, 1, 1)):
    """Rock salt, sheared into a triclinic cell and rattled, with random charges of the right sign
    per species made neutral: Na/Cl as (repeat of) the 8-atom cubic cell."""
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(repeat)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.normal(scale=0.08, size=(3, 3))), scale_atoms=True)
    atoms.rattle(0.15, seed=int(rng.integers(1 << 30)))
    q = rng.uniform(0.5, 1.5, len(atoms)) * np.where(np.array(atoms.numbers) == 11, 1.0, -1.0)
    atoms.set_initial_charges(q - q.mean())
    return atoms
