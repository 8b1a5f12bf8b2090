"""Extended XYZ data sets through ASE, with the label keys people use.

``ase.io.read`` already turns the keys ``energy``, ``forces`` and ``stress`` into a
``SinglePointCalculator``. Data sets written by other codes name them differently (``dft_energy``,
``REF_forces``, a ``virial`` instead of a stress), so :func:`read_extxyz` takes the key names and
returns frames in acepy's one convention (:mod:`acepy.io.frames`): energy, forces, stress in the
calculator (a virial becomes ``stress = -virial / volume``), the Hessian (a flat ``9 N^2`` or
``(3N, 3N)`` info entry) in ``atoms.info["hessian"]`` as ``(3N, 3N)``, and ``config_type``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from acepy.errors import StructureError

from .frames import frame_labels, make_frame

__all__ = ["read_extxyz", "write_extxyz"]


def _pop(mapping, key):
    return mapping.get(key) if key is not None else None


def read_extxyz(path, index=":", energy_key: str = "energy", forces_key: str = "forces", stress_key: str = "stress",
                virial_key: str = "virial", hessian_key: str = "hessian", config_type_key: str = "config_type") -> list:
    """Labelled frames of an extended XYZ file (``index`` as in ``ase.io.read``).

    Each key names where a label is found: the per-frame info line or the per-atom columns (forces).
    A frame with both a stress and a virial uses the stress. Bad labels raise
    :class:`~acepy.errors.StructureError` naming the file and the frame index.
    """
    import ase.io

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such extxyz file", str(path))
    images = ase.io.read(path, index=index, format="extxyz")
    if not isinstance(images, list):
        images = [images]
    frames = []
    for k, atoms in enumerate(images):
        where = f"{path}, frame {k}"
        results = dict(atoms.calc.results) if atoms.calc is not None else {}
        info = dict(atoms.info)
        energy = results.get("energy") if energy_key == "energy" else None
        if energy is None:
            energy = _pop(info, energy_key)
        forces = results.get("forces") if forces_key == "forces" else None
        if forces is None and forces_key in atoms.arrays:
            forces = atoms.arrays[forces_key]
        stress = results.get("stress") if stress_key == "stress" else None
        if stress is None:
            stress = _pop(info, stress_key)
        virial = _pop(info, virial_key) if stress is None else None
        hessian = _pop(info, hessian_key)
        config_type = _pop(info, config_type_key)
        for key in (energy_key, stress_key, virial_key, hessian_key, config_type_key, "energy", "stress",
                    "virial", "hessian", "config_type", "free_energy"):
            info.pop(key, None)
        try:
            frame = make_frame(atoms.get_chemical_symbols(), atoms.get_positions(), cell=atoms.cell[:],
                               pbc=atoms.pbc, energy=energy, forces=forces, stress=stress, virial=virial,
                               config_type=config_type, info=info)
            if hessian is not None:
                frame.info["hessian"] = np.asarray(hessian, dtype=np.float64)
            labels = frame_labels(frame, where=where)  # checks shapes and finiteness, names the frame
        except (ValueError, TypeError) as exc:
            if isinstance(exc, StructureError) and str(exc).startswith(where):
                raise
            raise StructureError(f"{where}: {exc}") from None
        if labels["hessian"] is not None:
            frame.info["hessian"] = labels["hessian"]
        frames.append(frame)
    return frames


def write_extxyz(frames, path) -> Path:
    """Write labelled frames as extended XYZ (energy, forces, stress; Hessian and config_type in
    the info line), atomically (a temporary file renamed)."""
    import os
    import tempfile

    import ase.io

    path = Path(path)
    out = []
    for k, atoms in enumerate(frames):
        frame_labels(atoms, where=f"frame {k}")  # refuse bad labels before writing anything
        out.append(atoms)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    try:
        ase.io.write(tmp, out, format="extxyz")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
