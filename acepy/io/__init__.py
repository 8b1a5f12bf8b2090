"""Readers of ACE potential files (`.yace`, `.ace`) and LAMMPS pair tables; labelled data sets
(DeePMD npy, extxyz) as ``ase.Atoms`` frames (:mod:`acepy.io.frames`).

All potential readers return an `ACEPotentialSpec` of plain numpy data; every problem with a file
raises `PotentialFileError` (a ValueError) naming the file and the key path or line at fault.
"""

from __future__ import annotations

from pathlib import Path

from .ace import read_ace
from .deepmd import read_deepmd, write_deepmd
from .extxyz import read_extxyz, write_extxyz
from .frames import frame_labels, make_frame
from .pacemaker_yaml import read_pacemaker_yaml
from .pair_table import PairTable, PairTableSection, read_pair_table
from acepy.errors import PotentialFileError
from acepy.spec import (
    ACEPotentialSpec,
    CTildeFunction,
    Embedding,
    PaceBond,
    RepulsiveCore,
    ShipsBond,
    ShipsPairPotential,
    SplineBond,
)
from .yace import read_yace
from .yace_writer import write_yace

__all__ = [
    "read_potential",
    "read_yace",
    "write_yace",
    "read_ace",
    "read_pacemaker_yaml",
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
    "read_deepmd",
    "write_deepmd",
    "read_extxyz",
    "write_extxyz",
    "make_frame",
    "frame_labels",
]


def read_potential(path, max_table_bytes: int | None = None) -> ACEPotentialSpec:
    """Read a `.yace`, `.ace` or pacemaker `.yaml` potential, chosen by the file extension.

    ``max_table_bytes``: refuse (``PotentialFileError``) a PACE radial basis whose spline tables
    would need more memory (default :data:`acepy.spec.MAX_RADIAL_TABLE_BYTES`), before allocating.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".yace":
        return read_yace(path, max_table_bytes=max_table_bytes)
    if suffix == ".ace":
        return read_ace(path, max_table_bytes=max_table_bytes)
    if suffix in (".yaml", ".yml"):  # pacemaker B-basis, converted to C-tilde form
        return read_pacemaker_yaml(path, max_table_bytes=max_table_bytes)
    raise PotentialFileError(path, None, f"unrecognized file type {path.suffix!r}; expected .yace, .ace or .yaml")
