"""DeePMD-kit's npy data layout: read and write labelled frames.

A DeePMD *system* is a folder of frames that share their atoms (DeePMD-kit docs, "Data > System",
docs.deepmodeling.com/projects/deepmd/en/stable/data/system.html)::

    type.raw          atom type index per atom (integers from 0), whitespace separated
    type_map.raw      the element name of each type index, one a line (optional in DeePMD; acepy
                      needs it, or ``type_map=`` when reading)
    nopbc             present: the system is not periodic (no box, no virial)
    set.000/box.npy     (nframes, 9)        A, rows = cell vectors (XX XY XZ YX YY YZ ZX ZY ZZ)
    set.000/coord.npy   (nframes, 3 N)      A
    set.000/energy.npy  (nframes,)          eV
    set.000/force.npy   (nframes, 3 N)      eV/A
    set.000/virial.npy  (nframes, 9)        eV, virial = -stress * volume (DeePMD's ASE calculator:
                                            ``stress = -virial / volume``)
    set.000/hessian.npy (nframes, 9 N^2)    eV/A^2, the full (3N, 3N) matrix in row-major order,
                                            row 3 i + a (DeePMD docs, "Fit energy Hessian")
    set.000/real_atom_types.npy (nframes, N)  optional ("mixed type" systems): per-frame types
    config_type.raw   acepy's addition (DeePMD-kit ignores files it does not know): the
                      ``atoms.info["config_type"]`` of every frame of the system, one line

Frames are ``ase.Atoms`` as :mod:`acepy.io.frames` describes (energy, forces, stress in a
``SinglePointCalculator``, the Hessian in ``atoms.info["hessian"]`` as ``(3N, 3N)``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from acepy.errors import StructureError

from .frames import frame_labels, make_frame

__all__ = ["read_deepmd", "write_deepmd", "find_deepmd_systems"]

_LABELS = {"energy": "energy.npy", "forces": "force.npy", "virial": "virial.npy", "hessian": "hessian.npy"}


def find_deepmd_systems(path) -> list[Path]:
    """Every DeePMD system (a folder with ``type.raw``) at or below ``path``, sorted."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such DeePMD system or folder", str(path))
    if (path / "type.raw").is_file():
        return [path]
    systems = sorted(p.parent for p in path.rglob("type.raw"))
    if not systems:
        raise StructureError(f"{path}: no DeePMD system here (no type.raw in it or below it)")
    return systems


def _read_raw(path: Path, what: str, kind):
    try:
        text = path.read_text().split()
    except OSError as exc:
        raise StructureError(f"{path}: cannot read the {what}: {exc}") from exc
    try:
        return [kind(x) for x in text]
    except ValueError as exc:
        raise StructureError(f"{path}: the {what} must be {kind.__name__} values: {exc}") from exc


