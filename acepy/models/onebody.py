"""The one-body term: a constant energy per species (E0), touching no graph."""

from __future__ import annotations

import numpy as np
import torch


class OneBody:
    """E_i = E0[species_i]. Its cutoff is None: the graph cache makes no graph for it."""

    cutoff = None

    def __init__(self, e0, dtype=torch.float64, device="cpu"):
        self.e0 = torch.as_tensor(np.asarray(e0, dtype=np.float64), dtype=dtype, device=device)

    def site_energies(self, species: torch.Tensor) -> torch.Tensor:
        return self.e0[species]
