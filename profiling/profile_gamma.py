"""The extrapolation grade's cost (issue 20): per-atom time of gamma against a force call and
against python-ace, on 32 / 256 / 2048-atom Al-Ni cells (the pacemaker .yaml of python-ace's tests,
through tests/data_paths.py; an active set of 12 rattled 32-atom cells chosen by MaxVol first).

Methods, each call on a new geometry (positions moved, so no cache hides a search), in interleaved
rounds (one call of every method per round), medians over ``--rounds``:

- ``acepy forces``: ``ACECalculator`` without an active set, ``get_forces`` (one force call);
- ``acepy forces+gamma``: ``ACECalculator(yaml, active_set=asi)``, ``get_forces``: gamma comes with
  it (the projections reuse the force call's neighbour search);
- ``acepy gamma``: ``ExtrapolationGrade(yaml, asi)(atoms)`` alone (its own search);
- ``acepy gamma batch``: the same on a list of cells of about ``--batch-atoms`` atoms in one call,
  per atom;
- ``pace forces`` / ``pace forces+gamma``: python-ace's ``PyACECalculator`` without and with
  ``set_active_set`` (its gamma is computed inside the force pass).

Prints a table (ms per call, us per atom, gamma's extra cost in force calls), writes a CSV and a
PNG under ``profiling/results/`` named with the machine and the commit. The machine is shared and
noisy: read the ratios of one run.

    python profiling/profile_gamma.py [--sizes 32,256,2048] [--rounds 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

from profile_forces import RESULTS, commit, device_name

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

COLUMNS = ["potential", "atoms", "structures", "method", "median_ms", "us_per_atom", "extra_force_calls",
           "threads", "rounds", "commit", "date", "machine"]
REPS = {32: (2, 2, 2), 108: (3, 3, 3), 256: (4, 4, 4), 500: (5, 5, 5), 864: (6, 6, 6), 2048: (8, 8, 8)}


def alni_cell(atoms: int, rng, rattle: float = 0.05):
    s = bulk("Al", "fcc", a=4.05, cubic=True).repeat(REPS[atoms])
    s.numbers[rng.random(len(s)) < 0.3] = 28
    s.rattle(rattle, seed=int(rng.integers(1 << 30)))
    return s


def setup(threads: int, workdir: Path):
    from data_paths import pacemaker_yaml

    from acepy.calculators import ACECalculator
    from acepy.fit import ExtrapolationGrade, select_active_set

    yaml = str(pacemaker_yaml("python-ace__tests__Al-Ni_opt_all.yaml"))
    rng = np.random.default_rng(0)
    train = [alni_cell(32, rng, 0.1) for _ in range(12)]
    asi = workdir / "AlNi.asi"
    select_active_set(yaml, train).write(asi)
    calcs = {"acepy forces": ACECalculator(yaml, num_threads=threads),
             "acepy forces+gamma": ACECalculator(yaml, active_set=asi, num_threads=threads)}
    grade = ExtrapolationGrade(yaml, asi)
    try:
        from pyace import PyACECalculator

        calcs["pace forces"] = PyACECalculator(yaml)
        calcs["pace forces+gamma"] = PyACECalculator(yaml)
        calcs["pace forces+gamma"].set_active_set(str(asi))
    except ImportError:
        print("python-ace is not installed: acepy only")
    return yaml, grade, calcs


def measure(sizes, rounds: int, threads: int, batch_atoms: int, grade, calcs) -> list[dict]:
    from acepy.kernels import num_threads

    rng = np.random.default_rng(1)
    rows = []
    for n in sizes:
        base = alni_cell(n, rng)
        batch = [alni_cell(n, rng) for _ in range(max(1, batch_atoms // n))]
        times: dict[str, list[float]] = {m: [] for m in list(calcs) + ["acepy gamma", "acepy gamma batch"]}

        def call(method, k):
            moved = base.copy()
            moved.positions += 1e-4 * (k + 1)  # a new geometry every call
            if method == "acepy gamma":
                t0 = time.perf_counter()
                with num_threads(threads):
                    grade(moved)
                return time.perf_counter() - t0
            if method == "acepy gamma batch":
                for s in batch:
                    s.positions += 1e-4
                t0 = time.perf_counter()
                with num_threads(threads):
                    grade(batch)
                return time.perf_counter() - t0
            moved.calc = calcs[method]
            t0 = time.perf_counter()
            moved.get_forces()
            return time.perf_counter() - t0

        for method in times:  # warm-up (compilation, tables)
            call(method, -1)
        for k in range(rounds):
            for method in times:
                times[method].append(call(method, k))
        force = float(np.median(times["acepy forces"]))
        pace = float(np.median(times["pace forces"])) if "pace forces" in times else None
        for method, ts in times.items():
            med = float(np.median(ts))
            count = len(batch) if method == "acepy gamma batch" else 1
            extra = None
            if method == "acepy forces+gamma":
                extra = (med - force) / force
            elif method in ("acepy gamma", "acepy gamma batch"):
                extra = med / count / force
            elif method == "pace forces+gamma" and pace:
                extra = (med - pace) / pace  # in pace force calls
            rows.append({"atoms": n, "structures": count, "method": method, "median_ms": 1e3 * med,
                         "us_per_atom": 1e6 * med / (n * count), "extra_force_calls": extra})
    return rows


def table(rows) -> None:
    print(f"{'atoms':>6} {'method':<20} {'ms/call':>9} {'us/atom':>9} {'gamma cost (force calls)':>26}")
    for r in rows:
        extra = "" if r["extra_force_calls"] is None else f"{r['extra_force_calls']:.2f}"
        count = f" x{r['structures']}" if r["structures"] > 1 else ""
        print(f"{r['atoms']:>6} {r['method'] + count:<20} {r['median_ms']:9.2f} {r['us_per_atom']:9.2f} {extra:>26}")


def write(rows, args) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}-{os.cpu_count()}cores"
    path = RESULTS / f"gamma_Al-Ni_opt_all_{machine}_{args.threads}thr_{commit()}.csv"
    base = {"potential": "Al-Ni_opt_all.yaml", "threads": args.threads, "rounds": args.rounds, "commit": commit(),
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.node()} {device_name(torch.device('cpu'))}"}
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**base, **r})
    tmp.replace(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return path
    fig, ax = plt.subplots(figsize=(7, 4))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        ax.plot([r["atoms"] for r in mine], [r["us_per_atom"] for r in mine], "o-", label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms per structure")
    ax.set_ylabel("us per atom (median)")
    ax.set_title(f"Al-Ni_opt_all gamma, {args.threads} thread(s), commit {commit()}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="32,256,2048")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-atoms", type=int, default=4096)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    bad = [n for n in sizes if n not in REPS]
    if bad:
        ap.error(f"sizes must be among {sorted(REPS)}, got {bad}")
    with tempfile.TemporaryDirectory() as tmp:
        _, grade, calcs = setup(args.threads, Path(tmp))
        rows = measure(sizes, args.rounds, args.threads, args.batch_atoms, grade, calcs)
    table(rows)
    if not args.no_write:
        print(f"written: {write(rows, args)}")
    return rows


if __name__ == "__main__":
    main()
