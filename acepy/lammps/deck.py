"""``write_input``: a LAMMPS input deck and its files for an acepy stack.

What it writes into ``folder`` (each file to a temporary name, then renamed):

- ``in.lammps``: units metal, ``newton on``, the structure, masses, the pair style
  (``pace``, ``pace/kk`` through ``suffix kk``, ``hybrid/overlay pace table <style> N`` with the
  stack's pair table, plus ``coul/dsf`` or ``coul/long`` + ``kspace_style ewald|pppm`` for an
  acepy Coulomb component), ``thermo`` with the energy and the pressure tensor, ``run 0``;
- the potential file (the ``.yace``/``.ace`` as given, byte for byte; a pacemaker ``.yaml`` or a
  potential built in memory through :func:`acepy.io.write_yace`), the pair table file;
- ``structure.data`` (ASE's ``lammps-data`` writer, types in the deck's order) when ``atoms`` is given.

It refuses, before writing anything, what LAMMPS would refuse (see :mod:`acepy.lammps.styles`),
with a message that says what to do instead: ACEpotentials.jl radial bases under ``pace/kk``,
ACEpotentials v0.6 spline tables, ``newton off``, elements the potential lacks, a structure
without a cell volume, atoms closer than the pair table's inner radius, Ewald/PPPM without
periodic boundaries, Coulomb without charges.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acepy.errors import UnsupportedInputError

from .styles import lammps_support, potential_kind

__all__ = ["LammpsInput", "LammpsInputError", "write_input", "coulomb_component"]

STYLES = ("pace", "pace/kk")


class LammpsInputError(UnsupportedInputError):
    """What LAMMPS would refuse (or compute differently from acepy), said before any file is written."""


@dataclass
class LammpsInput:
    folder: Path
    input: Path  # in.lammps
    files: dict[str, Path]  # role ('potential', 'pair_table', 'data') -> path
    types: list[str]  # element of each LAMMPS type (type k = types[k - 1])
    pair_style: str
    pair_coeffs: list[str]
    command: str  # how to run it
    notes: list[str] = field(default_factory=list)


# ---- the stack's parts ---------------------------------------------------------------------------
def _ace(stack):
    for comp in stack.components:
        if getattr(getattr(comp, "spec", None), "functions", None) is not None:
            return comp
    return None


def _pair(stack):
    for comp in stack.components:
        if hasattr(comp, "lammps_tables") and hasattr(comp, "tablength"):
            return comp
    return None


def coulomb_component(stack):
    """The acepy ``Coulomb`` a stack was built with (``acepy.models.coulomb.find_coulomb``), or None."""
    try:
        from acepy.models.coulomb import find_coulomb
    except ImportError:  # an acepy without electrostatics
        return None
    return find_coulomb(stack)


def _fmt(x: float) -> str:
    return repr(float(x))


# ---- checks ----------------------------------------------------------------------------------------
def _check_style(stack, style: str, newton: bool):
    if style not in STYLES:
        raise LammpsInputError(f"write_input: style must be one of {STYLES}, got {style!r}")
    if not newton:
        raise LammpsInputError("write_input: pair_style pace requires 'newton on' (PairPACE::init_style: "
                               "'Pair style pace requires newton pair on'); the deck always sets it")
    if _ace(stack) is None:
        raise LammpsInputError("write_input: the model has no ACE component; LAMMPS's pair_style pace needs one")
    support = {s.style: s for s in lammps_support(stack)}
    if not support[style].ok:
        raise LammpsInputError(f"write_input: {style} cannot read this potential: {support[style].reason}")


def _check_types(stack, types) -> list[str]:
    types = list(stack.elements if types is None else types)
    if not types:
        raise LammpsInputError("write_input: types must name at least one element")
    missing = [el for el in types if el not in stack.elements]
    if missing:
        raise LammpsInputError(f"write_input: types {missing} are not elements of the potential {stack.elements} "
                               "(pair_coeff * * pace would stop on them)")
    return types


def _check_atoms(stack, atoms, types, coulomb):
    symbols = atoms.get_chemical_symbols()
    for i, s in enumerate(symbols):
        if s not in types:
            raise LammpsInputError(f"write_input: atom {i} is {s}, which is not among the LAMMPS types {types}")
    if abs(float(np.linalg.det(atoms.cell[:]))) <= 0.0:
        raise LammpsInputError("write_input: the structure has no cell volume; a LAMMPS box needs one (for a "
                               "molecule or cluster: atoms.center(vacuum=...) and non-periodic boundaries)")
    if coulomb is not None:
        if coulomb.charges == "initial_charges" and not np.any(atoms.get_initial_charges()):
            raise LammpsInputError("write_input: the Coulomb component reads per-atom charges (initial_charges) but "
                                   "the structure carries none (atoms.set_initial_charges)")
        if coulomb.method in ("ewald", "pme") and not all(atoms.pbc):
            raise LammpsInputError(f"write_input: kspace_style {'ewald' if coulomb.method == 'ewald' else 'pppm'} "
                                   f"needs a periodic box in x, y and z; the structure has pbc={atoms.pbc.tolist()}")
    # The one evaluation LAMMPS itself would stop in: an atom pair below a table's inner radius
    # (TooCloseError names the pair and the section), or an element the potential lacks.
    stack.evaluate(atoms, compute_forces=False)


# ---- the deck's pieces ------------------------------------------------------------------------------
def _coulomb_parts(comp) -> tuple[str, str, list[str], list[str]]:
    """(sub-style with its arguments, its pair_coeff, kspace lines, notes) of an acepy Coulomb component."""
    method = comp.method
    cutoff = getattr(comp, "cutoff", None)
    if method == "direct" or cutoff is None:
        raise LammpsInputError("write_input: the Coulomb method 'direct' (an unscreened sum over every pair) has no "
                               "LAMMPS pair style; use method='dsf', 'ewald' or 'pme'")
    if method == "dsf":
        notes = []
        if getattr(comp, "dsf_self_energy", "lammps") != "lammps":
            notes.append(f"coul/dsf reports the self energy -(e_shift/2 + alpha/sqrt(pi)) k q_i^2 per atom; this "
                         f"Coulomb uses dsf_self_energy={comp.dsf_self_energy!r}: LAMMPS's energy differs from "
                         "acepy's by a constant per charge (forces and stress agree)")
        return f"coul/dsf {_fmt(comp.alpha)} {_fmt(cutoff)}", "coul/dsf", [], notes
    accuracy = getattr(comp, "accuracy", None)
    if accuracy is None:
        raise LammpsInputError(f"write_input: the Coulomb component ({method}) has no accuracy; kspace_style needs one")
    kspace = "ewald" if method == "ewald" else "pppm"
    lines = [f"kspace_style    {kspace} {_fmt(accuracy)}"]
    # LAMMPS's g_ewald is acepy's alpha (erfc(alpha r)/r in real space): fixed, so that both split
    # the sum alike; LAMMPS picks its k-space resolution (kmax, PPPM mesh) for the accuracy.
    lines.append(f"kspace_modify   gewald {_fmt(comp.alpha)}")
    return f"coul/long {_fmt(cutoff)}", "coul/long", lines, []


def _pair_coeffs(stack, types: list[str], potential_name: str, table_name: str | None, hybrid: bool):
    ace_coeff = f"pair_coeff      * * {'pace ' if hybrid else ''}{potential_name} {' '.join(types)}"
    lines = [ace_coeff]
    pair = _pair(stack)
    if pair is not None:
        for a in range(len(types)):
            for b in range(a, len(types)):
                ea, eb = types[a], types[b]
                section = pair.table.section_for(ea, eb)
                cut = pair.pair_cutoff(ea, eb)
                lines.append(f"pair_coeff      {a + 1} {b + 1} table {table_name} {section.keyword} {_fmt(cut)}")
    return lines


def _potential_file(stack, folder: Path) -> tuple[str, Path | None, object]:
    """(name in the deck, file to copy or None, spec to write when there is no file LAMMPS reads)."""
    ace = _ace(stack)
    kind, suffix = potential_kind(stack)
    options = getattr(stack, "load_options", None) or {}
    source = options.get("path") or getattr(ace.spec, "source", "")
    path = None
    if source:
        from acepy.loading import _resolve

        candidate = _resolve(str(source))
        path = candidate if candidate.is_file() else None
    if path is not None and path.suffix.lower() in (".yace", ".ace"):
        return path.name, path, None
    name = (Path(str(source)).stem if source else "potential") + ".yace"
    return name, None, ace.spec


def _atomic_write(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_input(folder, model, atoms=None, *, style: str = "pace", types=None, newton: bool = True,
                run: str = "run             0", overwrite: bool = False, pair_table=None) -> LammpsInput:
    """Write a LAMMPS deck for ``model`` (a stack from ``acepy.load``, or a potential path loaded with
    ``pair_table``) into ``folder``; ``atoms`` (ASE) becomes ``structure.data``. ``style``:
    ``"pace"`` or ``"pace/kk"`` (KOKKOS: ``package kokkos newton on`` and ``suffix kk`` in the deck).
    ``types``: the element of each LAMMPS type (default: the potential's elements). ``run``: the
    deck's last lines (default ``run 0``: one evaluation). Returns what was written (:class:`LammpsInput`).
    """
    from acepy.models.stack import Stack

    if not isinstance(model, Stack):
        from acepy.loading import load

        model = load(model, pair_table=pair_table)
    elif pair_table is not None:
        raise LammpsInputError("write_input: pair_table goes to acepy.load; this model is built already")
    folder = Path(folder)
    _check_style(model, style, newton)
    types = _check_types(model, types)
    coulomb = coulomb_component(model)
    if coulomb is not None and isinstance(coulomb.charges, dict):
        missing = [el for el in types if el not in coulomb.charges]
        if missing:
            raise LammpsInputError(f"write_input: no Coulomb charge for the LAMMPS type element(s) {missing}")
    if atoms is not None:
        _check_atoms(model, atoms, types, coulomb)
    coul_style, coul_coeff, kspace, notes = _coulomb_parts(coulomb) if coulomb is not None else (None, None, [], [])
    deck_in = folder / "in.lammps"
    if deck_in.exists() and not overwrite:
        raise FileExistsError(f"write_input: {deck_in} exists (overwrite=True replaces it)")
    folder.mkdir(parents=True, exist_ok=True)

    files: dict[str, Path] = {}
    pot_name, pot_path, pot_spec = _potential_file(model, folder)
    files["potential"] = folder / pot_name
    if pot_path is not None:
        if pot_path.resolve() != files["potential"].resolve():
            _atomic_write(files["potential"], lambda tmp: shutil.copyfile(pot_path, tmp))
    else:
        from acepy.io import write_yace

        write_yace(pot_spec, files["potential"])
    pair = _pair(model)
    table_name = None
    if pair is not None:
        table_src = Path(pair.path)
        table_name = table_src.name
        files["pair_table"] = folder / table_name
        if table_src.resolve() != files["pair_table"].resolve():
            _atomic_write(files["pair_table"], lambda tmp: shutil.copyfile(table_src, tmp))

    sub = ["pace"] + ([f"table {pair.style} {pair.tablength}"] if pair is not None else []) + \
        ([coul_style] if coul_style else [])
    hybrid = len(sub) > 1
    pair_style = ("hybrid/overlay " + " ".join(sub)) if hybrid else "pace"
    coeffs = _pair_coeffs(model, types, pot_name, table_name, hybrid)
    if coul_coeff:
        coeffs.append(f"pair_coeff      * * {coul_coeff}")

    from ase.data import atomic_masses, atomic_numbers

    kokkos = style == "pace/kk"
    lines = [f"# LAMMPS input written by acepy.lammps.write_input: {pot_name}"
             + (f" + {table_name}" if table_name else ""),
             "# LAMMPS types: " + ", ".join(f"{k + 1} {el}" for k, el in enumerate(types)),
             "# run: " + ("lmp -k on g 1 -in in.lammps   (KOKKOS; one thread on a CPU host)" if kokkos
                          else "mpirun -np 4 lmp -in in.lammps"),
             "units           metal",
             f"atom_style      {'charge' if coulomb is not None else 'atomic'}",
             "atom_modify     map array",
             "newton          on"]
    if kokkos:
        lines += ["package         kokkos newton on neigh half", "suffix          kk"]
    if atoms is not None:
        lines.append("boundary        " + " ".join("p" if p else "f" for p in atoms.pbc))
        files["data"] = folder / "structure.data"
        lines.append("read_data       structure.data")
        from ase.io import write

        if coulomb is not None and isinstance(coulomb.charges, dict):  # per element: the data file says the same
            atoms = atoms.copy()
            atoms.set_initial_charges([coulomb.charges[s] for s in atoms.get_chemical_symbols()])
        _atomic_write(files["data"], lambda tmp: write(tmp, atoms, format="lammps-data", specorder=types,
                                                       atom_style="charge" if coulomb is not None else "atomic",
                                                       units="metal"))
    else:
        lines.append("read_data       structure.data   # your structure, atom types as above")
    lines += [f"mass            {k + 1} {atomic_masses[atomic_numbers[el]]:.6f}" for k, el in enumerate(types)]
    if coulomb is not None and isinstance(coulomb.charges, dict):
        lines += [f"set             type {k + 1} charge {_fmt(coulomb.charges[el])}" for k, el in enumerate(types)]
    lines += [f"pair_style      {pair_style}"] + coeffs + kspace
    lines += ["neighbor        1.0 bin",
              "thermo_style    custom step pe pxx pyy pzz pxy pxz pyz",
              "thermo_modify   format float %.15g",
              run]
    lines[3:3] = [f"# note: {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    _atomic_write(deck_in, lambda tmp: tmp.write_text(text))
    command = "lmp -k on g 1 -in in.lammps" if kokkos else "lmp -in in.lammps"
    return LammpsInput(folder=folder, input=deck_in, files=files, types=types, pair_style=pair_style,
                       pair_coeffs=coeffs + kspace, command=command, notes=notes)
