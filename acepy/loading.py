"""``acepy.load``: a potential file (and optional pair table) to a ready-to-evaluate model stack."""

from __future__ import annotations

from pathlib import Path

import torch

from acepy.batch import check_device, check_dtype
from acepy.errors import PotentialFileError, UnsupportedInputError
from acepy.graph import DEFAULT_MAX_PAIRS
from acepy.io import read_pair_table, read_potential
from acepy.models.ace import ACE
from acepy.models.onebody import OneBody
from acepy.models.stack import Stack

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return check_dtype(dtype)
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise UnsupportedInputError(f"dtype must be 'float64' or 'float32' (or torch.float64 / torch.float32), "
                                    f"got {dtype!r}")
    return _DTYPES[dtype]


_DATA = Path(__file__).resolve().parent / "data"


def _check_elements(elements, path) -> None:
    """Element symbols must be chemical symbols (the stack maps atomic numbers to species through
    them): refuse the file at load time, naming it, instead of failing at every evaluation."""
    from ase.data import atomic_numbers

    for i, el in enumerate(elements):
        if el not in atomic_numbers or atomic_numbers[el] == 0:
            raise PotentialFileError(path, f"elements[{i}]", f"{el!r} is not a chemical element symbol "
                                     f"(elements {list(elements)})")


def _threads_scope(n):
    from acepy.kernels.threads import num_threads

    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"num_threads must be a positive integer or None, got {n!r}")
    return num_threads(n)


def bundled() -> list[str]:
    """Names of the potentials shipped with acepy (synthetic, for benchmarks and tests; see
    ``acepy.basis.bundled``). ``acepy.load(name)`` loads one."""
    return sorted(p.stem for p in _DATA.glob("*.yace"))


def _resolve(path) -> Path:
    """A file path as given, or the shipped file of a bundled potential name (with or without .yace)."""
    candidate = Path(path)
    if candidate.exists() or not isinstance(path, str) or "/" in path or "\\" in path:
        return candidate
    stem = path[:-5] if path.endswith(".yace") else path
    if stem in bundled():
        return _DATA / f"{stem}.yace"
    if not candidate.suffix:
        raise FileNotFoundError(2, f"no such file, and no bundled potential of that name (bundled: "
                                   f"{', '.join(bundled())})", path)
    return candidate


def load(path, pair_table=None, device="cpu", dtype="float64", backend=None, skin: float = 0.0,
         table_n: int | None = None, table_style: str = "spline", table_cutoff=None,
         num_threads: int | None = None, max_pairs: int | None = DEFAULT_MAX_PAIRS,
         max_table_bytes: int | None = None, coulomb=None) -> Stack:
    """Read a ``.yace``/``.ace``/pacemaker ``.yaml`` potential and stack OneBody(E0) + ACE (+ a
    tabulated pair term). The one place that reads potential files and builds a stack.

    ``path`` may also be the name of a bundled potential (``acepy.bundled()``: synthetic, not
    physically fitted).

    ``pair_table`` is a LAMMPS ``pair_style table`` file (ACEpotentials.jl's ``<stem>_pairpot.table``),
    evaluated as ``pair_style hybrid/overlay pace table <table_style> <table_n>`` with one
    ``pair_coeff`` per element pair (section ``A_B`` or ``B_A``, see :class:`acepy.models.pair.Pair`).
    ``table_n`` is LAMMPS's table length N (default: the file's number of points), and
    ``table_cutoff`` the optional ``pair_coeff`` cutoff (a float, or ``{("A", "B"): rc}``).
    ``skin`` keeps a neighbour search for MD steps until an atom moved more than skin/2;
    ``num_threads`` the CPU thread count of the model's calls (None: acepy's default).

    Limits (each raises an acepy error naming what is at fault, instead of exhausting memory):
    ``max_table_bytes`` the memory the radial spline tables may take (default
    :data:`acepy.spec.MAX_RADIAL_TABLE_BYTES`, 1 GiB; checked from the file's sizes before
    anything is built); ``max_pairs`` the estimated number of neighbour pairs of one structure
    (default 2**24, about 1.7e7, some 7 GB; None: no limit), checked before each neighbour search.

    ``coulomb``: an :class:`acepy.models.Coulomb` stacked on top (point-charge electrostatics; its
    real-space part shares the neighbour search with ACE and the pair table). It is rebuilt for
    the stack's dtype and device, and must give a charge to every element of the potential.
    """
    dt = _dtype(dtype)
    device = check_device(device)
    resolved = _resolve(path)
    # Building the tables is many small torch ops: on torch's own thread pool (OpenMP, static
    # split, a barrier per op) one busy process on another core made a load 30x slower (Al-Ni:
    # 1.1 s instead of 0.035 s on 2 cores); torch on one thread inside the threads scope.
    with _threads_scope(num_threads):
        spec = read_potential(resolved, max_table_bytes=max_table_bytes)
        _check_elements(spec.elements, resolved)
        components = [OneBody(spec.E0, spec.elements, dtype=dt, device=device), ACE(spec, dtype=dt, device=device)]
        if pair_table is not None:
            from acepy.models.pair import Pair

            components.append(Pair(read_pair_table(pair_table), spec.elements, tablength=table_n,
                                   style=table_style, cutoff=table_cutoff, dtype=dt, device=device))
        if coulomb is not None:
            from acepy.models.coulomb import Coulomb

            if not isinstance(coulomb, Coulomb):
                raise TypeError(f"acepy.load: coulomb must be an acepy.models.Coulomb, got {type(coulomb).__name__}")
            components.append(coulomb.to(dtype=dt, device=device))
    stack = Stack(components, spec.elements, dtype=dt, device=device, backend=backend, skin=skin,
                  num_threads=num_threads, max_pairs=max_pairs)
    bundled_name = isinstance(path, str) and resolved.parent == _DATA and not Path(path).exists()
    stack.load_options = {
        "path": resolved.stem if bundled_name else str(resolved.resolve()),
        "pair_table": None if pair_table is None else str(Path(pair_table).resolve()),
        "dtype": "float64" if dt == torch.float64 else "float32",
        "backend": backend,
        "device": str(torch.device(device)),
        "skin": float(skin),
        "table_n": table_n,
        "table_style": table_style,
        "table_cutoff": table_cutoff,
        "num_threads": num_threads,
    }
    if coulomb is not None:
        stack.load_options["coulomb"] = repr(coulomb)
    return stack
