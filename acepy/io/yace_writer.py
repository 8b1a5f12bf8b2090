"""Writer of `.yace` files in pacemaker's flow style (ACE_SPEC.md 1.1-1.7).

The layout follows what python-ace's `ACECTildeBasisSet::save_yaml` writes, so that both the C++
reader (LAMMPS ML-PACE, python-ace's `PyACECalculator`) and `acepy.io.read_yace` read the file:
one flow mapping per embedding, bond and function; bond keys as flow sequences ``[0, 1]``;
``ms_combs`` and ``ctildes`` flattened row-major ([M][rank], [M][P]). Floats are written with
Python's shortest round-trip representation, so ``read_yace(write_yace(spec))`` gives back the same
numbers bit for bit. The file is written to a temporary name in the same folder and renamed, so a
reader never sees a half-written file.

What the writer refuses, naming the target and the key (:class:`~acepy.errors.PotentialFileError`):
anything :func:`acepy.io.read_yace` or ``acepy.load`` would refuse. The spec is checked first
(the reader's value checks, element symbols, table size); then the written temporary file is
read back with :func:`acepy.io.read_yace` before it replaces the target, so a file the reader
rejects never lands. Replacing a file keeps its permission bits, a symlink is written through (its
target is replaced, the link stays), and the folder is fsync'ed after the rename.

Only PACE radial bases (`PaceBond`) are written: the ACE.jl SHIPs and spline-table variants are
other formats (ACE_SPEC.md 1.5, 1.6).
"""

from __future__ import annotations

import math
import os
import re
import stat
import tempfile
import warnings
from pathlib import Path

import numpy as np

from acepy.errors import PotentialFileError, PotentialFileWarning
from acepy.spec import (
    NPOTI_NAMES,
    ACEPotentialSpec,
    CTildeFunction,
    Embedding,
    PaceBond,
    embedding_problems,
    function_problem,
    pace_bond_problems,
    radial_table_problem,
)

from .yaml_doc import check_problems, key_path

__all__ = ["write_yace", "yace_text"]

_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
# YAML 1.1 words that a loader may turn into booleans or null: always quoted (the symbol `No`).
_RESERVED = {"y", "yes", "n", "no", "true", "false", "on", "off", "null", "nan", "inf"}


class _Invalid(Exception):
    """A spec value the writer cannot write: (key path, problem); yace_text names the file."""


def _num(x, where: str) -> str:
    value = float(x)
    if not math.isfinite(value):
        raise _Invalid(where, f"non-finite value {value!r} cannot be written")
    if value == int(value) and abs(value) < 1e15:
        return str(int(value)) if value != 0 or math.copysign(1, value) > 0 else "-0.0"
    return repr(value)


def _int(x, where: str) -> str:
    if int(x) != x:
        raise _Invalid(where, f"expected an integer, got {x!r}")
    return str(int(x))


def _str(s: str, where: str) -> str:
    if not isinstance(s, str) or not s:
        raise _Invalid(where, f"expected a non-empty string, got {s!r}")
    if _PLAIN.match(s) and s.lower() not in _RESERVED:
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _nums(values, where: str) -> str:
    return "[" + ", ".join(_num(v, f"{where}[{i}]") for i, v in enumerate(np.asarray(values).ravel())) + "]"


def _ints(values, where: str) -> str:
    return "[" + ", ".join(_int(v, f"{where}[{i}]") for i, v in enumerate(np.asarray(values).ravel())) + "]"


def _embedding(mu: int, e: Embedding) -> str:
    where = f"embeddings[{mu}]"
    if e.npoti not in NPOTI_NAMES:
        raise _Invalid(f"{where}.npoti", f"unknown embedding {e.npoti!r}; expected one of {NPOTI_NAMES}")
    fs = np.asarray(e.fs_parameters, dtype=np.float64).ravel()
    if fs.size != 2 * e.ndensity:
        raise _Invalid(f"{where}.FS_parameters", f"{fs.size} values, need 2 * ndensity = {2 * e.ndensity}")
    return (f"{{ndensity: {_int(e.ndensity, where + '.ndensity')}, FS_parameters: {_nums(fs, where + '.FS_parameters')}, "
            f"npoti: {e.npoti}, rho_core_cutoff: {_num(e.rho_core_cutoff, where + '.rho_core_cutoff')}, "
            f"drho_core_cutoff: {_num(e.drho_core_cutoff, where + '.drho_core_cutoff')}}}")


