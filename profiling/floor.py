"""The floor on paper: FLOPs and bytes per atom of each stage of a force call, and what they cost
at a machine's peak (issues 21 and 16: what "fast" means before timing anything).

For one potential (default: the bundled Cu-shaped one, synthetic: see README) and a real structure
(rattled fcc, its neighbour count measured from the graph), each stage of ``Stack.evaluate`` on
the fast path is counted from the potential's own sizes and its compiled product-basis plan:

=================  ==============================================================================
stage              what is counted (per atom; E = edges per atom)
=================  ==============================================================================
neighbours         cell-list candidates 27 rho rc^3 = (81 / 4 pi) E, 9 flops each; writes i, j, S
                   (int64) and the vector and length of every kept pair
radial tables      per edge, every table column (g_k, R_nl, core): a cubic and its derivative
                   (Horner: 6 + 5 flops) + 6 for the bin; reads r, writes values and derivatives
harmonics          per edge, the (lmax+1)(lmax+2)/2 complex Y_lm (m >= 0) and their gradients by
                   recurrence: ~8 flops per value, ~24 per gradient (fused into the atomic base)
atomic base        per edge and (n, l, m >= 0): R_nl Y_lm into A, 4 flops; reads R_nl, writes A
product basis      per term of rank k: k - 1 complex products (6 flops) + Re x coeff into P
                   densities (2 P); reads A and the plan (codes, coefficients)
embedding          ~30 flops per density (F(rho) and F'(rho))
adjoint            per term: prefix and suffix products (2 (k - 2) complex products), k gradients
                   (6 + 2 flops each); reads A, writes dE/dA
edge gradients     per edge and (n, l, m >= 0): Re(dE/dA conj(d(R Y)/dr)) for 3 components,
                   ~20 flops; reads dE/dA, R, R', writes g (3 floats)
scatter            per edge: forces 6 flops, virial 18; reads g, r_ij, i, j; writes F (atomic adds)
=================  ==============================================================================

Bytes are those each stage must move through main memory when stages hand arrays to each other
(acepy's design on both backends); the radial table and the product-basis plan are read once per
atom's edges but are small enough for the last-level cache on an H100 (50 MB L2) and are listed
apart (``cache_bytes``). Times are FLOPs / peak FLOP rate and bytes / peak bandwidth; the floor of
a stage is the larger of the two. Peaks: NVIDIA H100 SXM5 datasheet (FP64 33.5 TFLOP/s on the CUDA
cores, 66.9 on tensor cores, which these stages cannot use; HBM3 3.35 TB/s); H200 SXM (same FP64,
HBM3e 4.8 TB/s); this CPU measured here with a simple kernel (a vectorised FMA loop in registers for
FLOP/s, a STREAM-like triad for bandwidth) on 1 and all threads.

    python profiling/floor.py                      # bundled Cu-shaped, 2048 atoms, measure the CPU
    python profiling/floor.py --potential AlTi-synthetic-linear --atoms 256 --no-measure

With ``--measure`` (default) it also times each stage of one fast-path force call (the same calls
as ``ACE._fast_chunk``, chunk by chunk as the model cuts the edges, summed, medians; the process's
CPU time on one thread, so that other processes on a shared machine count less; ``--device cuda``
on a GPU, synchronised per stage) and prints how far each stage is from the floor of the machine it
ran on. Writes a CSV and a PNG under ``profiling/results/`` named with the commit.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import acepy
from profile_forces import RESULTS, commit, supercell

GPU_PEAKS = {  # FP64 FLOP/s on CUDA cores, memory bandwidth B/s (NVIDIA datasheets)
    "H100 SXM": (33.5e12, 3.35e12),
    "H200 SXM": (33.5e12, 4.8e12),
}
STAGES = ["neighbours", "radial tables", "harmonics", "atomic base", "product basis", "embedding", "adjoint",
          "edge gradients", "scatter"]
F8 = 8  # bytes per float64
I8 = 8  # bytes per int64 index


# ---- counting -----------------------------------------------------------------------------------
def ace_component(model):
    aces = [c for c in model.components if type(c).__name__ == "ACE"]
    if not aces:
        raise SystemExit("the potential has no ACE component")
    return aces[0]


def plan_counts(ace) -> dict:
    """Per species group of the compiled plan: terms, complex products (sum of k - 1) and factors."""
    lengths = ace.plan.term_length.cpu().numpy()
    offsets = ace.plan.group_offsets.cpu().numpy()
    out = {}
    for g in range(len(offsets) - 1):
        k = lengths[offsets[g]:offsets[g + 1]]
        out[g] = {"terms": int(k.size), "products": int(np.maximum(k - 1, 0).sum()), "factors": int(k.sum())}
    return out


def spec_counts(spec) -> dict:
    """The same counts from the potential's functions (an independent path: the plan is compiled
    from them, dropping rank-1 functions, which act on g_k through a dense map)."""
    out = {}
    for mu0, functions in enumerate(spec.functions):
        terms = products = factors = 0
        for fn in functions:
            if fn.rank == 1:
                continue
            s = int(fn.ms_combs.shape[0])
            terms += s
            products += s * (fn.rank - 1)
            factors += s * fn.rank
        out[mu0] = {"terms": terms, "products": products, "factors": factors}
    return out


def edges_per_atom(model, atoms) -> float:
    graph = model.graph_cache.graphs(acepy.batch_from_atoms(atoms))[model.cutoff]
    return graph.n_edges / len(atoms)


def stage_costs(model, atoms) -> list[dict]:
    """FLOPs, main-memory bytes and cache-resident bytes per atom of every stage (see module
    docstring), averaged over the structure's species."""
    ace = ace_component(model)
    n = len(atoms)
    e = edges_per_atom(model, atoms)
    species = model.species_of(torch.as_tensor(atoms.numbers)).numpy()
    share = np.bincount(species, minlength=ace.nelements) / n  # fraction of atoms of each species
    counts = plan_counts(ace)
    terms = sum(share[g] * counts[g]["terms"] for g in counts)
    products = sum(share[g] * counts[g]["products"] for g in counts)
    factors = sum(share[g] * counts[g]["factors"] for g in counts)
    p = ace.max_ndensity
    h = ace.n_half
    nlm = ace.nradmax * h  # (n, l, m >= 0) per neighbour species
    width = ace.nelements * nlm  # the atomic base row of one atom (complex)
    columns = ace.nradbase + ace.nradmax * (ace.lmax + 1) + 1  # table columns: g_k, R_nl, core
    table = ace.radial._lookup_table().coeffs
    table_bytes = table.numel() * table.element_size()
    plan_bytes = ace.plan.codes.numel() * I8 + ace.plan.coeff.numel() * F8
    rc = model.cutoff
    candidates = 81.0 / (4.0 * math.pi) * e  # 27 cells of side rc against the sphere 4/3 pi rc^3
    rows = [
        ("neighbours", 9 * candidates, 3 * F8 + e * (2 * I8 + 3 * I8 + 4 * F8), 0),
        ("radial tables", e * (6 + 11 * columns), e * (F8 + 2 * columns * F8), e * columns * 4 * F8),
        ("harmonics", e * h * (8 + 24), 0, 0),
        ("atomic base", e * nlm * 4, e * ace.nradmax * (ace.lmax + 1) * F8 + 2 * width * F8, 0),
        ("product basis", products * 6 + terms * 2 * p, 2 * width * F8 + p * F8, factors * I8 + terms * p * F8),
        ("embedding", 30 * p, 2 * p * F8, 0),
        ("adjoint", 2 * max(products - terms, 0) * 6 + factors * 8, 4 * width * F8, factors * I8 + terms * p * F8),
        ("edge gradients", e * nlm * 20, 2 * width * F8 + e * (2 * ace.nradmax * (ace.lmax + 1) * F8 + 3 * F8), 0),
        ("scatter", e * 24, e * (3 * F8 + 3 * F8 + 2 * I8) + 2 * 3 * F8, 0),
    ]
    info = {"edges_per_atom": e, "cutoff": rc, "terms_per_atom": terms, "table_mb": table_bytes / 2**20,
            "plan_mb": plan_bytes / 2**20, "atomic_base_width": width}
    return [{"stage": s, "flops": f, "bytes": b, "cache_bytes": c} for s, f, b, c in rows], info


