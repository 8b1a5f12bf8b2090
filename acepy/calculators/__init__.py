"""Calculators on top of the models (ASE today) and what follows from the Hessian (vibrations, phonons)."""

from .ase import ACECalculator
from .vibrations import phonopy_force_constants, vibrations

__all__ = ["ACECalculator", "phonopy_force_constants", "vibrations"]