def _bond(key, b: PaceBond) -> str:
    where = f"bonds[{key[0]}, {key[1]}]"
    if not isinstance(b, PaceBond):
        raise _Invalid(where, f"only PACE radial bases can be written as .yace here, got {type(b).__name__}")
    crad = np.asarray(b.crad, dtype=np.float64)
    shape = (b.nradmax, b.lmax + 1, b.nradbasemax)
    if crad.shape != shape:
        raise _Invalid(f"{where}.radcoefficients", f"shape {crad.shape}, expected (nradmax, lmax + 1, nradbasemax) = {shape}")
    rc = "[" + ", ".join(
        "[" + ", ".join(_nums(crad[n, l], f"{where}.radcoefficients[{n}][{l}]") for l in range(shape[1])) + "]"
        for n in range(shape[0])) + "]"
    radparameters = np.atleast_1d(np.asarray(b.radparameters, dtype=np.float64))
    if radparameters.size == 0:
        raise _Invalid(f"{where}.radparameters", "must not be empty")
    return (f"{{nradmax: {_int(b.nradmax, where)}, lmax: {_int(b.lmax, where)}, "
            f"nradbasemax: {_int(b.nradbasemax, where)}, radbasename: {_str(b.radbasename, where + '.radbasename')}, "
            f"radparameters: {_nums(radparameters, where + '.radparameters')}, radcoefficients: {rc}, "
            f"prehc: {_num(b.prehc, where + '.prehc')}, lambdahc: {_num(b.lambdahc, where + '.lambdahc')}, "
            f"rcut: {_num(b.rcut, where + '.rcut')}, dcut: {_num(b.dcut, where + '.dcut')}, "
            f"rcut_in: {_num(b.rcut_in, where + '.rcut_in')}, dcut_in: {_num(b.dcut_in, where + '.dcut_in')}, "
            f"inner_cutoff_type: {_str(b.inner_cutoff_type, where + '.inner_cutoff_type')}}}")


def _function(mu: int, i: int, f: CTildeFunction, ndensity: int) -> str:
    where = f"functions[{mu}][{i}]"
    rank = int(f.rank)
    ms = np.asarray(f.ms_combs).reshape(-1, rank) if rank else np.zeros((0, 0))
    ct = np.asarray(f.ctildes, dtype=np.float64)
    if f.ndensity != ndensity:
        raise _Invalid(where, f"ndensity {f.ndensity} differs from embeddings[{mu}].ndensity {ndensity}")
    if len(f.mus) != rank or len(f.ns) != rank or len(f.ls) != rank:
        raise _Invalid(where, f"mus, ns, ls must have rank = {rank} entries")
    if ct.shape != (ms.shape[0], ndensity):
        raise _Invalid(f"{where}.ctildes", f"shape {ct.shape}, expected (num_ms_combs, ndensity) = {(ms.shape[0], ndensity)}")
    if ms.shape[0] == 0:
        raise _Invalid(where, "no m-tuples (num_ms_combs = 0)")
    return (f"{{mu0: {_int(f.mu0, where + '.mu0')}, rank: {rank}, ndensity: {ndensity}, num_ms_combs: {ms.shape[0]}, "
            f"mus: {_ints(f.mus, where + '.mus')}, ns: {_ints(f.ns, where + '.ns')}, ls: {_ints(f.ls, where + '.ls')}, "
            f"ms_combs: {_ints(ms, where + '.ms_combs')}, ctildes: {_nums(ct, where + '.ctildes')}}}")


def yace_text(spec: ACEPotentialSpec, name=None) -> str:
    """The `.yace` document of ``spec`` as a string (see :func:`write_yace`); what cannot be
    written raises :class:`PotentialFileError` naming ``name`` (default: the spec's source) and
    the key."""
    name = name if name is not None else (spec.source or "<spec>")
    try:
        _check_values(spec, name)
        return _text(spec)
    except _Invalid as err:
        raise PotentialFileError(name, *err.args) from None


def _check_values(spec: ACEPotentialSpec, name) -> None:
    """What the reader (and acepy.load) check beyond the layout: chemical element symbols, the
    value checks of acepy.spec, the size of the radial tables."""
    from ase.data import atomic_numbers

    for i, el in enumerate(spec.elements):
        if not isinstance(el, str) or atomic_numbers.get(el, 0) == 0:
            raise _Invalid(f"elements[{i}]", f"{el!r} is not a chemical element symbol")
    for mu, e in enumerate(spec.embeddings):
        check_problems(name, embedding_problems(e), lambda f, mu=mu: key_path(f"embeddings[{mu}]", f))
    for (i, j), b in spec.bonds.items():
        if isinstance(b, PaceBond):
            check_problems(name, pace_bond_problems(b, spec.inner_cutoff_type),
                           lambda f, w=f"bonds[{i}, {j}]": key_path(w, f))
    if spec.radial_kind == "pace" and spec.delta_spline_bins is not None and spec.delta_spline_bins > 0:
        problem = radial_table_problem(spec)
        if problem is not None:
            where = problem.field if problem.pair is None else key_path(key_path("bonds", problem.pair), problem.field)
            raise _Invalid(where, problem.message)


