"""``acepy eval POTENTIAL STRUCTURES... -o OUT.extxyz``: energies, forces and stresses of any
ASE-readable structures, evaluated in batches, written back as extended XYZ."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="energies, forces, stresses of structures, written to extended XYZ",
        description="Evaluate every structure of the input files (any format ASE reads: extxyz, POSCAR, cif, "
                    "ASE trajectories and databases, ...) in batched calls, and write them with their energy, "
                    "per-atom energies, forces and (where the cell has a volume) stress, ASE's sign and Voigt "
                    "order, to an extended XYZ file (per-atom columns with ASE's 8 decimals). The output appears complete or "
                    "not at all.")
    parser.add_argument("potential", metavar="POTENTIAL", help="a .yace / .ace / pacemaker .yaml file, or a "
                        "bundled potential's name")
    parser.add_argument("structures", metavar="STRUCTURES", nargs="+", help="input files (all their frames)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.extxyz", help="output file (extended XYZ)")
    parser.add_argument("--pair-table", metavar="TABLE", help="a LAMMPS pair table stacked with the potential")
    parser.add_argument("--index", default=":", help="which frames of each file, ASE's syntax (default ':' = all)")
    parser.add_argument("--format", help="ASE format of the inputs (default: from each file name)")
    parser.add_argument("--prefix", default="", help="keep the structures' own results (e.g. DFT labels) and "
                        "write acepy's under PREFIX: info PREFIXenergy, PREFIXstress, arrays PREFIXforces, "
                        "PREFIXenergies (default: acepy's results replace them as the calculator's results)")
    parser.add_argument("--batch-atoms", type=int, default=4096, metavar="N",
                        help="atoms per batched call (default 4096)")
    parser.add_argument("--no-forces", action="store_true", help="energies only (no forces, no stress)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all the process may use)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _read(paths, index, fmt):
    from ase.io import read

    frames, names = [], []
    for path in paths:
        got = read(path, index=index, format=fmt)
        got = got if isinstance(got, list) else [got]
        frames += got
        names += [f"{path}@{k}" for k in range(len(got))]
    return frames, names


def _chunks(frames, batch_atoms: int):
    start, atoms = 0, 0
    for k, frame in enumerate(frames):
        if k > start and atoms + len(frame) > batch_atoms:
            yield start, k
            start, atoms = k, 0
        atoms += len(frame)
    if start < len(frames):
        yield start, len(frames)


def _evaluate(model, frames, forces: bool) -> list[dict]:
    """Results per frame: one call for the frames with a cell volume (stress), one for the others."""
    import numpy as np

    out: list[dict] = [{} for _ in frames]
    with_volume = [k for k, f in enumerate(frames) if abs(np.linalg.det(f.cell[:])) > 0]
    without = [k for k in range(len(frames)) if k not in set(with_volume)]
    for group, stress in ((with_volume, forces), (without, False)):
        if not group:
            continue
        res = model.evaluate([frames[k] for k in group], compute_forces=forces, compute_stress=stress)
        sidx = res["system_idx"].numpy()
        for b, k in enumerate(group):
            mine = sidx == b
            out[k]["energy"] = float(res["energy"][b])
            out[k]["energies"] = res["energies"].double().numpy()[mine]
            if forces:
                out[k]["forces"] = res["forces"].double().numpy()[mine]
            if stress:
                s = res["stress"][b].double().numpy()
                out[k]["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    return out


def _locate(model, frames, names, forces, err):
    """The frame a batch error came from, found by evaluating them one by one."""
    for frame, name in zip(frames, names):
        try:
            _evaluate(model, [frame], forces)
        except Exception as one:  # noqa: BLE001
            text = str(one).replace("structure 0: ", "").replace("structure 0, ", "")
            return type(one)(f"{name}: {text}") if isinstance(one, ValueError) else RuntimeError(f"{name}: {text}")
    return err


def _attach(frame, result: dict, prefix: str):
    if prefix:
        frame.info[f"{prefix}energy"] = result["energy"]
        frame.arrays[f"{prefix}energies"] = result["energies"]
        if "forces" in result:
            frame.arrays[f"{prefix}forces"] = result["forces"]
        if "stress" in result:
            frame.info[f"{prefix}stress"] = result["stress"]
        return
    from ase.calculators.singlepoint import SinglePointCalculator

    frame.calc = SinglePointCalculator(frame, **{k: v for k, v in result.items()})
    frame.calc.results["free_energy"] = result["energy"]


def run(args) -> int:
    from ase.io import write
    from tqdm import tqdm

    from acepy.loading import load

    if args.batch_atoms < 1:
        raise ValueError(f"--batch-atoms must be positive, got {args.batch_atoms}")
    output = Path(args.output)
    model = load(args.potential, pair_table=args.pair_table, dtype=args.dtype, device=args.device,
                 num_threads=args.threads)
    frames, names = _read(args.structures, args.index, args.format)
    if not frames:
        raise ValueError(f"no structures in {', '.join(args.structures)} (index {args.index!r})")
    forces = not args.no_forces
    start = time.perf_counter()
    n_atoms = sum(len(f) for f in frames)
    with tqdm(total=n_atoms, unit="atom", unit_scale=True, disable=args.quiet, file=sys.stderr,
              desc=f"acepy eval ({len(frames)} structures)") as bar:
        for lo, hi in _chunks(frames, args.batch_atoms):
            try:
                results = _evaluate(model, frames[lo:hi], forces)
            except Exception as err:  # noqa: BLE001 - name the structure that caused it
                raise _locate(model, frames[lo:hi], names[lo:hi], forces, err) from None
            for frame, result in zip(frames[lo:hi], results):
                _attach(frame, result, args.prefix)
            bar.update(sum(len(f) for f in frames[lo:hi]))
    fd, tmp = tempfile.mkstemp(dir=output.parent if str(output.parent) else ".", prefix=f".{output.name}.",
                               suffix=".extxyz")
    os.close(fd)
    try:
        write(tmp, frames, format="extxyz")
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - start
    print(f"{len(frames)} structures, {n_atoms} atoms -> {output} ({seconds:.2f} s, "
          f"{1e3 * seconds / n_atoms:.3f} ms/atom)")
    return 0
