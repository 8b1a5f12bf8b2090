"""``linear_fit``: weighted linear least squares of a linear ACE basis to energies, forces, virials
and Hessians.

A linear ACE potential is ``E = sum_i E0[mu_i] + ref + sum_k c_k B_k`` (one density, linear
embedding), so every label is linear in the coefficients c: an energy row is ``sum_i B_ik``, a force
row ``-d/dx``, a virial row ``-sum r (x) dB/dr`` and a Hessian row ``d2/dx dx`` of the same sum
(:mod:`acepy.fit.rows`). The fit solves ``min sum_rows (w_row (row . c + ref - label))^2`` (+ a
prior) with one of :mod:`acepy.fit.solvers`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from acepy.io.frames import frame_labels

from .assemble import Design, assemble
from .report import error_table, format_errors, parity_plot
from .solvers import SolverResult, smoothness_prior, solve
from .weights import FitWeights

__all__ = ["LinearFit", "linear_fit", "as_linear_basis"]


def as_linear_basis(basis, E0=None):
    """A LinearBasis from a LinearBasis, a GeneratedBasis, or a file path (pacemaker .yaml, .yace)."""
    from .rows import LinearBasis

    if isinstance(basis, LinearBasis):
        if E0 is not None:
            raise ValueError("E0: give it to LinearBasis.from_generated / from_file, not with a built LinearBasis")
        return basis
    from acepy.basis.generator import GeneratedBasis

    if isinstance(basis, GeneratedBasis):
        return LinearBasis.from_generated(basis, E0=E0)
    return LinearBasis.from_file(basis) if E0 is None else LinearBasis.from_file(basis, E0=E0)


@dataclass
class LinearFit:
    """The result of :func:`linear_fit`.

    ``coefficients (K,)`` in the basis' column order; ``errors["train"]`` and
    ``errors["validation"]`` (None without validation frames): ``{config_type or "all":
    {observable: {"rmse", "mae", "n"}}}`` in eV/atom (energy, virial), eV/A, eV/A^2;
    ``solver`` what the solver found (hyperparameters, posterior covariance); ``timings`` seconds
    of row assembly and solving; ``designs`` the assembled rows (kept for parity plots and
    ``errors_of``; ``drop_designs()`` frees them).
    """

    basis: object
    coefficients: np.ndarray
    solver: SolverResult
    weights: FitWeights
    errors: dict
    prior: np.ndarray | None
    timings: dict = field(default_factory=dict)
    designs: dict = field(default_factory=dict, repr=False)

    def model(self, **load_kwargs):
        """The fitted potential as a ready stack (``acepy.models.Stack``)."""
        return self.basis.model(self.coefficients, **load_kwargs)

    def spec(self):
        """The fitted potential as an ``ACEPotentialSpec`` (what ``write_yace`` writes)."""
        return self.basis.spec(self.coefficients)

    def write_yace(self, path):
        """Write the fitted potential as ``.yace`` (read by acepy, python-ace and LAMMPS ``pair_style pace``)."""
        from acepy.io.yace_writer import write_yace

        return write_yace(self.spec(), path)

    def error_table(self) -> str:
        """Train (and validation) errors as plain text."""
        parts = [format_errors(self.errors["train"], "train: RMSE (MAE)")]
        if self.errors.get("validation"):
            parts.append(format_errors(self.errors["validation"], "validation: RMSE (MAE)"))
        return "\n\n".join(parts)

    def parity_plot(self, path, title: str = ""):
        """A PNG of predicted against reference values (E, F, V, H; train and validation)."""
        if not self.designs:
            raise ValueError("parity_plot: the designs were dropped (drop_designs())")
        sets = {name: (d, d.predictions(self.coefficients)) for name, d in self.designs.items() if d is not None}
        return parity_plot(sets, path, title)

    def drop_designs(self) -> None:
        self.designs = {}

    def summary(self) -> dict:
        """JSON-ready: number of coefficients, solver and its scalar hyperparameters, weights, errors, timings."""
        info = {k: v for k, v in self.solver.info.items() if np.ndim(v) == 0}
        return {"ncoefficients": int(self.coefficients.shape[0]), "solver": self.solver.solver, "solver_info": info,
                "weights": self.weights.to_dict(), "errors": self.errors, "timings": self.timings}


def _labels(frames, offset: int = 0, name: str = "frame") -> list[dict]:
    out = []
    for k, atoms in enumerate(frames):
        cfg = atoms.info.get("config_type")
        where = f"{name} {offset + k}" + (f" (config_type {cfg!r})" if cfg is not None else "")
        lab = frame_labels(atoms, where=where)
        lab["natoms"] = len(atoms)
        if all(lab[o] is None for o in ("energy", "forces", "virial", "hessian")):
            from acepy.errors import StructureError

            raise StructureError(f"{where}: no label (energy, forces, stress/virial or Hessian) to fit")
        out.append(lab)
    return out


def _prior(prior, basis):
    if prior is None:
        return None
    if isinstance(prior, str):
        prior = {"kind": prior}
    if isinstance(prior, dict):
        return smoothness_prior(basis.degrees, basis.l_sums, **prior)
    g = np.asarray(prior, dtype=np.float64)
    if g.shape != (basis.ncoefficients,):
        raise ValueError(f"prior: expected a dict, a kind name or {basis.ncoefficients} numbers, got shape {g.shape}")
    return g


def _split(frames, validation, validation_fraction: float, seed: int):
    if validation is not None and validation_fraction:
        raise ValueError("give validation frames or validation_fraction, not both")
    if validation is not None:
        return list(frames), list(validation)
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    frames = list(frames)
    if not validation_fraction:
        return frames, []
    order = np.random.default_rng(seed).permutation(len(frames))
    n_val = int(round(validation_fraction * len(frames)))
    val = set(order[:n_val].tolist())
    return [f for k, f in enumerate(frames) if k not in val], [f for k, f in enumerate(frames) if k in val]


def linear_fit(basis, frames, weights=None, config_weights=None, energy_normalization: str = "per_atom",
               solver: str = "lstsq", alpha: float = 1e-8, prior=None, solver_options: dict | None = None,
               validation=None, validation_fraction: float = 0.0, seed: int = 0, E0=None,
               progress: bool | str = False, max_atoms: int = 2048) -> LinearFit:
    """Fit the coefficients of a linear ACE ``basis`` to labelled ``frames``.

    ``basis``: a :class:`~acepy.fit.rows.LinearBasis`, a :class:`~acepy.basis.GeneratedBasis` (with
    ``E0``, per element, for the one-body energies) or a potential file for ``LinearBasis.from_file``.
    ``frames``: ``ase.Atoms`` with labels (:mod:`acepy.io.frames`; ``acepy.io.read_deepmd`` and
    ``read_extxyz`` make them). ``weights``, ``config_weights``, ``energy_normalization``: see
    :mod:`acepy.fit.weights` (defaults E 30, F 1, V 1, H 0.1, energies per atom). ``solver``:
    ``"lstsq"``, ``"ridge"`` (penalty ``alpha``), ``"bayesian_ridge"`` or ``"ard"`` (scikit-learn);
    ``prior``: None, ``"algebraic"``/``"exponential"``, a dict of :func:`smoothness_prior`
    arguments (``{"kind": "algebraic", "p": 4, "wL": 1.5}``) or the diagonal itself (K,).
    ``validation`` (frames) or ``validation_fraction`` (split with ``seed``): frames left out of the fit
    and reported separately. ``progress``: a tqdm bar over the row assembly (a string: its label).

    Bad data raise :class:`~acepy.errors.StructureError` naming the frame (NaN labels, a Hessian of
    the wrong shape, a frame without labels, an element the basis lacks); bad weights ``ValueError``.

    Memory: the design is held as one float64 matrix, 8 bytes x K x rows (1 + 3N + 9 per frame, and
    (3N)^2 per Hessian frame with a positive weight); rows of positive weight are solved in place.
    """
    from .solvers import SOLVERS, _ALIASES

    if _ALIASES.get(solver, solver) not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    lb = as_linear_basis(basis, E0)
    train, val = _split(frames, validation, validation_fraction, seed)
    if not train:
        raise ValueError("linear_fit: no training frames")
    fw = FitWeights.make(weights, config_weights, energy_normalization)
    train_labels = _labels(train)
    val_labels = _labels(val, name="validation frame")
    fw.check_config_types([lab["config_type"] for lab in train_labels + val_labels])
    gamma = _prior(prior, lb)
    timings = {}
    t0 = time.perf_counter()
    design = assemble(lb, train, train_labels, fw, progress=progress, max_atoms=max_atoms)
    timings["rows_train"] = time.perf_counter() - t0
    if design.n_fit == 0:
        raise ValueError("linear_fit: every row has weight zero (check weights and the labels the frames carry)")
    t0 = time.perf_counter()
    result = solve(design.matrix[:design.n_fit], design.target[:design.n_fit], solver=solver, prior=gamma,
                   alpha=alpha, options=solver_options)
    timings["solve"] = time.perf_counter() - t0
    c = result.coefficients
    errors = {"train": error_table(design, design.predictions(c)), "validation": None}
    designs: dict[str, Design | None] = {"train": design, "validation": None}
    if val:
        t0 = time.perf_counter()
        vdesign = assemble(lb, val, val_labels, fw, progress=progress and "validation rows", max_atoms=max_atoms)
        timings["rows_validation"] = time.perf_counter() - t0
        errors["validation"] = error_table(vdesign, vdesign.predictions(c))
        designs["validation"] = vdesign
    return LinearFit(lb, c, result, fw, errors, gamma, timings, designs)
