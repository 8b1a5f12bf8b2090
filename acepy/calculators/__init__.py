"""Calculators on top of the models (ASE; torch-sim) and what follows from the Hessian (vibrations, phonons).

``TorchSimModel`` (torch-sim's ``ModelInterface``) is resolved on first access, so that importing
acepy never imports torch-sim (an optional dependency: ``pip install torch-sim-atomistic``).
"""

from .ase import ACECalculator
from .vibrations import phonopy_force_constants, vibrations

__all__ = ["ACECalculator", "TorchSimModel", "phonopy_force_constants", "vibrations"]


def __getattr__(name: str):
    if name == "TorchSimModel":
        from .torch_sim import TorchSimModel

        return TorchSimModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
