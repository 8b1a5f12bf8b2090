"""The GPU check's workers: what each non-pytest step runs in its own process (gpu_check.py
--worker KIND ...)."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

from gpu_check_plan import VESIN_MARK, PROFILING, ENV_MARK


# ---- the workers (subprocesses) --------------------------------------------------------------
def worker_env(argv) -> int:
    """Print the environment, and one line ``GPU_CHECK_ENV {json}`` for the parent."""
    from importlib import metadata

    info: dict = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
                  "node": platform.node(), "cpus": os.cpu_count(),
                  "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET", "")}
    dists = {}
    for dist in ("torch", "triton", "numba", "llvmlite", "numpy", "scipy", "vesin", "ase", "matplotlib", "pytest",
                 "pytest-timeout", "pytest-xdist", "tbb", "pyyaml", "tqdm", "hypothesis", "phonopy", "python-ace",
                 "acepy"):
        try:
            dists[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            dists[dist] = None
    info["dists"] = dists
    # acepy.load imports numba even for CUDA (kernels/threads.py: the thread scope of the table
    # build): an image whose numba does not import with its numpy fails every step after this one
    try:
        import numba

        info["numba_import"] = f"ok ({numba.__version__}, threading layer {numba.config.THREADING_LAYER})"
    except Exception as err:  # noqa: BLE001
        info["numba_import"] = f"FAILED: {type(err).__name__}: {err}"
    import torch

    info["torch_cuda"] = torch.version.cuda
    info["cuda"] = bool(torch.cuda.is_available())
    if info["cuda"]:
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                       "memory_gib": round(props.total_memory / 2**30, 1), "sms": props.multi_processor_count,
                       "count": torch.cuda.device_count()}
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            q = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,"
                                     "power.draw,power.limit,temperature.gpu", "--format=csv"],
                               capture_output=True, text=True, timeout=30)
            full = subprocess.run([smi], capture_output=True, text=True, timeout=30)
            info["nvidia_smi"] = q.stdout.strip()
            m = re.search(r"CUDA Version:\s*([\d.]+)", full.stdout)
            d = re.search(r"Driver Version:\s*([\d.]+)", full.stdout)
            info["driver"], info["driver_cuda"] = (d.group(1) if d else None), (m.group(1) if m else None)
            print(full.stdout)
        except (OSError, subprocess.SubprocessError) as err:
            info["nvidia_smi"] = f"failed: {err}"
    import acepy
    import acepy.kernels as K

    info["acepy_file"] = acepy.__file__
    info["backends_cpu"] = list(K.available_backends("cpu"))
    info["backends_cuda"] = list(K.available_backends("cuda")) if info["cuda"] else []
    info["ceilings"] = ceilings(torch, "cuda" if info["cuda"] else "cpu", small=not info["cuda"])
    for key, value in info.items():
        if key not in ("dists", "nvidia_smi"):
            print(f"{key:>16}: {value}")
    print("        versions: " + ", ".join(f"{k} {v}" for k, v in dists.items()))
    print(ENV_MARK + json.dumps(info), flush=True)
    return 0


def ceilings(torch, device: str, small: bool) -> dict:
    """Measured ceilings (METHOD.md: measure them once): a device-to-device copy (bytes read plus
    written per second) and float64 / float32 (no TF32) matrix products, medians of a few runs."""
    import statistics

    def timed(fn, reps=5):
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        out = []
        for _ in range(reps):
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                out.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
        return statistics.median(out)

    res = {}
    n_bytes = (1 << 20) if small else (1 << 31)
    src = torch.rand(n_bytes // 4, device=device)
    dst = torch.empty_like(src)
    t = timed(lambda: dst.copy_(src))
    res["copy_TBps"] = round(2 * n_bytes / t / 1e12, 4)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    n = 128 if small else 8192
    for dtype in (torch.float64, torch.float32):
        a = torch.rand(n, n, device=device, dtype=dtype) - 0.5
        b = torch.rand(n, n, device=device, dtype=dtype) - 0.5
        t = timed(lambda: a @ b, reps=3)
        res[f"matmul_{str(dtype).split('.')[-1]}_TFLOPs"] = round(2 * n**3 / t / 1e12, 4)
    return res




def worker_vesin(argv) -> int:
    """vesin on torch tensors of the device (CUDA here; the CPU on the dry run) against vesin on
    numpy, acepy's search today: the same (i, j, S) set, and the median time of each. It prepares
    issue 21's "neighbour search with vesin on CUDA tensors" (acepy.graph does not use it yet)."""
    import statistics

    import numpy as np
    import torch
    from ase.build import bulk
    from vesin import NeighborList

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cutoff = 7.4 + 1e-9  # the Cu potential's
    a = 3.61
    slab = bulk("Cu", "fcc", a=a, cubic=True).repeat((4, 4, 2))
    slab.pbc = (True, True, False)
    cases = {  # what acepy meets: cells smaller than the cutoff, skewed cells, slabs, large cells
        "fcc 64 atoms (cell < cutoff)": bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 4)),
        "fcc primitive 6x6x6 (triclinic)": bulk("Cu", "fcc", a=a).repeat((6, 6, 6)),
        "slab 128 atoms (pbc T,T,F)": slab,
        "fcc 2048 atoms": bulk("Cu", "fcc", a=a, cubic=True).repeat((8, 8, 8)),
    }
    if "--large" in argv:
        cases["fcc 32000 atoms"] = bulk("Cu", "fcc", a=a, cubic=True).repeat((20, 20, 20))
    rng = np.random.default_rng(0)
    results = []

    def timed(fn, reps=5):
        fn()
        samples = []
        for _ in range(reps):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples)

    for name, atoms in cases.items():
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        pos, box, pbc = atoms.positions.copy(), atoms.cell[:].copy(), np.asarray(atoms.pbc)
        if not pbc.all():
            box[~pbc] = np.eye(3)[~pbc] * 100.0  # vesin wants an invertible box (acepy._search_box)
        row = {"case": name, "atoms": len(atoms)}
        try:
            host = NeighborList(cutoff=cutoff, full_list=True)
            i, j, sh = host.compute(pos, box, periodic=pbc, quantities="ijS")
            ref = _pair_keys(i, j, sh, len(atoms))
            row["pairs"] = len(ref)
            row["numpy_ms"] = 1e3 * timed(lambda: host.compute(pos, box, periodic=pbc, quantities="ijS"))
            nl = NeighborList(cutoff=cutoff, full_list=True)
            tp = torch.as_tensor(pos, device=dev)
            tb = torch.as_tensor(box, device=dev)
            tpbc = torch.as_tensor(pbc, device=dev)
            i, j, sh = nl.compute(tp, tb, periodic=tpbc, quantities="ijS")
            row["out_device"], row["out_dtypes"] = str(i.device), f"{i.dtype}/{sh.dtype}"
            try:  # acepy would cast vesin's uint64 pairs and int32 shifts to int64 on the device
                ints = [t.to(torch.int64) for t in (i, j, sh)]
            except Exception as err:  # noqa: BLE001
                row["device_cast"] = f"failed: {type(err).__name__}: {str(err)[:120]}"
                ints = [t.cpu().to(torch.int64) for t in (i, j, sh)]
            got = _pair_keys(*(t.cpu().numpy() for t in ints), len(atoms))
            row["same_pairs"] = bool(np.array_equal(got, ref))
            if not row["same_pairs"]:
                row["missing"] = len(np.setdiff1d(ref, got))
                row["extra"] = len(np.setdiff1d(got, ref))
            row["torch_ms"] = 1e3 * timed(lambda: nl.compute(tp, tb, periodic=tpbc, quantities="ijS"))
        except Exception as err:  # noqa: BLE001 - report it, go on with the next case
            row["error"] = f"{type(err).__name__}: {str(err)[:300]}"
        results.append(row)
        print(f"vesin {name:34s} " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in row.items() if k != "case"), flush=True)
    print(VESIN_MARK + json.dumps({"device": str(dev), "cases": results}), flush=True)
    return 0


