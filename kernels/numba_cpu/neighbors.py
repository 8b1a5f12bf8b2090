"""Numba cell-list neighbour search of a whole batch, written straight in CSR order.

Contract (used by ``acepy.graph.neighbor_graph`` on the CPU): for every structure ``b`` of the
batch (atoms ``starts[b]:starts[b + 1]``, lattice rows ``boxes[b]``, periodic flags ``pbc[b]``) all
ordered pairs ``(i, j, S)`` with ``|x_j - x_i + S @ box| < cutoff`` (in float64, from the given
positions), ``S`` integer and zero along non-periodic directions, no ``(i, i, 0)``; sorted by
``(i, j, S0, S1, S2)``, so the result is deterministic and ``offsets`` is the CSR index by centre.
The caller pads ``cutoff`` by the rounding error and takes the final ``r < cutoff`` decision in the
batch's dtype.

How: per structure, fractional coordinates ``f = x @ inv(box)``, wrapped into ``[0, 1)`` along
periodic directions (``x = x_w + w @ box`` with integer ``w``), and a grid of ``n_d`` bins per
direction whose thickness ``h_d / n_d`` (``h_d``, the cell's height across direction d, is
``1 / |inv(box)[:, d]|``) is at least the cutoff: two atoms closer than the cutoff then differ by at
most ``M_d = ceil(cutoff n_d / h_d)`` bins along d, since their fractional coordinates differ by at
most ``cutoff / h_d``. Bin offsets ``-M_d..M_d`` are mapped to (bin, image) pairs one to one, so
cells smaller than the cutoff (many images) need no special case and no candidate is seen twice.
Two passes over the atoms (count, then fill and sort each centre's slot), both parallel over atoms.
Within a slot the order by ``S`` equals the order by the image ``s`` of the wrapped search, since
``S = s - w_j + w_i`` shifts all of one ``j``'s candidates by the same vector.

vesin (``vesin.NeighborList``) gives the same pairs; this search exists because vesin's output must
then be sorted (an O(E log E) pass, as long as the search itself) and, for cells a few cutoffs wide,
its search costs 200-350 ns per pair on one thread (``profiling/profile_small.py``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._compile import compile_pair, pick, use_parallel

# the grid of a structure has at most this many bins per atom (plus a few): a cluster in a huge
# vacuum box or a thin slab does not allocate millions of empty bins
BINS_PER_ATOM = 0.5
# bins per cutoff length
SUBDIVISION = 3
# structures with at most this many atoms are searched pair by pair (faster than the cell list up
# to ~256 atoms, measured with cutoffs 5-8.75 A; each pair's images over the
# range that can reach the cutoff), which comes out sorted: no bins, no sort
SMALL_STRUCTURE = 256


def _wrap_structure(positions, inverses, pbc, b, lo, hi, frac, wrap, heights):
    """Structure b's atoms lo..hi-1: fractional coordinates ``frac`` wrapped into [0, 1) along
    periodic directions (``wrap``: the integer image offsets taken off) and the cell's ``heights``
    (3,) across each direction."""
    for d in range(3):
        norm = math.sqrt(inverses[b, 0, d] ** 2 + inverses[b, 1, d] ** 2 + inverses[b, 2, d] ** 2)
        heights[d] = 1.0 / norm
    for a in range(lo, hi):
        for d in range(3):
            f = (positions[a, 0] * inverses[b, 0, d] + positions[a, 1] * inverses[b, 1, d]
                 + positions[a, 2] * inverses[b, 2, d])
            if pbc[b, d]:
                w = math.floor(f)
                f -= w
                if f >= 1.0:  # rounding of f - floor(f) for f just below an integer
                    f -= 1.0
                    w += 1
                wrap[a, d] = np.int64(w)
            else:
                wrap[a, d] = 0
            frac[a, d] = f


_wrap_structure = numba.njit(cache=True, fastmath=False, inline="always")(_wrap_structure)


def _grids_kernel(positions, boxes, inverses, pbc, starts, cutoff, frac, wrap, n_bins, reach, lower, width,
                  heights_out):
    """Per structure: wrapped fractional coordinates, image offsets ``wrap``, bins per direction
    ``n_bins``, bin reach ``reach`` (M_d), and for non-periodic directions the lowest fractional
    coordinate ``lower`` and the bin width ``width`` (periodic: lower 0, width 1 / n)."""
    n_systems = boxes.shape[0]
    for b in range(n_systems):
        lo, hi = starts[b], starts[b + 1]
        n = hi - lo
        if n == 0:
            for d in range(3):
                n_bins[b, d] = 1
                reach[b, d] = 0
                lower[b, d] = 0.0
                width[b, d] = 1.0
            continue
        heights = np.empty(3)
        span = np.empty(3)
        _wrap_structure(positions, inverses, pbc, b, lo, hi, frac, wrap, heights)
        for d in range(3):
            if pbc[b, d]:
                lower[b, d] = 0.0
                span[d] = 1.0
            else:
                f0 = frac[lo, d]
                f1 = frac[lo, d]
                for a in range(lo, hi):
                    f0 = min(f0, frac[a, d])
                    f1 = max(f1, frac[a, d])
                lower[b, d] = f0
                span[d] = f1 - f0
        # bins a third of the cutoff thick (the walk below prunes whole rows of bins whose planes lie
        # beyond the cutoff: finer bins, fewer candidates), fewer along the widest directions while
        # there are too many
        for d in range(3):
            heights_out[b, d] = heights[d]
            n_bins[b, d] = max(1, int(math.floor(SUBDIVISION * span[d] * heights[d] / cutoff)))
        cap = BINS_PER_ATOM * n + 8
        while n_bins[b, 0] * n_bins[b, 1] * n_bins[b, 2] > cap:
            d = 0
            for k in range(1, 3):
                if n_bins[b, k] > n_bins[b, d]:
                    d = k
            n_bins[b, d] = max(1, n_bins[b, d] // 2)
        for d in range(3):
            if pbc[b, d]:
                width[b, d] = 1.0 / n_bins[b, d]
                reach[b, d] = int(math.ceil(cutoff * n_bins[b, d] / heights[d]))
            elif span[d] > 0.0:
                width[b, d] = span[d] / n_bins[b, d]
                reach[b, d] = min(n_bins[b, d] - 1, int(math.ceil(cutoff * n_bins[b, d] / (span[d] * heights[d]))))
            else:
                width[b, d] = 1.0
                reach[b, d] = 0


def _bin_of(frac, a, b, d, lower, width, n_bins):
    k = int(math.floor((frac[a, d] - lower[b, d]) / width[b, d]))
    return min(max(k, 0), n_bins[b, d] - 1)


_bin_of_jit = numba.njit(cache=True, inline="always")(_bin_of)


def _count_kernel(wrapped, binned, frac, boxes, system_of, bin_first, bin_start, bin_atoms, atom_bin, n_bins, reach, lower,
                  width, heights, pbc, cutoff, starts, wrap, small, counts):
    """counts[i]: the pairs of atom i within the (padded) cutoff."""
    for i in numba.prange(wrapped.shape[0]):
        b = system_of[i]
        if starts[b + 1] - starts[b] <= small:
            counts[i] = _visit_small(i, starts[b], starts[b + 1], wrapped, frac, boxes, heights, pbc, b, cutoff, wrap,
                                     None, None, 0)
        else:
            counts[i] = _visit(i, wrapped, binned, frac, boxes, system_of, bin_first, bin_start, bin_atoms, atom_bin,
                               n_bins, reach, lower, width, heights, pbc, cutoff, None, 0)


def _fill_kernel(wrapped, binned, frac, boxes, system_of, bin_first, bin_start, bin_atoms, atom_bin, n_bins, reach, lower,
                 width, heights, pbc, cutoff, starts, wrap, small, offsets, centers, neighbors, shifts):
    """Each centre's slot ``offsets[i]:offsets[i + 1]``: its pairs, sorted by (j, S)."""
    for i in numba.prange(wrapped.shape[0]):
        start = offsets[i]
        stop = offsets[i + 1]
        if stop == start:
            continue
        for k in range(start, stop):
            centers[k] = i
        b = system_of[i]
        if starts[b + 1] - starts[b] <= small:
            _visit_small(i, starts[b], starts[b + 1], wrapped, frac, boxes, heights, pbc, b, cutoff, wrap, neighbors,
                         shifts, start)
            continue
        m = max(reach[b, 0], max(reach[b, 1], reach[b, 2]))
        side = 2 * m + 1
        # the slot of the output's neighbour column holds the sort keys first (no allocation per
        # atom), sorted in place, then decoded into (j, S)
        keys = neighbors[start:stop]
        _visit(i, wrapped, binned, frac, boxes, system_of, bin_first, bin_start, bin_atoms, atom_bin, n_bins, reach, lower,
               width, heights, pbc, cutoff, keys, side)
        keys.sort()
        for k in range(stop - start):
            key = keys[k]
            s2 = key % side - m
            key //= side
            s1 = key % side - m
            key //= side
            s0 = key % side - m
            j = key // side
            neighbors[start + k] = j
            shifts[start + k, 0] = s0 - wrap[j, 0] + wrap[i, 0]
            shifts[start + k, 1] = s1 - wrap[j, 1] + wrap[i, 1]
            shifts[start + k, 2] = s2 - wrap[j, 2] + wrap[i, 2]


