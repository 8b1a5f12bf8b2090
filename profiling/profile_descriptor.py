"""Benchmark of the aenet Chebyshev descriptor: features + their vector-Jacobian product (the
forces and virial of a model built on the features) per atom, Numba against the torch reference
(and Triton on a GPU), and against aenet-python's own torch featurizer where it is importable.

The structure is the 56-atom Li/Mo/Ni/Ti/O cell of aenet's reference tables
(``tests/data/expected/aenet/lmnto_structure001.xsf``, 5 species), repeated to about 1000 and
10000 atoms. Two parameter sets: ``table``, the reference table's (rad 10 / 4.0 A, ang 3 /
1.5 A: no neighbour is closer than 1.5 A there, so the angular block is empty), and ``stp``, the
``BASIS type=Chebyshev`` example of aenet's setup files (rad 16 / 8.0 A, ang 4 / 6.5 A: about 220
radial neighbours and 7200 angular pairs per atom).

One measurement = ``features(batch)`` on a fresh geometry (the neighbour search runs every call)
then ``vjp(batch, cotangent)`` on the same geometry (the graph cache serves it). Median and spread
after warm-up; prints a table, writes a CSV (one row per measurement; the machine and the commit
in the file name and in the rows) and a PNG under ``profiling/results/``.

    python profiling/profile_descriptor.py
    python profiling/profile_descriptor.py --sizes 1000 --params stp --backends numba --threads 1,2
    python profiling/profile_descriptor.py --device cuda --backends triton,torch
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import functools
import os
import platform
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import torch

import acepy
from acepy.descriptors import ChebyshevDescriptor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile_forces import (  # noqa: E402  (the shared benchmark helpers)
    commit,
    device_name,
    measure,
    peak_memory_mb,
    return_freed_memory_to_the_os,
    set_threads,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "profiling" / "results"
STRUCTURE = ROOT / "tests" / "data" / "expected" / "aenet" / "lmnto_structure001.xsf"
SPECIES = ["Li", "Mo", "Ni", "Ti", "O"]
PARAMS = {"table": (10, 4.0, 3, 1.5), "stp": (16, 8.0, 4, 6.5)}
COLUMNS = ["params", "rad_order", "rad_cutoff", "ang_order", "ang_cutoff", "atoms", "backend", "device", "dtype",
           "threads", "features_ms", "vjp_ms", "total_ms", "spread", "us_per_atom", "features_us_per_atom",
           "vjp_us_per_atom", "radial_edges_per_atom", "angular_pairs_per_atom", "n_searches", "peak_mem_mb",
           "load_avg_1min", "commit", "date", "machine"]


def lmnto(atoms_wanted: int) -> ase.Atoms:
    """The reference cell repeated to about ``atoms_wanted`` atoms: the repeat ``(a, b, c)`` whose
    count is closest, among those with ``max/min <= 2`` (a compact block, not a rod)."""
    cell = ase.io.read(STRUCTURE)
    copies = max(1, round(atoms_wanted / len(cell)))
    top = int(round(copies ** (1 / 3))) * 2 + 2
    shapes = [(a, b, c) for a in range(1, top) for b in range(1, top) for c in range(1, top)
              if max(a, b, c) <= 2 * min(a, b, c)]
    best = min(shapes, key=lambda r: (abs(r[0] * r[1] * r[2] - copies), max(r) - min(r), r))
    return cell.repeat(best)


def graph_sizes(d: ChebyshevDescriptor, batch) -> tuple[float, float]:
    graphs = d.graph_cache.graphs(batch)
    rad = graphs[d.rad_cutoff].offsets
    ang = graphs[d.ang_cutoff].offsets
    deg = (ang[1:] - ang[:-1]).double()
    n = max(batch.n_atoms, 1)
    return float(rad[-1]) / n, float((deg * (deg - 1) / 2).sum()) / n


def time_descriptor(d: ChebyshevDescriptor, atoms, repeats, warmup, device, nthreads):
    """Median/spread of features + vjp with a fresh geometry every call, and the median of each half."""
    batch = acepy.batch_from_atoms(atoms, device=device, dtype=d.dtype)
    moved = batch.positions.clone()
    moved[0, 0] += 1e-9
    batches = [batch, dataclasses.replace(batch, positions=moved)]  # the search cannot be reused
    cot = torch.as_tensor(np.random.default_rng(0).normal(size=(batch.n_atoms, d.n_features)),
                          dtype=d.dtype, device=device)
    state = {"k": 0}
    halves: list[tuple[float, float]] = []
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def call():
        state["k"] ^= 1
        b = batches[state["k"]]
        t0 = time.perf_counter()
        d.features(b)
        sync()
        t1 = time.perf_counter()
        d.vjp(b, cot)
        sync()
        halves.append((t1 - t0, time.perf_counter() - t1))

    d.num_threads = nthreads if device.type == "cpu" else None
    for _ in range(warmup):
        call()
    del halves[:]
    before = d.graph_cache.n_searches
    med, spread = measure(call, repeats, 0)
    searches = (d.graph_cache.n_searches - before) / repeats
    feat = float(np.median([h[0] for h in halves]))
    vjp = float(np.median([h[1] for h in halves]))
    return med, spread, feat, vjp, searches, call, batch


@functools.cache
def aenet_descriptor_class():
    """aenet-python's ChebyshevDescriptor class, or None (said once) where it cannot be imported."""
    try:
        from aenet.torch_featurize import ChebyshevDescriptor as AenetDescriptor
    except Exception as err:  # noqa: BLE001 (any import failure: not installed, missing torch extensions)
        print(f"aenet-python not importable ({type(err).__name__}: {err}); no comparison")
        return None
    return AenetDescriptor