def _text(spec: ACEPotentialSpec) -> str:
    if spec.radial_kind != "pace":
        raise _Invalid("bonds", f"only PACE radial bases can be written, this potential has radial_kind {spec.radial_kind!r}")
    n = spec.nelements
    if n == 0:
        raise _Invalid("elements", "empty element list")
    if len(spec.embeddings) != n or len(spec.functions) != n:
        raise _Invalid("embeddings", f"need one embedding and one function list per element ({n}), got "
                         f"{len(spec.embeddings)} and {len(spec.functions)}")
    missing = [(i, j) for i in range(n) for j in range(n) if (i, j) not in spec.bonds]
    if missing:
        raise _Invalid("bonds", f"every ordered species pair needs a bond; missing {missing}")
    if spec.bonds[(n - 1, n - 1)].inner_cutoff_type != spec.inner_cutoff_type:
        raise _Invalid(f"bonds[{n - 1}, {n - 1}].inner_cutoff_type",
                       f"inner_cutoff_type {spec.inner_cutoff_type!r} is not that of bond [{n - 1}, {n - 1}] "
                       f"({spec.bonds[(n - 1, n - 1)].inner_cutoff_type!r}), the one the C++ reader uses")
    if spec.delta_spline_bins is None or not spec.delta_spline_bins > 0:
        raise _Invalid("deltaSplineBins", f"must be > 0, got {spec.delta_spline_bins!r}")
    lines = [
        "elements: [" + ", ".join(_str(e, f"elements[{i}]") for i, e in enumerate(spec.elements)) + "]",
        f"E0: {_nums(np.asarray(spec.E0).reshape(n), 'E0')}",
        f"deltaSplineBins: {_num(spec.delta_spline_bins, 'deltaSplineBins')}",
        "embeddings:",
    ]
    lines += [f"  {mu}: {_embedding(mu, e)}" for mu, e in enumerate(spec.embeddings)]
    lines.append("bonds:")
    lines += [f"  [{i}, {j}]: {_bond((i, j), spec.bonds[(i, j)])}" for i in range(n) for j in range(n)]
    lines.append("functions:")
    nradbase, nradmax, lmax = spec.nradbase, spec.nradmax, spec.lmax
    for mu in range(n):
        fns = spec.functions[mu]
        if not fns:
            lines.append(f"  {mu}: []")
            continue
        lines.append(f"  {mu}:")
        for i, f in enumerate(fns):
            problem = function_problem(f, n, nradbase, nradmax, lmax)
            if problem:
                raise _Invalid(f"functions[{mu}][{i}]", problem)
            lines.append(f"    - {_function(mu, i, f, spec.embeddings[mu].ndensity)}")
    return "\n".join(lines) + "\n"


def write_yace(spec: ACEPotentialSpec, path) -> Path:
    """Write ``spec`` as a `.yace` file at ``path`` atomically (temporary file, then rename).

    Raises :class:`PotentialFileError` (a ValueError, naming ``path`` and the key) for anything the
    reader or ``acepy.load`` would refuse; the target is then left untouched. The temporary file
    is read back with :func:`acepy.io.read_yace` before it replaces the target. An existing target
    keeps its permission bits (a new file gets 0o666 minus the umask); a symlink is written
    through to its target; the folder is fsync'ed after the rename, so the new name survives a crash.
    Returns ``path``.
    """
    from .yace import read_yace

    path = Path(path)
    text = yace_text(spec, name=path)  # every spec check happens before anything touches the disk
    target = Path(os.path.realpath(path))  # through a symlink: replace the file it points to
    folder = target.parent
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            with warnings.catch_warnings():  # warned about above, naming the target
                warnings.simplefilter("ignore", PotentialFileWarning)
                read_yace(tmp)  # the reader's own verdict on exactly these bytes
        except PotentialFileError as err:
            raise PotentialFileError(path, err.where, err.problem) from None
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)
    return path


def _umask() -> int:
    """The process umask, read without changing it (Linux), else the common 0o022."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _fsync_folder(folder: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(folder, flags)
    except OSError:  # e.g. Windows, where folders cannot be opened this way
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
