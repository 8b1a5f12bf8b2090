"""Every acepy error type, in one place.

acepy raises these (and the built-in ``ValueError``/``TypeError``/``FileNotFoundError`` for plain
argument mistakes). Each message names what is wrong and where: the file and key or line of a
potential file, the atoms that are too close, the backend that cannot run and why.

The two kernel-level errors are defined in ``acepy.kernels`` (the lowest layer, which imports
nothing from acepy) and re-exported here, so that users find every error in this module.
"""

from __future__ import annotations

from acepy.kernels.backend import BackendUnavailableError
from acepy.kernels.spline import SplineRangeError

__all__ = ["AcepyError", "BackendUnavailableError", "PotentialFileError", "SplineRangeError", "TooCloseError"]


class AcepyError(Exception):
    """Base of the errors defined in the acepy package layers (above the kernels)."""


class PotentialFileError(AcepyError, ValueError):
    """A potential file that cannot be used as it stands.

    The message always names the file, and either the key path inside it (for YAML files, e.g.
    ``bonds[0, 1].radcoefficients``) or the line number (for text files).
    """

    def __init__(self, path, where: str | None, problem: str):
        self.path = str(path)
        self.where = where
        self.problem = problem
        loc = f"{self.path}: {where}: " if where else f"{self.path}: "
        super().__init__(loc + problem)


class TooCloseError(AcepyError, ValueError):
    """Two atoms are closer than the potential's radial tables reach (PACE and LAMMPS stop there too)."""