def _load(path: Path, nframes: int | None, per_frame: int, what: str) -> np.ndarray:
    """An (nframes, per_frame) float64 array from ``path``; a wrong size names the file."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise StructureError(f"{path}: cannot read {what}: {exc}") from exc
    data = np.asarray(data, dtype=np.float64)
    rows = data.shape[0] if data.ndim else 0
    if data.ndim == 0 or data.size != rows * per_frame or (nframes is not None and rows != nframes):
        want = f"({nframes if nframes is not None else 'nframes'}, {per_frame})"
        raise StructureError(f"{path}: {what} must hold {want} values, got shape {data.shape}")
    return data.reshape(rows, per_frame)


def _check_finite(data: np.ndarray, what: str, where: str, first_frame: int) -> None:
    bad = ~np.isfinite(data)
    if bad.any():
        frame = int(np.nonzero(bad.any(axis=1))[0][0])
        raise StructureError(f"{where}, frame {frame} (frame {first_frame + frame} of the system): {what} is not "
                             f"finite")


def _read_system(system: Path, type_map: list[str] | None) -> list:
    from ase.data import atomic_numbers

    types = np.array(_read_raw(system / "type.raw", "atom types", int), dtype=np.int64)
    natoms = len(types)
    if natoms == 0:
        raise StructureError(f"{system / 'type.raw'}: no atoms")
    own_map = system / "type_map.raw"
    if own_map.is_file():
        names = _read_raw(own_map, "type map", str)
    elif type_map is not None:
        names = list(type_map)
    else:
        raise StructureError(f"{system}: no type_map.raw, so the element of each atom type is unknown; add the "
                             "file (one element name a line) or pass type_map=[...]")
    for k, name in enumerate(names):
        if name not in atomic_numbers or atomic_numbers[name] == 0:
            raise StructureError(f"{own_map if own_map.is_file() else 'type_map'}: entry {k} ({name!r}) is not a "
                                 "chemical element symbol")
    periodic = not (system / "nopbc").exists()
    config_type = None
    if (system / "config_type.raw").is_file():
        config_type = (system / "config_type.raw").read_text().strip() or None
    sets = sorted(p for p in system.glob("set.*") if p.is_dir())
    if not sets:
        raise StructureError(f"{system}: no set.* folder")
    frames = []
    count = 0
    for folder in sets:
        coord_path = folder / "coord.npy"
        if not coord_path.is_file():
            raise StructureError(f"{folder}: no coord.npy")
        coord = _load(coord_path, None, 3 * natoms, "coordinates")
        nframes = coord.shape[0]
        where = str(folder)
        _check_finite(coord, "coord.npy", where, count)
        box = None
        if (folder / "box.npy").is_file():
            box = _load(folder / "box.npy", nframes, 9, "boxes")
            _check_finite(box, "box.npy", where, count)
        elif periodic:
            raise StructureError(f"{folder}: no box.npy in a periodic system (add a nopbc file if it is not periodic)")
        labels = {}
        for key, name in _LABELS.items():
            path = folder / name
            if not path.is_file() or (key == "virial" and not periodic):
                continue
            per = {"energy": 1, "forces": 3 * natoms, "virial": 9, "hessian": 9 * natoms * natoms}[key]
            try:
                labels[key] = _load(path, nframes, per, name)
            except StructureError as exc:
                if key == "hessian":
                    raise StructureError(f"{exc} (a Hessian per frame is the full (3N, 3N) = ({3 * natoms}, "
                                         f"{3 * natoms}) matrix, row-major)") from None
                raise
            _check_finite(labels[key], name, where, count)
        frame_types = None
        if (folder / "real_atom_types.npy").is_file():
            frame_types = _load(folder / "real_atom_types.npy", nframes, natoms, "per-frame atom types")
            frame_types = frame_types.astype(np.int64)
        for k in range(nframes):
            t = types if frame_types is None else frame_types[k]
            if t.min() < 0 or t.max() >= len(names):
                i = int(np.nonzero((t < 0) | (t >= len(names)))[0][0])
                raise StructureError(f"{where}, frame {k}: atom {i} has type {int(t[i])}, but the type map has "
                                     f"{len(names)} entries ({names})")
            cell = box[k].reshape(3, 3) if box is not None else None
            frame = make_frame(
                [names[int(x)] for x in t], coord[k].reshape(natoms, 3), cell=cell, pbc=periodic,
                energy=labels["energy"][k, 0] if "energy" in labels else None,
                forces=labels["forces"][k] if "forces" in labels else None,
                virial=labels["virial"][k] if "virial" in labels else None,
                hessian=labels["hessian"][k] if "hessian" in labels else None, config_type=config_type,
                info={"deepmd_system": str(system), "deepmd_frame": count + k})
            frames.append(frame)
        count += nframes
    return frames


def read_deepmd(path, type_map=None) -> list:
    """Frames of the DeePMD system at ``path``, or of every system below it (sorted by path).

    ``type_map``: element names of the type indices, for systems without ``type_map.raw`` (a
    system's own file wins). Each frame is an ``ase.Atoms`` with energy, forces and stress
    (``-virial / volume``) in a ``SinglePointCalculator`` where the system has them, the Hessian in
    ``atoms.info["hessian"]`` as ``(3N, 3N)``, and ``atoms.info["deepmd_system"]`` / ``["deepmd_frame"]``.
    Missing files, wrong shapes, unknown types and non-finite values raise
    :class:`~acepy.errors.StructureError` naming the file and the frame.
    """
    frames = []
    for system in find_deepmd_systems(path):
        frames.extend(_read_system(system, type_map))
    return frames


def _system_key(atoms, labels: dict) -> tuple:
    return (tuple(atoms.get_chemical_symbols()), bool(atoms.pbc.any()),
            tuple(k for k in _LABELS if labels[k] is not None), atoms.info.get("config_type"))


def write_deepmd(frames, path, type_map=None, set_size: int = 5000, overwrite: bool = False) -> list[Path]:
    """Write labelled frames in DeePMD's npy layout; returns the system folders written.

    Frames with the same atoms (symbols in order), periodicity, set of labels and config_type form
    one system. One system is written at ``path``; several go to ``path/<formula>-<index>`` (or
    ``path/<config_type>.<formula>-<index>``); a system's config_type is kept in ``config_type.raw``.
    ``type_map``: the element order of the type indices (default: the sorted elements of all
    frames). A non-periodic frame gets a ``nopbc`` file and no box or virial. The folder is written
    under a temporary name and renamed, so a failure never leaves half a data set; an existing
    non-empty ``path`` is refused unless ``overwrite=True``.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("write_deepmd: no frames to write")
    path = Path(path)
    groups: dict[tuple, list] = {}
    for k, atoms in enumerate(frames):
        labels = frame_labels(atoms, where=f"frame {k}")
        groups.setdefault(_system_key(atoms, labels), []).append((atoms, labels))
    elements = sorted({s for key in groups for s in key[0]})
    type_map = list(type_map) if type_map is not None else elements
    missing = [el for el in elements if el not in type_map]
    if missing:
        raise ValueError(f"write_deepmd: type_map {type_map} lacks the elements {missing} of the frames")
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise FileExistsError(17, "write_deepmd: the target exists and is not empty (pass overwrite=True)", str(path))
    if set_size < 1:
        raise ValueError(f"write_deepmd: set_size must be positive, got {set_size}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        names = []
        for index, (key, members) in enumerate(groups.items()):
            if len(groups) == 1:
                folder = tmp
            else:
                formula = members[0][0].get_chemical_formula()
                cfg = key[3]
                folder = tmp / (f"{formula}-{index:03d}" if cfg is None else f"{_safe(cfg)}.{formula}-{index:03d}")
            _write_system(folder, key, members, type_map, set_size)
            names.append(folder.relative_to(tmp))
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [path / n for n in names]


def _safe(name) -> str:
    """A config type as part of a folder name."""
    return "".join(ch if ch.isalnum() or ch in "-_+" else "_" for ch in str(name)) or "_"


def _write_system(folder: Path, key: tuple, members: list, type_map: list[str], set_size: int) -> None:
    symbols, periodic, present, config_type = key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "type.raw").write_text("\n".join(str(type_map.index(s)) for s in symbols) + "\n")
    (folder / "type_map.raw").write_text("\n".join(type_map) + "\n")
    if not periodic:
        (folder / "nopbc").write_text("")
    if config_type is not None:
        (folder / "config_type.raw").write_text(f"{config_type}\n")
    n = len(symbols)
    for start in range(0, len(members), set_size):
        chunk = members[start:start + set_size]
        sub = folder / f"set.{start // set_size:03d}"
        sub.mkdir()
        np.save(sub / "coord.npy", np.array([a.get_positions().reshape(3 * n) for a, _ in chunk]))
        if periodic:
            np.save(sub / "box.npy", np.array([a.cell[:].reshape(9) for a, _ in chunk]))
        if "energy" in present:
            np.save(sub / "energy.npy", np.array([lab["energy"] for _, lab in chunk]))
        if "forces" in present:
            np.save(sub / "force.npy", np.array([lab["forces"].reshape(3 * n) for _, lab in chunk]))
        if "virial" in present and periodic:
            np.save(sub / "virial.npy", np.array([lab["virial"].reshape(9) for _, lab in chunk]))
        if "hessian" in present:
            np.save(sub / "hessian.npy", np.array([lab["hessian"].reshape(9 * n * n) for _, lab in chunk]))
