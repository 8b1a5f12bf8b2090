"""torch-sim's model interface for acepy stacks: batched MD and relaxations in torch-sim.

``TorchSimModel(model)`` is a ``torch_sim.models.interface.ModelInterface`` (the PyPI package
``torch-sim-atomistic``; tested with 0.3.0). torch-sim is imported when the class is first used,
never by ``import acepy``: ``acepy.calculators.TorchSimModel`` is resolved lazily.

Conventions, torch-sim's side (``torch_sim/state.py``, ``torch_sim/models/interface.py``) and how
they map to an acepy :class:`~acepy.batch.Batch`:

- ``state.cell`` is column-vector (``state.row_vector_cell = state.cell.mT`` is ASE's cell); acepy
  takes rows. A plain dict state gives ``"cell"`` in the same column convention as ``SimState.cell``.
- ``state.atomic_numbers`` int (any width), ``state.system_idx`` the structure of each atom
  (``state.batch`` in older releases);
- ``state.pbc`` one bool for the whole state (a ``(3,)`` or ``(B, 3)`` tensor is taken as given);
- partial charges, where a state carries them (``charges`` or ``partial_charges``), go to
  ``batch.charges`` for components that read them.

Outputs: ``energy (B,)``, ``forces (N, 3)``, ``stress (B, 3, 3)`` in eV, eV/A and eV/A^3 with ASE's
sign (positive under tension: torch-sim's relaxations take pressure = -trace(stress)/3), in the
model's dtype. A structure without a cell volume (a molecule with a zero cell) in a mixed batch gets
a zero stress; the others theirs (``Stack.evaluate`` alone refuses stress for such a batch).
"""

from __future__ import annotations

import numpy as np
import torch

from acepy.batch import Batch
from acepy.models.stack import Stack

__all__ = ["TorchSimModel", "batch_from_state"]


def _interface_base():
    try:
        from torch_sim.models.interface import ModelInterface
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("acepy.calculators.TorchSimModel needs torch-sim: pip install torch-sim-atomistic "
                          f"({err})") from None
    return ModelInterface


def _get(state, name: str):
    if isinstance(state, dict):
        return state.get(name)
    return getattr(state, name, None)


def _pbc_rows(pbc, n_systems: int, device) -> torch.Tensor:
    """torch-sim's pbc (a bool, a (3,) or a (B, 3) tensor) as acepy's (B, 3) bool tensor."""
    t = torch.as_tensor(pbc, dtype=torch.bool, device=device)
    if t.ndim == 0:
        return t.expand(n_systems, 3).clone()
    if t.shape == (3,):
        return t.expand(n_systems, 3).clone()
    if t.shape == (n_systems, 3):
        return t.clone()
    raise ValueError(f"TorchSimModel: pbc must be a bool, a (3,) or a ({n_systems}, 3) tensor, got shape "
                     f"{tuple(t.shape)}")


def batch_from_state(state, dtype: torch.dtype | None = None, device=None) -> Batch:
    """An acepy :class:`Batch` from a torch-sim ``SimState`` (or its dict form); see the module doc."""
    positions = _get(state, "positions")
    cell = _get(state, "cell")
    numbers = _get(state, "atomic_numbers")
    if positions is None or cell is None or numbers is None:
        raise ValueError("TorchSimModel: the state needs positions, cell and atomic_numbers")
    system_idx = _get(state, "system_idx")
    if system_idx is None:
        system_idx = _get(state, "batch")
    if system_idx is None:
        system_idx = torch.zeros(positions.shape[0], dtype=torch.int64, device=positions.device)
    dtype = positions.dtype if dtype is None else dtype
    device = positions.device if device is None else torch.device(device)
    cell = torch.as_tensor(cell)
    if cell.ndim == 2:
        cell = cell.unsqueeze(0)
    rows = cell.transpose(-1, -2)  # column-vector (torch-sim) -> row-vector (ASE, acepy)
    charges = _get(state, "charges")
    if charges is None:
        charges = _get(state, "partial_charges")
    return Batch(
        positions=positions.detach().to(device, dtype),
        numbers=torch.as_tensor(numbers).to(device, torch.int64),
        cell=rows.detach().to(device, dtype).contiguous(),
        pbc=_pbc_rows(_get(state, "pbc") if _get(state, "pbc") is not None else True, rows.shape[0], device),
        system_idx=torch.as_tensor(system_idx).to(device, torch.int64),
        charges=None if charges is None else torch.as_tensor(charges).detach().to(device, dtype),
    )


