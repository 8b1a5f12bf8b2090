"""Solvers of the weighted linear least-squares problem ``min |A c - y|^2`` (+ a prior on c).

``A`` and ``y`` arrive already weighted (:mod:`acepy.fit.weights`). A smoothness prior is a
diagonal Tikhonov operator Gamma (:func:`smoothness_prior`): every solver works on the scaled
problem ``A Gamma^-1`` in ``c~ = Gamma c`` and maps back, so that a ridge or Bayesian penalty on
``|c~|^2`` is the penalty ``|Gamma c|^2`` that damps rough (high degree, high l) functions (the
scheme of ACEpotentials.jl's ``algebraic_smoothness_prior``, Witt et al., J. Chem. Phys. 159,
164101 (2023), section II.D).

Solvers: ``"lstsq"`` (SciPy's LAPACK least squares, minimum norm for a rank-deficient A),
``"ridge"`` (scikit-learn ``Ridge``), ``"bayesian_ridge"`` (``BayesianRidge``: the evidence sets
the noise and prior precisions) and ``"ard"`` (``ARDRegression``: one prior precision per
coefficient, pruning). None of them fits an intercept: the one-body energies are the E0 of the
basis, subtracted beforehand with the rest of the reference part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SOLVERS", "SolverResult", "smoothness_prior", "solve"]

SOLVERS = ("lstsq", "ridge", "bayesian_ridge", "ard")
_ALIASES = {"brr": "bayesian_ridge", "bayesian": "bayesian_ridge", "qr": "lstsq", "ls": "lstsq"}


@dataclass
class SolverResult:
    """The coefficients ``c`` (K,) and what the solver found: ``info`` holds its hyperparameters
    (``alpha`` of ridge; noise ``alpha_`` and prior ``lambda_`` of the Bayesian solvers; the
    ``rank`` and singular values of lstsq), ``covariance`` the posterior covariance of ``c``
    (Bayesian solvers), None otherwise."""

    coefficients: np.ndarray
    solver: str
    info: dict = field(default_factory=dict)
    covariance: np.ndarray | None = None


def smoothness_prior(degrees, l_sums, kind: str = "algebraic", p: float = 4.0, wL: float = 1.5,
                     wn: float = 1.0) -> np.ndarray:
    """The diagonal Gamma_k of a smoothness prior from each column's radial degree and sum of l.

    ``"algebraic"``: ``Gamma_k = 1 + (wn * degree_k + wL * lsum_k)^p`` (ACEpotentials.jl's
    algebraic prior); ``"exponential"``: ``exp(wn * degree_k + wL * lsum_k)`` (``p`` unused);
    ``"none"``: ones.
    """
    d = np.asarray(degrees, dtype=np.float64)
    l_sum = np.asarray(l_sums, dtype=np.float64)
    if d.shape != l_sum.shape or d.ndim != 1:
        raise ValueError(f"smoothness_prior: degrees {d.shape} and l_sums {l_sum.shape} must be the same (K,) shape")
    x = wn * d + wL * l_sum
    if kind == "algebraic":
        return 1.0 + x**p
    if kind == "exponential":
        return np.exp(x)
    if kind == "none":
        return np.ones_like(x)
    raise ValueError(f"smoothness_prior: kind must be 'algebraic', 'exponential' or 'none', got {kind!r}")


def _check(A: np.ndarray, y: np.ndarray, gamma) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    A = np.asarray(A, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if A.ndim != 2 or y.shape != (A.shape[0],):
        raise ValueError(f"solve: A must be (M, K) and y (M,), got {A.shape} and {y.shape}")
    if A.shape[0] == 0:
        raise ValueError("solve: no rows (every weight is zero, or no labels)")
    for name, arr in (("design matrix", A), ("targets", y)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"solve: the {name} has non-finite entries")
    g = np.ones(A.shape[1]) if gamma is None else np.asarray(gamma, dtype=np.float64)
    if g.shape != (A.shape[1],) or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"solve: the prior must be {A.shape[1]} positive numbers, got shape {g.shape}")
    return A, y, g


def solve(A, y, solver: str = "lstsq", prior=None, alpha: float = 1e-8, options: dict | None = None) -> SolverResult:
    """Solve the weighted problem with ``solver`` (see the module docstring); ``prior`` is the
    diagonal Gamma (K,) or None; ``alpha`` the ridge penalty (``"ridge"`` only); ``options`` go
    to the scikit-learn estimator (e.g. ``{"threshold_lambda": 1e6}`` for ARD, ``max_iter``)."""
    name = _ALIASES.get(solver, solver)
    if name not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    A, y, g = _check(A, y, prior)
    As = A / g  # columns scaled: A Gamma^-1
    options = dict(options or {})
    if name == "lstsq":
        import scipy.linalg

        unknown = set(options) - {"cond"}
        if unknown:
            raise ValueError(f"solve: lstsq takes the option 'cond' only, got {sorted(unknown)}")
        c, _, rank, sv = scipy.linalg.lstsq(As, y, cond=options.get("cond"), lapack_driver="gelsd")
        return SolverResult(c / g, name, {"rank": int(rank), "singular_values": sv})
    from sklearn import linear_model

    if name == "ridge":
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"solve: ridge alpha must be >= 0, got {alpha}")
        est = linear_model.Ridge(alpha=alpha, fit_intercept=False, **options)
        est.fit(As, y)
        return SolverResult(est.coef_ / g, name, {"alpha": float(alpha)})
    if name == "bayesian_ridge":
        est = linear_model.BayesianRidge(fit_intercept=False, **options)
        est.fit(As, y)
        cov = est.sigma_ / np.outer(g, g)
        return SolverResult(est.coef_ / g, name, {"alpha_": float(est.alpha_), "lambda_": float(est.lambda_),
                                                   "n_iter": int(est.n_iter_)}, cov)
    est = linear_model.ARDRegression(fit_intercept=False, **options)
    est.fit(As, y)
    kept = est.lambda_ < est.threshold_lambda
    cov = np.zeros((A.shape[1], A.shape[1]))
    cov[np.ix_(kept, kept)] = est.sigma_
    cov /= np.outer(g, g)
    return SolverResult(est.coef_ / g, name, {"alpha_": float(est.alpha_), "lambda_": est.lambda_.copy(),
                                               "n_kept": int(kept.sum()), "n_iter": int(getattr(est, "n_iter_", -1))},
                        cov)
