"""Labelled frames: ``ase.Atoms`` carrying reference energy, forces, stress and Hessian.

One convention for every data reader and writer (DeePMD npy, extxyz) and for the fit:

- energy (eV), forces ``(N, 3)`` (eV/A) and stress ``(3, 3)`` (eV/A^3, ASE sign: positive under
  tension) live in a ``SinglePointCalculator``; the virial is ``-stress * volume`` (eV), the sign
  DeePMD-kit uses (its ASE calculator sets ``stress = -virial / volume``, deepmd/calculator.py) and
  that acepy's ``Stack.evaluate`` returns as ``virials``;
- the Hessian d2E/dx dx (eV/A^2) is ``atoms.info["hessian"]``, ``(3N, 3N)``, row ``3 i + a``
  (DeePMD's hessian.npy row-major layout, ASE's ``VibrationsData``);
- ``atoms.info["config_type"]`` names the kind of structure (weights and error tables per kind).

:func:`frame_labels` reads them back, checked: a NaN label, a Hessian of the wrong shape or a
forces array of the wrong length raise :class:`~acepy.errors.StructureError` naming the frame.
"""

from __future__ import annotations

import numpy as np

from acepy.errors import StructureError

__all__ = ["make_frame", "frame_labels", "DEFAULT_CONFIG_TYPE"]

DEFAULT_CONFIG_TYPE = "default"


def make_frame(symbols, positions, cell=None, pbc=False, energy=None, forces=None, stress=None, virial=None,
               hessian=None, config_type=None, info=None):
    """An ``ase.Atoms`` with its labels attached (see the module docstring for units and signs).

    Give ``stress`` (3, 3) or Voigt (6,), or ``virial`` (3, 3) (``stress = -virial / volume``), not
    both. ``hessian`` is ``(3N, 3N)`` (or ``(N, 3, N, 3)``, or flat ``9 N^2``).
    """
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms(symbols=symbols, positions=np.asarray(positions, dtype=np.float64),
                  cell=None if cell is None else np.asarray(cell, dtype=np.float64), pbc=pbc)
    if info:
        atoms.info.update(info)
    if stress is not None and virial is not None:
        raise ValueError("make_frame: give stress or virial, not both")
    if virial is not None:
        volume = abs(float(np.linalg.det(atoms.cell[:]))) if atoms.cell.rank == 3 else 0.0
        if volume <= 0.0:
            raise StructureError("make_frame: a virial needs a cell of non-zero volume")
        stress = -np.asarray(virial, dtype=np.float64).reshape(3, 3) / volume
    results = {}
    if energy is not None:
        results["energy"] = float(energy)
        results["free_energy"] = float(energy)
    if forces is not None:
        results["forces"] = np.asarray(forces, dtype=np.float64).reshape(len(atoms), 3)
    if stress is not None:
        s = np.asarray(stress, dtype=np.float64)
        results["stress"] = s.reshape(3, 3) if s.size == 9 else _voigt_to_3x3(s)
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    if hessian is not None:
        n = 3 * len(atoms)
        h = np.asarray(hessian, dtype=np.float64)
        if h.size != n * n:
            raise StructureError(f"make_frame: a Hessian of {len(atoms)} atoms needs {n} x {n} values, got shape "
                                 f"{h.shape}")
        atoms.info["hessian"] = h.reshape(n, n)
    if config_type is not None:
        atoms.info["config_type"] = str(config_type)
    return atoms


def _voigt_to_3x3(s: np.ndarray) -> np.ndarray:
    if s.shape != (6,):
        raise ValueError(f"stress must be (3, 3), 9 values or Voigt (6,), got shape {s.shape}")
    xx, yy, zz, yz, xz, xy = s
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def _where(atoms, where) -> str:
    if where is not None:
        return str(where)
    return f"frame {atoms.get_chemical_formula()}"


