"""Small structures at full speed (issue 18): per-call cost through ASE and big batches of small
cells, side by side with python-ace's product and recursive evaluators in one run.

Parts (``--parts``, default all):

- ``calls``: one ASE call (forces + stress) on rattled 8, 32 and 64-atom cells, each call on a new
  geometry: median and 99th percentile over ``--calls`` calls, acepy's ``ACECalculator`` and
  ``PyACECalculator`` (product; recursive = LAMMPS's default evaluator); ``acepy general path``
  is acepy with its lean single-structure pass switched off (the before/after in one run);
- ``relax``: BFGS + FrechetCellFilter of a strained, rattled 32-atom cell (fmax 0.01) and
  ``md``: 1000 velocity-Verlet steps of a 32-atom cell (``--md-steps``), wall time for each
  calculator (median of 3 interleaved rounds);
- ``batch``: ``--batch`` small cells (8 atoms) in one ``model.evaluate`` call, chunked (the
  default ``chunk_pairs``) and in one piece, against a python-ace loop (recursive), time per
  structure and the peak resident memory (each run in a fresh subprocess: ``ru_maxrss``);
- ``breakdown``: where the time of one 32-atom ASE call goes (cProfile, grouped: ASE glue, batch
  building, neighbour search and graph, ACE kernels, ACE glue, scatter), with the lean pass and on
  the general path.

Prints tables, writes one CSV and a PNG under ``profiling/results/`` named with the commit.
Machines are noisy: read the ratios (same run, interleaved rounds) and medians.

    python profiling/profile_small.py                                   # the Al-Ni file if present
    python profiling/profile_small.py --potential Cu-synthetic-pbe-core-rep --parts calls,batch
"""

from __future__ import annotations

import os

# ASE's optimisers and cell filters do their own small dense linear algebra (BFGS's eigh of a
# 3(N+3)-square matrix, FrechetCellFilter's logm/expm) through numpy's OpenBLAS. With its default
# thread count on this 2-core VM that takes 0.7 s per relaxation step, for every calculator alike
# (40 BFGS steps of 32 atoms: 28 s with acepy and 28 s with python-ace; with one BLAS thread 0.6
# and 0.8 s): the comparison would measure OpenBLAS. One BLAS thread (before numpy is imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import csv
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

import acepy
from profile_forces import RESULTS, commit, device_name

HERE = Path(__file__).resolve().parent
ALNI = HERE.parent.parent / "shared" / "reference" / "potentials" / "python-ace__tests__Al-Ni_opt_all.yace"
COLUMNS = ["part", "potential", "atoms", "structures", "calculator", "median_ms", "p99_ms", "total_s",
           "per_structure_ms", "peak_rss_mb", "ratio_vs_recursive", "threads", "commit", "date", "machine"]


def default_potential() -> str:
    return str(ALNI) if ALNI.exists() else "AlTi-synthetic-linear"


def cell(model_elements, atoms: int, rng, strain: float = 0.0):
    """A rattled fcc cell of ``atoms`` atoms (8: 2 x 1 x 1 cubic; 32: 2x2x2; 64: 4x2x2) of the
    first element with 30% of the second (when there is one)."""
    el = model_elements[0]
    a0 = {"Al": 4.05, "Cu": 3.61, "Ni": 3.52, "Ti": 4.1}.get(el, 4.0)
    reps = {4: (1, 1, 1), 8: (2, 1, 1), 16: (2, 2, 1), 32: (2, 2, 2), 64: (4, 2, 2), 128: (4, 4, 2)}[atoms]
    s = bulk(el, "fcc", a=a0 * (1 + strain), cubic=True).repeat(reps)
    if len(model_elements) > 1:
        s.set_chemical_symbols([model_elements[1] if rng.random() < 0.3 else el for _ in range(len(s))])
    s.rattle(0.05, seed=int(rng.integers(1 << 30)))
    return s