def _visit(i, wrapped, binned, frac, boxes, system_of, bin_first, bin_start, bin_atoms, atom_bin, n_bins, reach, lower,
           width, heights, pbc, cutoff, keys, side):
    """Walk atom i's neighbour bins; count the pairs, and with ``keys`` write each one's sort key
    ``((j W + s0 + m) W + s1 + m) W + s2 + m`` (W = ``side`` = 2m + 1). A row of bins whose
    fractional slab along some direction lies farther than the cutoff from atom i (a distance of
    planes: no pair in it can be within the cutoff) is skipped whole."""
    b = system_of[i]
    nx, ny, nz = n_bins[b, 0], n_bins[b, 1], n_bins[b, 2]
    mx, my, mz = reach[b, 0], reach[b, 1], reach[b, 2]
    m = max(mx, max(my, mz))
    home = atom_bin[i]
    bz = home % nz
    by = (home // nz) % ny
    bx = home // (nz * ny)
    xi, yi, zi = wrapped[i, 0], wrapped[i, 1], wrapped[i, 2]
    limit = cutoff * (1.0 + 1e-9)
    cutoff2 = cutoff * cutoff
    found = 0
    for ox in range(-mx, mx + 1):
        if _gap(frac[i, 0], bx + ox, lower[b, 0], width[b, 0], heights[b, 0]) > limit:
            continue
        tx, sx, inside = _wrap_bin(bx + ox, nx, pbc[b, 0])
        if not inside:
            continue
        for oy in range(-my, my + 1):
            if _gap(frac[i, 1], by + oy, lower[b, 1], width[b, 1], heights[b, 1]) > limit:
                continue
            ty, sy, inside = _wrap_bin(by + oy, ny, pbc[b, 1])
            if not inside:
                continue
            for oz in range(-mz, mz + 1):
                if _gap(frac[i, 2], bz + oz, lower[b, 2], width[b, 2], heights[b, 2]) > limit:
                    continue
                tz, sz, inside = _wrap_bin(bz + oz, nz, pbc[b, 2])
                if not inside:
                    continue
                vx = sx * boxes[b, 0, 0] + sy * boxes[b, 1, 0] + sz * boxes[b, 2, 0] - xi
                vy = sx * boxes[b, 0, 1] + sy * boxes[b, 1, 1] + sz * boxes[b, 2, 1] - yi
                vz = sx * boxes[b, 0, 2] + sy * boxes[b, 1, 2] + sz * boxes[b, 2, 2] - zi
                zero = sx == 0 and sy == 0 and sz == 0
                t = bin_first[b] + (tx * ny + ty) * nz + tz
                for p in range(bin_start[t], bin_start[t + 1]):
                    dx = binned[p, 0] + vx
                    dy = binned[p, 1] + vy
                    dz = binned[p, 2] + vz
                    if dx * dx + dy * dy + dz * dz < cutoff2:
                        j = bin_atoms[p]
                        if zero and j == i:
                            continue
                        if keys is not None:
                            keys[found] = ((j * side + sx + m) * side + sy + m) * side + sz + m
                        found += 1
    return found


def _gap(f, t, lower, width, height):
    """The distance (A) from fractional coordinate f to the slab of bin row t (unwrapped index)."""
    lo = lower + t * width
    hi = lo + width
    if f < lo:
        return (lo - f) * height
    if f > hi:
        return (f - hi) * height
    return 0.0


_gap = numba.njit(cache=True, inline="always")(_gap)


def _wrap_bin(t, n, periodic):
    """Bin row ``t`` (unwrapped index) along one direction of ``n`` bins: ``(row in 0..n-1, cell
    shift, whether it exists)``; along a non-periodic direction rows outside 0..n-1 do not."""
    if periodic:
        s = t // n
        return t - s * n, s, True
    return t, 0, 0 <= t < n


_wrap_bin = numba.njit(cache=True, inline="always")(_wrap_bin)


def _visit_small(i, lo, hi, wrapped, frac, boxes, heights, pbc, b, cutoff, wrap, neighbors, shifts, start):
    """Atom i of a small structure (atoms lo..hi-1): every atom j in increasing order, and for each
    the images s in increasing lexicographic order over the per-direction range that can reach the
    cutoff (|f_j - f_i + s_d| h_d <= |r| < cutoff), so the pairs come out sorted by (j, S): no
    bins and no sort. Counts them, and with ``neighbors`` writes them from ``start`` on."""
    xi, yi, zi = wrapped[i, 0], wrapped[i, 1], wrapped[i, 2]
    cutoff2 = cutoff * cutoff
    found = 0
    reach0 = cutoff / heights[b, 0] + 1e-9
    reach1 = cutoff / heights[b, 1] + 1e-9
    reach2 = cutoff / heights[b, 2] + 1e-9
    for j in range(lo, hi):
        d0 = frac[j, 0] - frac[i, 0]
        d1 = frac[j, 1] - frac[i, 1]
        d2 = frac[j, 2] - frac[i, 2]
        a0, z0 = (int(math.ceil(-d0 - reach0)), int(math.floor(-d0 + reach0))) if pbc[b, 0] else (0, 0)
        a1, z1 = (int(math.ceil(-d1 - reach1)), int(math.floor(-d1 + reach1))) if pbc[b, 1] else (0, 0)
        a2, z2 = (int(math.ceil(-d2 - reach2)), int(math.floor(-d2 + reach2))) if pbc[b, 2] else (0, 0)
        dx0 = wrapped[j, 0] - xi
        dy0 = wrapped[j, 1] - yi
        dz0 = wrapped[j, 2] - zi
        for s0 in range(a0, z0 + 1):
            for s1 in range(a1, z1 + 1):
                for s2 in range(a2, z2 + 1):
                    if j == i and s0 == 0 and s1 == 0 and s2 == 0:
                        continue
                    dx = dx0 + s0 * boxes[b, 0, 0] + s1 * boxes[b, 1, 0] + s2 * boxes[b, 2, 0]
                    dy = dy0 + s0 * boxes[b, 0, 1] + s1 * boxes[b, 1, 1] + s2 * boxes[b, 2, 1]
                    dz = dz0 + s0 * boxes[b, 0, 2] + s1 * boxes[b, 1, 2] + s2 * boxes[b, 2, 2]
                    if dx * dx + dy * dy + dz * dz < cutoff2:
                        if neighbors is not None:
                            k = start + found
                            neighbors[k] = j
                            shifts[k, 0] = s0 - wrap[j, 0] + wrap[i, 0]
                            shifts[k, 1] = s1 - wrap[j, 1] + wrap[i, 1]
                            shifts[k, 2] = s2 - wrap[j, 2] + wrap[i, 2]
                        found += 1
    return found


_visit_small = numba.njit(cache=True, fastmath=False)(_visit_small)
_visit = numba.njit(cache=True, fastmath=False)(_visit)
_count = compile_pair(_count_kernel)
_fill = compile_pair(_fill_kernel)
_grids = numba.njit(cache=True, fastmath=False)(_grids_kernel)


def _small_pairs_kernel(positions, boxes, inverses, pbc, starts, cutoff):
    """:func:`batch_pairs` of a batch whose structures are all small (searched pair by pair), in
    one serial launch: no bins, and none of the cell list's arrays or its four launches (on an
    8-atom cell those cost more than the search)."""
    n_atoms, n_systems = positions.shape[0], boxes.shape[0]
    frac = np.empty((n_atoms, 3))
    wrap = np.empty((n_atoms, 3), dtype=np.int64)
    heights = np.empty((n_systems, 3))
    wrapped = np.empty((n_atoms, 3))
    for b in range(n_systems):
        lo, hi = starts[b], starts[b + 1]
        _wrap_structure(positions, inverses, pbc, b, lo, hi, frac, wrap, heights[b])
        for a in range(lo, hi):  # x_w = x - w @ box
            for d in range(3):
                wrapped[a, d] = positions[a, d] - (wrap[a, 0] * boxes[b, 0, d] + wrap[a, 1] * boxes[b, 1, d]
                                                   + wrap[a, 2] * boxes[b, 2, d])
    offsets = np.zeros(n_atoms + 1, dtype=np.int64)
    for b in range(n_systems):
        for i in range(starts[b], starts[b + 1]):
            offsets[i + 1] = offsets[i] + _visit_small(i, starts[b], starts[b + 1], wrapped, frac, boxes, heights, pbc,
                                                       b, cutoff, wrap, None, None, 0)
    n_edges = offsets[n_atoms]
    centers = np.empty(n_edges, dtype=np.int64)
    neighbors = np.empty(n_edges, dtype=np.int64)
    shifts = np.empty((n_edges, 3), dtype=np.int64)
    for b in range(n_systems):
        for i in range(starts[b], starts[b + 1]):
            centers[offsets[i]:offsets[i + 1]] = i
            _visit_small(i, starts[b], starts[b + 1], wrapped, frac, boxes, heights, pbc, b, cutoff, wrap, neighbors,
                         shifts, offsets[i])
    return centers, neighbors, shifts, offsets


_small_pairs = numba.njit(cache=True, fastmath=False)(_small_pairs_kernel)


def _bins_kernel(frac, starts, n_bins, lower, width, bin_first, atom_bin, bin_start, bin_atoms):
    """Counting sort of the atoms into their structure's bins (atoms in increasing order per bin)."""
    n_systems = starts.shape[0] - 1
    for b in range(n_systems):
        nx, ny, nz = n_bins[b, 0], n_bins[b, 1], n_bins[b, 2]
        for a in range(starts[b], starts[b + 1]):
            kx = _bin_of_jit(frac, a, b, 0, lower, width, n_bins)
            ky = _bin_of_jit(frac, a, b, 1, lower, width, n_bins)
            kz = _bin_of_jit(frac, a, b, 2, lower, width, n_bins)
            atom_bin[a] = (kx * ny + ky) * nz + kz
            bin_start[bin_first[b] + atom_bin[a] + 1] += 1
    for t in range(bin_start.shape[0] - 1):
        bin_start[t + 1] += bin_start[t]
    fill = bin_start[:-1].copy()
    for b in range(n_systems):
        for a in range(starts[b], starts[b + 1]):
            t = bin_first[b] + atom_bin[a]
            bin_atoms[fill[t]] = a
            fill[t] += 1


_bins = numba.njit(cache=True, fastmath=False)(_bins_kernel)


def batch_pairs(positions: np.ndarray, boxes: np.ndarray, pbc: np.ndarray, starts: np.ndarray, cutoff: float,
                small_structure: int = SMALL_STRUCTURE, inverses: np.ndarray | None = None):
    """``(centers, neighbors, shifts, offsets)`` (int64 numpy) of every structure of a batch: see the
    module docstring. ``positions (N, 3)`` and ``boxes (B, 3, 3)`` float64 (invertible boxes: the
    caller completes non-periodic rows), ``pbc (B, 3)`` bool, ``starts (B + 1,)`` int64. Structures
    of at most ``small_structure`` atoms are searched pair by pair, the others with the cell list.
    ``inverses``: ``np.linalg.inv(boxes)`` where the caller keeps it."""
    n_atoms, n_systems = positions.shape[0], boxes.shape[0]
    if inverses is None:
        inverses = np.linalg.inv(boxes) if n_systems else boxes.copy()
    if not use_parallel(n_atoms * 64) and (n_systems == 0 or int(np.diff(starts).max()) <= small_structure):
        return _small_pairs(positions, boxes, inverses, pbc, starts, float(cutoff))
    frac = np.empty((n_atoms, 3))
    wrap = np.empty((n_atoms, 3), dtype=np.int64)
    n_bins = np.empty((n_systems, 3), dtype=np.int64)
    reach = np.empty((n_systems, 3), dtype=np.int64)
    lower = np.empty((n_systems, 3))
    width = np.empty((n_systems, 3))
    heights = np.empty((n_systems, 3))
    _grids(positions, boxes, inverses, pbc, starts, float(cutoff), frac, wrap, n_bins, reach, lower, width, heights)
    side = 2 * reach.max(axis=1) + 1 if n_systems else np.zeros(0, dtype=np.int64)
    sizes = np.diff(starts)
    if n_systems and float((sizes.astype(np.float64) * side.astype(np.float64) ** 3).max()) >= 2.0**62:
        raise ValueError(f"neighbour search: the cutoff {cutoff:.6g} A is so much larger than a cell that the "
                         "images do not fit its sort key")
    # the wrapped positions: x_w = x - w @ box, whose fractional coordinates lie in [0, 1)
    system_of = np.repeat(np.arange(n_systems, dtype=np.int64), sizes)
    wrapped = positions - np.einsum("ak,akl->al", wrap.astype(np.float64), boxes[system_of]) if n_atoms else positions
    bins_per = n_bins.prod(axis=1)
    bin_first = np.zeros(n_systems + 1, dtype=np.int64)
    np.cumsum(bins_per, out=bin_first[1:])
    atom_bin = np.empty(n_atoms, dtype=np.int64)
    bin_start = np.zeros(int(bin_first[-1]) + 1, dtype=np.int64)
    bin_atoms = np.empty(n_atoms, dtype=np.int64)
    _bins(frac, starts, n_bins, lower, width, bin_first, atom_bin, bin_start, bin_atoms)

    counts = np.empty(n_atoms, dtype=np.int64)
    work = n_atoms * 64
    binned = wrapped[bin_atoms]  # positions in bin order: the walk reads them contiguously
    args = (wrapped, binned, frac, boxes, system_of, bin_first, bin_start, bin_atoms, atom_bin, n_bins, reach, lower, width,
            heights, pbc, float(cutoff))
    pick(_count, work)(*args, starts, wrap, small_structure, counts)
    offsets = np.zeros(n_atoms + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    n_edges = int(offsets[-1])
    neighbors = np.empty(n_edges, dtype=np.int64)
    shifts = np.empty((n_edges, 3), dtype=np.int64)
    centers = np.empty(n_edges, dtype=np.int64)
    pick(_fill, work)(*args, starts, wrap, small_structure, offsets, centers, neighbors, shifts)
    return centers, neighbors, shifts, offsets


def _edge_vectors_kernel(positions, cells, edge_system, centers, neighbors, shifts, out):
    """``out[e] = x_j - x_i + S @ cell[b]``, the order of operations of ``acepy.graph.edge_vectors``'s
    torch formula written out (the difference of positions plus the lattice vector)."""
    for e in numba.prange(centers.shape[0]):
        b = edge_system[e]
        i = centers[e]
        j = neighbors[e]
        s0 = np.float64(shifts[e, 0])
        s1 = np.float64(shifts[e, 1])
        s2 = np.float64(shifts[e, 2])
        for d in range(3):
            lattice = s0 * cells[b, 0, d] + s1 * cells[b, 1, d] + s2 * cells[b, 2, d]
            out[e, d] = (positions[j, d] - positions[i, d]) + lattice


_edge_vectors = compile_pair(_edge_vectors_kernel)


def edge_vectors(positions: np.ndarray, cells: np.ndarray, edge_system: np.ndarray, centers: np.ndarray,
                 neighbors: np.ndarray, shifts: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The edge vectors (E, 3) of a float64 batch into ``out``, parallel over edges."""
    pick(_edge_vectors, centers.shape[0])(positions, cells, edge_system, centers, neighbors, shifts, out)
    return out
