"""The extrapolation grade of a pacemaker potential: B-basis projections per atom and gamma.

python-ace's projections of an atom are the values of its species' B-basis functions (the linear
projections, python-ace's default; not dE/dc), in python-ace's order: sorted by (rank, neighbour
species, n, l) of the function's factors, ties in file order (checked against python-ace's
``ACEBEvaluator`` on every pacemaker file of the tests). An ``.asi`` file holds, per element, the
inverse of the active set of those rows (:mod:`acepy.fit.active_set`); the grade is
gamma_i = max_k |(b_i A^-1)_k|.

    grade = ExtrapolationGrade("potential.yaml", "potential.asi")
    gamma = grade(structures)                      # (N,) numpy, one batched call
    aset = select_active_set("potential.yaml", training_structures)   # MaxVol, then aset.write(...)

``attach(model, grade)`` gives a stack ``model.extrapolation_grade(structures)``, and
``ACECalculator(path, active_set="potential.asi")`` the per-atom ``gamma`` result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from acepy.kernels import spherical_harmonics

from .active_set import ActiveSet
from .rows import LinearBasis
from .rows_eval import atomic_bases

__all__ = ["ExtrapolationGrade", "b_projections", "select_active_set", "attach"]

# atoms per chunk of the projection pass (values only: a few kB per atom)
CHUNK_ATOMS = 4096


def _basis(potential) -> LinearBasis:
    if isinstance(potential, LinearBasis):
        return potential
    path = Path(potential)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ValueError(f"{path}: the extrapolation grade needs the pacemaker B-basis .yaml of the potential "
                         "(python-ace's active sets are made of its B-basis projections; a .yace has C-tilde "
                         "functions only)")
    return LinearBasis.from_file(path)


def _python_ace_columns(basis: LinearBasis) -> list[np.ndarray]:
    """Per species: its basis functions (indices into B's columns, one per function: the
    density-0 basis column of each) in python-ace's order."""
    out = []
    for mu, el in enumerate(basis.elements):
        cols = [k for k, c in enumerate(basis.columns) if c["species"] == el and c.get("density", 0) == 0]

        def key(k):
            c = basis.columns[k]
            return (c["rank"], tuple(basis.elements.index(m) for m in c["mus"]), tuple(c["ns"]), tuple(c["ls"]))

        ordered = sorted(cols, key=key)  # sorted() is stable: file order in ties
        out.append(np.asarray([basis._col_function[k] for k in ordered], dtype=np.int64))
    return out


def b_projections(potential, structures) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """B-basis projections of every atom: ``(values (N, Kf), species (N,), columns)`` where row i's
    projections in python-ace's order are ``values[i, columns[species[i]]]``."""
    basis = _basis(potential)
    ref = basis._reference_model()
    plan = basis._plan
    with ref._threads(None):
        batch = ref._batch(structures)
        species = ref.species_of(batch.numbers, batch)
        graphs = ref.graph_cache.graphs(batch, validated=True)  # _batch checked it
        ace = ref.components[1]
        inputs = ref._inputs(batch, species, graphs, ace.cutoff, {}, detach=True)
        edges_all = ace._prepare(inputs)
        offsets = edges_all.offsets.cpu().numpy()
        out = torch.zeros((batch.n_atoms, plan.nfunctions), dtype=torch.float64)
        for a0 in range(0, batch.n_atoms, CHUNK_ATOMS):
            a1 = min(batch.n_atoms, a0 + CHUNK_ATOMS)
            e0, e1 = int(offsets[a0]), int(offsets[a1])
            out[a0:a1] = _values(ace, plan, species[a0:a1], edges_all.slice(a0, a1, e0, e1)).cpu()
    return out.numpy(), species.cpu().numpy(), _python_ace_columns(basis)


def _values(ace, plan, species, edges) -> torch.Tensor:
    """B (n, Kf) of one chunk's atoms (the forward pass of acepy.fit.rows_eval, without gradients)."""
    with torch.no_grad():
        r = torch.linalg.vector_norm(edges.vectors, dim=1)
        rad = ace.radial.evaluate(r, edges.mu_i, edges.mu_j, backend="torch", check=False)
        y_re = y_im = None
        if plan.width:
            y_re, y_im, _, _ = spherical_harmonics(edges.vectors, plan.lmax, gradients=False, backend="torch")
        a1_base, a = atomic_bases(plan, edges, rad, y_re, y_im, species.shape[0])
        b, _ = plan.values_and_gradients(a, a1_base, species, gradients=False)
    return b


def _per_element(values, species, columns, elements) -> dict[str, np.ndarray]:
    return {el: values[species == mu][:, columns[mu]] for mu, el in enumerate(elements)}


class ExtrapolationGrade:
    """gamma per atom of ``potential`` (a pacemaker ``.yaml``, or a :class:`LinearBasis` of one)
    against ``active_set`` (an ``.asi`` path or an :class:`ActiveSet`)."""

    def __init__(self, potential, active_set):
        self.basis = _basis(potential)
        self.columns = _python_ace_columns(self.basis)
        sizes = {el: len(c) for el, c in zip(self.basis.elements, self.columns)}
        if isinstance(active_set, ActiveSet):
            self.active_set = active_set
            for el, k in sizes.items():
                if el not in active_set.inverses or active_set.inverses[el].shape[0] != k:
                    raise ValueError(f"active set: the {el} entry must be {k} x {k} for this potential")
        else:
            self.active_set = ActiveSet.read(active_set, sizes=sizes)

    def __call__(self, structures) -> np.ndarray:
        values, species, columns = b_projections(self.basis, structures)
        gamma = np.zeros(len(species))
        for mu, el in enumerate(self.basis.elements):
            atoms = species == mu
            if atoms.any():
                gamma[atoms] = self.active_set.gamma({el: values[atoms][:, columns[mu]]})[el]
        return gamma


def select_active_set(potential, structures, tol: float = 1.001, max_iters: int = 300) -> ActiveSet:
    """MaxVol active sets of the B-basis projections of every atom of ``structures`` (python-ace's
    ``pace_activeset`` on linear projections); ``.write(path)`` gives the ``.asi`` file."""
    basis = _basis(potential)
    values, species, columns = b_projections(basis, structures)
    return ActiveSet.select(_per_element(values, species, columns, basis.elements), tol=tol, max_iters=max_iters)


def attach(model, grade: ExtrapolationGrade) -> None:
    """Give ``model`` (a Stack of the same potential) ``model.extrapolation_grade(structures)``."""
    if list(model.elements) != list(grade.basis.elements):
        raise ValueError(f"attach: the model's elements {model.elements} are not the potential's "
                         f"{grade.basis.elements}")
    model.extrapolation = grade
