"""Chebyshev polynomials of a (transformed) distance, with first and second derivatives.

``chebyshev(r, n_max, transform=...)`` returns ``P_n(x(r))`` for ``n = 0..n_max``, with ``P = T``
(first kind, default) or ``U`` (second kind), and the derivatives with respect to ``r``. The
transforms ``x(r)`` are those of ACE_SPEC.md 2.2 and 5:

* ``"identity"``: ``x = r`` (plain Chebyshev polynomials);
* ``"exp_cos"`` (PACE ChebExpCos): ``x = 1 - 2 (exp(-lam r/rcut) - exp(-lam)) / (1 - exp(-lam))``;
* ``"pow"`` (PACE ChebPow): ``x = 1 - 2 (1 - r/rcut)^lam`` (held at ``x = 1`` for ``r >= rcut``);
* ``"linear"`` (PACE ChebLinear): ``x = 1 - r/rcut``;
* ``"aenet"`` (aenet's linear map of ``[rmin, rcut]`` onto ``[-1, 1]``): ``x = (2r - rmin - rcut)/(rcut - rmin)``.

Envelopes and cutoff functions belong to the models, not here.
"""

from __future__ import annotations

import math

import torch

from .backend import prepare
from .reference.chebyshev import AENET, EXP_COS, IDENTITY, LINEAR, POW

TRANSFORMS = {"identity": IDENTITY, "exp_cos": EXP_COS, "pow": POW, "linear": LINEAR, "aenet": AENET}
KINDS = {"T": 1, "U": 2}


def chebyshev(
    r: torch.Tensor,
    n_max: int,
    kind: str = "T",
    transform: str = "identity",
    lam: float = 0.0,
    rcut: float = 1.0,
    rmin: float = 0.0,
    order: int = 2,
    backend: str | None = None,
):
    """``(values, d/dr, d2/dr2)``, each ``(E, n_max+1)`` in the dtype of ``r`` (``None`` above ``order``).

    ``r (E,)`` floating (a scalar counts as one distance). There are no value checks (so no ``check``).
    """
    if kind not in KINDS:
        raise ValueError(f"chebyshev: kind must be 'T' or 'U', got {kind!r}")
    if transform not in TRANSFORMS:
        raise ValueError(f"chebyshev: unknown transform {transform!r}; choose one of {sorted(TRANSFORMS)}")
    if order not in (0, 1, 2):
        raise ValueError(f"chebyshev: order must be 0, 1 or 2, got {order}")
    if int(n_max) != n_max or n_max < 0:
        raise ValueError(f"chebyshev: n_max must be a non-negative integer, got {n_max}")
    if transform != "identity" and not (rcut > 0 and math.isfinite(rcut)):
        raise ValueError(f"chebyshev: transform {transform!r} needs a positive finite rcut, got {rcut}")
    if transform in ("exp_cos", "pow") and not (lam > 0 and math.isfinite(lam)):
        raise ValueError(f"chebyshev: transform {transform!r} needs a positive finite lam, got {lam}")
    if transform == "aenet" and not rcut > rmin:
        raise ValueError(f"chebyshev: transform 'aenet' needs rcut > rmin, got rcut={rcut}, rmin={rmin}")
    call = prepare("chebyshev", "chebyshev", backend, floats={"r": r}, one_d=("r",))
    r = call.r
    if r.ndim != 1:
        raise ValueError(f"chebyshev: r must be (E,), got {tuple(r.shape)}")
    n_max = int(n_max)
    if r.shape[0] == 0:
        empty = call.zeros((0, n_max + 1))
        return empty, (empty.clone() if order >= 1 else None), (empty.clone() if order >= 2 else None)
    args = (n_max, KINDS[kind], TRANSFORMS[transform], float(lam), float(rcut), float(rmin), order)
    return call.impl.chebyshev(r, *args)