def _finite(name: str, value: np.ndarray, where: str) -> np.ndarray:
    bad = ~np.isfinite(value)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad.ravel())), value.shape) if value.ndim else ()
        at = f" at index {tuple(int(i) for i in first)}" if value.ndim else ""
        raise StructureError(f"{where}: the {name} label is not finite ({value[first] if value.ndim else value}{at}); "
                             "remove or fix the frame")
    return value


def frame_labels(atoms, where=None, require_config_type: bool = False) -> dict:
    """The checked labels of one frame: ``energy`` (float or None), ``forces`` (N, 3), ``virial``
    (3, 3) = -stress * volume, ``stress`` (3, 3), ``hessian`` (3N, 3N) (each None where absent) and
    ``config_type`` (``"default"`` where absent). ``where`` names the frame in error messages.

    Labels are read from the attached calculator's stored results (never computed here) and from
    ``atoms.info`` (``energy``, ``stress``, ``virial``, ``hessian``, ``config_type``)."""
    where = _where(atoms, where)
    n = len(atoms)
    if n == 0:
        raise StructureError(f"{where}: the frame has no atoms")
    positions = atoms.get_positions()
    _finite("positions", positions, where)
    results = dict(getattr(atoms.calc, "results", {}) or {}) if atoms.calc is not None else {}
    info = atoms.info
    out = {"energy": None, "forces": None, "stress": None, "virial": None, "hessian": None}

    energy = results.get("energy", info.get("energy"))
    if energy is not None:
        e = np.asarray(energy, dtype=np.float64)
        if e.size != 1:
            raise StructureError(f"{where}: the energy label must be one number, got shape {e.shape}")
        out["energy"] = float(_finite("energy", e.reshape(()), where))

    forces = results.get("forces", atoms.arrays.get("forces") if "forces" in atoms.arrays else None)
    if forces is not None:
        f = np.asarray(forces, dtype=np.float64)
        if f.shape != (n, 3):
            raise StructureError(f"{where}: forces of {n} atoms must have shape ({n}, 3), got {f.shape}")
        out["forces"] = _finite("forces", f, where)

    stress = results.get("stress", info.get("stress"))
    virial = info.get("virial")
    volume = abs(float(np.linalg.det(atoms.cell[:]))) if atoms.cell.rank == 3 else 0.0
    if stress is not None or virial is not None:
        if volume <= 0.0:
            raise StructureError(f"{where}: a stress or virial label needs a cell of non-zero volume")
        if stress is not None:
            s = np.asarray(stress, dtype=np.float64)
            if s.size not in (6, 9):
                raise StructureError(f"{where}: the stress label must be (3, 3) or Voigt (6,), got shape {s.shape}")
            s = s.reshape(3, 3) if s.size == 9 else _voigt_to_3x3(s.reshape(6))
            out["stress"] = _finite("stress", s, where)
            out["virial"] = -s * volume
        else:
            v = np.asarray(virial, dtype=np.float64)
            if v.size != 9:
                raise StructureError(f"{where}: the virial label must be (3, 3) or 9 values, got shape {v.shape}")
            out["virial"] = _finite("virial", v.reshape(3, 3), where)
            out["stress"] = -out["virial"] / volume

    hessian = info.get("hessian")
    if hessian is not None:
        h = np.asarray(hessian, dtype=np.float64)
        if h.size != 9 * n * n:
            raise StructureError(f"{where}: the Hessian of {n} atoms must be ({3 * n}, {3 * n}) (row 3 i + a), "
                                 f"got shape {h.shape}")
        if h.shape not in ((3 * n, 3 * n), (n, 3, n, 3), (9 * n * n,)):
            raise StructureError(f"{where}: the Hessian must be ({3 * n}, {3 * n}), ({n}, 3, {n}, 3) or flat "
                                 f"({9 * n * n},), got shape {h.shape}")
        out["hessian"] = _finite("hessian", h.reshape(3 * n, 3 * n), where)

    config_type = info.get("config_type")
    if config_type is None and require_config_type:
        raise StructureError(f"{where}: no config_type in atoms.info")
    out["config_type"] = DEFAULT_CONFIG_TYPE if config_type is None else str(config_type)
    return out
