"""Benchmark of Hessians and Hessian-vector products against force calls and finite differences.

For each potential (default: the bundled Cu-shaped and AlTi potentials, synthetic: see README) and
each size (rattled fcc, default 64, 256 and 1000 atoms) it times, side by side in one run:

- one fast force call (``evaluate``: energies, forces, stress),
- the dense Hessian on the exact per-site route (``hessian(method="sites")``),
- the finite-difference Hessian (``hessian(method="fd")``: 6 N fast force evaluations, batched);
  above ``--fd-max`` atoms it is not run and 6 N x the force call is reported, marked estimate,
- Hessian-vector products with 1 and 32 vectors (``hessian_vector_product``, exact, matrix-free),

and prints a table (median seconds, ms per atom, cost in force calls, peak memory), writes a CSV
and a plot under ``profiling/results/`` named with the commit. Machines are noisy: read ratios
and medians. ``make bench-hessian`` runs the defaults.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
from pathlib import Path

import numpy as np
import torch

import acepy
from profile_forces import (
    commit,
    device_name,
    measure,
    peak_memory_mb,
    return_freed_memory_to_the_os,
    supercell,
)

# hvp x1 to x32: the forward-mode route (up to ace_hvp.MAX_VECTORS vectors); x64: the per-site route
OPS = ["force call", "hessian (sites)", "hessian (fd)", "hvp x1", "hvp x8", "hvp x32", "hvp x64"]
COLUMNS = ["potential", "atoms", "op", "median_s", "spread", "ms_per_atom", "force_calls", "estimate",
           "peak_mem_mb", "threads", "device", "commit", "date", "machine"]


def _ops(model, atoms, rng):
    n = len(atoms)
    v1 = torch.as_tensor(rng.normal(size=(n, 3)), dtype=model.dtype, device=model.device)
    v8 = torch.as_tensor(rng.normal(size=(8, n, 3)), dtype=model.dtype, device=model.device)
    v32 = torch.as_tensor(rng.normal(size=(32, n, 3)), dtype=model.dtype, device=model.device)
    v64 = torch.as_tensor(rng.normal(size=(64, n, 3)), dtype=model.dtype, device=model.device)
    return {
        "force call": lambda: model.evaluate(atoms),
        "hessian (sites)": lambda: model.hessian(atoms, method="sites"),
        "hessian (fd)": lambda: model.hessian(atoms, method="fd"),
        "hvp x1": lambda: model.hessian_vector_product(atoms, v1),
        "hvp x8": lambda: model.hessian_vector_product(atoms, v8),
        "hvp x32": lambda: model.hessian_vector_product(atoms, v32),
        "hvp x64": lambda: model.hessian_vector_product(atoms, v64),
    }


def run(args) -> list[dict]:
    """All timings of the exact operations first, then the peak-memory pass (it sets the allocator
    to hand memory back to the OS, which makes later allocations dearer: run per size, it made
    the larger sizes measure up to 1.7x slower per atom), then the finite-difference Hessians."""
    device = torch.device(args.device)
    rng = np.random.default_rng(args.seed)
    stamp, date = commit(), datetime.date.today().isoformat()
    rows, force_s, fd_jobs, memory_jobs = [], {}, [], []
    for name in args.potentials:
        model = acepy.load(name, device=device, num_threads=args.threads)
        for n in args.sizes:
            atoms = supercell("fcc", n, model.elements, rng)
            ops = _ops(model, atoms, rng)
            base = {"potential": name, "atoms": n, "threads": args.threads, "device": device_name(device),
                    "commit": stamp, "date": date, "machine": platform.node()}
            mine = []
            for op in OPS:
                if op == "hessian (fd)":
                    fd_jobs.append((model, n, ops[op], base))
                    continue
                med, spread = measure(ops[op], repeats=args.repeats, warmup=1)
                if op == "force call":
                    force_s[name, n] = med
                mine.append({**base, "op": op, "median_s": med, "spread": spread, "ms_per_atom": 1e3 * med / n,
                             "force_calls": med / force_s[name, n], "estimate": False, "peak_mem_mb": float("nan")})
                print(f"{name:28s} {n:6d} {op:16s} {med:9.3f} s {1e3 * med / n:8.2f} ms/atom "
                      f"{med / force_s[name, n]:8.1f} force calls", flush=True)
            memory_jobs += [(row, ops[row["op"]]) for row in mine]
            rows += mine
    if not args.no_memory:  # after every timing: the allocator set-up it needs makes allocation dearer
        return_freed_memory_to_the_os()
        for row, fn in memory_jobs:
            row["peak_mem_mb"] = peak_memory_mb(fn, device)
    for model, n, fn, base in fd_jobs:
        name = base["potential"]
        if n > args.fd_max:
            med, spread, estimate = 6 * n * force_s[name, n], float("nan"), True
        else:
            med, spread = measure(fn, repeats=1, warmup=0)
            estimate = False
        rows.append({**base, "op": "hessian (fd)", "median_s": med, "spread": spread, "ms_per_atom": 1e3 * med / n,
                     "force_calls": med / force_s[name, n], "estimate": estimate, "peak_mem_mb": float("nan")})
        print(f"{name:28s} {n:6d} {'hessian (fd)':16s} {med:9.3f} s {1e3 * med / n:8.2f} ms/atom "
              f"{med / force_s[name, n]:8.1f} force calls{' (estimate)' if estimate else ''}", flush=True)
    order = {name: k for k, name in enumerate(args.potentials)}
    rows.sort(key=lambda r: (order[r["potential"]], r["atoms"], OPS.index(r["op"])))
    return rows


def print_table(rows):
    print(f"\n{'potential':28s} {'atoms':>6} {'op':16s} {'median s':>9} {'ms/atom':>8} {'x force':>8} {'peak MB':>8}")
    for r in rows:
        est = "*" if r["estimate"] else " "
        print(f"{r['potential']:28s} {r['atoms']:6d} {r['op']:16s} {r['median_s']:9.3f}{est}{r['ms_per_atom']:8.2f} "
              f"{r['force_calls']:8.1f} {r['peak_mem_mb']:8.1f}")
    print("* estimate: 6 N x the force call (not run above --fd-max atoms)")
    for name in dict.fromkeys(r["potential"] for r in rows):
        mine = [r for r in rows if r["potential"] == name]
        dense = {r["atoms"]: r for r in mine if r["op"] == "hessian (sites)"}
        fd = {r["atoms"]: r for r in mine if r["op"] == "hessian (fd)"}
        per_atom = [r["ms_per_atom"] for r in dense.values()]
        print(f"{name}: dense Hessian vs finite differences: "
              + ", ".join(f"{n} atoms {fd[n]['median_s'] / dense[n]['median_s']:.1f}x{'*' if fd[n]['estimate'] else ''}"
                          for n in dense)
              + f"; cost per atom max/min over sizes {max(per_atom) / min(per_atom):.2f}; HVP x1 "
              + ", ".join(f"{r['force_calls']:.1f}" for r in mine if r["op"] == "hvp x1") + " force calls")


def write_plot(rows, path: Path, title: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot")
        return None
    names = list(dict.fromkeys(r["potential"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for op in OPS:
            pts = [r for r in rows if r["potential"] == name and r["op"] == op]
            ax.plot([r["atoms"] for r in pts], [r["ms_per_atom"] for r in pts], "o-", label=op)
            for r in pts:
                if r["estimate"]:
                    ax.plot([r["atoms"]], [r["ms_per_atom"]], "kx")
        ax.set(xscale="log", yscale="log", xlabel="atoms", ylabel="ms per atom", title=name)
        ax.legend(fontsize=8)
    fig.suptitle(title + "  (x: finite differences estimated as 6N force calls)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--potentials", nargs="+", default=["Cu-synthetic-pbe-core-rep", "AlTi-synthetic-linear"])
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[64, 256, 1000])
    p.add_argument("--fd-max", type=int, default=256, help="largest size at which the FD Hessian is run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    rows = run(args)
    print_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"hessian_{args.device}_{args.threads}thr_{rows[0]['commit']}"
    tmp = stem.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(stem.with_suffix(".csv"))
    plot = write_plot(rows, stem.with_suffix(".png"),
                      f"{device_name(torch.device(args.device))}, {args.threads} thread(s), commit {rows[0]['commit']}")
    print(f"wrote {stem.with_suffix('.csv')}" + (f" and {plot}" if plot else ""))
    return rows


if __name__ == "__main__":
    main()
