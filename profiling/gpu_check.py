"""The GPU check (issue 21): validate and time the CUDA path in one call, results in one folder.

On a machine with CUDA, in this order and each step under its own wall-clock cap inside one
overall budget (``--budget``, default 450 s, so that the whole check ends within 8 minutes on an
H100/H200; a step that overruns is killed and the next one runs):

1. ``env``: python, torch (+ its CUDA), triton, numba, vesin, ase, ... versions, the GPU (name,
   capability, memory, SMs), driver and CUDA versions (``nvidia-smi``), and two measured
   ceilings (a device-to-device copy in TB/s, float64 and float32 matrix products in TFLOP/s);
2. ``gpu-tests``: every ``gpu``-marked test (``pytest -m gpu``, compiled Triton: TRITON_INTERPRET
   unset), per-test timeout where pytest-timeout is installed, verbose log and JUnit XML;
3. ``model-tests``: the model-level tests of the Triton backend (``-k triton``; with CUDA the
   ``backend`` fixture puts Triton on the GPU), i.e. the whole fast path against the references;
4. ``vesin``: vesin's search on CUDA tensors (vesin >= 0.6 has a CUDA path) against the numpy
   search acepy runs today: same (i, j, S), the int64 cast on the device, timings; it prepares
   issue 21's device-side neighbour search (a mismatch is reported, it does not fail the check);
5. ``forces-*``: profile_forces.py --device cuda on the bundled Cu-shaped potential, Triton and
   (for comparison, up to 8192 atoms) the torch reference, fcc and batches of 32-atom structures,
   256 to 32000 atoms, float64 and float32;
6. ``target-batch``: issue 21's batch of 1000 structures of 64 atoms in one call (float64, Triton);
7. ``hessian``: profile_hessian.py --device cuda on 32 and 108 atoms (the exact per-site route,
   finite differences, Hessian-vector products);
8. ``target-large``: one structure of 108000 atoms (issue 21: at least 1e5), float64, Triton;
9. ``kernel-tests``: every other ``-k triton`` test (kernel level), with whatever budget is left.

Everything goes into ONE folder (``--out``; default ``$OUT`` when set, else
``profiling/results/gpu_check_<commit>/``), at most 8 files, as the device tool brings back:
``gpu_check.log`` (all output), ``summary.md`` (step table, pass/fail counts, headline timings
against the targets), ``junit.xml`` (every pytest step), ``forces_<potential>_<tag>_<commit>.csv``
and ``.png`` (all forces runs merged, us/atom and the stage breakdown), ``hessian_<tag>_<commit>
.csv`` and ``.png``, ``env.json``. The summary is printed last (the device tool returns the tail
of the output). Exit status 0 when every step ran and every test passed, 1 otherwise, 2 without
CUDA. Installs nothing.

Without CUDA, ``--dry-run`` runs every step on the CPU with tiny sizes and ``TRITON_INTERPRET=1``
(the Triton interpreter), so that every code path of this script runs (tests/test_gpu_check.py);
without ``--dry-run`` and without CUDA it stops with a message.

    python profiling/gpu_check.py --dry-run --out /tmp/gc      # here, on the CPU (about 40 s)
    make gpu-check GPU_CHECK_ARGS=--dry-run                    # the same through the venv
    python profiling/gpu_check.py --list                       # the plan, and nothing run
    python profiling/gpu_check.py --only gpu-tests,forces-f64  # a rerun of some steps (prefixes)

On the device machine (``run`` tool; /work/.library/device/README.md). Its python3 has torch,
triton, numba, scipy, matplotlib, pytest, pytest-timeout and pytest-xdist, but neither vesin nor
ase (and no tbb: Numba then uses its workqueue layer, which the CUDA path never needs; no python-ace,
whose comparisons skip). Carry those two as wheels, made here once (``/.whl/`` is git-ignored)::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl vesin==0.6.2 ase==3.29.0

acepy itself needs no install there (no network, and ``pip install -e .`` would need setuptools >= 77
in that image): when ``import acepy`` does not find this working tree, this script builds an overlay
package of symlinks (``acepy/*`` and ``acepy/kernels -> kernels/``, as pyproject's package-dir maps
them), puts it first on PYTHONPATH with PYTHONSAFEPATH=1 (so that the bare ``acepy/`` of the
working directory does not shadow it) for every step. ``.venv`` is not portable (another Python,
CPU torch): never carry it. Then, the one call (``carry: [".whl"]``, ``timeout_s: 560``, which
leaves about 5 of the 15 device minutes for one targeted rerun with ``--only``), with the short
commit hash of the checkout pasted in (the copy there may have no .git to read it from)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 python3 profiling/gpu_check.py --commit <HASH>

Its files come back under the reply's ``files_at``: copy them to profiling/results/gpu_check_<HASH>/.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILING = ROOT / "profiling"
RESULTS = PROFILING / "results"
POTENTIAL = "Cu-synthetic-pbe-core-rep"
DRY_POTENTIAL = "AlCuNi-synthetic-r4"
DEFAULT_BUDGET_S = 450.0  # the steps' total; the check's own work (merging, plots) is seconds
MIN_STEP_S = 10.0  # a step with less time left than this is skipped, not started
ENV_MARK = "GPU_CHECK_ENV "
# what comes back from the device tool: at most 8 files, named in letters, digits, '.', '_', '-'
MAX_FILES = 8
TARGET_US_PER_ATOM_F64 = 2.0  # issue 21: float64 forces + stress at 32k atoms in at most 2 us/atom


# ---- the plan -------------------------------------------------------------------------------
@dataclass
class Step:
    name: str
    kind: str  # env, pytest, forces, hessian
    args: list  # the worker's arguments (forces, hessian) or pytest's
    cap_s: float  # the most this step may take
    what: str = ""
    # filled in by the run
    status: str = "not run"  # ok, failed, timeout, skipped, error
    seconds: float = 0.0
    detail: str = ""
    counts: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def gpu_test_files() -> list[str]:
    """The test files that hold ``gpu``-marked tests (collecting only these keeps it fast)."""
    out = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text(errors="replace")
        if "mark.gpu" in text:
            out.append(str(path.relative_to(ROOT)))
    return out


def model_test_files() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").glob("test_model_*.py"))] + \
        [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").glob("test_descriptor_*.py"))]


def build_plan(dry: bool, cores: int, potential: str) -> list[Step]:
    """The steps, in the order they run (most important first: a late step gets what is left)."""
    pytest_common = ["-v", "-rfEs", "--tb=short", "--continue-on-collection-errors"]
    gpu_files = gpu_test_files()
    models = model_test_files()
    rest = ["tests", "-k", "triton", *[x for f in models for x in ("--ignore", f)]]
    if dry:
        # the Triton interpreter runs one program after the other: a few atoms of the smallest bundled
        # potential (about a second per call), not the Cu one (15 s per call for 4 atoms)
        dev = ["--device", "cpu", "--threads", "1", "--no-pyace", "--potential", DRY_POTENTIAL]
        tiny = ["--repeats", "1", "--warmup", "0"]
        return [
            Step("env", "env", [], 60, "versions, device, ceilings (tiny on the CPU)"),
            Step("gpu-tests", "pytest", ["-m", "gpu", *gpu_files, *pytest_common], 90,
                 "pytest -m gpu (all skip without CUDA)"),
            Step("model-tests", "pytest", ["tests/test_spline.py", "-k", "triton and empty", *pytest_common], 90,
                 "a tiny stand-in for the model-level Triton tests"),
            Step("vesin", "vesin", [], 90, "vesin on torch tensors vs on numpy"),
            Step("floor", "floor", ["--device", "cpu", "--potential", DRY_POTENTIAL, "--atoms", "32", "--repeats", "1"],
                 60, "floor.py: each stage's time against its FLOP/byte floor, tiny"),
            Step("forces-f64", "forces", [*dev, "--dtype", "float64", "--sizes", "4", "--structures", "fcc",
                                          "--backends", "triton,torch", *tiny], 90, "profile_forces, tiny"),
            Step("forces-f32", "forces", [*dev, "--dtype", "float32", "--sizes", "8", "--structures", "batch",
                                          "--batch-atoms", "4", "--backends", "triton,torch", *tiny], 90,
                 "profile_forces, tiny"),
            Step("hessian", "hessian", ["--device", "cpu", "--potentials", "AlTi-synthetic-linear", "--sizes", "32",
                                        "--fd-max", "0", "--repeats", "1", "--threads", "1"], 90,
                 "profile_hessian, tiny"),
            Step("target-batch", "forces", [*dev, "--dtype", "float64", "--sizes", "16", "--structures", "batch",
                                            "--batch-atoms", "8", "--backends", "torch", *tiny], 90,
                 "batch of small structures (member size option)"),
            Step("kernel-tests", "pytest", ["tests/test_segment.py", "-k", "triton and empty", *pytest_common], 90,
                 "a tiny stand-in for the kernel-level Triton tests"),
        ]
    dev = ["--device", "cuda", "--threads", str(cores), "--no-pyace", "--potential", potential]
    full = ["--repeats", "5", "--warmup", "2"]
    few = ["--repeats", "3", "--warmup", "1"]
    both = ["--backends", "triton,torch", "--max-torch-atoms", "8192"]
    return [
        Step("env", "env", [], 60, "versions, device, copy and matmul ceilings"),
        Step("gpu-tests", "pytest", ["-m", "gpu", *gpu_files, *pytest_common], 150,
             "every gpu-marked test, compiled Triton"),
        Step("model-tests", "pytest", [*models, "-k", "triton", *pytest_common], 75,
             "the model-level Triton tests on CUDA"),
        Step("vesin", "vesin", ["--large"], 40, "vesin on CUDA tensors vs on numpy (issue 21)"),
        Step("forces-f64", "forces", [*dev, "--dtype", "float64", "--sizes", "256,2048,8192",
                                      "--structures", "fcc,batch", *both, *full], 70,
             "Triton vs torch, float64"),
        Step("forces-f64-32k", "forces", [*dev, "--dtype", "float64", "--sizes", "32000", "--structures", "fcc,batch",
                                          "--backends", "triton", *full], 45, "Triton, float64, 32000 atoms"),
        Step("floor", "floor", ["--device", "cuda", "--potential", potential, "--atoms", "32000", "--repeats", "5"],
             40, "floor.py: each stage's time against its FLOP/byte floor at the GPU's datasheet peak"),
        Step("forces-f32", "forces", [*dev, "--dtype", "float32", "--sizes", "256,2048,8192",
                                      "--structures", "fcc,batch", *both, *full], 60,
             "Triton vs torch, float32"),
        Step("forces-f32-32k", "forces", [*dev, "--dtype", "float32", "--sizes", "32000", "--structures", "fcc,batch",
                                          "--backends", "triton", *full], 40, "Triton, float32, 32000 atoms"),
        Step("target-batch", "forces", [*dev, "--dtype", "float64", "--sizes", "64000", "--structures", "batch",
                                        "--batch-atoms", "64", "--backends", "triton", *few], 45,
             "1000 structures of 64 atoms in one call"),
        Step("hessian", "hessian", ["--device", "cuda", "--potentials", potential, "--sizes", "32,108",
                                    "--fd-max", "108", "--repeats", "2", "--threads", str(cores)], 60,
             "profile_hessian on CUDA"),
        Step("target-large", "forces", [*dev, "--dtype", "float64", "--sizes", "108000", "--structures", "fcc",
                                        "--backends", "triton", *few], 75, "one structure of 108000 atoms"),
        Step("kernel-tests", "pytest", [*rest, *pytest_common], 150, "the other Triton tests (kernel level)"),
    ]


# ---- output ---------------------------------------------------------------------------------
class Log:
    """Everything printed goes to stdout and to the log file."""

    def __init__(self, path: Path):
        self.fh = open(path, "w", encoding="utf-8", errors="replace")
        self.lock = threading.Lock()

    def __call__(self, text: str = "") -> None:
        with self.lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            self.fh.write(text + "\n")
            self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def commit_of(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("ACEPY_COMMIT"):
        return os.environ["ACEPY_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              timeout=20)
        if head.returncode != 0 or not head.stdout.strip():
            return "nogit"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=ROOT, timeout=20).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "nogit"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


# ---- making this working tree importable ----------------------------------------------------
def _probe(env: dict) -> tuple[bool, str]:
    code = ("import acepy, acepy.kernels, sys; print(acepy.__file__); print(acepy.kernels.__file__)")
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                             timeout=300)
    except subprocess.TimeoutExpired:
        return False, "import acepy timed out"
    if res.returncode != 0:
        return False, (res.stderr.strip().splitlines() or ["?"])[-1]
    files = res.stdout.split()
    ok = len(files) == 2 and Path(files[0]).resolve() == (ROOT / "acepy" / "__init__.py").resolve() and \
        Path(files[1]).resolve() == (ROOT / "kernels" / "__init__.py").resolve()
    return ok, f"acepy from {files[0] if files else '?'}"


def make_overlay(where: Path) -> Path:
    """A package ``acepy`` of symlinks into this working tree, with ``kernels/`` as ``acepy.kernels``
    (pyproject.toml's package-dir), so that no install is needed."""
    pkg = where / "acepy"
    pkg.mkdir(parents=True)
    for entry in (ROOT / "acepy").iterdir():
        if entry.name in ("__pycache__", "kernels"):
            continue
        (pkg / entry.name).symlink_to(entry)
    (pkg / "kernels").symlink_to(ROOT / "kernels")
    return where


def acepy_env(base: dict, force_overlay: bool, scratch: Path, log: Log) -> dict:
    """The environment in which every step imports acepy from this working tree."""
    env = dict(base)
    if not force_overlay:
        ok, what = _probe(env)
        if ok:
            log(f"acepy: installed from this working tree ({what})")
            return env
        log(f"acepy: not importable from this working tree as installed ({what}): using an overlay")
    overlay = make_overlay(scratch / "overlay")
    env["PYTHONPATH"] = os.pathsep.join([str(overlay)] + [p for p in [base.get("PYTHONPATH", "")] if p])
    env["PYTHONSAFEPATH"] = "1"  # no cwd on sys.path: the bare acepy/ there lacks acepy.kernels
    ok, what = _probe(env)
    log(f"acepy: overlay {overlay} ({what})")
    if not ok:
        raise SystemExit(f"gpu_check: cannot import acepy from {ROOT}: {what}\n"
                         "On the device machine carry the wheels the image lacks (vesin, ase; see this script's "
                         "docstring) and install them with pip --no-index --target, then set PYTHONPATH.")
    return env


# ---- running one step -----------------------------------------------------------------------
def run_process(cmd: list, env: dict, timeout: float, log: Log, prefix: str = "  | ") -> tuple[int | None, float, str]:
    """Run ``cmd`` in its own process group, echoing its output to the log; on timeout the whole
    group is ended (TERM, then KILL). Returns (exit code or None on timeout, seconds, output)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", bufsize=1, start_new_session=True)
    lines: list[str] = []

    def pump():
        for line in proc.stdout:
            line = line.rstrip("\n")
            if "\r" in line:  # progress bars: keep the last state
                line = line.split("\r")[-1]
            lines.append(line)
            log(prefix + line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        rc = None
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
    reader.join(timeout=10)
    return rc, time.perf_counter() - start, "\n".join(lines)


def worker_cmd(kind: str, args: list) -> list:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", kind, *args]


def pytest_flags(step: Step, info: dict, scratch: Path, test_timeout: float, workers: int) -> tuple[list, dict]:
    """pytest's extra flags (JUnit file, per-test timeout, xdist workers) and environment."""
    flags = [f"--junitxml={scratch / f'junit_{step.name}.xml'}"]
    extra = {}
    dists = info.get("dists", {})
    if dists.get("pytest-timeout"):
        flags.append(f"--timeout={int(test_timeout)}")
    if workers > 0 and dists.get("pytest-xdist"):
        flags += ["-n", str(workers)]
        # each worker's torch on its share of the cores, not all of them each
        extra["OMP_NUM_THREADS"] = str(max(1, (info.get("cpus") or 1) // workers))
    return flags, extra


_OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def junit_counts(path: Path) -> tuple[dict, list[str]]:
    """Outcome counts and the failed/errored test ids of a JUnit XML file."""
    counts = dict.fromkeys(_OUTCOMES, 0)
    bad = []
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        tags = {child.tag for child in case}
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if "failure" in tags:
            counts["failed"] += 1
            bad.append(name)
        elif "error" in tags:
            counts["error"] += 1
            bad.append(name + " (error)")
        elif "skipped" in tags:
            skipped = next(c for c in case if c.tag == "skipped")
            if skipped.get("type") == "pytest.xfail":
                counts["xfailed"] += 1
            else:
                counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, bad


_VERBOSE = re.compile(r"^(?:\[gw\d+\]\s+)?(?:\[\s*\d+%\]\s+)?(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\s+(\S+::\S+)"
                      r"|^(\S+::\S+)\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")
_WORD = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped", "XFAIL": "xfailed",
         "XPASS": "xpassed"}


def verbose_counts(output: str) -> tuple[dict, list[str]]:
    """Counts from pytest's -v lines (when the run was cut short and wrote no JUnit file)."""
    seen: dict[str, str] = {}
    for line in output.splitlines():
        m = _VERBOSE.match(line.strip())
        if not m:
            continue
        word, test = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        seen[test] = _WORD[word]
    counts = dict.fromkeys(_OUTCOMES, 0)
    for outcome in seen.values():
        counts[outcome] += 1
    return counts, [t for t, o in seen.items() if o in ("failed", "error")]


def run_step(step: Step, env: dict, info: dict, scratch: Path, log: Log, deadline: float, opts) -> None:
    left = deadline - time.monotonic()
    timeout = min(step.cap_s, left)
    if timeout < MIN_STEP_S:
        step.status, step.detail = "skipped", f"budget: {left:.0f} s left"
        log(f"\n== {step.name}: skipped ({step.detail})")
        return
    if step.kind == "pytest":
        flags, extra = pytest_flags(step, info, scratch, opts.test_timeout, opts.workers)
        cmd = [sys.executable, "-m", "pytest", *step.args, *flags]
        env = {**env, **extra}
    elif step.kind == "vesin":
        cmd = worker_cmd(step.kind, step.args)
    else:
        folder = step.kind in ("hessian", "floor")  # these scripts write into a folder
        cmd = worker_cmd(step.kind, step.args + (["--out", str(scratch / step.name)] if folder else
                                                  ["--out", str(scratch / f"{step.name}.csv")]))
    log(f"\n== {step.name}: {step.what} (cap {timeout:.0f} s)")
    log("   $ " + " ".join(str(c) for c in cmd))
    if step.kind in ("hessian", "floor"):
        (scratch / step.name).mkdir(exist_ok=True)
    rc, step.seconds, output = run_process(cmd, env, timeout, log)
    if step.kind == "pytest":
        junit = scratch / f"junit_{step.name}.xml"
        counts = None
        if rc is not None and junit.exists():
            try:
                counts, bad = junit_counts(junit)
                step.outputs.append(junit)
            except (ET.ParseError, OSError, StopIteration) as err:
                log(f"   (unreadable JUnit file: {err!r}; counting the -v lines)")
        if counts is None:
            counts, bad = verbose_counts(output)
        step.counts = {"counts": counts, "failed_tests": bad}
        collection = re.search(r"(\d+) errors? during collection", output)
        if collection:
            counts["error"] += int(collection.group(1))
    if rc is None:
        step.status, step.detail = "timeout", f"killed after {step.seconds:.0f} s"
    elif step.kind == "pytest":
        c = step.counts["counts"]
        step.status = "ok" if rc in (0, 5) and not (c["failed"] or c["error"]) else "failed"
        step.detail = ", ".join(f"{v} {k}" for k, v in c.items() if v) or "no tests"
        if rc not in (0, 1, 5):
            step.detail += f" (pytest exit {rc})"
    else:
        step.status = "ok" if rc == 0 else "failed"
        tail = [line for line in output.splitlines() if line.strip()][-1:]
        step.detail = "" if rc == 0 else f"exit {rc}: {tail[0][:200] if tail else ''}"
    if step.kind == "vesin":
        marks = [line[len(VESIN_MARK):] for line in output.splitlines() if line.startswith(VESIN_MARK)]
        if marks:
            step.extra = json.loads(marks[-1])
            cases = step.extra["cases"]
            bad = [c["case"] for c in cases if "error" in c or not c.get("same_pairs")]
            step.detail = f"{len(cases) - len(bad)}/{len(cases)} cases match" + (f"; differ: {bad}" if bad else "")
    if step.kind == "forces" and (scratch / f"{step.name}.csv").exists():
        step.outputs.append(scratch / f"{step.name}.csv")
    if step.kind == "hessian":
        step.outputs += sorted((scratch / step.name).glob("hessian_*"))
    if step.kind == "floor":
        step.outputs += sorted((scratch / step.name).glob("floor_*.csv"))
    log(f"== {step.name}: {step.status} in {step.seconds:.1f} s {step.detail}")


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


VESIN_MARK = "GPU_CHECK_VESIN "


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


# ---- results --------------------------------------------------------------------------------
def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_csv(path: Path, rows: list[dict], first: list[str] | None = None) -> None:
    first = first or []
    keys = first + sorted({k for r in rows for k in r} - set(first))
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, restval="")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _f(x, default=float("nan")) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return default


def merge_forces(steps: list[Step], out: Path, stem: str, commit: str) -> list[dict]:
    rows = []
    for step in steps:
        if step.kind != "forces":
            continue
        for path in step.outputs:
            if path.suffix == ".csv":
                for row in read_csv(path):
                    row["step"] = step.name
                    row["commit"] = commit
                    rows.append(row)
    if not rows:
        return rows
    sys.path.insert(0, str(PROFILING))
    from profile_forces import COLUMNS

    write_csv(out / f"{stem}.csv", rows, ["step"] + COLUMNS)
    return rows


def plot_forces(rows: list[dict], path: Path, title: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8))
    series: dict = {}
    for r in rows:
        key = f"{r['backend']} {r['dtype']} {r['structure']}"
        if r["structure"] == "batch":
            key += f" ({int(_f(r['atoms']) // max(1, _f(r['structures'], 1)))}-atom members)"
        series.setdefault(key, {})[int(_f(r["atoms"]))] = _f(r["us_per_atom"])
    for key, pts in sorted(series.items()):
        xs, ys = zip(*sorted(pts.items()))
        ax.plot(xs, ys, ("o-" if "triton" in key else "s--"), label=key, ms=4)
    ax.axhline(TARGET_US_PER_ATOM_F64, color="k", lw=0.8, ls=":", label="target float64 (issue 21)")
    ax.set(xscale="log", yscale="log", xlabel="atoms", ylabel="µs per atom (energy + forces + stress)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6)
    # the stage breakdown of the fast path (Triton; on the dry run whatever ran), in % of the call;
    # "other": the call's median minus the stages' medians (Python, allocations, launches between)
    fast = [r for r in rows if r["backend"] != "torch"] or rows
    fast = sorted(fast, key=lambda r: (r["dtype"], r["structure"], _f(r["atoms"], 0)))
    stages = ["neighbours_ms", "onebody_ms", "ace_ms", "pair_ms", "scatter_ms"]
    stages = [s for s in stages if any(_f(r.get(s), 0.0) > 0 for r in fast)]
    labels = [f"{r['dtype'][-2:]} {r['structure']} {r['atoms']} {r['backend']} "
              f"({_f(r['us_per_atom']):.3g} µs/atom)" for r in fast]
    bottom = [0.0] * len(fast)
    for s in stages + ["other"]:
        vals = []
        for r in fast:
            total = _f(r["median_ms"], 0.0) or 1.0
            part = (total - sum(_f(r.get(k), 0.0) for k in stages)) if s == "other" else _f(r.get(s), 0.0)
            vals.append(100.0 * max(0.0, part) / total)
        bx.bar(range(len(fast)), vals, bottom=bottom, label=s.replace("_ms", ""))
        bottom = [b + v for b, v in zip(bottom, vals)]
    bx.set_xticks(range(len(fast)))
    bx.set_xticklabels(labels, rotation=60, ha="right", fontsize=6)
    bx.set_ylabel("% of the call by stage (synchronised around each)")
    bx.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def combine_junit(steps: list[Step], path: Path) -> None:
    root = ET.Element("testsuites")
    for step in steps:
        for out in step.outputs:
            if out.suffix == ".xml":
                try:
                    suites = list(ET.parse(out).getroot().iter("testsuite"))
                except (ET.ParseError, OSError):
                    continue
                for suite in suites:
                    suite.set("name", step.name)
                    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _no_search_us(r: dict) -> float:
    """µs per atom of the call less its neighbour phase (the search runs on the host today)."""
    return 1e3 * (_f(r["median_ms"]) - _f(r.get("neighbours_ms"), 0.0)) / max(1.0, _f(r["atoms"], 1.0))


def headline(rows: list[dict]) -> list[str]:
    """The timing table and the issue's targets, as markdown lines."""
    if not rows:
        return ["No forces timings (see the step table)."]
    lines = ["| structure | atoms | structures | backend | dtype | median ms | µs/atom | µs/atom w/o neighbours "
             "| neighbours % | ace % | scatter % | peak MB |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    order = sorted(rows, key=lambda r: (r["dtype"], r["structure"], int(_f(r["atoms"], 0)), r["backend"]))
    for r in order:
        total = _f(r["median_ms"])
        pct = lambda k: 100 * _f(r.get(k), 0.0) / total if total else float("nan")  # noqa: E731
        lines.append(f"| {r['structure']} | {r['atoms']} | {r['structures']} | {r['backend']} | {r['dtype']} | "
                     f"{total:.2f} | {_f(r['us_per_atom']):.3f} | {_no_search_us(r):.3f} | "
                     f"{pct('neighbours_ms'):.0f} | {pct('ace_ms'):.0f} | {pct('scatter_ms'):.0f} | "
                     f"{_f(r.get('peak_mem_mb')):.0f} |")
    lines += ["", "Targets (issue 21):", ""]

    def pick(structure, dtype, backend, atoms_min=0, members=None):
        found = [r for r in rows if r["structure"] == structure and r["dtype"] == dtype and r["backend"] == backend
                 and _f(r["atoms"], 0) >= atoms_min
                 and (members is None or round(_f(r["atoms"]) / max(1, _f(r["structures"], 1))) == members)]
        return max(found, key=lambda r: _f(r["atoms"], 0)) if found else None

    fast = "triton" if any(r["backend"] == "triton" for r in rows) else rows[0]["backend"]
    f64 = pick("fcc", "float64", fast, 0)
    big = [r for r in rows if r["structure"] == "fcc" and r["dtype"] == "float64" and r["backend"] == fast]
    at32 = min(big, key=lambda r: abs(_f(r["atoms"]) - 32000)) if big else None
    if at32:
        us = _f(at32["us_per_atom"])
        verdict = "met" if us <= TARGET_US_PER_ATOM_F64 else "missed"
        lines.append(f"- float64 forces + stress, fcc {at32['atoms']} atoms, {fast}: {us:.3f} µs/atom "
                     f"(target at 32k: <= {TARGET_US_PER_ATOM_F64}: {verdict}); without the neighbour search "
                     f"(on the host today, every call here): {_no_search_us(at32):.3f} µs/atom")
        same = [r for r in rows if r["structure"] == "fcc" and r["dtype"] == "float32" and r["backend"] == fast
                and r["atoms"] == at32["atoms"]]
        if same:
            lines.append(f"- float32 at the same size: {_f(same[0]['us_per_atom']):.3f} µs/atom "
                         f"(float64 / float32 time: {us / _f(same[0]['us_per_atom']):.3g})")
    large = pick("fcc", "float64", fast, 100_000)
    lines.append("- one structure of >= 1e5 atoms: " + (f"{large['atoms']} atoms, {_f(large['us_per_atom']):.3f} "
                                                         f"µs/atom, {_f(large.get('peak_mem_mb')):.0f} MB peak"
                                                         if large else "not measured (see the step table)"))
    batch = pick("batch", "float64", fast, 0, members=64)
    lines.append("- a batch of 1000 structures of 64 atoms in one call: " + (
        f"{batch['structures']} x 64 atoms, {_f(batch['median_ms']):.1f} ms, {_f(batch['us_per_atom']):.3f} µs/atom"
        if batch and int(_f(batch["structures"], 0)) >= 1000 else
        (f"only {batch['structures']} x 64 measured" if batch else "not measured")))
    for dtype in ("float64", "float32"):
        pairs = [(r, t) for r in rows for t in rows if r["backend"] == fast and t["backend"] == "torch"
                 and r["dtype"] == t["dtype"] == dtype and r["structure"] == t["structure"] == "fcc"
                 and r["atoms"] == t["atoms"]]
        if pairs and fast != "torch":
            r, t = max(pairs, key=lambda p: _f(p[0]["atoms"], 0))
            lines.append(f"- {fast} vs the torch reference, {dtype}, fcc {r['atoms']} atoms: speed-up "
                         f"{_f(t['median_ms']) / _f(r['median_ms']):.3g}")
    if f64 is None:
        lines.append("- no float64 fcc timing")
    return lines


def hessian_lines(steps: list[Step], out: Path, tag: str, commit: str) -> list[str]:
    step = next((s for s in steps if s.kind == "hessian"), None)
    csvs = [p for p in (step.outputs if step else []) if p.suffix == ".csv"]
    if not csvs:
        return ["No Hessian timings (see the step table)."]
    rows = read_csv(csvs[0])
    for row in rows:
        row["commit"] = commit
    sys.path.insert(0, str(PROFILING))
    from profile_hessian import COLUMNS

    write_csv(out / f"hessian_{tag}_{commit}.csv", rows, COLUMNS)
    pngs = [p for p in step.outputs if p.suffix == ".png"]
    if pngs:
        shutil.copyfile(pngs[0], out / f"hessian_{tag}_{commit}.png")
    lines = ["| potential | atoms | op | median s | ms/atom | force calls |", "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        est = " (estimate)" if r.get("estimate") == "True" else ""
        lines.append(f"| {r['potential']} | {r['atoms']} | {r['op']} | {_f(r['median_s']):.4f}{est} | "
                     f"{_f(r['ms_per_atom']):.3f} | {_f(r['force_calls']):.1f} |")
    return lines


def floor_lines(steps: list[Step]) -> list[str]:
    """The floor step's CSV as a markdown table (it goes into summary.md: no extra file)."""
    step = next((s for s in steps if s.kind == "floor"), None)
    csvs = [p for p in (step.outputs if step else []) if p.suffix == ".csv"]
    if not csvs:
        return ["No floor estimate (see the step table)."]
    with open(csvs[0]) as fh:
        comment = fh.readline().lstrip("# ").strip()
        rows = list(csv.DictReader(fh))
    peaks = [k[: -len(" floor_ns_per_atom")] for k in rows[0] if k.endswith(" floor_ns_per_atom")]
    lines = [comment, "", "| stage | kFLOP/atom | kB/atom | " + " | ".join(f"{p} floor ns/atom" for p in peaks) +
             " | measured ns/atom |", "|---|---:|---:|" + "---:|" * (len(peaks) + 1)]
    for r in rows:
        lines.append(f"| {r['stage']} | {_f(r['flops_per_atom']) / 1e3:.1f} | {_f(r['bytes_per_atom']) / 1e3:.2f} | " +
                     " | ".join(f"{_f(r[f'{p} floor_ns_per_atom']):.2f}" for p in peaks) +
                     f" | {_f(r.get('measured_ns_per_atom') or 'nan'):.1f} |")
    return lines


def write_summary(path: Path, steps: list[Step], info: dict, commit: str, dry: bool, rows, hess, total_s) -> str:
    gpu = info.get("gpu", {})
    d = info.get("dists", {})
    lines = [f"# GPU check, commit {commit}{' (DRY RUN on the CPU: Triton interpreter, tiny sizes)' if dry else ''}",
             "",
             f"{datetime.datetime.now().isoformat(timespec='seconds')} on {info.get('node', '?')}: "
             f"{gpu.get('name', 'no GPU')} (capability {gpu.get('capability', '-')}, {gpu.get('memory_gib', '-')} GiB, "
             f"{gpu.get('sms', '-')} SMs), driver {info.get('driver', '-')} (CUDA {info.get('driver_cuda', '-')}); "
             f"python {info.get('python', '?')}, torch {d.get('torch')} (CUDA {info.get('torch_cuda')}), "
             f"triton {d.get('triton')}, numba {d.get('numba')}, vesin {d.get('vesin')}, ase {d.get('ase')}, "
             f"numpy {d.get('numpy')}; {info.get('cpus', '?')} CPUs; numba import: {info.get('numba_import')}.",
             "",
             f"Measured ceilings: {info.get('ceilings', {})}",
             "",
             f"Total {total_s:.0f} s.",
             "",
             "| step | status | seconds | passed | failed | errors | skipped | detail |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for s in steps:
        c = s.counts.get("counts", {})
        cell = (lambda k: str(c.get(k, 0))) if c else (lambda k: "")
        lines.append(f"| {s.name} | {s.status} | {s.seconds:.1f} | {cell('passed')} | {cell('failed')} | "
                     f"{cell('error')} | {cell('skipped')} | {s.detail.replace('|', '/')} |")
    failed = [(s.name, t) for s in steps for t in s.counts.get("failed_tests", [])]
    if failed:
        lines += ["", "Failed tests:", ""] + [f"- {name}: {t}" for name, t in failed[:40]]
        if len(failed) > 40:
            lines.append(f"- ... and {len(failed) - 40} more (junit.xml, gpu_check.log)")
    vesin = next((s.extra for s in steps if s.kind == "vesin" and s.extra), None)
    if vesin:
        lines += ["", f"## vesin on {vesin['device']} torch tensors against vesin on numpy (acepy's search today)",
                  "", "| case | atoms | pairs | same pairs | numpy ms | torch ms | note |",
                  "|---|---:|---:|---|---:|---:|---|"]
        for c in vesin["cases"]:
            note = c.get("error") or (f"missing {c.get('missing')}, extra {c.get('extra')}" if "missing" in c else
                                      c.get("out_dtypes", "")) + (f"; int64 cast {c['device_cast']}"
                                                                  if "device_cast" in c else "")
            lines.append(f"| {c['case']} | {c['atoms']} | {c.get('pairs', '')} | {c.get('same_pairs', '')} | "
                         f"{_f(c.get('numpy_ms')):.2f} | {_f(c.get('torch_ms')):.2f} | {str(note).replace('|', '/')} |")
    lines += ["", "## Forces (energy + forces + stress per call, synchronised)", ""] + rows
    lines += ["", "## Hessian", ""] + hess
    try:
        lines += ["", "## Floor per stage (profiling/floor.py)", ""] + floor_lines(steps)
    except Exception:  # noqa: BLE001
        lines += ["", "The floor table failed:", "", "```", traceback.format_exc(), "```"]
    lines += ["", "Rerun steps: `python profiling/gpu_check.py --only NAME[,NAME]` (names above); the full output "
                  "is in gpu_check.log."]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


# ---- main -----------------------------------------------------------------------------------
def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="the output folder (default $OUT, else "
                                               "profiling/results/gpu_check_<commit>/)")
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU, tiny sizes, Triton interpreter")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for all steps together")
    p.add_argument("--only", default=None, help="comma list of step names (or prefixes) to run (env always runs)")
    p.add_argument("--skip", default=None, help="comma list of step names (or prefixes) to leave out")
    p.add_argument("--test-timeout", type=float, default=None, help="per-test timeout (s; needs pytest-timeout)")
    p.add_argument("--workers", type=int, default=None, help="pytest-xdist workers for the test steps (0: none; "
                   "default 4 with CUDA where xdist is installed)")
    p.add_argument("--potential", default=POTENTIAL)
    p.add_argument("--commit", default=None, help="the commit to name results with (default: git, $ACEPY_COMMIT)")
    p.add_argument("--overlay", action="store_true", help="import acepy through the symlink overlay even where "
                   "it is installed (what the device machine does)")
    p.add_argument("--list", action="store_true", help="print the plan and exit")
    return p.parse_args(argv)


def _select(steps: list[Step], only: str | None, skip: str | None) -> list[Step]:
    def hit(name, spec):
        return any(name == s or name.startswith(s) for s in spec.split(",") if s)

    if only:
        steps = [s for s in steps if s.kind == "env" or hit(s.name, only)]
    if skip:
        steps = [s for s in steps if s.kind == "env" or not hit(s.name, skip)]
    return steps


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    argv = [str(a) for a in argv]
    if argv[:1] == ["--worker"]:
        return WORKERS[argv[1]](argv[2:])
    opts = parse(argv)
    dry = opts.dry_run
    cores = os.cpu_count() or 1
    if opts.list:
        for s in _select(build_plan(dry, cores, opts.potential), opts.only, opts.skip):
            print(f"{s.name:15s} cap {s.cap_s:4.0f} s  {s.what}\n{'':15s} {s.kind} {' '.join(s.args)}")
        return 0
    started = time.monotonic()
    commit = _safe(commit_of(opts.commit))
    if opts.out:
        out = Path(opts.out)
    elif os.environ.get("OUT"):
        out = Path(os.environ["OUT"])
    else:
        out = RESULTS / f"gpu_check_{commit}{'_dryrun' if dry else ''}"
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "gpu_check.log")
    scratch = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        return _run(opts, dry, cores, commit, out, log, scratch, started)
    finally:
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _run(opts, dry, cores, commit, out, log, scratch, started) -> int:
    log(f"gpu_check: commit {commit}, output {out}, {'DRY RUN (CPU, Triton interpreter)' if dry else 'CUDA'}")
    base = dict(os.environ)
    base["TQDM_DISABLE"] = "1"
    base["PYTHONUNBUFFERED"] = "1"
    base["MPLBACKEND"] = "Agg"
    if dry:
        base["TRITON_INTERPRET"] = "1"
        base.setdefault("OMP_NUM_THREADS", "1")
    else:
        base.pop("TRITON_INTERPRET", None)  # compiled Triton
    env = acepy_env(base, opts.overlay, scratch, log)
    steps = _select(build_plan(dry, cores, opts.potential), opts.only, opts.skip)
    deadline = time.monotonic() + opts.budget
    info: dict = {}
    env_step = steps[0]
    env_step.status = "running"
    rc, env_step.seconds, output = run_process(worker_cmd("env", []), env, min(env_step.cap_s, opts.budget), log)
    marks = [line[len(ENV_MARK):] for line in output.splitlines() if line.startswith(ENV_MARK)]
    if rc == 0 and marks:
        info = json.loads(marks[-1])
        env_step.status = "ok"
    else:
        env_step.status, env_step.detail = ("timeout" if rc is None else "failed"), "no environment report"
    if not dry and not info.get("cuda"):
        log("\ngpu_check: no CUDA device here (" + (f"torch {info.get('dists', {}).get('torch')}: "
            "torch.cuda.is_available() is False" if info else "the environment step failed") +
            "). Run it on the GPU machine (see this script's docstring for the device tool's command), "
            "or use --dry-run to run every step on the CPU.")
        (out / "env.json").write_text(json.dumps(info, indent=1))
        return 2
    if dry and info.get("cuda"):
        log("note: CUDA is present, but --dry-run runs the CPU plan")
    opts.test_timeout = opts.test_timeout or (60.0 if dry else 100.0)
    if opts.workers is None:
        opts.workers = 0 if dry else min(4, max(1, cores // 4))
    for step in steps[1:]:
        run_step(step, env, info, scratch, log, deadline, opts)
    # the results, merged into one folder of at most MAX_FILES files; a failure here loses nothing else
    tag = "cpu-dryrun" if dry else "cuda"
    potential = DRY_POTENTIAL if dry else opts.potential
    stem = f"forces_{_safe(potential)}_{tag}_{commit}"
    rows, plot, hess = [], None, ["No Hessian timings (see the step table)."]
    try:
        rows = merge_forces(steps, out, stem, commit)
        if rows:
            plot = plot_forces(rows, out / f"{stem}.png", f"{potential} on {info.get('gpu', {}).get('name', 'CPU')}, "
                               f"commit {commit}")
    except Exception:  # noqa: BLE001
        log("merging the forces results failed:\n" + traceback.format_exc())
    try:
        hess = hessian_lines(steps, out, tag, commit)
    except Exception:  # noqa: BLE001
        log("merging the Hessian results failed:\n" + traceback.format_exc())
    try:
        combine_junit(steps, out / "junit.xml")
    except Exception:  # noqa: BLE001
        log("combining the JUnit files failed:\n" + traceback.format_exc())
    info["steps"] = [{"name": s.name, "status": s.status, "seconds": round(s.seconds, 1), "detail": s.detail,
                      **s.counts, **({"result": s.extra} if s.extra else {})} for s in steps]
    (out / "env.json").write_text(json.dumps(info, indent=1))
    total = time.monotonic() - started
    try:
        table = headline(rows)
    except Exception:  # noqa: BLE001
        table = ["The timing table failed:", "", "```", traceback.format_exc(), "```"]
    text = write_summary(out / "summary.md", steps, info, commit, dry, table, hess, total)
    files = sorted(p.name for p in out.iterdir())
    log("\n" + text)
    log(f"wrote {len(files)} files to {out}: {', '.join(files)}" + ("" if plot else " (no forces plot)"))
    if len(files) > MAX_FILES:
        log(f"WARNING: more than {MAX_FILES} files: the device tool brings back only {MAX_FILES}")
    bad = [s for s in steps if s.status != "ok"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
