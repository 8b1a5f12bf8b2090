"""Active sets and the extrapolation grade gamma (D-optimality), as pacemaker defines them.

An active set of species mu is a square matrix A_mu (K x K): K per-atom projection rows (one per
basis function of mu) chosen from training environments so that |det A_mu| is (locally) maximal.
The extrapolation grade of an atom with projection row b is

    gamma = max_k |(b A_mu^-1)_k|,

the largest coefficient needed to write b in the active rows: gamma <= 1 inside the training
data's "volume", > 1 outside (Lysogorskiy et al., "Active learning strategies for atomic cluster
expansion models", Phys. Rev. Materials 7, 043801 (2023); Podryabinkin & Shapeev, Comput. Mater.
Sci. 140, 171 (2017)). Rows are python-ace's projections: for a linear embedding the B-basis
function values per atom (rank 1 first, in the potential's function order); with ``full`` rows
(python-ace's ``is_full``, ``pace_activeset -f``) dE_i/dc, one entry per (density, function),
density-major (:mod:`acepy.fit.extrapolation`).

Active sets are chosen with MaxVol (Goreinov, Oseledets, Savostyanov, Tyrtyshnikov and
Zamarashkin, "How to find a good submatrix", in Matrix Methods: Theory, Algorithms and
Applications, World Scientific 2010, pp. 247-256): start from the rows a pivoted QR picks, then swap
in the row with the largest coefficient while it exceeds ``tol``; every swap multiplies |det| by
that coefficient, so the loop ends.

The ``.asi`` file (python-ace's ``pace_activeset`` writes it; ``PyACECalculator.set_active_set`` and
LAMMPS ``pair_style pace/extrapolation`` read it; layout read from python-ace's
``pyace/activelearning.py``, ``save_active_inverse_set`` / ``load_active_inverse_set``): a numpy
``.npz`` archive (``np.savez`` to an open file, so no suffix is added) with one entry per element,
named by its chemical symbol, holding the float64 **inverse** A_mu^-1 (K x K). Readers take the
entries in sorted key order as species 0, 1, ... (pacemaker's elements are sorted).
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acepy.errors import StructureError

__all__ = ["ActiveSet", "maxvol", "read_asi", "write_asi", "extrapolation_grade_from_projections"]

# Columns that never vary in the data (a function that is zero on every environment, e.g. a
# rank-1 function of a species that never occurs as a neighbour) make every square submatrix
# singular. python-ace adds 1e-16 on a diagonal of those columns; the same is done here, so that
# the active sets and grades agree with its files.
ZERO_COLUMN_EPSILON = 1e-16


def maxvol(a: np.ndarray, tol: float = 1.001, max_iters: int = 300,
           check_rank: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``I`` (K,) of ``a`` (n x K, n >= K) whose square submatrix has a locally maximal volume,
    and ``B = a @ inv(a[I])`` (n x K), whose entries are then all at most ``tol`` in absolute value
    (unless ``max_iters`` swaps ran out first). A matrix of numerical rank below K (numpy's
    ``matrix_rank`` rule on the pivoted QR) raises, unless ``check_rank`` is False."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"maxvol: expected a 2-D matrix, got shape {a.shape}")
    n, k = a.shape
    if n < k:
        raise ValueError(f"maxvol: {n} rows cannot give a {k} x {k} submatrix (need at least as many rows "
                         "(environments) as columns (functions))")
    if not np.all(np.isfinite(a)):
        raise ValueError("maxvol: the matrix has non-finite entries")
    if not (tol >= 1.0):
        raise ValueError(f"maxvol: tol must be >= 1, got {tol}")
    from scipy.linalg import LinAlgWarning, qr, solve

    # a rank-revealing start: the columns that pivoted QR of a^T picks are well-conditioned rows
    _, r, piv = qr(a.T, mode="economic", pivoting=True)
    rows = np.array(piv[:k])
    if check_rank and k and abs(r[k - 1, k - 1]) <= abs(r[0, 0]) * np.finfo(float).eps * max(n, k):
        raise ValueError(f"maxvol: the {n} x {k} matrix has rank below {k} (columns linearly dependent on these "
                         "rows): no active set; add more varied environments")
    with warnings.catch_warnings():
        if not check_rank:  # python-ace's epsilon columns: ill-conditioned on purpose
            warnings.simplefilter("ignore", LinAlgWarning)
        b = solve(a[rows].T, a.T).T  # a @ inv(a[rows])
    for _ in range(max_iters):
        i, j = np.unravel_index(np.argmax(np.abs(b)), b.shape)
        pivot = b[i, j]
        if abs(pivot) <= tol:
            break
        # row i replaces row rows[j]: B <- B - B[:, j] (B[i, :] - e_j) / B[i, j] (Sherman-Morrison)
        step = b[i].copy()
        step[j] -= 1.0
        b -= np.outer(b[:, j] / pivot, step)
        rows[j] = i
    return rows, b


def extrapolation_grade_from_projections(projections: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """gamma (n,) = max_k |(b A^-1)_k| of projection rows ``b`` (n x K) against A^-1 (K x K)."""
    projections = np.asarray(projections, dtype=np.float64)
    if projections.shape[0] == 0:
        return np.zeros(0)
    return np.abs(projections @ inverse).max(axis=1)


@dataclass
class ActiveSet:
    """Per element: the active rows A (K x K), their inverse, and which rows of the data they were."""

    inverses: dict[str, np.ndarray]
    matrices: dict[str, np.ndarray] | None = None
    rows: dict[str, np.ndarray] | None = None

    @property
    def elements(self) -> list[str]:
        return sorted(self.inverses)

    def sizes(self) -> dict[str, int]:
        return {el: int(m.shape[0]) for el, m in self.inverses.items()}

    def gamma(self, projections: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """gamma per atom for projection rows per element ``{element: (n, K)}``."""
        out = {}
        for el, b in projections.items():
            if el not in self.inverses:
                raise StructureError(f"extrapolation grade: the active set has no entry for {el} (it has "
                                     f"{self.elements})")
            inv = self.inverses[el]
            b = np.asarray(b, dtype=np.float64)
            if b.ndim != 2 or b.shape[1] != inv.shape[0]:
                raise StructureError(f"extrapolation grade: {el} projections have {b.shape[-1]} columns, the active "
                                     f"set's {el} entry is {inv.shape[0]} x {inv.shape[1]} (a file for another basis, "
                                     "or linear vs full projections)")
            out[el] = extrapolation_grade_from_projections(b, inv)
        return out

    @classmethod
    def select(cls, projections: dict[str, np.ndarray], tol: float = 1.001, max_iters: int = 300) -> "ActiveSet":
        """MaxVol active sets from projection rows per element ``{element: (n, K)}`` (n >= K)."""
        inverses, matrices, rows = {}, {}, {}
        for el in sorted(projections):
            a = np.array(projections[el], dtype=np.float64)  # a copy: the epsilon below must not leak out
            if a.ndim != 2:
                raise ValueError(f"active set: {el} projections must be (atoms, functions), got shape {a.shape}")
            if a.shape[0] < a.shape[1]:
                raise ValueError(f"active set: {el} has {a.shape[0]} atomic environments for {a.shape[1]} functions; "
                                 "an active set needs at least as many environments as functions (add structures)")
            constant = np.std(a, axis=0) == 0
            try:
                if constant.any():
                    # the rank test on the varying columns (the epsilon columns are at rounding level)
                    maxvol(a[:, ~constant], tol=np.inf, max_iters=0)
                    pad = np.zeros((a.shape[0], int(constant.sum())))
                    np.fill_diagonal(pad, ZERO_COLUMN_EPSILON)
                    a[:, constant] += pad
                sel, _ = maxvol(a, tol=tol, max_iters=max_iters, check_rank=not constant.any())
            except ValueError as err:
                raise ValueError(f"active set of {el}: {err}") from None
            matrices[el] = a[sel]
            inverses[el] = np.linalg.inv(a[sel])
            rows[el] = sel
        return cls(inverses=inverses, matrices=matrices, rows=rows)

    def write(self, path) -> Path:
        return write_asi(path, self.inverses)

    @classmethod
    def read(cls, path, sizes: dict[str, int] | None = None) -> "ActiveSet":
        return cls(inverses=read_asi(path, sizes))


def read_asi(path, sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """The inverse active sets of an ``.asi`` file, ``{element: (K, K) float64}``.

    ``sizes`` (``{element: K}``, the projection width of each element of the potential it is used
    with) checks that the file belongs to that potential. Everything malformed raises ``ValueError``
    naming the file and the entry.
    """
    from ase.data import atomic_numbers

    path = Path(path)
    what = "not an active-set (.asi) file, i.e. a numpy .npz archive with one K x K inverse per element"
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: {what} ({type(err).__name__}: {err})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: {what} (it holds one array, a .npy file)")
    try:
        with data:
            entries = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: {what} ({type(err).__name__}: {err})") from None
    if not entries:
        raise ValueError(f"{path}: the active-set file has no entries")
    out = {}
    for key in sorted(entries):
        m = entries[key]
        if key not in atomic_numbers or atomic_numbers[key] == 0:
            raise ValueError(f"{path}: entry {key!r} is not a chemical element symbol (entries {sorted(entries)})")
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
            raise ValueError(f"{path}: entry {key!r} must be a square K x K matrix, got shape {m.shape}")
        if not np.issubdtype(m.dtype, np.floating):
            raise ValueError(f"{path}: entry {key!r} must hold floating-point numbers, got {m.dtype}")
        if not np.all(np.isfinite(m)):
            raise ValueError(f"{path}: entry {key!r} has non-finite values")
        out[key] = m.astype(np.float64)
    if sizes is not None:
        for el, k in sizes.items():
            if el not in out:
                raise ValueError(f"{path}: no entry for {el} (the file has {sorted(out)})")
            if out[el].shape[0] != k:
                raise ValueError(f"{path}: entry {el!r} is {out[el].shape[0]} x {out[el].shape[0]}, the potential has "
                                 f"{k} projections for {el} (an active set of another potential?)")
    return out


def write_asi(path, inverses: dict[str, np.ndarray]) -> Path:
    """Write ``{element: (K, K) inverse}`` as an ``.asi`` file (python-ace's layout), atomically: a
    temporary file in the same folder, renamed over the target."""
    from ase.data import atomic_numbers

    path = Path(path)
    for el, m in inverses.items():
        m = np.asarray(m)
        if el not in atomic_numbers or atomic_numbers[el] == 0:
            raise ValueError(f"write_asi: {el!r} is not a chemical element symbol")
        if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.all(np.isfinite(m)):
            raise ValueError(f"write_asi: {el}: need a finite square matrix, got shape {m.shape}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **{el: np.asarray(inverses[el], dtype=np.float64) for el in sorted(inverses)})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