# ---- this machine's peaks ---------------------------------------------------------------------
def _fma_kernel():
    import numba

    def fma(reps, a, b):
        # 64 independent lanes in a local array (LLVM keeps it in vector registers): the loop
        # vectorises into FMA instructions; an argument array would be reloaded every pass
        x = np.ones(64)
        for _ in range(reps):
            for k in range(64):
                x[k] = x[k] * a + b
        return x.sum()

    serial = numba.njit(fastmath=True, cache=False)(fma)

    def fma_parallel(threads, reps, a, b):
        out = np.zeros(threads)
        for t in numba.prange(threads):
            out[t] = serial(reps, a, b)
        return out.sum()

    return serial, numba.njit(fastmath=True, parallel=True, cache=False)(fma_parallel)


def _triad_kernel():
    import numba

    def triad(a, b, c, s):
        for i in numba.prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    return numba.njit(cache=False)(triad), numba.njit(parallel=True, cache=False)(triad)


def measure_cpu_peaks(threads: int) -> dict:
    """Peak float64 FLOP/s (FMA loop) and bandwidth (triad over 3 x 64 MB), median of 5, on
    ``threads`` threads (1: the serial kernels)."""
    import numba

    numba.set_num_threads(threads)
    serial, parallel = _fma_kernel()
    t_serial, t_parallel = _triad_kernel()
    reps = 200_000
    fma = (lambda: serial(reps, 0.999999, 1e-7)) if threads == 1 else (
        lambda: parallel(threads, reps, 0.999999, 1e-7))
    fma()
    flops = []
    for _ in range(5):
        t = time.perf_counter()
        fma()
        flops.append(2 * 64 * reps * threads / (time.perf_counter() - t))
    n = 8 * 2**20
    a, b, c = np.zeros(n), np.ones(n), np.ones(n)
    triad = t_serial if threads == 1 else t_parallel
    triad(a, b, c, 3.0)
    bw = []
    for _ in range(5):
        t = time.perf_counter()
        triad(a, b, c, 3.0)
        bw.append(3 * n * F8 / (time.perf_counter() - t))
    return {"flops": float(np.median(flops)), "bandwidth": float(np.median(bw))}


