"""Benchmark of the Coulomb component (acepy.models.Coulomb): DSF, Ewald and PME.

For each method and each size (rattled rock salt, charges +-1, default 64, 512 and 4096 atoms) it
times energy + forces + stress (``Stack.evaluate``) and the dense Hessian (``Stack.hessian``:
the real-space pairs by per-edge blocks; the reciprocal sum exactly without autograd, Ewald as
matrix products over chunks of k-vectors, PME as a contraction of the mesh stencils with the
mesh's response function, acepy.models.coulomb_hessians), and measures the peak memory of each
(the dense Hessian alone takes 72 N^2 bytes, 1.2 GB at 4096 atoms). Hessians above
``--hessian-max`` atoms (per method) are not run; those rows say so. Hessians of more than 512
atoms are timed once, without a warm-up call of their own (the kernels are warmed on 64 atoms).

Prints a table (median seconds over repeats, ms per atom, peak MB), writes a CSV and a plot under
``profiling/results/coulomb_<machine>_<commit>.{csv,png}``. Machines are noisy: read medians.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
from pathlib import Path

import torch
from ase.build import bulk

from acepy.models import Coulomb, Stack
from profile_forces import commit, device_name, measure, peak_memory_mb

COLUMNS = ["method", "atoms", "op", "median_s", "spread", "ms_per_atom", "peak_mem_mb", "note", "accuracy",
           "cutoff", "alpha", "threads", "device", "commit", "date", "machine"]


def salt(n_atoms: int, seed: int = 0):
    k = round((n_atoms / 8) ** (1 / 3))
    if 8 * k ** 3 != n_atoms:
        raise SystemExit(f"--sizes: rock salt cells come in 8 k^3 atoms (64, 512, 4096, ...), got {n_atoms}")
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(k)
    atoms.rattle(0.1, seed=seed)
    return atoms


def model(method: str, args, device) -> Stack:
    kw = {"alpha": args.dsf_alpha} if method == "dsf" else {"accuracy": args.accuracy}
    coulomb = Coulomb({"Na": 1.0, "Cl": -1.0}, method=method, cutoff=args.cutoff, device=device, **kw)
    return Stack([coulomb], ["Na", "Cl"], device=device)


def run(args) -> list[dict]:
    device = torch.device(args.device)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    common = {"accuracy": args.accuracy, "cutoff": args.cutoff, "threads": torch.get_num_threads(),
              "device": device_name(device), "commit": commit(), "date": stamp, "machine": platform.node()}
    rows, memory_jobs = [], []
    for method in args.methods:
        stack = model(method, args, device)
        for n in args.sizes:
            atoms = salt(n)
            ops = {"energy+forces": lambda: stack.evaluate(atoms)}
            if n <= args.hessian_max[method]:
                ops["hessian"] = lambda: stack.hessian(atoms)
                stack.hessian(salt(64))  # compiled kernels and caches warm before any timing
            for op in ("energy+forces", "hessian"):
                row = {"method": method, "atoms": n, "op": op, "alpha": round(stack.components[0].alpha, 6), **common}
                if op not in ops:
                    row.update(median_s="", spread="", ms_per_atom="", peak_mem_mb="",
                               note=f"not run: above --hessian-max {method}={args.hessian_max[method]}")
                    rows.append(row)
                    continue
                big = op == "hessian" and n > 512
                repeats = args.repeats if op == "energy+forces" else (1 if big else max(1, args.repeats // 3))
                med, spread = measure(ops[op], repeats, warmup=0 if big else 1)
                row.update(median_s=med, spread=round(spread, 3), ms_per_atom=1e3 * med / n, note="")
                rows.append(row)
                memory_jobs.append((row, ops[op]))
                print(f"{method:6s} {n:5d} {op:14s} {med:10.4f} s  {1e3 * med / n:8.3f} ms/atom", flush=True)
    for row, _ in memory_jobs:  # each in a fresh process: its resident peak above the set-up's
        row["peak_mem_mb"] = "" if args.no_memory else _memory_in_subprocess(row["method"], row["atoms"], row["op"], args)
    return rows


def _memory_in_subprocess(method: str, n: int, op: str, args) -> float:
    import subprocess
    import sys

    command = [sys.executable, __file__, "--measure-memory", method, str(n), op, "--accuracy", str(args.accuracy),
               "--cutoff", str(args.cutoff), "--dsf-alpha", str(args.dsf_alpha), "--device", args.device]
    out = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parent)
    lines = [x for x in out.stdout.splitlines() if x.startswith("PEAK_MB ")]
    return float(lines[-1].split()[1]) if lines else float("nan")


def measure_memory(method: str, n: int, op: str, args) -> None:
    """Run ``op`` once after a warm-up call on a smaller copy (so that imports, JIT caches and the
    set-up are in the baseline) and print the resident peak above the baseline (CPU), or the CUDA
    allocator's peak."""
    device = torch.device(args.device)
    stack = model(method, args, device)
    small = salt(64)
    stack.evaluate(small)
    if op == "hessian":
        stack.hessian(small)
    atoms = salt(n)
    fn = (lambda: stack.evaluate(atoms)) if op == "energy+forces" else (lambda: stack.hessian(atoms))
    print(f"PEAK_MB {peak_memory_mb(fn, device):.1f}", flush=True)


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, color in zip(("dsf", "ewald", "pme"), ("C0", "C1", "C2")):
        for op, style in (("energy+forces", "-o"), ("hessian", "--s")):
            pts = [(r["atoms"], r["median_s"], r["peak_mem_mb"]) for r in rows
                   if r["method"] == method and r["op"] == op and r["median_s"] != ""]
            if not pts:
                continue
            x, t, m = zip(*pts)
            ax_t.loglog(x, t, style, color=color, label=f"{method} {op}")
            if all(v != "" for v in m):
                ax_m.loglog(x, [max(v, 0.1) for v in m], style, color=color, label=f"{method} {op}")
    ax_t.set(xlabel="atoms", ylabel="median seconds", title="Coulomb: time per call")
    ax_m.set(xlabel="atoms", ylabel="peak extra MB", title="Coulomb: peak memory")
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    r0 = rows[0]
    fig.suptitle(f"rock salt +-1 e, accuracy {r0['accuracy']}, cutoff {r0['cutoff']} A; {r0['device']}, "
                 f"{r0['threads']} threads, {r0['commit']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["dsf", "ewald", "pme"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 512, 4096])
    parser.add_argument("--accuracy", type=float, default=1e-6, help="Ewald/PME requested accuracy")
    parser.add_argument("--cutoff", type=float, default=10.0, help="real-space cutoff (A)")
    parser.add_argument("--dsf-alpha", type=float, default=0.2)
    parser.add_argument("--hessian-max", nargs="+", default=["dsf=4096", "ewald=4096", "pme=4096"],
                        help="largest Hessian per method, method=atoms")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--measure-memory", nargs=3, metavar=("METHOD", "ATOMS", "OP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_memory:
        method, n, op = args.measure_memory
        measure_memory(method, int(n), op, args)
        return
    args.hessian_max = {m: 0 for m in args.methods} | {k: int(v) for k, v in (x.split("=") for x in args.hessian_max)}
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}-{torch.get_num_threads()}thr" if args.device == "cpu" else "cuda"
    stem = args.out / f"coulomb_{machine}_{rows[0]['commit']}"
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, stem.with_suffix(".png"))
    print(f"wrote {stem}.csv and .png")
    return rows


if __name__ == "__main__":
    main()
