"""A batch of atomic structures as flat torch tensors.

Atoms of all structures are concatenated: ``positions (N, 3)``, ``numbers (N,)`` and
``system_idx (N,)`` (sorted, the structure each atom belongs to); per-structure data is stacked:
``cell (B, 3, 3)`` (rows are the cell vectors, ASE's ``atoms.cell[:]``) and ``pbc (B, 3)``.
A structure with 0 atoms keeps its slot in ``B`` so that outputs line up with the input list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from acepy.errors import DeviceUnavailableError, StructureError, UnsupportedInputError
from acepy.kernels.numba_cpu.cells import cell_facts

__all__ = ["Batch", "batch_from_atoms", "check_device", "check_dtype", "FLOAT_DTYPES"]

FLOAT_DTYPES = (torch.float64, torch.float32)

# A set of periodic cell vectors is treated as singular when the volume they span, divided by the
# product of their lengths (a number in [0, 1], 1 for orthogonal vectors), is below this.
_SINGULAR_TOL = 1e-8


class CellMemo:
    """What depends on a batch's cells and pbc alone, computed once for the last few small batches.

    An MD run or a stream of ASE calls on one cell asks the same questions of the same cell every
    call (is it singular, its reduced search box, its volume): tens of microseconds of small NumPy
    calls each, a tenth of an 8-atom evaluation. The key is the exact bytes of the float64 cells and
    of pbc (any change is a miss); only batches of at most ``max_structures`` structures are kept
    (a big batch's key would be as large as its cells, and its checks are cheap per structure).
    Values are shared, not copied: callers must not change them. A plain dict: concurrent
    threads may both compute a missing entry, which is harmless.
    """

    def __init__(self, size: int = 16, max_structures: int = 64):
        self.size, self.max_structures = size, max_structures
        self._entries: dict = {}

    def get(self, cells: np.ndarray, pbc: np.ndarray, compute):
        """``compute()``'s value for these cells (B, 3, 3) float64 and pbc (B, 3) bool."""
        if cells.shape[0] > self.max_structures:
            return compute()
        key = (cells.shape[0], cells.tobytes(), pbc.tobytes())
        value = self._entries.get(key)
        if value is None:
            value = compute()
            if len(self._entries) >= self.size:
                try:
                    self._entries.pop(next(iter(self._entries)), None)  # the oldest
                except (StopIteration, RuntimeError):  # emptied or changed by another thread meanwhile
                    pass
            self._entries[key] = value
        return value


_CHECKED_CELLS = CellMemo()  # cells that passed _check_periodic_vectors (a failing one raises every time)
_VOLUMES = CellMemo()  # |det(cell)| (B,) float64


@dataclass(frozen=True)
class Batch:
    positions: torch.Tensor  # (N, 3) float
    numbers: torch.Tensor  # (N,) int64 atomic numbers
    cell: torch.Tensor  # (B, 3, 3) float, rows are cell vectors
    pbc: torch.Tensor  # (B, 3) bool
    system_idx: torch.Tensor  # (N,) int64, sorted
    # optional per-atom data for the components that declare it (DESIGN.md): charges (N,) in e
    charges: torch.Tensor | None = None
    # (B + 1,) first atom of each structure; derived from system_idx in __post_init__.
    atom_offsets: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        # Shape and dtype checks only: they never read values, so they cost no device sync.
        p, nums, cell, pbc, sidx = self.positions, self.numbers, self.cell, self.pbc, self.system_idx
        bad = UnsupportedInputError
        if p.dtype not in FLOAT_DTYPES:
            raise bad(f"positions must be float32 or float64 (acepy computes in floating point), got {p.dtype}")
        if p.ndim != 2 or p.shape[1] != 3:
            raise bad(f"positions must be a floating (N, 3) tensor, got {p.dtype} {tuple(p.shape)}")
        n = p.shape[0]
        if nums.shape != (n,):
            raise bad(f"numbers must have shape ({n},) to match positions {tuple(p.shape)}, got {tuple(nums.shape)}")
        if sidx.shape != (n,):
            raise bad(f"system_idx must have shape ({n},) to match positions {tuple(p.shape)}, got {tuple(sidx.shape)}")
        if nums.dtype != torch.int64 or sidx.dtype != torch.int64:
            raise bad(f"numbers and system_idx must be int64, got {nums.dtype} and {sidx.dtype}")
        if cell.ndim != 3 or cell.shape[1:] != (3, 3) or cell.dtype != p.dtype:
            raise bad(f"cell must be (B, 3, 3) with the positions' dtype {p.dtype}, got {cell.dtype} {tuple(cell.shape)}")
        if pbc.shape != (cell.shape[0], 3) or pbc.dtype != torch.bool:
            raise bad(f"pbc must be a bool (B, 3) tensor with B={cell.shape[0]}, got {pbc.dtype} {tuple(pbc.shape)}")
        if self.charges is not None and (self.charges.shape != (n,) or self.charges.dtype != p.dtype):
            raise bad(f"charges must be ({n},) with the positions' dtype {p.dtype}, got "
                      f"{self.charges.dtype} {tuple(self.charges.shape)}")
        devices = {t.device for t in (p, nums, cell, pbc, sidx, self.charges) if t is not None}
        if len(devices) != 1:
            raise bad(f"all batch tensors must be on one device, got {sorted(map(str, devices))}")
        if p.device.type not in ("cpu", "cuda"):
            raise bad(f"batch tensors on device {str(p.device)!r}: acepy evaluates on 'cpu' and 'cuda' "
                      "(meta tensors carry no values)")
        # first atom of each structure by a search in the sorted system_idx (bincount's output size
        # depends on the largest value: a host sync on a GPU); validate() checks the sorting
        if p.device.type == "cpu":  # numpy's search: torch's dispatch costs more than the work on small batches
            structures = np.arange(cell.shape[0] + 1, dtype=np.int64)
            offsets = torch.from_numpy(np.searchsorted(sidx.detach().numpy(), structures) if n else 0 * structures)
        else:
            structures = torch.arange(cell.shape[0] + 1, dtype=torch.int64, device=p.device)
            offsets = torch.searchsorted(sidx, structures) if n else structures.new_zeros(cell.shape[0] + 1)
        object.__setattr__(self, "atom_offsets", offsets)

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[0]

    @property
    def n_systems(self) -> int:
        return self.cell.shape[0]

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    def volumes(self) -> torch.Tensor:
        """``|det(cell)|`` per structure, (B,), differentiable w.r.t. the cell.

        It is 0 for a cell with a zero (non-periodic) vector: callers that divide by it (stress)
        decide what a non-periodic structure means for them.
        """
        cell = self.cell
        if cell.device.type == "cpu" and not (cell.requires_grad and torch.is_grad_enabled()):
            # numpy's LAPACK determinant: the same LU, without torch's dispatch (~60 us of an 8-atom call),
            # once per cell for the last few (an MD run asks every step)
            volumes = cell_volumes(cell.detach().numpy().astype(np.float64, copy=False), self.pbc.numpy())
            return torch.from_numpy(volumes.copy()).to(cell.dtype)
        return torch.linalg.det(cell).abs()

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Batch":
        """A copy on ``device`` with floating tensors in ``dtype`` (integers and pbc keep theirs).

        Casting to a less precise dtype (float64 to float32) first translates each structure, in
        the given precision, so that its first atom sits at the origin. A translation changes no
        energy, force, stress or neighbour list, and without it float32 positions far from the
        origin lose the digits that edge vectors need (a cluster 1e4 A away: 1.4 eV, 1e6 A: 89 eV
        on 44 Al atoms). Atoms spread far from their structure's first atom (an unwrapped MD
        trajectory) keep that spread: wrap them into the cell first for float32."""
        device = self.device if device is None else check_device(device)
        dtype = self.dtype if dtype is None else check_dtype(dtype)
        if dtype == self.dtype and (device == self.device or (device.index is None and device.type == self.device.type)):
            return self  # nothing to move or cast (a Batch is never changed in place by acepy)
        positions = self.positions
        if self.n_atoms and torch.finfo(dtype).eps > torch.finfo(self.dtype).eps:
            positions = positions - self._origin_shifts()
        return Batch(
            positions=positions.to(device=device, dtype=dtype),
            numbers=self.numbers.to(device),
            cell=self.cell.to(device=device, dtype=dtype),
            pbc=self.pbc.to(device),
            system_idx=self.system_idx.to(device),
            charges=None if self.charges is None else self.charges.to(device=device, dtype=dtype),
        )

    def _origin_shifts(self) -> torch.Tensor:
        """(N, 3): per atom, the position of its structure's first atom (see :meth:`to`)."""
        with torch.no_grad():
            first = self.atom_offsets[:-1].clamp(max=self.n_atoms - 1)
            return self.positions.detach().index_select(0, first).index_select(0, self.system_idx)

    def requires_grad_(self, positions: bool = True, cell: bool = True) -> "Batch":
        """Make positions and/or cell require grad (in place; they must be leaf tensors), so that
        ``Stack.energy(batch)`` can be differentiated in them. Returns ``self``."""
        self.positions.requires_grad_(positions)
        self.cell.requires_grad_(cell)
        return self

    def validate(self) -> "Batch":
        """Check values (not just shapes); raise ``ValueError`` naming the structure and atom.

        Checks: ``system_idx`` sorted and in range, finite positions and cells, and for periodic
        directions non-zero, linearly independent cell vectors. Non-periodic directions may have
        any (even zero) cell vector: no shift is ever taken along them. Returns ``self``.
        """
        # numpy on host copies: these checks run once per call on a few small arrays, where each
        # torch op's dispatch would cost more than the work (about 10x for an 8-atom cell)
        sidx = self.system_idx.detach().cpu().numpy()
        b_count = self.n_systems
        if sidx.size:
            down = np.flatnonzero(sidx[1:] < sidx[:-1])
            if down.size:
                k = int(down[0]) + 1
                raise StructureError(f"system_idx must be sorted: atom {k} has system {int(sidx[k])} after "
                                     f"{int(sidx[k - 1])}")
            if int(sidx[0]) < 0 or int(sidx[-1]) >= b_count:
                raise StructureError(f"system_idx values must lie in [0, {b_count}), got [{int(sidx[0])}, {int(sidx[-1])}]")

        pos = self.positions.detach().cpu().numpy()
        if not np.isfinite(pos).all():  # (the common case: one reduction)
            k = int(np.flatnonzero(~np.isfinite(pos).all(axis=1))[0])
            b = int(sidx[k])
            local = k - int(self.atom_offsets[b])
            raise StructureError(f"structure {b}, atom {local}: position is not finite {tuple(pos[k].tolist())}")

        cell = self.cell.detach().cpu().double().numpy()
        pbc = self.pbc.detach().cpu().numpy()
        if not np.isfinite(cell).all():
            b = int(np.flatnonzero(~np.isfinite(cell).reshape(cell.shape[0], -1).all(axis=1))[0])
            raise StructureError(f"structure {b}: the cell is not finite {cell[b].tolist()}")
        check_periodic_cells(cell, pbc)
        return self


def cell_volumes(cells: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """``|det(cell)|`` (B,) of float64 ``cells (B, 3, 3)``, once per cell for the last few (an MD run
    asks every step). Shared: do not write into it."""
    return _VOLUMES.get(cells, pbc, lambda: np.abs(np.linalg.det(cells)))


def check_periodic_cells(cell: np.ndarray, pbc: np.ndarray) -> None:
    """:class:`StructureError` for a cell (``(B, 3, 3)`` float64, finite) whose periodic vectors are
    zero or linearly dependent (``pbc (B, 3)``); a cell that passed is remembered (``_CHECKED_CELLS``).
    One cell that is clearly fine is cleared in one compiled call (a moving cell is new every call)."""
    if cell.shape[0] == 1:
        zero, normalized_volume, _, _ = cell_facts(cell[0], pbc[0], np.empty((3, 3)))
        if not zero and (normalized_volume >= 2.0 * _SINGULAR_TOL or not pbc[0].any()):
            return
    _CHECKED_CELLS.get(cell, pbc, lambda: _check_periodic_vectors(cell, pbc) or True)


def _pbc_text(row) -> str:
    return "(" + ", ".join(str(bool(x)) for x in row) + ")"


def _check_periodic_vectors(cell: np.ndarray, pbc: np.ndarray) -> None:
    """Periodic cell vectors must be non-zero and span a non-degenerate lattice.

    Vectorised over structures: the Gram matrix of the unit periodic vectors, with non-periodic
    rows and columns replaced by the identity, has determinant (normalised volume)^2 of the
    periodic vectors alone.
    """
    lengths = np.linalg.norm(cell, axis=2)  # (B, 3)
    zero = pbc & (lengths == 0)
    if zero.any():
        b, k = (int(x) for x in np.argwhere(zero)[0])
        raise StructureError(
            f"structure {b}: the cell is singular (volume 0) but pbc is {_pbc_text(pbc[b])}: "
            f"cell vector {k} is zero along a periodic direction"
        )
    unit = cell / np.maximum(lengths, 1e-300)[..., None]
    unit = np.where(pbc[..., None], unit, 0.0)
    gram = unit @ unit.transpose(0, 2, 1) + (~pbc)[:, :, None] * np.eye(3)
    normalized_volume = np.sqrt(np.clip(np.linalg.det(gram), 0.0, None))
    singular = pbc.any(axis=1) & (normalized_volume < _SINGULAR_TOL)
    if singular.any():
        b = int(np.flatnonzero(singular)[0])
        raise StructureError(
            f"structure {b}: the cell is singular (volume 0) but pbc is {_pbc_text(pbc[b])}: "
            f"the periodic cell vectors {cell[b][pbc[b]].tolist()} are linearly dependent"
        )


def batch_from_atoms(atoms_or_list, device="cpu", dtype: torch.dtype = torch.float64, charges: bool = False) -> Batch:
    """A validated :class:`Batch` from one ``ase.Atoms`` or a sequence of them.

    ``charges=True`` carries ``atoms.get_initial_charges()`` as the per-atom ``charges``.
    """
    import ase  # ASE is needed only here, at the boundary

    device, dtype = check_device(device), check_dtype(dtype)

    structures: Sequence = [atoms_or_list] if isinstance(atoms_or_list, ase.Atoms) else list(atoms_or_list)
    if not structures:
        raise UnsupportedInputError("batch_from_atoms needs at least one structure")
    for b, atoms in enumerate(structures):
        if not isinstance(atoms, ase.Atoms):
            raise TypeError(f"structure {b}: expected ase.Atoms, got {type(atoms).__name__}")
        n_pos, n_num = len(atoms.positions), len(atoms.numbers)
        if n_pos != n_num:
            raise StructureError(f"structure {b}: {n_num} atomic numbers for {n_pos} positions")

    positions = np.concatenate([np.asarray(a.positions, dtype=np.float64).reshape(-1, 3) for a in structures])
    numbers = np.concatenate([np.asarray(a.numbers, dtype=np.int64).reshape(-1) for a in structures])
    counts = [len(a) for a in structures]
    if len(structures) == 1:
        system_idx = np.zeros(counts[0], dtype=np.int64)
    else:
        system_idx = np.repeat(np.arange(len(structures), dtype=np.int64), counts)
    cell = np.array([a.cell.array for a in structures], dtype=np.float64).reshape(-1, 3, 3)
    pbc = np.array([a.pbc for a in structures], dtype=bool).reshape(-1, 3)

    q = None
    if charges:
        q = np.concatenate([np.asarray(a.get_initial_charges(), dtype=np.float64).reshape(-1) for a in structures])
        if not np.isfinite(q).all():
            k = int(np.flatnonzero(~np.isfinite(q))[0])
            b = int(system_idx[k])
            raise StructureError(f"structure {b}, atom {k - sum(counts[:b])}: initial charge is not finite ({q[k]})")
        q = torch.from_numpy(q)
    # Validate in float64 before any cast, so that a float32 request cannot hide the error site.
    batch = Batch(
        positions=torch.from_numpy(positions),
        numbers=torch.from_numpy(numbers),
        cell=torch.from_numpy(cell),
        pbc=torch.from_numpy(pbc),
        system_idx=torch.from_numpy(system_idx),
        charges=q,
    ).validate()
    return batch.to(device, dtype)



def check_dtype(dtype) -> torch.dtype:
    """``dtype`` if acepy computes in it (float32, float64), else :class:`UnsupportedInputError`."""
    if dtype not in FLOAT_DTYPES:
        raise UnsupportedInputError(f"dtype {dtype!r} is not supported: acepy computes in torch.float64 "
                                    "(the default) or torch.float32")
    return dtype


def check_device(device) -> torch.device:
    """``torch.device(device)`` if acepy can compute there ('cpu', or 'cuda' where a GPU is
    available); else :class:`UnsupportedInputError` or :class:`DeviceUnavailableError`."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UnsupportedInputError(f"device {device!r} is not a device ({err}); acepy runs on 'cpu' and 'cuda'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise DeviceUnavailableError(f"device {str(dev)!r}: no CUDA device is available here (torch "
                                         f"{torch.__version__}, {build}); use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"device {str(dev)!r}: there are {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise UnsupportedInputError(f"device {str(dev)!r} is not supported: acepy runs on 'cpu' and 'cuda'")
    return dev
