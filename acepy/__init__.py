"""acepy: fast evaluation of atomic cluster expansion (ACE) interatomic potentials.

    model = acepy.load("pot.yace")
    out = model.evaluate(list_of_atoms)      # energy (B,), energies (N,), forces (N, 3), stress (B, 3, 3)
    atoms.calc = acepy.ACECalculator("pot.yace")
"""

__version__ = "0.1.0"

from . import kernels  # noqa: F401
from .batch import Batch, batch_from_atoms
from .calculators import ACECalculator
from .loading import bundled, load

__all__ = ["ACECalculator", "Batch", "batch_from_atoms", "bundled", "load", "kernels"]
