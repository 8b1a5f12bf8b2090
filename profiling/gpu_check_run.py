"""Running the GPU check's steps: the log, the import overlay of this working tree, one process per
step under its cap, pytest outcomes (see gpu_check.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from gpu_check_plan import VESIN_MARK, ROOT, PROFILING, MIN_STEP_S, Step


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
    return [sys.executable, str(PROFILING / "gpu_check.py"), "--worker", kind, *args]


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


