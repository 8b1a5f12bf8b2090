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

The script is in five files: this one (options, the run), ``gpu_check_plan.py`` (constants and
the steps), ``gpu_check_run.py`` (the log, the import overlay, running one step),
``gpu_check_workers.py`` (what each non-pytest step runs) and ``gpu_check_report.py`` (merging the
results, summary.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_check_plan import (DEFAULT_BUDGET_S, DRY_POTENTIAL, ENV_MARK, MAX_FILES, POTENTIAL, RESULTS,  # noqa: E402
                            Step, build_plan)
from gpu_check_report import (combine_junit, headline, hessian_lines, merge_forces, plot_forces,  # noqa: E402
                              write_summary)
from gpu_check_run import Log, _safe, acepy_env, commit_of, run_process, run_step, worker_cmd  # noqa: E402
from gpu_check_workers import WORKERS  # noqa: E402


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
