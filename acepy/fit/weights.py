"""Weights of the fit: per observable, per config_type, and the energy normalisation.

Every residual row r is multiplied by a weight w before squaring: the fit minimises sum (w r)^2.

- ``weights``: one number per observable, ``{"energy": 30.0, "forces": 1.0, "virial": 1.0,
  "hessian": 0.1}`` (the defaults); a zero leaves that observable out of the fit (its errors are
  still reported);
- ``config_weights``: per ``atoms.info["config_type"]``, either a number that multiplies every
  observable's weight or a dict that replaces some of them, e.g. ``{"surface": {"energy": 5.0},
  "md": 0.5}``;
- ``energy_normalization``: an energy residual of an N-atom frame is divided by N (``"per_atom"``,
  the default: errors in eV/atom), by sqrt(N) (``"sqrt"``: each atom's share of the energy counts
  like an independent label, as in ACEpotentials.jl) or not at all (``"none"``). Virial residuals
  (eV, extensive like the energy) get the same factor. Forces (eV/A) and Hessian entries (eV/A^2)
  are not normalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["OBSERVABLES", "DEFAULT_WEIGHTS", "FitWeights"]

OBSERVABLES = ("energy", "forces", "virial", "hessian")
DEFAULT_WEIGHTS = {"energy": 30.0, "forces": 1.0, "virial": 1.0, "hessian": 0.1}
_NORMALIZATIONS = ("per_atom", "sqrt", "none")


def _weight(value, what: str) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: a weight must be a number, got {value!r}") from None
    if not np.isfinite(w) or w < 0:
        raise ValueError(f"{what}: a weight must be finite and >= 0, got {value!r}")
    return w


def _observable_dict(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what}: expected a dict of weights keyed by {OBSERVABLES}, got {value!r}")
    unknown = [k for k in value if k not in OBSERVABLES]
    if unknown:
        raise ValueError(f"{what}: unknown observable(s) {unknown}; the observables are {list(OBSERVABLES)}")
    return {k: _weight(v, f"{what}[{k!r}]") for k, v in value.items()}


@dataclass
class FitWeights:
    """The resolved weights (see the module docstring)."""

    weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    config_weights: dict = field(default_factory=dict)
    energy_normalization: str = "per_atom"

    @classmethod
    def make(cls, weights=None, config_weights=None, energy_normalization: str = "per_atom") -> "FitWeights":
        base = dict(DEFAULT_WEIGHTS)
        if weights is not None:
            base.update(_observable_dict(weights, "weights"))
        per_config = {}
        for name, value in (config_weights or {}).items():
            if isinstance(value, dict):
                per_config[str(name)] = _observable_dict(value, f"config_weights[{name!r}]")
            else:
                w = _weight(value, f"config_weights[{name!r}]")
                per_config[str(name)] = {"scale": w}
        if energy_normalization not in _NORMALIZATIONS:
            raise ValueError(f"energy_normalization must be one of {_NORMALIZATIONS}, got {energy_normalization!r}")
        return cls(base, per_config, energy_normalization)

    def check_config_types(self, present) -> None:
        """Refuse config_weights for config types that no frame has (a typo would silently do nothing)."""
        missing = sorted(set(self.config_weights) - set(present))
        if missing:
            raise ValueError(f"config_weights names config type(s) {missing} that no frame has; the frames have "
                             f"{sorted(set(present))}")

    def of(self, config_type: str) -> dict:
        """The four observable weights of a frame of this config type."""
        out = dict(self.weights)
        own = self.config_weights.get(config_type)
        if own is None:
            return out
        if "scale" in own:
            return {k: v * own["scale"] for k, v in out.items()}
        out.update(own)
        return out

    def energy_factor(self, natoms: int) -> float:
        """The divisor of an energy (and virial) residual of an ``natoms``-atom frame."""
        if self.energy_normalization == "per_atom":
            return float(natoms)
        if self.energy_normalization == "sqrt":
            return float(np.sqrt(natoms))
        return 1.0

    def to_dict(self) -> dict:
        return {"weights": dict(self.weights), "config_weights": {k: dict(v) for k, v in self.config_weights.items()},
                "energy_normalization": self.energy_normalization}
