"""Vibrations and phonons from the exact Hessian (one Hessian call, not 6 N displaced force calls).

- :func:`vibrations`: ASE's :class:`~ase.vibrations.VibrationsData` (frequencies, normal modes,
  zero-point energy, thermochemistry inputs) of a structure, optionally of some atoms only;
- :func:`phonopy_force_constants`: the supercell force constants of a ``phonopy.Phonopy`` object
  (phonopy's ``(N, N, 3, 3)`` layout in eV/A^2), set on it for band structures, DOS and
  thermal properties. phonopy is optional and imported only here.
"""

from __future__ import annotations

import numpy as np


def _model_of(model_or_calc):
    model = getattr(model_or_calc, "model", model_or_calc)
    if not callable(getattr(model, "hessian", None)):
        raise TypeError(f"expected an acepy model (acepy.load) or an ACECalculator, got {type(model_or_calc).__name__}")
    return model


def vibrations(model_or_calc, atoms, indices=None, method: str = "auto"):
    """:class:`ase.vibrations.VibrationsData` of ``atoms`` from the model's Hessian at fixed cell.

    ``indices``: the atoms that vibrate (the others stay fixed: their rows and columns are left
    out, as ASE's ``Vibrations(indices=...)`` does); default all. The structure should be at a
    minimum of the energy for real frequencies (relax it first).
    """
    from ase.vibrations import VibrationsData

    h = _model_of(model_or_calc).hessian(atoms, method=method)
    n = len(atoms)
    full = h.detach().to("cpu").double().numpy().reshape(3 * n, 3 * n)
    if indices is None:
        indices = np.arange(n)
    indices = np.asarray(indices, dtype=int)
    if indices.ndim != 1 or (indices.size and (indices.min() < -n or indices.max() >= n)):
        raise ValueError(f"vibrations: indices must be atom indices of the {n}-atom structure, got {indices.tolist()}")
    indices = np.unique(indices % n)
    rows = (3 * indices[:, None] + np.arange(3)[None, :]).reshape(-1)
    return VibrationsData.from_2d(atoms, full[np.ix_(rows, rows)], indices=indices)


def phonopy_force_constants(model_or_calc, phonon, method: str = "auto") -> np.ndarray:
    """Force constants ``(N, N, 3, 3)`` (eV/A^2) of ``phonon.supercell`` from one Hessian call; they
    are also set as ``phonon.force_constants``. ``phonon`` is a ``phonopy.Phonopy`` object built with
    the default (VASP-like) units: eV and A."""
    from ase import Atoms

    sc = phonon.supercell
    atoms = Atoms(numbers=sc.numbers, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
    h = _model_of(model_or_calc).hessian(atoms, method=method)
    fc = h.detach().to("cpu").double().numpy().transpose(0, 2, 1, 3).copy()
    phonon.force_constants = fc
    return fc
