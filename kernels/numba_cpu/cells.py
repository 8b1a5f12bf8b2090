"""What the checks before a neighbour search ask of one cell, in one compiled call.

``acepy.batch.check_periodic_cells`` and ``acepy.graph_checks.search_boxes`` ask of every new cell
whether its periodic vectors span a lattice, whether it is reduced, its volume and its inverse:
some twenty NumPy calls on 3 x 3 arrays, ~90 us, which a relaxation with a moving cell (ASE's
cell filters) pays every step, where the ACE kernel of a small cell takes a few hundred. Here
they are scalar arithmetic on the nine numbers. Callers keep their NumPy code for batches and
for anything this call does not clear (a near-singular or unreduced cell, partial periodicity):
the named errors and the cell reduction stay there.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, fastmath=False)
def cell_facts(cell, pbc, inverse):
    """For one cell ``(3, 3)`` (rows are vectors) and ``pbc (3,)``: ``(zero_periodic, normalized_volume,
    reduced, det)`` and the inverse matrix into ``inverse (3, 3)`` (left unset where ``det == 0``).

    ``zero_periodic``: a periodic vector has length 0; ``normalized_volume``: the volume of the unit
    periodic vectors (non-periodic ones replaced by orthonormal stand-ins: 1 for orthogonal
    vectors, 0 for dependent ones; as ``acepy.batch._check_periodic_vectors``); ``reduced``: every
    projection of one vector on another at most half that one's squared length (1e-9 slack, as
    ``acepy.graph_checks._is_reduced``); ``det``: the signed determinant (cofactor expansion)."""
    unit = np.zeros((3, 3))
    zero_periodic = False
    for a in range(3):
        length = np.sqrt(cell[a, 0] ** 2 + cell[a, 1] ** 2 + cell[a, 2] ** 2)
        if pbc[a]:
            if length == 0.0:
                zero_periodic = True
            scale = 1.0 / max(length, 1e-300)
            for d in range(3):
                unit[a, d] = cell[a, d] * scale
    gram = np.zeros((3, 3))  # of the unit periodic vectors, identity rows/columns for the others
    metric = np.zeros((3, 3))  # of the cell itself
    for a in range(3):
        for b in range(3):
            gram[a, b] = unit[a, 0] * unit[b, 0] + unit[a, 1] * unit[b, 1] + unit[a, 2] * unit[b, 2]
            metric[a, b] = cell[a, 0] * cell[b, 0] + cell[a, 1] * cell[b, 1] + cell[a, 2] * cell[b, 2]
        if not pbc[a]:
            gram[a, a] = 1.0
    g = (gram[0, 0] * (gram[1, 1] * gram[2, 2] - gram[1, 2] * gram[2, 1])
         - gram[0, 1] * (gram[1, 0] * gram[2, 2] - gram[1, 2] * gram[2, 0])
         + gram[0, 2] * (gram[1, 0] * gram[2, 1] - gram[1, 1] * gram[2, 0]))
    normalized_volume = np.sqrt(max(g, 0.0))
    reduced = True
    for a in range(3):
        for b in range(3):
            if a != b and abs(metric[a, b]) > (0.5 + 1e-9) * metric[b, b]:
                reduced = False
    # inverse by the adjugate: inverse[i, j] = cofactor[j, i] / det
    c00 = cell[1, 1] * cell[2, 2] - cell[1, 2] * cell[2, 1]
    c01 = cell[1, 2] * cell[2, 0] - cell[1, 0] * cell[2, 2]
    c02 = cell[1, 0] * cell[2, 1] - cell[1, 1] * cell[2, 0]
    det = cell[0, 0] * c00 + cell[0, 1] * c01 + cell[0, 2] * c02
    if det != 0.0:
        inverse[0, 0] = c00 / det
        inverse[1, 0] = c01 / det
        inverse[2, 0] = c02 / det
        inverse[0, 1] = (cell[0, 2] * cell[2, 1] - cell[0, 1] * cell[2, 2]) / det
        inverse[1, 1] = (cell[0, 0] * cell[2, 2] - cell[0, 2] * cell[2, 0]) / det
        inverse[2, 1] = (cell[0, 1] * cell[2, 0] - cell[0, 0] * cell[2, 1]) / det
        inverse[0, 2] = (cell[0, 1] * cell[1, 2] - cell[0, 2] * cell[1, 1]) / det
        inverse[1, 2] = (cell[0, 2] * cell[1, 0] - cell[0, 0] * cell[1, 2]) / det
        inverse[2, 2] = (cell[0, 0] * cell[1, 1] - cell[0, 1] * cell[1, 0]) / det
    return zero_periodic, normalized_volume, reduced, det
