"""A drop-in ASE calculator for acepy models."""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from acepy.models.stack import Stack


class ACECalculator(Calculator):
    """ASE calculator: ``energy``, ``free_energy``, ``energies``, ``forces`` and ``stress`` (Voigt).

    ``model`` is a :class:`~acepy.models.stack.Stack` or a path to a ``.yace``/``.ace`` file
    (then ``pair_table`` may name a LAMMPS pair table to stack with it). Stress is available for
    cells of non-zero volume, with any pbc (ASE's sign: positive under tension).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, device: str = "cpu", dtype: str | torch.dtype = "float64",
                 backend: str | None = None, pair_table: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, Stack):
            self.model = model
        else:
            from acepy import load

            self.model = load(model, pair_table=pair_table, device=device, dtype=dtype, backend=backend)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties
        out = self.model.evaluate(self.atoms, compute_forces=True, compute_stress=want_stress or None)
        energy = float(out["energy"][0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out["energies"].detach().cpu().numpy().astype(np.float64),
            "forces": out["forces"].detach().cpu().numpy().astype(np.float64),
        }
        if "stress" in out:
            s = out["stress"][0].detach().cpu().numpy().astype(np.float64)
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