def _with_volume(batch: Batch) -> tuple[Batch, torch.Tensor]:
    """The batch with every zero-volume cell completed by unit vectors orthogonal to its periodic
    rows, and the mask of structures that had a volume.

    No shift is ever taken along a non-periodic direction (acepy/graph.py), so such rows never
    enter an edge vector: energies and forces are unchanged, and the virial is defined; only the
    division by a volume is not, and those structures get a zero stress. (The same completion as
    the neighbour search's box, ``acepy.graph_checks._search_box``.)"""
    volumes = batch.volumes().detach()
    has_volume = volumes > 0
    if bool(has_volume.all()):
        return batch, has_volume
    cell = batch.cell.detach().cpu().double().numpy().copy()
    pbc = batch.pbc.cpu().numpy()
    for b in np.flatnonzero(~has_volume.cpu().numpy()):
        periodic = cell[b][pbc[b]]
        if len(periodic) == 3:
            raise ValueError(f"TorchSimModel: structure {b} is periodic in 3 directions with a cell of volume 0")
        complement = np.linalg.svd(periodic)[2][len(periodic):] if len(periodic) else np.eye(3)
        cell[b][~pbc[b]] = complement
    completed = Batch(positions=batch.positions, numbers=batch.numbers,
                      cell=torch.as_tensor(cell, dtype=batch.dtype, device=batch.device), pbc=batch.pbc,
                      system_idx=batch.system_idx, charges=batch.charges)
    return completed, has_volume


def _make_class():
    ModelInterface = _interface_base()

    class TorchSimModel(ModelInterface):
        """torch-sim's ``ModelInterface`` around an acepy model (a :class:`~acepy.models.stack.Stack`,
        or a potential path / bundled name given to ``acepy.load`` with ``load_kwargs``).

        ``compute_forces`` / ``compute_stress`` say what ``forward`` returns (both by default);
        ``num_threads`` the CPU threads of each call (default: the model's). The model's dtype and
        device are the interface's; states are moved there.
        """

        def __init__(self, model, compute_forces: bool = True, compute_stress: bool = True,
                     num_threads: int | None = None, **load_kwargs):
            super().__init__()
            if not isinstance(model, Stack):
                from acepy.loading import load

                model = load(model, **load_kwargs)
            elif load_kwargs:
                raise TypeError(f"TorchSimModel: {sorted(load_kwargs)} only apply when the model is loaded from a "
                                "path; this one is built already")
            self.model = model
            self._device = model.device
            self._dtype = model.dtype
            self._compute_forces = bool(compute_forces)
            self._compute_stress = bool(compute_stress)
            self._memory_scales_with = "n_atoms_x_density"
            self.num_threads = num_threads

        def forward(self, state, **kwargs) -> dict[str, torch.Tensor]:
            batch = batch_from_state(state, self._dtype, self._device)
            want_grad = self._compute_forces or self._compute_stress
            stress = self._compute_stress and batch.n_systems > 0
            if stress:
                batch, has_volume = _with_volume(batch)
            out = self.model.evaluate(batch, compute_forces=want_grad, compute_stress=stress,
                                      num_threads=self.num_threads)
            result = {"energy": out["energy"].detach()}
            if self._compute_forces:
                result["forces"] = out["forces"].detach()
            if stress:
                result["stress"] = torch.where(has_volume.reshape(-1, 1, 1), out["stress"].detach(),
                                               torch.zeros_like(out["stress"]))
            return result

        def extra_repr(self) -> str:
            return f"model={self.model!r}, compute_forces={self._compute_forces}, compute_stress={self._compute_stress}"

    TorchSimModel.__module__ = __name__
    TorchSimModel.__qualname__ = "TorchSimModel"
    return TorchSimModel


_CLASS = None


def __getattr__(name: str):
    # The class derives from torch-sim's ModelInterface: it is made on first use, so that importing
    # this module (or acepy) does not import torch-sim.
    global _CLASS
    if name == "TorchSimModel":
        if _CLASS is None:
            _CLASS = _make_class()
        return _CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
