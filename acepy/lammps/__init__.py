"""Hand-off to LAMMPS: input decks for ``pair_style pace`` / ``pace/kk`` (+ the pair table, +
Coulomb), which styles read which potential, and the ``pair_style mliap unified`` adapter.

- :func:`write_input`: deck + potential files, refusing what LAMMPS would refuse (:mod:`.deck`);
- :func:`lammps_support`: per style, whether it reads a potential and why not (:mod:`.styles`);
- :class:`ACEMLIAPUnified` (:mod:`.mliap`): an acepy stack inside LAMMPS's domain decomposition
  through ML-IAP's Python coupling (a LAMMPS built with ML-IAP + PYTHON and Cython).
"""

from .deck import LammpsInput, LammpsInputError, coulomb_component, write_input
from .mliap import ACEMLIAPUnified
from .styles import StyleSupport, lammps_support

__all__ = ["ACEMLIAPUnified", "LammpsInput", "LammpsInputError", "StyleSupport", "coulomb_component",
           "lammps_support", "write_input"]
