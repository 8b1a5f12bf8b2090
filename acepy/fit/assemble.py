"""The weighted design matrix of a fit, assembled frame by frame from basis rows.

Row kinds per frame (labels present, :func:`acepy.io.frames.frame_labels`): one energy row, 3N
force rows, 9 virial rows (xx xy xz yx yy yz zx zy zz), (3N)^2 Hessian rows (row-major, DeePMD's
layout). Energy and virial rows are stored *per atom* (the row and the label divided by N), so that
residuals are in eV/atom; the energy normalisation of the weights (:mod:`acepy.fit.weights`)
turns into the row weight ``w * N / factor(N)``. The target of a row is label minus the
coefficient-free reference part of the basis (E0, core repulsion, pair table: ``Rows.reference``).

Rows of positive weight are stored first, multiplied by their weight, so that the solver reads a
view (no copy of the matrix); rows of zero weight follow, unweighted, for the error tables only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from acepy.errors import StructureError

from .weights import OBSERVABLES, FitWeights

__all__ = ["Design", "assemble"]

_KIND = {name: k for k, name in enumerate(OBSERVABLES)}


@dataclass
class Design:
    """``matrix (M, K)``: weighted rows ``[:n_fit]``, unweighted rows after; ``target (M,)`` likewise;
    ``weight (M,)`` the row weights; ``kind (M,)`` the observable index (OBSERVABLES order); ``frame (M,)``
    the frame index; ``label (M,)`` the label and ``reference (M,)`` the coefficient-free part, in
    report units (energy, virial per atom)."""

    matrix: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    kind: np.ndarray
    frame: np.ndarray
    label: np.ndarray
    reference: np.ndarray
    n_fit: int
    config_types: list[str]

    def predictions(self, coefficients: np.ndarray) -> np.ndarray:
        """The model's value of every row, in report units (energy and virial per atom)."""
        c = np.asarray(coefficients, dtype=np.float64)
        out = np.empty(self.matrix.shape[0])
        n = self.n_fit
        out[:n] = (self.matrix[:n] @ c) / self.weight[:n]
        out[n:] = self.matrix[n:] @ c
        return out + self.reference


def _plan(labels: list[dict], fw: FitWeights, hessian_rows: bool):
    """(frame, kind, count, weight) of every row block, in frame order."""
    blocks = []
    for k, lab in enumerate(labels):
        n = lab["natoms"]
        w = fw.of(lab["config_type"])
        scale = n / fw.energy_factor(n)  # per-atom rows: w_E (E - E^)/factor = w_E n/factor (E - E^)/n
        if lab["energy"] is not None:
            blocks.append((k, "energy", 1, w["energy"] * scale))
        if lab["forces"] is not None:
            blocks.append((k, "forces", 3 * n, w["forces"]))
        if lab["virial"] is not None:
            blocks.append((k, "virial", 9, w["virial"] * scale))
        if lab["hessian"] is not None and hessian_rows and w["hessian"] > 0:
            blocks.append((k, "hessian", 9 * n * n, w["hessian"]))
    return blocks


def _chunks(indices: list[int], labels: list[dict], max_atoms: int):
    """Consecutive groups of frames with the same needs, of at most ``max_atoms`` atoms (one at least)."""
    group, atoms, key = [], 0, None
    for k in indices:
        need = (labels[k]["virial"] is not None,)
        if group and (need != key or atoms + labels[k]["natoms"] > max_atoms):
            yield key, group
            group, atoms = [], 0
        group.append(k)
        atoms += labels[k]["natoms"]
        key = need
    if group:
        yield key, group


def assemble(basis, frames: list, labels: list[dict], fw: FitWeights, hessian_rows: bool = True,
             progress: bool | str = False, max_atoms: int = 2048) -> Design:
    """The design of ``frames`` (with their checked ``labels``) for ``basis`` (a LinearBasis)."""
    K = int(basis.ncoefficients)
    blocks = _plan(labels, fw, hessian_rows)
    n_fit = sum(b[2] for b in blocks if b[3] > 0)
    M = sum(b[2] for b in blocks)
    start_fit, start_rest = 0, n_fit
    place = {}
    for k, kind, count, w in blocks:
        if w > 0:
            place[(k, kind)] = (start_fit, count, w)
            start_fit += count
        else:
            place[(k, kind)] = (start_rest, count, 0.0)
            start_rest += count
    matrix = np.empty((M, K))
    target = np.empty(M)
    label = np.empty(M)
    reference = np.empty(M)
    weight = np.empty(M)
    kind_of = np.empty(M, dtype=np.int8)
    frame_of = np.empty(M, dtype=np.int64)

    def put(k, kind, rows_block, ref_block, lab_block):
        s, count, w = place[(k, kind)]
        sl = slice(s, s + count)
        rb = np.asarray(rows_block, dtype=np.float64).reshape(count, K)
        lb = np.asarray(lab_block, dtype=np.float64).reshape(count)
        ref = np.asarray(ref_block, dtype=np.float64).reshape(count)
        t = lb - ref
        if w > 0:
            matrix[sl] = rb * w
            target[sl] = t * w
        else:
            matrix[sl] = rb
            target[sl] = t
        label[sl] = lb
        reference[sl] = ref
        weight[sl] = w
        kind_of[sl] = _KIND[kind]
        frame_of[sl] = k

    jobs = []
    efv = [k for k, lab in enumerate(labels)
           if any(lab[o] is not None for o in ("energy", "forces", "virial"))]
    for (virial,), group in _chunks(efv, labels, max_atoms):
        jobs.append(("efv", virial, group))
    hess = [k for k in range(len(labels)) if (k, "hessian") in place]
    for _, group in _chunks(hess, labels, max(1, max_atoms // 16)):
        jobs.append(("hessian", False, group))
    bar = _progress(progress, sum(len(j[2]) for j in jobs))
    try:
        for what, virial, group in jobs:
            structures = [frames[k] for k in group]
            want = (dict(energy=True, forces=True, virial=virial) if what == "efv" else
                    dict(energy=False, forces=False, virial=False, hessian=True))
            try:
                rows = basis.rows(structures, **want)
            except StructureError:  # it counts structures within the chunk: find and name the frame
                for k in group:
                    try:
                        basis.rows([frames[k]], **want)
                    except StructureError as exc:
                        cfg = labels[k]["config_type"]
                        raise StructureError(f"frame {k} (config_type {cfg!r}): {exc}") from exc
                raise
            if what == "efv":
                offset = 0
                for b, k in enumerate(group):
                    lab = labels[k]
                    n = lab["natoms"]
                    if lab["energy"] is not None:
                        put(k, "energy", rows.energy[b] / n, rows.reference["energy"][b] / n, lab["energy"] / n)
                    if lab["forces"] is not None:
                        put(k, "forces", rows.forces[offset:offset + n], rows.reference["forces"][offset:offset + n],
                            lab["forces"])
                    if lab["virial"] is not None:
                        put(k, "virial", rows.virial[b] / n, rows.reference["virial"][b] / n, lab["virial"] / n)
                    offset += n
            else:
                for b, k in enumerate(group):
                    put(k, "hessian", rows.hessian[b], rows.reference["hessian"][b], labels[k]["hessian"])
            if bar is not None:
                bar.update(len(group))
    finally:
        if bar is not None:
            bar.close()
    return Design(matrix, target, weight, kind_of, frame_of, label, reference, n_fit,
                  [lab["config_type"] for lab in labels])


def _progress(progress, total: int):
    if not progress or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=progress if isinstance(progress, str) else "design rows", unit="frame")