def aenet_python_call(params, atoms, device, dtype):
    """aenet-python's ChebyshevDescriptor: features from positions, then the VJP by autograd (its
    ``compute_forces_from_energy`` route), or None where it cannot be imported."""
    AenetDescriptor = aenet_descriptor_class()  # noqa: N806
    if AenetDescriptor is None:
        return None
    rad_order, rad_cut, ang_order, ang_cut = params
    desc = AenetDescriptor(SPECIES, rad_order, rad_cut, ang_order, ang_cut, min_cutoff=1e-12, device=str(device),
                           dtype=dtype)
    species = atoms.get_chemical_symbols()
    cell = torch.as_tensor(atoms.cell[:], dtype=dtype, device=device)
    pbc = torch.as_tensor(atoms.pbc, device=device)
    base = torch.as_tensor(atoms.positions, dtype=dtype, device=device)
    cot = None
    state = {"k": 0}

    def call():
        nonlocal cot
        state["k"] ^= 1
        pos = (base + (1e-9 if state["k"] else 0.0)).requires_grad_(True)
        feats = desc.forward_from_positions(pos, species, cell, pbc)
        if cot is None:
            cot = torch.as_tensor(np.random.default_rng(0).normal(size=tuple(feats.shape)), dtype=dtype,
                                  device=device)
        torch.autograd.grad((feats * cot).sum(), pos)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return call


def print_table(rows):
    head = (f"{'params':>6} {'atoms':>6} {'backend':>13} {'thr':>3} {'feat ms':>9} {'vjp ms':>9} {'total ms':>9} "
            f"{'±%':>5} {'us/atom':>8} {'edges/at':>8} {'pairs/at':>8} {'peak MB':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['params']:>6} {r['atoms']:>6} {r['backend']:>13} {r['threads']:>3} {r['features_ms']:9.1f} "
              f"{r['vjp_ms']:9.1f} {r['total_ms']:9.1f} {100 * r['spread']:5.1f} {r['us_per_atom']:8.1f} "
              f"{r['radial_edges_per_atom']:8.1f} {r['angular_pairs_per_atom']:8.1f} {r['peak_mem_mb']:8.1f}")


