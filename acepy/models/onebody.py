"""The one-body term: a constant energy per species (E0), touching no graph."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .component import BatchGraph, Component


class OneBody(Component):
    """E_i = E0[species_i]. Its cutoff is None: the graph cache makes no graph for it."""

    cutoff = None

    def __init__(self, e0, elements: Sequence[str] | None = None, dtype=torch.float64, device="cpu"):
        self.e0 = torch.as_tensor(np.asarray(e0, dtype=np.float64), dtype=dtype, device=device)
        self.elements = None if elements is None else list(elements)
        if self.elements is not None and len(self.elements) != self.e0.shape[0]:
            raise ValueError(f"OneBody: {self.e0.shape[0]} energies for {len(self.elements)} elements {self.elements}")
        self.dtype = dtype
        self.device = torch.device(device)

    def site_energies(self, inputs: BatchGraph, backend: str | None = "torch") -> torch.Tensor:
        return self.e0[inputs.species]

    def energies_and_edge_grads(self, inputs: BatchGraph, backend: str | None = None):
        """No graph, so no edge gradients: ``(E_i, None)``."""
        return self.e0[inputs.species], None
