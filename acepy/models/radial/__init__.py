"""Radial part of the ACE model: g_k(r), R_nl(r) and the pair core repulsion cr(r), with d/dr.

Three kinds of radial basis exist in the files (``ACEPotentialSpec.radial_kind``), one class each
behind the one interface :class:`RadialBasis`; :func:`radial_basis` builds the right one:

* ``"pace"`` (:class:`PaceRadial`, ``pace.py``): PACE's own bases, tabulated exactly as PACE
  tabulates them (ACE_SPEC.md 2.6); the analytic functions are in ``functions.py`` (g_k, the
  switch, R_nl) and ``core.py`` (core repulsion, ZBL).
* ``"spline"`` (:class:`SplineRadial`, ``splines.py``): ACEpotentials v0.6 spline bonds, tables
  straight from the file (ACE_SPEC.md 1.6, 2.7).
* ``"ships"`` (:class:`ShipsRadial`, ``ships.py``): ACE.jl SHIPs polynomials, evaluated
  analytically on every call as PACE does (ACE_SPEC.md 1.5, 2.7), plus the optional SHIPs pair
  potential, which enters as cr = V/2 (2.8).
"""

from __future__ import annotations

import torch

from acepy.errors import PotentialFileError
from acepy.spec import ACEPotentialSpec

from .base import RadialBasis, RadialValues
from .core import ZBL_K, pace_core_repulsion, zbl_atomic_number, zbl_core_repulsion
from .functions import contract_radial, cutoff_func_poly, pace_radial_basis
from .pace import PaceBondRadial, PaceRadial
from .ships import ShipsRadial, ships_pair_potential, ships_polynomials
from .splines import SplineRadial

__all__ = [
    "RadialValues",
    "RadialBasis",
    "radial_basis",
    "PaceRadial",
    "SplineRadial",
    "ShipsRadial",
    "PaceBondRadial",
    "ZBL_K",
    "cutoff_func_poly",
    "pace_radial_basis",
    "contract_radial",
    "pace_core_repulsion",
    "zbl_core_repulsion",
    "zbl_atomic_number",
    "ships_polynomials",
    "ships_pair_potential",
]

_KINDS: dict[str, type[RadialBasis]] = {cls.kind: cls for cls in (PaceRadial, SplineRadial, ShipsRadial)}


def radial_basis(spec: ACEPotentialSpec, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu") -> RadialBasis:
    """The radial functions of ``spec``, in the class of its ``radial_kind``, with tables in
    ``dtype`` on ``device``. An unknown kind raises PotentialFileError naming the source."""
    cls = _KINDS.get(spec.radial_kind)
    if cls is None:
        raise PotentialFileError(spec.source or "potential", "bonds", f"unknown radial kind {spec.radial_kind!r} "
                                 f"(known: {', '.join(sorted(_KINDS))})")
    return cls(spec, dtype=dtype, device=device)