# ---- measured stages on this CPU ----------------------------------------------------------------
def measure_stages(model, atoms, repeats: int, cpu_time: bool = True) -> dict:
    """Median seconds of each stage of one fast-path force call on the model's device: the calls
    of ``ACE._fast_chunk`` one by one, chunk by chunk as ``ACE.energies_and_edge_grads`` cuts the
    edges (``EDGE_CHUNK``: the per-edge arrays of a chunk are what the caches see, so one
    unchunked call of 290k edges would time the radial tables 3x slower than the model runs
    them), summed over the chunks; the model's threads; CUDA synchronised around each stage.
    With ``cpu_time`` (one thread) the process's CPU time (the time other processes on a shared
    machine take is not counted), else wall time."""
    from acepy.kernels import (atomic_base, atomic_base_edge_grads, product_basis, product_basis_adjoint,
                               scatter_forces_virials)
    from acepy.models.ace import EDGE_CHUNK, _chunk_bounds

    ace = ace_component(model)
    backend = model.backend
    batch = acepy.batch_from_atoms(atoms, device=model.device, dtype=model.dtype)
    species = model.species_of(batch.numbers)
    times: dict[str, list] = {s: [] for s in STAGES}
    cuda = model.device.type == "cuda"

    def clock() -> float:
        if cuda:
            torch.cuda.synchronize(model.device)
        return time.process_time() if cpu_time and not cuda else time.perf_counter()

    order = ["radial tables", "atomic base", "product basis", "adjoint", "edge gradients"]
    with model._threads(None):
        for _ in range(repeats + 1):
            t0 = clock()
            model.graph_cache.invalidate()
            graphs = model.graph_cache.graphs(batch)
            inputs = model._inputs(batch, species, graphs, ace.cutoff, {}, detach=True)
            edges = ace._prepare(inputs)
            t1 = clock()
            times["neighbours"].append(t1 - t0)
            offsets = edges.offsets.cpu().numpy()
            n_edges = int(offsets[-1])
            n_chunks = max(1, -(-n_edges // EDGE_CHUNK))
            bounds = _chunk_bounds(offsets, -(-n_edges // n_chunks) if n_edges else EDGE_CHUNK)
            spent = dict.fromkeys(order, 0.0)
            for a0, a1 in zip(bounds[:-1], bounds[1:]):
                e0, e1 = int(offsets[a0]), int(offsets[a1])
                chunk, sp, n = edges.slice(a0, a1, e0, e1), species[a0:a1], a1 - a0
                t1 = clock()
                rad = ace.radial.evaluate(chunk.r, chunk.mu_i, chunk.mu_j, backend=backend, check=False)
                t2 = clock()
                a_re, a_im = atomic_base(rad.rnl, None, None, chunk.offsets, chunk.mu_j, ace.nelements,
                                         backend=backend, vectors=chunk.vectors, check=False)
                width = ace.nelements * ace.nradmax * ace.n_half
                a_re, a_im = a_re.reshape(n, width), a_im.reshape(n, width)
                t3 = clock()
                rho = product_basis(a_re, a_im, sp, ace.plan, backend=backend, check=False)
                t4 = clock()
                d_rho = torch.ones_like(rho)
                ga_re, ga_im = product_basis_adjoint(a_re, a_im, sp, ace.plan, d_rho, backend=backend, check=False)
                t5 = clock()
                shape = (n, ace.nelements, ace.nradmax, ace.n_half)
                atomic_base_edge_grads(ga_re.reshape(shape), ga_im.reshape(shape), chunk.offsets, chunk.mu_j,
                                       rad.rnl, rad.drnl, None, None, None, None, chunk.vectors, backend=backend,
                                       check=False)
                t6 = clock()
                for stage, dt in zip(order, [t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5]):
                    spent[stage] += dt
            for stage, dt in spent.items():
                times[stage].append(dt)
            g = torch.zeros_like(edges.vectors)
            t6 = clock()
            # one structure: every edge is in structure 0 (edges the pair cutoffs drop are gone)
            scatter_forces_virials(g, edges.vectors, edges.centers, edges.neighbors, torch.zeros_like(edges.centers),
                                   len(atoms), 1, backend=backend)
            times["scatter"].append(clock() - t6)
    # the first round compiles and warms caches; harmonics are fused into the atomic base, the
    # embedding is part of the model's glue (not timed apart)
    return {s: float(np.median(v[1:])) for s, v in times.items() if v}


FUSED_STAGES = ["radial tables", "harmonics", "atomic base", "product basis", "embedding", "adjoint",
                "edge gradients"]


def measure_fused(model, atoms, repeats: int) -> float | None:
    """Median CPU seconds of the fused Numba kernel (``kernels/numba_cpu/ace_fused.py``: every stage
    from the radial tables to the edge gradients in one launch, the model's fast path on the Numba
    backend), or None where the model does not run it (another backend, a radial kind without a
    table)."""
    ace = ace_component(model)
    if model.backend != "numba" or getattr(ace, "_fused", None) is None:
        return None
    batch = acepy.batch_from_atoms(atoms, device=model.device, dtype=model.dtype)
    species = model.species_of(batch.numbers)
    times = []
    with model._threads(None):
        graphs = model.graph_cache.graphs(batch)
        inputs = model._inputs(batch, species, graphs, ace.cutoff, {}, detach=True)
        for _ in range(repeats + 1):
            t0 = time.process_time()
            ace._fused_energies_and_edge_grads(inputs)
            times.append(time.process_time() - t0)
    return float(np.median(times[1:]))


def fused_summary(rows, fused_s: float, n_atoms: int, reference: str) -> dict:
    """The fused kernel against the sum of its stages' floors and the staged kernels' times."""
    part = [r for r in rows if r["stage"] in FUSED_STAGES]
    floor = sum(r[f"{reference} floor_ns_per_atom"] for r in part)
    staged = sum(r.get("measured_ns_per_atom", 0.0) or 0.0 for r in part)
    measured = 1e9 * fused_s / n_atoms
    return {"fused_ns_per_atom": measured, "fused_floor_ns_per_atom": floor, "fused_x_floor": measured / floor,
            "staged_ns_per_atom": staged}


# ---- report -------------------------------------------------------------------------------------
def build_rows(costs, info, peaks: dict, measured: dict | None, n_atoms: int) -> list[dict]:
    out = []
    for c in costs:
        row = {"stage": c["stage"], "flops_per_atom": c["flops"], "bytes_per_atom": c["bytes"],
               "cache_bytes_per_atom": c["cache_bytes"],
               "intensity": c["flops"] / c["bytes"] if c["bytes"] else float("inf")}
        for name, (f, b) in peaks.items():
            row[f"{name} floor_ns_per_atom"] = 1e9 * max(c["flops"] / f, c["bytes"] / b)
        if measured is not None and c["stage"] in measured:
            row["measured_ns_per_atom"] = 1e9 * measured[c["stage"]] / n_atoms
        out.append(row)
    total = {"stage": "total", "flops_per_atom": sum(c["flops"] for c in costs),
             "bytes_per_atom": sum(c["bytes"] for c in costs),
             "cache_bytes_per_atom": sum(c["cache_bytes"] for c in costs)}
    total["intensity"] = total["flops_per_atom"] / total["bytes_per_atom"]
    for name in peaks:
        total[f"{name} floor_ns_per_atom"] = sum(r[f"{name} floor_ns_per_atom"] for r in out)
    if measured is not None:
        total["measured_ns_per_atom"] = sum(r.get("measured_ns_per_atom", 0.0) for r in out)
    return out + [total]


def print_table(rows, peaks, info, reference: str | None = None) -> None:
    print(f"edges per atom {info['edges_per_atom']:.1f} (cutoff {info['cutoff']} A), product terms per atom "
          f"{info['terms_per_atom']:.0f}, atomic base row {info['atomic_base_width']} complex, radial table "
          f"{info['table_mb']:.1f} MB, plan {info['plan_mb']:.2f} MB")
    names = list(peaks)
    head = f"{'stage':<15}{'kFLOP/atom':>11}{'kB/atom':>9}{'cache kB':>9}{'FLOP/B':>8}"
    head += "".join(f"{n[:14] + ' ns':>18}" for n in names)
    has_measured = any("measured_ns_per_atom" in r for r in rows)
    if has_measured:
        head += f"{'measured ns':>13}{'x floor':>9}"  # x the floor at the measuring machine's peak
    print(head)
    for r in rows:
        line = (f"{r['stage']:<15}{r['flops_per_atom'] / 1e3:>11.1f}{r['bytes_per_atom'] / 1e3:>9.2f}"
                f"{r['cache_bytes_per_atom'] / 1e3:>9.1f}{r['intensity']:>8.1f}")
        line += "".join(f"{r[f'{n} floor_ns_per_atom']:>18.2f}" for n in names)
        if has_measured:
            m = r.get("measured_ns_per_atom")
            if m is None:
                line += f"{'-':>13}{'-':>9}"
            else:
                ratio = m / r[f"{reference} floor_ns_per_atom"] if reference else float("nan")
                line += f"{m:>13.0f}{ratio:>9.1f}"
        print(line)


def write_outputs(rows, args, info, peaks) -> tuple[Path, Path | None]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    where = (torch.cuda.get_device_name(args.device).replace(" ", "-") if args.device.startswith("cuda")
             else f"{platform.machine()}-{os.cpu_count()}cores")
    tag = f"floor_{args.potential}_{args.atoms}_{where}_{commit()}"
    csv_path = out / f"{tag}.csv"
    keys = list(rows[0].keys() | rows[-1].keys())
    order = ["stage", "flops_per_atom", "bytes_per_atom", "cache_bytes_per_atom", "intensity"]
    keys = order + sorted(k for k in keys if k not in order)
    tmp = csv_path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        fh.write(f"# potential {args.potential}, {args.atoms} atoms, edges/atom {info['edges_per_atom']:.1f}, "
                 f"machine {platform.node()} {platform.processor() or platform.machine()}, commit {commit()}, "
                 f"peaks (FLOP/s, B/s) {peaks}"
                 # one comment line (readers skip one: gpu_check_report.floor_lines)
                 + (f"; fused kernel (radial tables .. edge gradients in one launch): {info['fused']}"
                    if info.get("fused") else "") + "\n")
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    tmp.replace(csv_path)
    png = out / f"{tag}.png"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return csv_path, None
    stages = [r for r in rows if r["stage"] != "total"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = np.arange(len(stages))
    width = 0.8 / (len(peaks) + (1 if "measured_ns_per_atom" in stages[0] else 0))
    for k, name in enumerate(peaks):
        ax.bar(x + k * width, [r[f"{name} floor_ns_per_atom"] for r in stages], width, label=f"floor: {name}")
    if "measured_ns_per_atom" in rows[-1]:
        ax.bar(x + len(peaks) * width, [r.get("measured_ns_per_atom", np.nan) for r in stages], width,
               label="measured, this CPU")
    ax.set_yscale("log")
    ax.set_xticks(x + width * (len(peaks)) / 2, [r["stage"] for r in stages], rotation=30, ha="right")
    ax.set_ylabel("ns per atom")
    ax.set_title(f"{args.potential}: floor per stage ({info['edges_per_atom']:.0f} edges/atom), commit {commit()}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    return csv_path, png


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--potential", default="Cu-synthetic-pbe-core-rep", help="bundled name or file")
    ap.add_argument("--atoms", type=int, default=2048, help="rattled fcc supercell size (multiple of 4)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of the measured stages and peaks")
    ap.add_argument("--device", default="cpu", help="cpu or cuda: where the stages are measured (on CUDA the "
                    "floor compared with is the datasheet peak of the GPU found, H100 or H200)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--measure", action=argparse.BooleanOptionalAction, default=True,
                    help="measure this CPU's peaks and each stage's time (--no-measure: paper only)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--out", default=str(RESULTS), help="folder of the CSV and PNG")
    args = ap.parse_args(argv)
    model = acepy.load(args.potential, num_threads=args.threads, device=args.device)
    atoms = supercell("fcc", args.atoms, model.elements, np.random.default_rng(0))
    costs, info = stage_costs(model, atoms)
    peaks = dict(GPU_PEAKS)
    measured, reference = None, None
    if args.measure:
        if model.device.type == "cuda":
            name = torch.cuda.get_device_name(model.device)
            reference = next((k for k in GPU_PEAKS if k.split()[0] in name), None)
            print(f"measured on {name}; compared with the {reference or 'no known'} datasheet peak")
        else:
            cpu = measure_cpu_peaks(args.threads)
            reference = f"this CPU {args.threads}thr"
            peaks[reference] = (cpu["flops"], cpu["bandwidth"])
            print(f"this CPU, {args.threads} thread(s): {cpu['flops'] / 1e9:.1f} GFLOP/s float64 (FMA loop), "
                  f"{cpu['bandwidth'] / 1e9:.1f} GB/s (triad); load average {os.getloadavg()[0]:.1f}")
        measured = measure_stages(model, atoms, args.repeats, cpu_time=args.threads == 1)
    rows = build_rows(costs, info, peaks, measured, len(atoms))
    print_table(rows, peaks, info, reference)
    fused = measure_fused(model, atoms, args.repeats) if args.measure and model.device.type == "cpu" else None
    if fused is not None:
        info["fused"] = fused_summary(rows, fused, len(atoms), reference)
        f = info["fused"]
        print(f"fused kernel (the Numba fast path: radial tables .. edge gradients in one launch): "
              f"{f['fused_ns_per_atom']:.0f} ns/atom = {f['fused_x_floor']:.1f}x the floor of those stages at "
              f"{reference}'s peak ({f['fused_floor_ns_per_atom']:.0f} ns/atom); the staged kernels above: "
              f"{f['staged_ns_per_atom']:.0f} ns/atom")
    if not args.no_write:
        csv_path, png = write_outputs(rows, args, info, peaks)
        print(f"wrote {csv_path}" + (f" and {png}" if png else ""))
    return rows


if __name__ == "__main__":
    main()
