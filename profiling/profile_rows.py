"""Benchmark of basis rows (the design matrix with its derivatives) against one force call.

The basis: the shape of the bundled Cu potential (``Cu-synthetic-pbe-core-rep``: ChebPow rcut 7.4,
nradmax_by_orders [10, 5, 4, 2, 1, 1], lmax_by_orders [0, 6, 4, 2, 1, 1], 745 functions) generated
with the linear embedding of ACEpotentials.jl-style fits (``default_embedding()``), and the bundled
file itself (two densities: its rows are the Jacobian at the file's coefficients, 1490 columns).

For each size (rattled fcc Cu, default 32, 256 and 2048 atoms) it times, side by side in one run:

- one fast force call of the linear model with random coefficients (``evaluate``),
- the rows of energy, forces and virial (``LinearBasis.rows``), all 745 columns,
- the Jacobian rows of the two-density file (energy, forces, virial; 1490 columns),
- at the smallest size only: the dense Hessian rows, and the rows of one Hessian-vector product,

and prints a table (median wall and CPU seconds; CPU ms per atom, cost in force calls and per
column from the CPU time, steadier than wall time on a shared machine at one thread; peak memory),
writes a CSV and a plot under ``profiling/results/`` named with the commit.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import acepy
from acepy.basis import default_embedding, generate_basis
from acepy.basis.bundled import RECIPES
from acepy.fit.rows import LinearBasis
from profile_forces import commit, device_name, peak_memory_mb, return_freed_memory_to_the_os, supercell

OPS = ["force call", "rows E/F/V", "jacobian rows E/F/V", "hessian rows", "hvp rows x1"]
COLUMNS = ["basis", "atoms", "op", "columns", "median_s", "spread", "cpu_s", "ms_per_atom", "force_calls",
           "cpu_force_calls", "force_calls_per_column", "peak_mem_mb", "threads", "device", "commit", "date",
           "machine"]


def measure_cpu(fn, repeats: int, warmup: int) -> tuple[float, float, float]:
    """Median wall seconds, spread, and median CPU seconds of this process (on a machine shared with
    other jobs the CPU time of a one-thread run is the steadier measure of its cost)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = statistics.median(wall)
    spread = float(np.percentile(wall, 90) - np.percentile(wall, 10)) / med if len(wall) > 2 else 0.0
    return med, spread, statistics.median(cpu)


def cu_linear_basis(tiny: bool = False) -> LinearBasis:
    r = RECIPES["Cu-synthetic-pbe-core-rep"]
    nrad, lmax = ([3, 2, 1], [0, 2, 1]) if tiny else (r.nradmax_by_orders, r.lmax_by_orders)
    gb = generate_basis(r.elements, nrad, lmax, bonds=r.bonds, embeddings=default_embedding(1))
    return LinearBasis.from_generated(gb)


def bases(tiny: bool, rng):
    """The linear Cu-shaped basis and the two-density one (the bundled file; ``tiny``: both small,
    the two-density one generated with random coefficients, for the smoke test)."""
    if not tiny:
        return cu_linear_basis(), LinearBasis.from_file(acepy.loading._resolve("Cu-synthetic-pbe-core-rep"))
    r = RECIPES["Cu-synthetic-pbe-core-rep"]
    gb = generate_basis(r.elements, [3, 2, 1], [0, 2, 1], bonds=r.bonds, embeddings=default_embedding(2))
    probe = LinearBasis.from_generated(gb)
    coefficients = 0.01 * rng.normal(size=probe.ncoefficients)
    return cu_linear_basis(True), LinearBasis.from_generated(gb, coefficients=coefficients)


