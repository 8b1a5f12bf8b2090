"""Linear fitting of ACE potentials to energies, forces, virials and Hessians.

    from acepy.fit import LinearBasis, linear_fit
    fit = linear_fit(basis, frames, weights={"energy": 30, "forces": 1, "virial": 1, "hessian": 0.1})
    fit.write_yace("fitted.yace"); model = fit.model(); print(fit.error_table())

- :mod:`acepy.fit.rows`: ``LinearBasis`` and its ``Rows`` (the design matrix with derivatives);
- :mod:`acepy.fit.linear`: ``linear_fit`` and its result ``LinearFit``; :mod:`~acepy.fit.weights`,
  :mod:`~acepy.fit.solvers` (lstsq, ridge, Bayesian ridge, ARD, smoothness priors),
  :mod:`~acepy.fit.assemble` (weighted rows), :mod:`~acepy.fit.report` (errors, parity plots);
- :mod:`acepy.fit.dptest`: DeePMD-kit's ``dp test`` files and errors (``acepy test``);
- :mod:`acepy.fit.config`: ``acepy fit CONFIG``; :mod:`acepy.fit.cu_emt`: the bundled Cu-EMT-fit;
- :mod:`acepy.fit.active_set` (``.asi`` files, MaxVol, gamma) and :mod:`acepy.fit.extrapolation`
  (linear and full projections, ``ExtrapolationGrade``, ``select_active_set``): pacemaker's extrapolation
  grade; :mod:`acepy.fit.md_guard` (``ExtrapolationGuard``: stop or flag ASE dynamics) and
  :mod:`acepy.fit.selection` (``select_extrapolative``: the frames of a trajectory to label).
"""

from .active_set import ActiveSet, maxvol, read_asi, write_asi
from .dptest import dp_test
from .extrapolation import ExtrapolationGrade, attach, b_projections, projections, select_active_set
from .linear import LinearFit, linear_fit
from .md_guard import ExtrapolationError, ExtrapolationEvent, ExtrapolationGuard
from .rows import LinearBasis, Rows
from .selection import Selection, select_extrapolative
from .solvers import smoothness_prior, solve
from .weights import DEFAULT_WEIGHTS, FitWeights

__all__ = ["LinearBasis", "Rows", "linear_fit", "LinearFit", "dp_test", "solve", "smoothness_prior",
           "FitWeights", "DEFAULT_WEIGHTS", "ActiveSet", "maxvol", "read_asi", "write_asi", "ExtrapolationGrade",
           "b_projections", "projections", "select_active_set", "attach", "ExtrapolationGuard", "ExtrapolationError",
           "ExtrapolationEvent", "select_extrapolative", "Selection"]
