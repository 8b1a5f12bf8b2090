"""Readers of ACE potential files (`.yace`, `.ace`) and LAMMPS pair tables.

All potential readers return an `ACEPotentialSpec` of plain numpy data; every problem with a file
raises `PotentialFileError` (a ValueError) naming the file and the key path or line at fault.
"""

from __future__ import annotations

from pathlib import Path

from .ace import read_ace
from .pair_table import PairTable, PairTableSection, read_pair_table
from .spec import (
    ACEPotentialSpec,
    CTildeFunction,
    Embedding,
    PaceBond,
    PotentialFileError,
    RepulsiveCore,
    ShipsBond,
    ShipsPairPotential,
    SplineBond,
)
from .yace import read_yace

__all__ = [
    "read_potential",
    "read_yace",
    "read_ace",
    "read_pair_table",
    "PotentialFileError",
    "ACEPotentialSpec",
    "CTildeFunction",
    "Embedding",
    "PaceBond",
    "ShipsBond",
    "SplineBond",
    "ShipsPairPotential",
    "RepulsiveCore",
    "PairTable",
    "PairTableSection",
]


def read_potential(path) -> ACEPotentialSpec:
    """Read a `.yace` or `.ace` potential, chosen by the file extension as the C++ code does."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".yace":
        return read_yace(path)
    if suffix == ".ace":
        return read_ace(path)
    if suffix in (".yaml", ".yml"):
        raise PotentialFileError(path, None, "pacemaker B-basis .yaml files must first be converted to "
                                 "C-tilde form (pace_yaml2yace); read the resulting .yace")
    raise PotentialFileError(path, None, f"unrecognized file type {path.suffix!r}; expected .yace or .ace")
