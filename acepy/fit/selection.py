"""Pick the structures of a trajectory with the largest extrapolation grade, for labelling.

The frames are graded in batches of about ``chunk_atoms`` atoms (one batched projection pass per
batch; a file is read frame by frame with ``ase.io.iread``, so a long trajectory never sits in
memory whole); each frame's score is its largest per-atom gamma. Then, greedily from the largest
score down: a frame is taken if its score reaches ``threshold`` and it lies at least
``min_spacing`` frames from every frame taken before (consecutive MD frames are nearly the same
structure: labelling one of them is enough), until ``n`` are taken.

    sel = select_extrapolative("md.traj", ExtrapolationGrade("pot.yaml", "pot.asi"), n=20,
                               threshold=1.5, min_spacing=10)
    sel.indices, sel.gammas; sel.write("to_label.extxyz")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["select_extrapolative", "Selection", "frame_max_gamma"]

CHUNK_ATOMS = 20000


@dataclass
class Selection:
    """``indices`` of the selected frames (largest score first), their ``gammas`` (max per-atom
    gamma), the frames themselves (``frames``, copies with ``arrays["gamma"]`` and
    ``info["frame"]``, ``info["max_gamma"]``), and the score of every frame (``max_gamma``)."""

    indices: np.ndarray
    gammas: np.ndarray
    frames: list = field(repr=False)
    max_gamma: np.ndarray = field(repr=False)

    def write(self, path) -> Path:
        """The selected frames to one file (any format ``ase.io.write`` takes a list in; extxyz
        keeps the per-atom gamma)."""
        from ase.io import write

        path = Path(path)
        write(path, self.frames)
        return path


def _grade_of(grade):
    """An ExtrapolationGrade, from itself, an ACECalculator with an active set, or a model that has
    one attached (duck-typed: this layer does not import the calculators)."""
    if hasattr(grade, "gamma") and hasattr(grade, "active_set"):
        return grade
    inner = getattr(grade, "grade", None) or getattr(getattr(grade, "extrapolation", None), "grade", None)
    if inner is None:
        raise ValueError(f"select_extrapolative: grade must be an ExtrapolationGrade (or an ACECalculator / model "
                         f"with an active set), got {type(grade).__name__}")
    return inner


def _frames(trajectory, index):
    if isinstance(trajectory, (str, Path)):
        from ase.io import iread

        path = Path(trajectory)
        if not path.exists():
            raise FileNotFoundError(f"select_extrapolative: {path} does not exist")
        return iread(str(path), index=index)
    from ase import Atoms

    frames = [trajectory] if isinstance(trajectory, Atoms) else list(trajectory)
    for k, a in enumerate(frames):
        if not isinstance(a, Atoms):
            raise TypeError(f"select_extrapolative: frame {k} is a {type(a).__name__}, not an ase.Atoms")
    return frames


def frame_max_gamma(trajectory, grade, chunk_atoms: int = CHUNK_ATOMS, index=":", device=None) -> np.ndarray:
    """The largest per-atom gamma of every frame ``(F,)``, graded in batches of ~``chunk_atoms``."""
    if int(chunk_atoms) < 1:
        raise ValueError(f"select_extrapolative: chunk_atoms must be >= 1, got {chunk_atoms}")
    grade = _grade_of(grade)
    scores: list[float] = []
    batch: list = []
    size = 0

    def flush():
        gamma = grade.gamma(batch, device=device).cpu().numpy()
        cuts = np.cumsum([len(a) for a in batch])[:-1]
        scores.extend(float(g.max()) if g.size else 0.0 for g in np.split(gamma, cuts))

    for atoms in _frames(trajectory, index):
        batch.append(atoms)
        size += len(atoms)
        if size >= chunk_atoms:
            flush()
            batch, size = [], 0
    if batch:
        flush()
    return np.asarray(scores, dtype=np.float64)


def select_extrapolative(trajectory, grade, n: int = 10, threshold: float | None = None, min_spacing: int = 0,
                         chunk_atoms: int = CHUNK_ATOMS, index=":", device=None) -> Selection:
    """The ``n`` frames of ``trajectory`` (a list of ``ase.Atoms`` or a file ``ase.io`` reads;
    ``index`` picks frames of a file as ``ase.io.read`` does) with the largest max gamma at or
    above ``threshold``, at least ``min_spacing`` frames apart (module docstring)."""
    if int(n) < 0:
        raise ValueError(f"select_extrapolative: n must be >= 0, got {n}")
    if int(min_spacing) < 0:
        raise ValueError(f"select_extrapolative: min_spacing must be >= 0, got {min_spacing}")
    grade = _grade_of(grade)
    scores = frame_max_gamma(trajectory, grade, chunk_atoms, index, device)
    order = np.argsort(-scores, kind="stable")
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= n or (threshold is not None and scores[i] < threshold):
            break
        if all(abs(int(i) - j) >= min_spacing for j in chosen):
            chosen.append(int(i))
    # the chosen frames again (a file is read a second time rather than kept whole), graded per atom
    wanted = set(chosen)
    found = {k: a for k, a in enumerate(_frames(trajectory, index)) if k in wanted}
    picked = [found[i].copy() for i in chosen]
    if picked:
        gamma = grade.gamma(picked, device=device).cpu().numpy()
        for a, g, i in zip(picked, np.split(gamma, np.cumsum([len(a) for a in picked])[:-1]), chosen):
            a.calc = None
            a.arrays["gamma"] = g
            a.info.update({"frame": i, "max_gamma": float(scores[i])})
    idx = np.asarray(chosen, dtype=np.int64)
    return Selection(indices=idx, gammas=scores[idx], frames=picked, max_gamma=scores)
