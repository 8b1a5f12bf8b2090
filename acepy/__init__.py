"""acepy: fast evaluation of atomic cluster expansion (ACE) interatomic potentials."""

__version__ = "0.1.0"

from . import kernels  # noqa: E402,F401