def run(args) -> list[dict]:
    rng = np.random.default_rng(args.seed)
    linear, nonlinear = bases(args.tiny, rng)
    model = linear.model(rng.normal(size=linear.ncoefficients) * 0.01, num_threads=args.threads)
    stamp, date = commit(), datetime.date.today().isoformat()
    rows, jobs = [], []
    for n in args.sizes:
        atoms = supercell("fcc", n, ["Cu"], rng)
        probe = rng.normal(size=(1, n, 3))
        # default arguments bind this size's structure (the memory pass calls them after the loop)
        ops = {"force call": (lambda atoms=atoms: model.evaluate(atoms), 1),
               "rows E/F/V": (lambda atoms=atoms: linear.rows(atoms, num_threads=args.threads), linear.ncoefficients),
               "jacobian rows E/F/V": (lambda atoms=atoms: nonlinear.rows(atoms, num_threads=args.threads),
                                       nonlinear.ncoefficients)}
        if n <= args.hessian_max:
            ops["hessian rows"] = (lambda atoms=atoms: linear.rows(atoms, energy=False, forces=False, virial=False,
                                                                   hessian=True, num_threads=args.threads),
                                   linear.ncoefficients)
            ops["hvp rows x1"] = (lambda atoms=atoms, probe=probe: linear.rows(
                atoms, energy=False, forces=False, virial=False, hessian="hvp", probes=probe, num_threads=args.threads),
                linear.ncoefficients)
        base = {"basis": f"Cu-shaped ({linear.ncoefficients} functions)", "atoms": n, "threads": args.threads,
                "device": device_name(torch.device("cpu")), "commit": stamp, "date": date, "machine": platform.node()}
        force_s = None
        for op in OPS:
            if op not in ops:
                continue
            fn, ncol = ops[op]
            repeats = args.repeats if op in ("force call", "rows E/F/V") else 1
            med, spread, cpu = measure_cpu(fn, repeats=repeats, warmup=1)
            if op == "force call":
                force_s, force_cpu = med, cpu
            row = {**base, "op": op, "columns": ncol, "median_s": med, "spread": spread, "cpu_s": cpu,
                   "ms_per_atom": 1e3 * cpu / n, "force_calls": med / force_s, "cpu_force_calls": cpu / force_cpu,
                   "force_calls_per_column": cpu / force_cpu / ncol, "peak_mem_mb": float("nan")}
            rows.append(row)
            jobs.append((row, fn))
            print(f"{n:6d} {op:22s} {med:9.3f} s wall {cpu:9.3f} s cpu {1e3 * cpu / n:8.2f} cpu ms/atom "
                  f"{cpu / force_cpu:8.1f} force calls ({cpu / force_cpu / ncol:.3f} per column)", flush=True)
    if not args.no_memory:
        return_freed_memory_to_the_os()
        for row, fn in jobs:
            row["peak_mem_mb"] = peak_memory_mb(fn, torch.device("cpu"))
    return rows


def print_table(rows):
    print(f"\n{'atoms':>6} {'op':22s} {'cols':>5} {'wall s':>8} {'cpu s':>8} {'ms/atom':>8} {'x force':>8} "
          f"{'/column':>8} {'peak MB':>8}   (ms/atom, x force and /column from CPU time)")
    for r in rows:
        print(f"{r['atoms']:6d} {r['op']:22s} {r['columns']:5d} {r['median_s']:8.3f} {r['cpu_s']:8.3f} "
              f"{r['ms_per_atom']:8.2f} {r['cpu_force_calls']:8.1f} {r['force_calls_per_column']:8.3f} "
              f"{r['peak_mem_mb']:8.1f}")


def write_plot(rows, path: Path, title: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot")
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for k, op in enumerate(OPS):
        pts = [r for r in rows if r["op"] == op]
        if not pts:
            continue
        axes[0].plot([r["atoms"] for r in pts], [r["ms_per_atom"] for r in pts], "o-", color=f"C{k}", label=op)
        if op != "force call":
            axes[1].plot([r["atoms"] for r in pts], [r["cpu_force_calls"] for r in pts], "o-", color=f"C{k}", label=op)
    axes[0].set(xscale="log", yscale="log", xlabel="atoms", ylabel="CPU ms per atom", title="cost per atom")
    axes[1].set(xscale="log", yscale="log", xlabel="atoms", ylabel="force calls (CPU time)",
                title="cost in force calls")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[32, 256, 2048])
    p.add_argument("--hessian-max", type=int, default=32, help="largest size at which Hessian rows are timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    p.add_argument("--tiny", action="store_true", help="small bases (a smoke test of the script, not a benchmark)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    rows = run(args)
    print_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"rows_cpu_{args.threads}thr_{rows[0]['commit']}"
    tmp = stem.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(stem.with_suffix(".csv"))
    plot = write_plot(rows, stem.with_suffix(".png"),
                      f"basis rows vs one force call: {device_name(torch.device('cpu'))}, {args.threads} thread(s), "
                      f"commit {rows[0]['commit']}")
    print(f"wrote {stem.with_suffix('.csv')}" + (f" and {plot}" if plot else ""))
    return rows


if __name__ == "__main__":
    main()
