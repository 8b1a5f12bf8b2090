"""The checks and estimates made before a neighbour search (:func:`acepy.graph.neighbor_graph`):
cutoff and ``max_pairs`` arguments, the pair-count estimate of every structure (fully periodic
reduced cells all at once, the others one by one), the reduction of skewed periodic cells, and the
box handed to the cell-list search. Host-side NumPy only.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from acepy.batch import CellMemo
from acepy.errors import TooManyPairsError
from acepy.kernels.numba_cpu.cells import cell_facts

# The default limit of the pair-count estimate made before each neighbour search (max_pairs): an
# evaluation holds 350-550 bytes per pair (graph, edge vectors, gradients; measured with the ACE
# model), so this is about 7 GB, and 1.7e7 pairs are 1e5 atoms with 170 neighbours each.
DEFAULT_MAX_PAIRS = 2**24
_BYTES_PER_PAIR = 400


def search_boxes(pos64: np.ndarray, cell64: np.ndarray, pbc: np.ndarray, starts: np.ndarray, cutoff: float,
                 max_pairs: int | None) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """Check every structure's pair estimate against ``max_pairs`` (:class:`TooManyPairsError`)
    and give the search's boxes ``(B, 3, 3)``, their inverses, the unimodular maps of the
    structures whose cells were reduced (``{b: U}``) and which structures are simple (fully
    periodic, reduced). All but the check depend on the cells alone: kept for the last few cells
    (``_LAYOUTS``)."""
    simple, volumes, boxes, inverses, unimodular = _LAYOUTS.get(cell64, pbc, lambda: _cell_layout(cell64, pbc))
    if max_pairs is None:
        return boxes, inverses, unimodular, simple
    if starts.shape[0] == 2 and volumes.size:  # one fully periodic reduced cell: scalars, no array ops
        n = float(starts[1] - starts[0])
        if n * n * (_BALL[3](cutoff) / float(volumes[0])) > max_pairs:
            _check_pair_estimate(0, pos64, cell64[0], pbc[0], cutoff, max_pairs)
        return boxes, inverses, unimodular, simple
    # Fully periodic cells with reduced vectors (the usual case) are checked for all structures at
    # once; the others (slabs, clusters, skewed cells) one by one.
    sizes = np.diff(starts).astype(np.float64)
    if volumes.size:
        idx = np.flatnonzero(simple)
        estimate = sizes[idx] ** 2 * (_BALL[3](cutoff) / volumes)
        over = idx[estimate > max_pairs]
        if over.size:
            b = int(over[0])
            _check_pair_estimate(b, pos64[starts[b]:starts[b + 1]], cell64[b], pbc[b], cutoff, max_pairs)
    if not simple.all():
        for b in np.flatnonzero(~simple).tolist():
            lo, hi = int(starts[b]), int(starts[b + 1])
            if hi > lo:
                _check_pair_estimate(b, pos64[lo:hi], cell64[b], pbc[b], cutoff, max_pairs)
    return boxes, inverses, unimodular, simple


def _cell_layout(cell64: np.ndarray, pbc: np.ndarray):
    """``(simple (B,), |det| of the simple cells, boxes (B, 3, 3), their inverses, {b: U})``: shared
    by the calls on these cells, never written by the search."""
    if cell64.shape[0] == 1 and pbc.all():  # one periodic cell (a moving cell: new each call) in one call
        inverse = np.empty((1, 3, 3))
        _, _, reduced, det = cell_facts(cell64[0], pbc[0], inverse[0])
        if reduced and det != 0.0:
            simple, volumes = np.ones(1, dtype=bool), np.array([abs(det)])
            for a in (simple, volumes):
                a.flags.writeable = False
            return simple, volumes, cell64.copy(), inverse, {}
    boxes = cell64.copy()
    unimodular: dict[int, np.ndarray] = {}
    simple = pbc.all(axis=1) & _is_reduced(cell64)
    volumes = np.abs(np.linalg.det(cell64[simple])) if simple.any() else np.zeros(0)
    for b in np.flatnonzero(~simple).tolist():
        box, u = _reduced_cell(cell64[b], pbc[b])
        boxes[b] = _search_box(box, pbc[b])
        if u is not None:
            unimodular[b] = u
    inverses = np.linalg.inv(boxes) if len(boxes) else boxes.copy()
    for a in (simple, volumes):  # (the boxes go to Numba kernels, which compile read-only arrays anew)
        a.flags.writeable = False
    return simple, volumes, boxes, inverses, unimodular


_LAYOUTS = CellMemo()


def _check_cutoff(cutoff: float) -> None:
    if isinstance(cutoff, bool) or not (isinstance(cutoff, numbers.Real) and np.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff must be a finite number > 0, got {cutoff!r}")


def _check_max_pairs(max_pairs):
    if max_pairs is None:
        return None
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, numbers.Integral) or max_pairs < 1:
        raise ValueError(f"max_pairs must be a positive integer or None (no limit), got {max_pairs!r}")
    return int(max_pairs)


_BALL = (lambda r: 1.0, lambda r: 2.0 * r, lambda r: math.pi * r * r, lambda r: 4.0 / 3.0 * math.pi * r**3)


def estimate_pairs(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> float:
    """About how many (ordered) pairs of one structure lie within ``cutoff``, from the sizes alone.

    Fully periodic: N x (N / V) x (4/3) pi rc^3, the atom density times the cutoff sphere (every
    pair of a nearly singular cell is counted, images included). With d < 3 periodic directions:
    N^2 x min(images, (4/3) pi rc^3 / V_eff), where images = max(1, V_d(rc) / A_d) counts the
    lattice points of the periodic vectors (covolume A_d) within rc and V_eff = A_d x the extent
    of the atoms along the other directions.
    """
    n = len(positions)
    if n == 0:
        return 0.0
    periodic = cell[pbc]
    d = len(periodic)
    covolume = math.sqrt(max(float(np.linalg.det(periodic @ periodic.T)), 0.0)) if d else 1.0
    sphere = _BALL[3](cutoff)
    if d == 3:
        return n * n * (sphere / covolume if covolume > 0 else math.inf)
    images = max(1.0, _BALL[d](cutoff) / covolume) if covolume > 0 else math.inf
    if d:
        _, _, vt = np.linalg.svd(periodic)
        across = vt[d:]
    else:
        across = np.eye(3)
    extent = np.ptp(positions @ across.T, axis=0)
    volume = covolume * float(np.prod(extent))
    return n * n * min(images, sphere / volume if volume > 0 else math.inf)


def _check_pair_estimate(b: int, positions, cell, pbc, cutoff: float, max_pairs: int | None) -> None:
    if max_pairs is None:
        return
    estimate = estimate_pairs(positions, cell, pbc, cutoff)
    if estimate <= max_pairs:
        return
    n = len(positions)
    how = "atom density x cutoff sphere" if pbc.all() else "atom pairs x periodic images within the cutoff"
    raise TooManyPairsError(
        f"structure {b}: the neighbour list within the cutoff {cutoff:.6g} A would hold about {estimate:.3g} pairs "
        f"({n} atoms; {how}), more than max_pairs = {max_pairs} (about {max_pairs * _BYTES_PER_PAIR / 1e9:.3g} GB to "
        "evaluate). "
        "Check the cell and the potential's cutoffs; if this is meant, raise the limit: acepy.load(..., "
        "max_pairs=...), or model.graph_cache.max_pairs = ... (None: no limit)")


def _reduced_cell(cell: np.ndarray, pbc: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The cell with its periodic vectors pairwise reduced (each one's projection on every other at
    most half that one's length), and the integer matrix U with reduced = U @ given over all three
    rows (non-periodic rows kept); U is None when the given vectors are reduced already.

    A cell-list search's time grows with the number of cells it scans; for a skewed cell that number
    is huge (minutes for ``[[4, 0, 0], [4, 4e-4, 0], [0, 0, 4]]``), for the reduced one it is not. The
    lattice, and so every pair and distance, is the same.
    """
    rows = np.flatnonzero(pbc)
    basis = cell[rows].copy()
    gram = basis @ basis.T
    # reduced already (each projection at most half the other's length: the loop below would not
    # change anything): the common case, one product instead of the pairwise loop
    if np.all(np.abs(gram - np.diag(np.diag(gram))) <= (0.5 + 1e-9) * np.diag(gram)[None, :]):
        return cell, None
    u = np.eye(len(rows), dtype=np.int64)
    changed, steps = True, 0
    while changed and steps < 1000:
        changed = False
        for i in range(len(rows)):
            for k in range(len(rows)):
                if i == k:
                    continue
                mu = float(basis[i] @ basis[k]) / float(basis[k] @ basis[k])
                if abs(mu) > 0.5 + 1e-9:  # strictly shortens basis[i]: the loop ends
                    q = round(mu)
                    basis[i] -= q * basis[k]
                    u[i] -= q * u[k]
                    changed = True
        steps += 1
    if steps == 1 and not changed:
        return cell, None
    full = np.eye(3, dtype=np.int64)
    full[np.ix_(rows, rows)] = u
    reduced = cell.copy()
    reduced[rows] = basis
    return reduced, full