def write_plot(rows, path: Path, title: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install acepy[plot])")
        return None
    fig, axes = plt.subplots(1, len(PARAMS), figsize=(11, 4.5), squeeze=False)
    for ax, params in zip(axes[0], PARAMS):
        series: dict = {}
        for r in rows:
            if r["params"] == params:
                series.setdefault(f"{r['backend']} {r['threads']} thr", {})[r["atoms"]] = r["us_per_atom"]
        for key, pts in sorted(series.items()):
            xs, ys = zip(*sorted(pts.items()))
            color = COLORS.get(key, None)
            ax.plot(xs, ys, "s--" if key.startswith("aenet") else "o-", label=key, color=color)
        if not series:
            continue
        p = PARAMS[params]
        ax.set_title(f"{params}: rad {p[0]} / {p[1]} A, ang {p[2]} / {p[3]} A", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("atoms")
        ax.set_ylabel("µs per atom (features + VJP)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# one colour per curve in both panels
COLORS = {"numba 1 thr": "tab:blue", "numba 2 thr": "tab:cyan", "triton  thr": "tab:purple",
          "torch 1 thr": "tab:green", "aenet-python 1 thr": "tab:red", "aenet-python 2 thr": "tab:orange"}


def replot(csv_path: Path):
    """The PNG of an existing CSV (``--plot-only``)."""
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["atoms"], r["us_per_atom"] = int(r["atoms"]), float(r["us_per_atom"])
    title = f"aenet Chebyshev descriptor, lmnto-like, {rows[0]['device']}, {rows[0]['dtype']}, commit {rows[0]['commit']}"
    return write_plot(rows, csv_path.with_suffix(".png"), title)


def machine_tag(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).replace(" ", "-")
    return f"{platform.machine()}-{os.cpu_count()}cores"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000", help="comma list of approximate atom counts")
    ap.add_argument("--params", default="table,stp", help=f"comma list of {sorted(PARAMS)}")
    ap.add_argument("--backends", default=None, help="comma list of numba, triton, torch, aenet-python "
                                                     "(default: the device's compiled backend, torch, aenet-python)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", default=None, help="comma list of CPU thread counts (default: 1 and all cores)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--aenet-threads", default="1", type=lambda s: [int(t) for t in s.split(",")],
                    help="CPU threads of aenet-python (torch's OpenMP pool; with a busy core on a 2-core "
                         "machine 2 threads ran 5x slower than 1)")
    ap.add_argument("--slow-repeats", type=int, default=3, help="repeats of the torch reference and aenet-python")
    ap.add_argument("--max-torch-atoms", type=int, default=20000, help="skip the torch reference above this many atoms")
    ap.add_argument("--max-aenet-pairs", type=float, default=1e6,
                    help="skip aenet-python above this many angular pairs in all (on 2 CPU cores its call on the "
                         "56-atom cell with the stp parameters, 0.4 M pairs, took minutes and 9 GB)")
    ap.add_argument("--out", default=None, help="CSV path (default under profiling/results/)")
    ap.add_argument("--plot-only", default=None, help="redraw the PNG of this CSV and stop")
    args = ap.parse_args(argv)
    if args.plot_only:
        print(f"wrote {replot(Path(args.plot_only))}")
        return None

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    fast = acepy.kernels.resolve_backend(None, device)
    backends = args.backends.split(",") if args.backends else [fast, "torch", "aenet-python"]
    cores = os.cpu_count() or 1
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    structures = {n: lmnto(n) for n in (int(s) for s in args.sizes.split(","))}
    stamp, date, dev = commit(), datetime.date.today().isoformat(), device_name(device)
    rows, calls = [], []
    for params in args.params.split(","):
        p = PARAMS[params]
        for n, atoms in structures.items():
            pairs_total = None
            for backend in backends:
                if backend == "torch" and len(atoms) > args.max_torch_atoms:
                    continue
                if backend == "aenet-python" and (pairs_total is None or pairs_total > args.max_aenet_pairs):
                    continue
                slow = backend in ("torch", "aenet-python")
                # the torch reference runs its ops on one thread inside acepy's thread scope: one row;
                # aenet-python (torch on OpenMP) on --aenet-threads
                cpu_threads = {"torch": threads[:1], "aenet-python": args.aenet_threads}.get(backend, threads)
                for nthreads in cpu_threads if device.type == "cpu" else [""]:
                    if device.type == "cpu":
                        set_threads(nthreads)
                    row = {"params": params, "rad_order": p[0], "rad_cutoff": p[1], "ang_order": p[2],
                           "ang_cutoff": p[3], "atoms": len(atoms), "backend": backend, "device": dev,
                           "dtype": args.dtype, "threads": nthreads, "commit": stamp, "date": date,
                           "machine": platform.node()}
                    d = ChebyshevDescriptor(SPECIES, *p, backend="torch" if backend == "aenet-python" else backend,
                                            dtype=dtype, device=device)
                    if backend == "aenet-python":
                        call = aenet_python_call(p, atoms, device, dtype)
                        if call is None:
                            continue
                        torch.set_num_threads(nthreads or 1)
                        med, spread = measure(call, args.slow_repeats, args.warmup)
                        feat = vjp = float("nan")
                        searches = ""
                        batch = acepy.batch_from_atoms(atoms, device=device, dtype=dtype)
                    else:
                        med, spread, feat, vjp, searches, call, batch = time_descriptor(
                            d, atoms, args.slow_repeats if slow else args.repeats, args.warmup, device,
                            nthreads or None)
                    edges, pairs = graph_sizes(d, batch)
                    pairs_total = pairs * len(atoms)
                    row.update({"features_ms": 1e3 * feat, "vjp_ms": 1e3 * vjp, "total_ms": 1e3 * med,
                                "spread": spread, "us_per_atom": 1e6 * med / len(atoms),
                                "features_us_per_atom": 1e6 * feat / len(atoms),
                                "vjp_us_per_atom": 1e6 * vjp / len(atoms), "radial_edges_per_atom": edges,
                                "angular_pairs_per_atom": pairs, "n_searches": searches,
                                # other processes on the machine (runs on a shared CPU are noisy)
                                "load_avg_1min": os.getloadavg()[0]})
                    rows.append(row)
                    calls.append((nthreads, call, slow))
                    print(f"{params} {len(atoms)} {backend} {nthreads}: {1e3 * med:.1f} ms", flush=True)
    if device.type == "cpu":
        return_freed_memory_to_the_os()
    for row, (nthreads, call, slow) in zip(rows, calls):
        if device.type == "cpu":
            set_threads(nthreads)
        if not slow:  # (the slow ones have run often enough: their buffers are as warm as they get)
            call()
        row["peak_mem_mb"] = peak_memory_mb(call, device)
    print(f"\naenet Chebyshev descriptor, lmnto-like 5 species, on {dev}, {args.dtype}; one call = features "
          "(fresh neighbour search) + VJP (forces and virial)")
    print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"descriptor_lmnto_{machine_tag(device)}_{args.dtype}_{stamp}.csv"
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    plot = write_plot(rows, out.with_suffix(".png"), f"aenet Chebyshev descriptor, lmnto-like, {dev}, {args.dtype}, "
                                                     f"commit {stamp}")
    print(f"\nwrote {out}" + (f" and {plot}" if plot else ""))
    return rows


if __name__ == "__main__":
    main()
