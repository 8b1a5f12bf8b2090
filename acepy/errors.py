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

__all__ = [
    "AcepyError",
    "BackendUnavailableError",
    "DeviceUnavailableError",
    "NonFiniteError",
    "PotentialFileError",
    "PotentialFileWarning",
    "SplineRangeError",
    "StructureError",
    "TooCloseError",
    "TooManyPairsError",
    "UnsupportedInputError",
]


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


class PotentialFileWarning(UserWarning):
    """A potential file value that python-ace accepts but that is probably not what was meant
    (e.g. a negative core-repulsion prefactor, whose absolute value PACE uses). Names file and key."""


class StructureError(AcepyError, ValueError):
    """A structure (or batch) that cannot be evaluated as given: the message names the structure
    and, where one atom is at fault, its index within that structure."""


class TooCloseError(StructureError):
    """Two atoms are closer than the potential's radial tables reach (PACE and LAMMPS stop there too)."""


class TooManyPairsError(StructureError):
    """The neighbour list of a structure would be too large to build (an estimate made before the
    search: atom density times the cutoff sphere). The message names the structure, the estimate,
    the cutoff and how to raise the limit."""


class NonFiniteError(AcepyError, FloatingPointError):
    """An energy or force came out infinite or NaN (e.g. an embedding exponent that overflows
    float64 at this structure's density); the message names the structure, the atom and the key of
    the potential file whose values overflow."""


class UnsupportedInputError(AcepyError, ValueError):
    """An argument acepy cannot compute with (a dtype other than float32/float64, integer
    positions, tensors on the meta device, ...); the message says what is supported."""


class DeviceUnavailableError(AcepyError, RuntimeError):
    """The requested device does not exist here (``device="cuda"`` without a GPU or without a
    CUDA build of torch)."""
