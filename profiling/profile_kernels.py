"""Time the kernel primitives per backend, side by side in one run.

Prints a table and writes ``profiling/results/kernels_<machine>_<commit>.csv``. Sizes follow a
real workload: 100k edges (about 3000 atoms of fcc Cu inside a 7.4 A cutoff is 3000 x 140 edges;
the default keeps CI-like machines quick), 35 radial functions (nradmax 5 x (lmax 6 + 1)),
lmax 6, and for the product basis 3000 terms of rank 2..4 over 140 complex columns. The kernels
run as a user calls them, with their value checks on. The Triton interpreter is not timed: Triton
is timed on CUDA only.

    python profiling/profile_kernels.py [--edges 100000] [--repeats 20] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

import acepy.kernels as K

RESULTS = Path(__file__).resolve().parent / "results"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).replace(" ", "_")
    return f"{platform.machine()}-{torch.get_num_threads()}threads"


def timed(fn, repeats: int, device: torch.device) -> tuple[float, float]:
    fn()  # warm-up: compilation, caches
    fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    med = statistics.median(samples)
    spread = (np.percentile(samples, 90) - np.percentile(samples, 10)) / med if len(samples) > 2 else 0.0
    return med, spread


def workloads(n_edges: int, dtype, device):
    rng = np.random.default_rng(0)
    n_atoms = max(1, n_edges // 140)
    grids = [K.SplineGrid.from_spacing(7.4, 0.001)]
    vals = [rng.normal(size=(grids[0].nlut, 35))]
    table = K.build_spline_table(grids, vals, vals, dtype=dtype, device=device)
    r = torch.as_tensor(rng.uniform(1.5, 7.4, n_edges), dtype=dtype, device=device)
    tab = torch.zeros(n_edges, dtype=torch.long, device=device)
    vec = torch.as_tensor(rng.normal(size=(n_edges, 3)), dtype=dtype, device=device)
    offsets = torch.as_tensor(np.linspace(0, n_edges, n_atoms + 1).astype(np.int64), device=device)
    values = torch.as_tensor(rng.normal(size=(n_edges, 35)), dtype=dtype, device=device)
    centers = torch.repeat_interleave(torch.arange(n_atoms, device=device), offsets[1:] - offsets[:-1])
    neighbors = torch.as_tensor(rng.integers(0, n_atoms, n_edges), device=device)
    system = torch.zeros(n_edges, dtype=torch.long, device=device)
    # the ACE atomic base and product basis at the bundled Cu-shaped sizes: one species,
    # nradmax 5, lmax 6 (H = 5 x 28 = 140 complex columns), terms of rank 2..4, two densities
    rnl = torch.as_tensor(rng.normal(size=(n_edges, 5, 7)), dtype=dtype, device=device)
    species = torch.zeros(n_edges, dtype=torch.long, device=device)
    ga = torch.as_tensor(rng.normal(size=(2, n_atoms, 1, 5, 28)), dtype=dtype, device=device)
    h, n_terms = 140, 3000
    codes = np.full((n_terms, 4), -1, dtype=np.int64)
    rank = rng.integers(2, 5, n_terms)
    for s_, k in enumerate(np.sort(rank)):  # sorted by rank, as the model sorts them
        codes[s_, :k] = 4 * rng.integers(0, h, k) + rng.integers(0, 4, k)
    plan = K.ProductBasisPlan(codes, rng.normal(size=(n_terms, 2)), [0, n_terms]).to(device, dtype).validate(h)
    a = torch.as_tensor(rng.normal(size=(2, n_atoms, h)), dtype=dtype, device=device)
    group = torch.zeros(n_atoms, dtype=torch.long, device=device)
    w_rho = torch.as_tensor(rng.normal(size=(n_atoms, 2)), dtype=dtype, device=device)
    return {
        "spline K=35 (value+d/dr)": lambda b: K.spline_eval(table, r, tab, order=1, backend=b),
        "chebyshev exp_cos n=15": lambda b: K.chebyshev(r, 15, transform="exp_cos", lam=5.25, rcut=7.4, order=1, backend=b),
        "sph_harm lmax=6 +grad": lambda b: K.spherical_harmonics(vec, 6, backend=b),
        "segment_sum K=35": lambda b: K.segment_sum(values, offsets, backend=b),
        "scatter forces+virial": lambda b: K.scatter_forces_virials(vec, vec, centers, neighbors, system, n_atoms, 1, backend=b),
        "atomic_base lmax=6 Y from r": lambda b: K.atomic_base(rnl, None, None, offsets, species, 1, vectors=vec,
                                                                   backend=b),
        "atomic_base_edge_grads": lambda b: K.atomic_base_edge_grads(ga[0], ga[1], offsets, species, rnl, rnl, None,
                                                                     None, None, None, vec, backend=b),
        "product_basis S=3000": lambda b: K.product_basis(a[0], a[1], group, plan, backend=b),
        "product_basis adjoint S=3000": lambda b: K.product_basis_adjoint(a[0], a[1], group, plan, w_rho, backend=b),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edges", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    backends = [b for b in K.available_backends(device) if not (b == "triton" and device.type == "cpu")]
    rows = []
    for name, fn in workloads(args.edges, dtype, device).items():
        base = None
        for b in backends:
            med, spread = timed(lambda: fn(b), args.repeats, device)
            base = med if b == "torch" else base
            rows.append(dict(kernel=name, backend=b, device=machine(device), dtype=args.dtype, edges=args.edges,
                             threads=torch.get_num_threads(), median_ms=med * 1e3, spread=spread,
                             ns_per_edge=med / args.edges * 1e9,
                             speedup_vs_torch=(base / med) if base else float("nan"),
                             commit=commit(), date=datetime.date.today().isoformat()))
    print(f"{'kernel':28s} {'backend':8s} {'median ms':>10s} {'ns/edge':>9s} {'x torch':>8s} {'spread':>7s}")
    for row in rows:
        print(f"{row['kernel']:28s} {row['backend']:8s} {row['median_ms']:10.3f} {row['ns_per_edge']:9.1f} "
              f"{row['speedup_vs_torch']:8.2f} {row['spread']:7.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"kernels_{machine(device)}_{args.dtype}_{commit()}.csv"
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