def calculators(potential: str, threads: int) -> dict:
    from acepy.calculators import ACECalculator

    out = {"acepy": ACECalculator(potential, num_threads=threads),
           "acepy general path": general_path(ACECalculator(potential, num_threads=threads))}
    try:
        from pyace import PyACECalculator
    except ImportError:
        return out
    path = potential if Path(potential).exists() else str(acepy.loading._resolve(potential))
    out["pace product"] = PyACECalculator(path)
    out["pace recursive"] = PyACECalculator(path, recursive_evaluator=True, recursive=True)
    return out


def general_path(calc):
    """``calc`` with its model's lean single-structure pass switched off (acepy/models/single_structure.py):
    every call takes Stack.evaluate's general path, as before that pass existed (the before/after of
    issue 18 in one run). A profiling switch: it sets the model's private cached pass to None."""
    calc.model._single = None
    return calc


# ---- parts ------------------------------------------------------------------------------------
def part_calls(calcs, elements, sizes, calls: int, rng) -> list[dict]:
    """Interleaved rounds: every calculator in turn, 5 rounds of calls/5 calls each."""
    rows = []
    for n in sizes:
        base = cell(elements, n, rng)
        samples: dict[str, list] = {name: [] for name in calcs}
        for _ in range(5):
            for name, calc in calcs.items():
                atoms = base.copy()
                atoms.calc = calc
                atoms.get_forces()  # warm-up (compilation, caches)
                local = np.random.default_rng(7)
                for _ in range(max(1, calls // 5)):
                    atoms.positions += local.normal(0, 0.005, atoms.positions.shape)
                    t = time.perf_counter()
                    atoms.get_forces()
                    atoms.get_stress()
                    samples[name].append(time.perf_counter() - t)
        for name, s in samples.items():
            s = np.array(s) * 1e3
            rows.append({"part": "calls", "atoms": n, "structures": 1, "calculator": name,
                         "median_ms": float(np.median(s)), "p99_ms": float(np.percentile(s, 99))})
    return rows


def part_relax_md(calcs, elements, md_steps: int, rng, rounds: int = 3) -> list[dict]:
    from ase import units
    from ase.filters import FrechetCellFilter
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet
    from ase.optimize import BFGS

    import warnings

    # FrechetCellFilter's matrix logarithm warns about its own rounding (~1e-12) on every step
    warnings.filterwarnings("ignore", message="logm result may be inaccurate")
    start_relax = cell(elements, 32, rng, strain=0.02)
    start_md = cell(elements, 32, rng)
    relax: dict[str, list] = {name: [] for name in calcs}
    md: dict[str, list] = {name: [] for name in calcs}
    steps: dict[str, int] = {}
    for _ in range(rounds):  # interleaved rounds (this machine's load changes by the minute): medians
        for name, calc in calcs.items():
            atoms = start_relax.copy()
            atoms.calc = calc
            atoms.get_forces()
            opt = BFGS(FrechetCellFilter(atoms), logfile=None)
            t = time.perf_counter()
            opt.run(fmax=0.01, steps=300)
            relax[name].append(time.perf_counter() - t)
            steps[name] = opt.nsteps
            atoms = start_md.copy()
            atoms.calc = calc
            thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(1))
            atoms.get_forces()
            dyn = VelocityVerlet(atoms, 2 * units.fs, logfile=None)
            t = time.perf_counter()
            dyn.run(md_steps)
            md[name].append(time.perf_counter() - t)
    rows = []
    for name in calcs:
        rows.append({"part": "relax", "atoms": 32, "structures": 1, "calculator": name,
                     "total_s": float(np.median(relax[name])), "median_ms": float("nan"),
                     "p99_ms": float(steps[name])})  # p99_ms holds the step count for this part
        total = float(np.median(md[name]))
        rows.append({"part": "md", "atoms": 32, "structures": 1, "calculator": name, "total_s": total,
                     "median_ms": 1e3 * total / md_steps})
    return rows


_BATCH_CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {here!r})
from profile_small import cell
import acepy
potential, n, mode, threads = {potential!r}, {n}, {mode!r}, {threads}
rng = np.random.default_rng(0)
model = acepy.load(potential, num_threads=threads)
structures = [cell(model.elements, 8, rng) for _ in range(n)]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode == "pace recursive":
    from pyace import PyACECalculator
    path = potential if potential.endswith((".yace", ".yaml", ".ace")) else str(acepy.loading._resolve(potential))
    calc = PyACECalculator(path, recursive_evaluator=True, recursive=True)
    t = time.perf_counter()
    for s in structures:
        s.calc = calc
        s.get_forces(); s.get_stress()
    total = time.perf_counter() - t