def _pair_keys(i, j, shifts, n):
    """The sorted int64 keys of the (i, j, S) triples (|S| < 64 along each vector)."""
    import numpy as np

    key = np.asarray(i, dtype=np.int64) * n + np.asarray(j, dtype=np.int64)
    for k in range(3):
        key = key * 128 + (np.asarray(shifts[:, k], dtype=np.int64) + 64)
    return np.sort(key)


def worker_forces(argv) -> int:
    """profile_forces.main(argv), with ``--batch-atoms N`` (atoms per structure of the batch kind)."""
    sys.path.insert(0, str(PROFILING))
    import profile_forces

    if "--batch-atoms" in argv:
        k = argv.index("--batch-atoms")
        profile_forces.BATCH_MEMBER_ATOMS = int(argv[k + 1])
        argv = argv[:k] + argv[k + 2:]
    profile_forces.main(argv)
    return 0


def worker_hessian(argv) -> int:
    sys.path.insert(0, str(PROFILING))
    import profile_hessian

    profile_hessian.main(argv)
    return 0


def worker_floor(argv) -> int:
    sys.path.insert(0, str(PROFILING))
    import floor

    floor.main(argv)
    return 0


WORKERS = {"env": worker_env, "forces": worker_forces, "hessian": worker_hessian, "vesin": worker_vesin,
           "floor": worker_floor}


