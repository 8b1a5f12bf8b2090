"""Calculators on top of the models (ASE today)."""

from .ase import ACECalculator

__all__ = ["ACECalculator"]