else:
    model.evaluate(structures[:8])  # compile
    t = time.perf_counter()
    model.evaluate(structures, chunk_pairs=(None if mode == "acepy chunked" else 2**40), progress=False)
    total = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT " + json.dumps({{"total_s": total, "peak_mb": peak / 1024, "base_mb": base / 1024}}))
"""


# the largest batch also run in one piece (no chunks), to show what chunks save
ONE_PIECE_MAX = 10_000


def part_batch(potential: str, sizes, threads: int, have_pyace: bool) -> list[dict]:
    rows = []
    modes = ["acepy chunked", "acepy one piece"] + (["pace recursive"] if have_pyace else [])
    for n in sizes:
        for mode in modes:
            if mode == "acepy one piece" and n > ONE_PIECE_MAX:
                continue  # 1.4e8 pairs in one piece would need ~50 GB: that is what chunks are for
            code = _BATCH_CHILD.format(here=str(HERE), potential=potential, n=n, mode=mode, threads=threads)
            env = {**os.environ, "TQDM_DISABLE": "1"}
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=HERE)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(f"batch {n} {mode} failed:\n{proc.stderr[-2000:]}")
                continue
            r = json.loads(line[len("RESULT "):])
            rows.append({"part": "batch", "atoms": 8 * n, "structures": n, "calculator": mode,
                         "total_s": r["total_s"], "per_structure_ms": 1e3 * r["total_s"] / n,
                         "peak_rss_mb": r["peak_mb"]})
    return rows


_GROUPS = [  # (group, substrings of "file:function" that belong to it), first match wins
    ("neighbour search + graph", ["kernels/numba_cpu/neighbors", "vesin", "acepy/graph.py", "acepy/graph_single.py",
                                  "acepy/graph_checks.py"]),
    ("ACE kernels", ["kernels/numba_cpu", "kernels/triton_gpu"]),
    ("batch building", ["acepy/batch.py"]),
    ("scatter", ["kernels/scatter.py"]),
    ("ACE glue", ["acepy/models/ace.py", "acepy/models/radial", "acepy/models/embedding.py", "kernels/"]),
    ("stack glue", ["acepy/models/stack.py", "acepy/models/component.py", "acepy/models/single_structure.py"]),
    ("ASE glue", ["ase/", "acepy/calculators"]),
]


def part_breakdown(potential: str, elements, threads: int, rng) -> list[dict]:
    """Self time of one 32-atom ASE call by group (cProfile over 200 calls, per call), with the lean
    single-structure pass and on the general path."""
    from acepy.calculators import ACECalculator

    rows = []
    for name in ("acepy", "acepy general path"):
        calc = ACECalculator(potential, num_threads=threads)
        rows += _breakdown(calc if name == "acepy" else general_path(calc), name, elements, rng)
    return rows


def _breakdown(calc, name: str, elements, rng) -> list[dict]:
    import cProfile
    import pstats

    atoms = cell(elements, 32, rng)
    atoms.calc = calc
    for _ in range(10):
        atoms.positions += 1e-4
        atoms.get_forces()
    prof = cProfile.Profile()
    calls = 200
    prof.enable()
    for _ in range(calls):
        atoms.positions += 1e-4
        atoms.get_forces()
        atoms.get_stress()
    prof.disable()
    totals: dict[str, float] = {}
    for (file, _, func), (_, _, tottime, _, _) in pstats.Stats(prof).stats.items():
        key = f"{file}:{func}"
        group = next((g for g, subs in _GROUPS if any(s in key for s in subs)), "torch / numpy / other")
        totals[group] = totals.get(group, 0.0) + tottime
    return [{"part": "breakdown", "atoms": 32, "structures": 1, "calculator": f"{name}: {group}",
             "median_ms": 1e3 * t / calls} for group, t in sorted(totals.items(), key=lambda kv: -kv[1])]


# ---- output -----------------------------------------------------------------------------------
def add_ratios(rows) -> None:
    for r in rows:
        if r["part"] in ("calls", "relax", "md", "batch"):
            ref = next((x for x in rows if x["part"] == r["part"] and x["atoms"] == r["atoms"]
                        and x["calculator"] == "pace recursive"), None)
            key = "median_ms" if r["part"] == "calls" else "total_s"
            if ref and ref.get(key):
                r["ratio_vs_recursive"] = r[key] / ref[key]


def print_rows(rows) -> None:
    for part in ("calls", "relax", "md", "batch", "breakdown"):
        mine = [r for r in rows if r["part"] == part]
        if not mine:
            continue
        print(f"\n[{part}]")
        for r in mine:
            bits = [f"{r['calculator']:<{46 if part == 'breakdown' else 26}}", f"atoms {r['atoms']:>6}"]
            if part == "calls":
                bits += [f"median {r['median_ms']:8.2f} ms", f"p99 {r['p99_ms']:8.2f} ms"]
            elif part == "breakdown":
                bits += [f"{r['median_ms']:8.3f} ms per call (self time)"]
            else:
                bits += [f"{r['total_s']:8.2f} s"]
                if part == "batch":
                    bits += [f"{r['per_structure_ms']:7.3f} ms/structure", f"peak {r['peak_rss_mb']:7.0f} MB"]
                if part == "relax":
                    bits += [f"{int(r['p99_ms'])} steps"]
            if r.get("ratio_vs_recursive") is not None:
                bits.append(f"x{r['ratio_vs_recursive']:.2f} of recursive")
            print("  ".join(bits))


def write(rows, args) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = Path(args.potential).stem.replace("python-ace__tests__", "")
    tag = f"small_{stem}_{platform.machine()}-{os.cpu_count()}cores_{args.threads}thr_{commit()}"
    path = RESULTS / f"{tag}.csv"
    base = {"potential": stem, "threads": args.threads, "commit": commit(),
            "date": datetime.date.today().isoformat(), "machine": f"{platform.node()} {device_name_cpu()}"}
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
    calls = [r for r in rows if r["part"] == "calls"]
    if calls:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name in dict.fromkeys(r["calculator"] for r in calls):
            mine = [r for r in calls if r["calculator"] == name]
            ax.plot([r["atoms"] for r in mine], [r["median_ms"] for r in mine], "o-", label=f"{name} median")
            ax.plot([r["atoms"] for r in mine], [r["p99_ms"] for r in mine], "x:", label=f"{name} p99")
        ax.set_xlabel("atoms")
        ax.set_ylabel("ms per ASE call (forces + stress)")
        ax.set_title(f"{stem}: one ASE call, {args.threads} thread(s), commit {commit()}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path.with_suffix(".png"), dpi=120)
    return path


def device_name_cpu() -> str:
    import torch

    return device_name(torch.device("cpu"))


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--potential", default=default_potential())
    ap.add_argument("--parts", default="calls,relax,md,batch,breakdown")
    ap.add_argument("--sizes", default="8,32,64", help="atoms per cell of the calls part")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--md-steps", type=int, default=1000)
    ap.add_argument("--batch", default="10000", help="comma list of batch sizes (8-atom cells)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    rng = np.random.default_rng(0)
    calcs = calculators(args.potential, args.threads)
    elements = calcs["acepy"].model.elements
    rows: list[dict] = []
    if "calls" in parts:
        rows += part_calls(calcs, elements, [int(x) for x in args.sizes.split(",")], args.calls, rng)
    if "relax" in parts or "md" in parts:
        rows += [r for r in part_relax_md(calcs, elements, args.md_steps, rng) if r["part"] in parts]
    if "batch" in parts:
        rows += part_batch(args.potential, [int(x) for x in args.batch.split(",")], args.threads,
                           "pace recursive" in calcs)
    if "breakdown" in parts:
        rows += part_breakdown(args.potential, elements, args.threads, rng)
    add_ratios(rows)
    print(f"{args.potential}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    print_rows(rows)
    if not args.no_write:
        print(f"\nwrote {write(rows, args)}")
    return rows


if __name__ == "__main__":
    main()
