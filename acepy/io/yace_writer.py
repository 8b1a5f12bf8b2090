"""Writer of `.yace` files in pacemaker's flow style (ACE_SPEC.md 1.1-1.7).

The layout follows what python-ace's `ACECTildeBasisSet::save_yaml` writes, so that both the C++
reader (LAMMPS ML-PACE, python-ace's `PyACECalculator`) and `acepy.io.read_yace` read the file:
one flow mapping per embedding, bond and function; bond keys as flow sequences ``[0, 1]``;
``ms_combs`` and ``ctildes`` flattened row-major ([M][rank], [M][P]). Floats are written with
Python's shortest round-trip representation, so ``read_yace(write_yace(spec))`` gives back the same
numbers bit for bit. The file is written to a temporary name in the same folder and renamed, so a
reader never sees a half-written file.

Only PACE radial bases (`PaceBond`) are written: the ACE.jl SHIPs and spline-table variants are
other formats (ACE_SPEC.md 1.5, 1.6).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from acepy.spec import NPOTI_NAMES, ACEPotentialSpec, CTildeFunction, Embedding, PaceBond, function_problem

__all__ = ["write_yace", "yace_text"]

_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
# YAML 1.1 words that a loader may turn into booleans or null: always quoted (the symbol `No`).
_RESERVED = {"y", "yes", "n", "no", "true", "false", "on", "off", "null", "nan", "inf"}


def _num(x, where: str) -> str:
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"{where}: non-finite value {value!r} cannot be written")
    if value == int(value) and abs(value) < 1e15:
        return str(int(value)) if value != 0 or math.copysign(1, value) > 0 else "-0.0"
    return repr(value)


def _int(x, where: str) -> str:
    if int(x) != x:
        raise ValueError(f"{where}: expected an integer, got {x!r}")
    return str(int(x))


def _str(s: str, where: str) -> str:
    if not isinstance(s, str) or not s:
        raise ValueError(f"{where}: expected a non-empty string, got {s!r}")
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
        raise ValueError(f"{where}.npoti: unknown embedding {e.npoti!r}; expected one of {NPOTI_NAMES}")
    fs = np.asarray(e.fs_parameters, dtype=np.float64).ravel()
    if fs.size != 2 * e.ndensity:
        raise ValueError(f"{where}.FS_parameters: {fs.size} values, need 2 * ndensity = {2 * e.ndensity}")
    return (f"{{ndensity: {_int(e.ndensity, where + '.ndensity')}, FS_parameters: {_nums(fs, where + '.FS_parameters')}, "
            f"npoti: {e.npoti}, rho_core_cutoff: {_num(e.rho_core_cutoff, where + '.rho_core_cutoff')}, "
            f"drho_core_cutoff: {_num(e.drho_core_cutoff, where + '.drho_core_cutoff')}}}")


def _bond(key, b: PaceBond) -> str:
    where = f"bonds[{key[0]}, {key[1]}]"
    if not isinstance(b, PaceBond):
        raise ValueError(f"{where}: only PACE radial bases can be written as .yace here, got {type(b).__name__}")
    crad = np.asarray(b.crad, dtype=np.float64)
    shape = (b.nradmax, b.lmax + 1, b.nradbasemax)
    if crad.shape != shape:
        raise ValueError(f"{where}.radcoefficients: shape {crad.shape}, expected (nradmax, lmax + 1, nradbasemax) = {shape}")
    rc = "[" + ", ".join(
        "[" + ", ".join(_nums(crad[n, l], f"{where}.radcoefficients[{n}][{l}]") for l in range(shape[1])) + "]"
        for n in range(shape[0])) + "]"
    radparameters = np.atleast_1d(np.asarray(b.radparameters, dtype=np.float64))
    if radparameters.size == 0:
        raise ValueError(f"{where}.radparameters: must not be empty")
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
        raise ValueError(f"{where}: ndensity {f.ndensity} differs from embeddings[{mu}].ndensity {ndensity}")
    if len(f.mus) != rank or len(f.ns) != rank or len(f.ls) != rank:
        raise ValueError(f"{where}: mus, ns, ls must have rank = {rank} entries")
    if ct.shape != (ms.shape[0], ndensity):
        raise ValueError(f"{where}.ctildes: shape {ct.shape}, expected (num_ms_combs, ndensity) = {(ms.shape[0], ndensity)}")
    if ms.shape[0] == 0:
        raise ValueError(f"{where}: no m-tuples (num_ms_combs = 0)")
    return (f"{{mu0: {_int(f.mu0, where + '.mu0')}, rank: {rank}, ndensity: {ndensity}, num_ms_combs: {ms.shape[0]}, "
            f"mus: {_ints(f.mus, where + '.mus')}, ns: {_ints(f.ns, where + '.ns')}, ls: {_ints(f.ls, where + '.ls')}, "
            f"ms_combs: {_ints(ms, where + '.ms_combs')}, ctildes: {_nums(ct, where + '.ctildes')}}}")


def yace_text(spec: ACEPotentialSpec) -> str:
    """The `.yace` document of ``spec`` as a string (see :func:`write_yace`)."""
    if spec.radial_kind != "pace":
        raise ValueError(f"only PACE radial bases can be written, this potential has radial_kind {spec.radial_kind!r}")
    n = spec.nelements
    if n == 0:
        raise ValueError("elements: empty element list")
    if len(spec.embeddings) != n or len(spec.functions) != n:
        raise ValueError(f"need one embedding and one function list per element ({n}), got "
                         f"{len(spec.embeddings)} and {len(spec.functions)}")
    missing = [(i, j) for i in range(n) for j in range(n) if (i, j) not in spec.bonds]
    if missing:
        raise ValueError(f"bonds: every ordered species pair needs a bond; missing {missing}")
    if spec.bonds[(n - 1, n - 1)].inner_cutoff_type != spec.inner_cutoff_type:
        raise ValueError(f"inner_cutoff_type {spec.inner_cutoff_type!r} is not that of bond [{n - 1}, {n - 1}] "
                         f"({spec.bonds[(n - 1, n - 1)].inner_cutoff_type!r}), the one the C++ reader uses")
    if spec.delta_spline_bins is None or not spec.delta_spline_bins > 0:
        raise ValueError(f"deltaSplineBins must be > 0, got {spec.delta_spline_bins!r}")
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
                raise ValueError(f"functions[{mu}][{i}]: {problem}")
            lines.append(f"    - {_function(mu, i, f, spec.embeddings[mu].ndensity)}")
    return "\n".join(lines) + "\n"


def write_yace(spec: ACEPotentialSpec, path) -> Path:
    """Write ``spec`` as a `.yace` file at ``path`` atomically (temporary file, then rename).

    Raises ValueError (naming the key) for anything a reader could not use; the target is then
    left untouched.
    """
    path = Path(path)
    text = yace_text(spec)  # every check happens before anything touches the disk
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
