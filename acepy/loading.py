"""``acepy.load``: a potential file (and optional pair table) to a ready-to-evaluate model stack."""

from __future__ import annotations

from pathlib import Path

import torch

from acepy.io import read_potential
from acepy.models.ace import ACE
from acepy.models.onebody import OneBody
from acepy.models.stack import Stack

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return _DTYPES[dtype]


def load(path, pair_table=None, device="cpu", dtype="float64", backend=None, skin: float = 0.0) -> Stack:
    """Read a ``.yace``/``.ace`` potential and stack OneBody(E0) + ACE (+ pair table, coming)."""
    dt = _dtype(dtype)
    spec = read_potential(Path(path))
    if pair_table is not None:
        raise ValueError("pair tables are read (acepy.io.read_pair_table) but not yet evaluated by the model")
    components = [OneBody(spec.E0, dtype=dt, device=device), ACE(spec, dtype=dt, device=device)]
    return Stack(components, spec.elements, dtype=dt, device=device, backend=backend, skin=skin)
