"""Big batches in bounded memory: ``Stack.evaluate`` over chunks of whole structures.

A call's memory is dominated by its neighbour pairs (graph, edge vectors, per-edge gradients and
the ACE intermediates: 350-550 bytes per pair, measured; ``acepy.graph_checks._BYTES_PER_PAIR``). A list
of 10^4 small cells in one call held 2.9 GB (issue 18). Here the structures are grouped, in order
and never split, into chunks whose estimated pair count (:func:`acepy.graph_checks.estimate_pairs`:
atom density x cutoff sphere) stays under ``chunk_pairs``; each chunk is one batched call and the
results are concatenated, so the output is that of one call (the chunks are independent
structures: the same numbers to rounding).

What depends on the whole input is decided once, before the first chunk: whether stress is
computed (every structure must have a cell of non-zero volume, or the user asked for it), and the
structure numbering of ``system_idx``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from acepy.batch import Batch
from acepy.graph_checks import _BYTES_PER_PAIR, estimate_pairs

# The default pair budget of one chunk: 2^19 pairs, about 0.2 GB at the measured bytes per pair.
# Measured on 3000 8-atom Al-Ni cells (1 thread, CPU time per structure): 2^18 0.90-1.01 ms, 2^19
# 0.69-0.82, 2^20 0.86-0.87, 2^21 0.98-1.06: beyond 2^19 the per-chunk arrays outgrow glibc's
# largest reused heap block (32 MB) and every chunk pays fresh page faults; below, the per-chunk
# Python work shows.
DEFAULT_CHUNK_PAIRS = 2**19
# A progress bar is shown (progress=None) for inputs of at least this many structures and 2 chunks.
PROGRESS_MIN_STRUCTURES = 1000


def _geometry(structures) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Atoms per structure (B,), cells (B, 3, 3), pbc (B, 3) and positions (list of (n, 3)) of a
    list of ``ase.Atoms`` or a :class:`Batch`."""
    if isinstance(structures, Batch):
        offsets = structures.atom_offsets.cpu().numpy()
        counts = np.diff(offsets)
        cells = structures.cell.detach().cpu().double().numpy()
        pbc = structures.pbc.cpu().numpy()
        pos = structures.positions.detach().cpu().double().numpy()
        positions = [pos[offsets[b]:offsets[b + 1]] for b in range(len(counts))]
        return counts, cells, pbc, positions
    counts = np.array([len(a) for a in structures], dtype=np.int64)
    cells = np.stack([np.asarray(a.cell[:], dtype=np.float64) for a in structures]) if structures else \
        np.zeros((0, 3, 3))
    pbc = np.stack([np.asarray(a.pbc, dtype=bool) for a in structures]) if structures else np.zeros((0, 3), bool)
    return counts, cells, pbc, [a.positions for a in structures]


def estimated_pairs(structures, cutoff: float | None, geometry=None) -> np.ndarray:
    """The estimated neighbour pairs of every structure (B,): vectorised for periodic cells,
    :func:`estimate_pairs` for the others. Without a cutoff (no graph component), one per atom.
    ``geometry``: :func:`_geometry` of ``structures`` where the caller has it already."""
    counts, cells, pbc, positions = _geometry(structures) if geometry is None else geometry
    if cutoff is None:
        return counts.astype(np.float64)
    out = np.empty(len(counts))
    periodic = pbc.all(axis=1)
    if periodic.any():
        volume = np.abs(np.linalg.det(cells[periodic]))
        with np.errstate(divide="ignore"):
            out[periodic] = counts[periodic] ** 2 * (4.0 / 3.0 * math.pi * cutoff**3) / volume
    for b in np.flatnonzero(~periodic):
        out[b] = estimate_pairs(positions[b], cells[b], pbc[b], cutoff)
    out = np.where(counts == 0, 0.0, out)  # an empty structure (its cell may be anything)
    return np.maximum(out, counts)  # at least one unit of work per atom (a cell with no pairs)


def chunk_bounds(pairs: np.ndarray, chunk_pairs: int) -> list[int]:
    """Structure boundaries ``0 = b_0 < ... < b_k = B``: consecutive structures while their pairs
    sum to at most ``chunk_pairs`` (a structure above it alone)."""
    bounds = [0]
    total = 0.0
    for b, p in enumerate(pairs):
        if b > bounds[-1] and total + p > chunk_pairs:
            bounds.append(b)
            total = 0.0
        total += p
    if bounds[-1] != len(pairs) or len(pairs) == 0:
        bounds.append(len(pairs))
    return bounds


def slice_batch(batch: Batch, b0: int, b1: int) -> Batch:
    """Structures ``b0 .. b1 - 1`` of ``batch`` as a batch of their own (system_idx from 0)."""
    a0, a1 = int(batch.atom_offsets[b0]), int(batch.atom_offsets[b1])
    return Batch(positions=batch.positions[a0:a1], numbers=batch.numbers[a0:a1], cell=batch.cell[b0:b1],
                 pbc=batch.pbc[b0:b1], system_idx=batch.system_idx[a0:a1] - b0,
                 charges=None if batch.charges is None else batch.charges[a0:a1])


def _renumber(err: Exception, b0: int) -> None:
    """An error raised inside a chunk names its structure by the chunk's numbering ("structure 2");
    add the chunk's first index so that it names the structure of the caller's input."""
    if b0 and err.args and isinstance(err.args[0], str):
        text = re.sub(r"\bstructure (\d+)", lambda m: f"structure {int(m.group(1)) + b0}", err.args[0])
        err.args = (text, *err.args[1:])


def check_chunk_pairs(chunk_pairs) -> int:
    if isinstance(chunk_pairs, bool) or not isinstance(chunk_pairs, (int, np.integer)) or chunk_pairs < 1:
        raise ValueError(f"chunk_pairs must be a positive integer (estimated neighbour pairs per chunk; about "
                         f"{_BYTES_PER_PAIR} bytes each), got {chunk_pairs!r}")
    return int(chunk_pairs)


def evaluate_in_chunks(stack, structures, compute_forces: bool, compute_stress, timings, chunk_pairs: int,
                       progress) -> dict:
    """``stack._evaluate`` over chunks of ``structures`` (a list of ``ase.Atoms`` or a Batch),
    concatenated (module docstring)."""
    chunk_pairs = check_chunk_pairs(chunk_pairs)
    geometry = _geometry(structures)
    counts, cells = geometry[0], geometry[1]
    bounds = chunk_bounds(estimated_pairs(structures, stack.cutoff if stack.graph_cache.cutoffs else None, geometry),
                          chunk_pairs)
    if len(bounds) <= 2:  # one chunk: the plain call
        return stack._evaluate(structures, compute_forces, compute_stress, timings)
    if compute_stress is None:  # decided for the whole input, not per chunk
        volumes = np.abs(np.linalg.det(cells))
        compute_stress = bool(compute_forces and len(counts) > 0 and (volumes > 0).all())
    show = progress if progress is not None else len(counts) >= PROGRESS_MIN_STRUCTURES
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(counts), unit="structure", desc="acepy evaluate")
    parts = []
    try:
        for b0, b1 in zip(bounds[:-1], bounds[1:]):
            chunk = slice_batch(structures, b0, b1) if isinstance(structures, Batch) else structures[b0:b1]
            try:
                part = stack._evaluate(chunk, compute_forces, compute_stress, timings)
            except Exception as err:
                _renumber(err, b0)
                raise
            part["system_idx"] = part["system_idx"] + b0
            parts.append(part)
            if bar is not None:
                bar.update(b1 - b0)
    finally:
        if bar is not None:
            bar.close()
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