def _is_reduced(cells: np.ndarray) -> np.ndarray:
    """(B,) whether all three vectors of each cell are pairwise reduced, as :func:`_reduced_cell`
    tests it (each projection at most half the other vector's length)."""
    gram = cells @ cells.transpose(0, 2, 1)
    diag = np.diagonal(gram, axis1=1, axis2=2)
    off = np.abs(gram - diag[:, :, None] * np.eye(3))
    return np.all(off <= (0.5 + 1e-9) * diag[:, None, :], axis=(1, 2))


def _search_box(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """The box handed to the search: the cell, with non-periodic rows replaced by unit vectors
    orthogonal to the periodic ones.

    No shift is ever taken along a non-periodic direction, so those rows never enter ``r_ij``;
    ASE lets them be zero (slabs, clusters) or anything at all. The search takes fractional
    coordinates (it inverts the box), so the box must be invertible; unit rows orthogonal to the
    periodic ones make it so without changing any distance.
    """
    if pbc.all():
        return cell
    box = np.zeros((3, 3))
    periodic = cell[pbc]
    if len(periodic):
        # The last right-singular vectors of the periodic rows span their orthogonal complement.
        _, _, vt = np.linalg.svd(periodic)
        complement = vt[len(periodic):]
    else:
        complement = np.eye(3)
    box[pbc] = periodic
    box[~pbc] = complement
    return box
