"""Threads and processes: results that do not depend on them, fork safety, thread counts.

See ``kernels/threads.py`` for the causes these tests guard against: MKL's first-call VML dispatch
race (radial tables built in ``acepy.load`` came out different in a few percent of fresh
processes), GNU OpenMP in ``fork()`` children, and oversubscribed thread pools.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numba
import numpy as np
import pytest
import torch
from ase.build import bulk

import acepy
from acepy.kernels import default_num_threads, num_threads
from acepy.kernels import threads as threads_mod

from data_paths import ALNI_YACE as ALNI, needs

CU = "Cu-synthetic-pbe-core-rep"
TWO_THREADS = numba.config.NUMBA_NUM_THREADS >= 2
needs_two = pytest.mark.skipif(not TWO_THREADS, reason="Numba runs on one thread here (NUMBA_NUM_THREADS=1)")


def _cu(seed: int, reps=(4, 4, 4)):
    """A rattled fcc Cu cell; 4x4x4 (256 atoms) is big enough for the parallel kernel variants."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(reps)
    atoms.rattle(0.05, seed=seed)
    return atoms


def _results(out: dict) -> dict:
    return {k: out[k].detach().numpy().copy() for k in ("energy", "energies", "forces", "stress")}


def _assert_same(got: dict, want: dict, what: str, rtol=1e-12, atol=1e-12):
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=atol, err_msg=f"{what}: {key}")


def _python(code: str, env: dict | None = None, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter; its stdout (fails the test with stderr if it fails)."""
    full_env = {**os.environ, **(env or {})}
    for key, value in list(full_env.items()):
        if value is None:
            del full_env[key]
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    assert proc.returncode == 0, f"child failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.stdout


# ---- 1. the radial tables do not depend on the process ------------------------------------------
def _pace_table(model) -> np.ndarray:
    comp = next(c for c in model.components if hasattr(getattr(c, "radial", None), "pace_table"))
    return comp.radial.pace_table.coeffs.numpy().copy()


_CHILD_DUMP = """
import sys
import numpy as np
import acepy
m = acepy.load(sys.argv[1])
comp = next(c for c in m.components if hasattr(getattr(c, "radial", None), "pace_table"))
np.save(sys.argv[2], comp.radial.pace_table.coeffs.numpy())
"""


def _describe(got: np.ndarray, want: np.ndarray) -> str:
    t, s, _, k = np.nonzero(got != want)
    return (f"tables {sorted(set(t.tolist()))}, segments {s.min()}-{s.max()}, columns {sorted(set(k.tolist()))}, "
            f"max |diff| {np.abs(got - want).max():.3g}")


@needs(ALNI)  # python-ace's Al-Ni file (ASL): from ../shared/reference, else its generated stand-in
def test_tables_bitwise_equal_in_fresh_processes(tmp_path):
    """``acepy.load`` in 16 fresh processes (4 at a time, next to a busy process) builds the spline
    tables bit for bit as this process does. The first load of a process used to race in MKL's
    VML dispatch (one OpenMP thread's half of the first ``exp`` computed by a low-accuracy kernel:
    table 0, segments 4350-8699, g_1 and R_nl off by up to 3.8e-9); OMP_NUM_THREADS=2 makes torch
    split that ``exp`` over two threads whatever this machine's core count."""
    previous = torch.get_num_threads()
    try:  # the in-process reference, which must not depend on torch's thread count either
        refs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            refs.append(_pace_table(acepy.load(ALNI)))
    finally:
        torch.set_num_threads(previous)
    ref = refs[0]
    assert np.array_equal(refs[1], ref), f"tables differ between 1 and 2 torch threads: {_describe(refs[1], ref)}"

    script = tmp_path / "dump.py"
    script.write_text(_CHILD_DUMP)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        outputs, failures = [], []
        for start in range(0, 16, 4):
            procs = []
            for i in range(start, start + 4):
                out = tmp_path / f"table_{i}.npy"
                procs.append((i, out, subprocess.Popen([sys.executable, str(script), str(ALNI), str(out)], env=env,
                                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
            for i, out, proc in procs:
                _, err = proc.communicate(timeout=180)
                if proc.returncode != 0:
                    failures.append(f"process {i} failed (rc {proc.returncode}): {err[-2000:]}")
                outputs.append((i, out))
    finally:
        busy.kill()
        busy.wait()
    assert not failures, "\n".join(failures)
    wrong = [f"process {i}: {_describe(np.load(out), ref)}" for i, out in outputs if not np.array_equal(np.load(out), ref)]
    assert not wrong, "tables differ from this process's:\n" + "\n".join(wrong)


def _mkl_vml_cpu_type_cache(code: str) -> int | None:
    """The value of MKL's VML CPU-type cache (a static in libtorch_cpu.so) after ``code`` ran in a
    fresh process: -1 until the first VML call has made the dispatch; None where it cannot be read."""
    probe = code + """
import ctypes, os, subprocess, torch
so = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
rows = [l.split() for l in subprocess.run(["nm", so], capture_output=True, text=True).stdout.splitlines()
        if l.endswith(" mkl_vml_serv_cpu_detect.vml_cpu_type")]
base = [int(l.split()[0].split("-")[0], 16) for l in open("/proc/self/maps")
        if l.rstrip().endswith("/libtorch_cpu.so") and int(l.split()[2], 16) == 0]
print(ctypes.c_int.from_address(min(base) + int(rows[0][0], 16)).value if rows and base else "none")
"""
    out = _python(probe).split()[-1]
    return None if out == "none" else int(out)


@pytest.mark.skipif(shutil.which("nm") is None or not sys.platform.startswith("linux"),
                    reason="needs Linux and binutils' nm to find MKL's static")
def test_mkl_vml_dispatch_made_at_import():
    """The deterministic half of the race test: right after ``import acepy`` MKL has made its
    one-time VML dispatch (on the importing thread, outside any OpenMP region), so no later
    parallel torch op can race on it. A bare ``import torch`` leaves it to the first VML call."""
    bare = _mkl_vml_cpu_type_cache("import torch\n")
    if bare is None:
        pytest.skip("this torch build has no MKL VML (or a different MKL): nothing to race on")
    assert bare == -1, f"a bare 'import torch' already made the VML dispatch ({bare}): the probe proves nothing"
    after = _mkl_vml_cpu_type_cache("import acepy\n")
    assert after is not None and after >= 0, f"after 'import acepy' MKL's VML CPU-type cache is {after}, not set"


# ---- 2. fork and concurrent threads -------------------------------------------------------------
_FORK = {}


@contextlib.contextmanager
def _raw_thread_counts(n: int):
    """Numba's and torch's own thread counts of this thread set to ``n`` (no acepy scope)."""
    before = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(n)
    torch.set_num_threads(max(n, 2))  # torch's OpenMP pool in use in the parent
    try:
        yield
    finally:
        numba.set_num_threads(before[0])
        torch.set_num_threads(before[1])


def _forces_in_child(seed: int):
    out = _FORK["model"].evaluate(_cu(seed))
    return _results(out), torch.get_num_threads(), numba.get_num_threads()


def test_fork_pool():
    """An evaluation with the parallel kernels in the parent, then evaluations in the children of a
    fork-started Pool: they finish (a hang fails the test through the timeout) and give the
    parent's numbers."""
    from acepy.kernels.numba_cpu import scatter

    model = acepy.load(CU)
    seeds = [1, 2, 3, 4]
    # as a user would run it (no acepy scope), with both pools on two threads: other tests may
    # have left this thread's counts at 1; the Pool's workers are forked from this thread
    with _raw_thread_counts(2 if TWO_THREADS else 1):
        want = [_results(model.evaluate(_cu(s))) for s in seeds]
        if TWO_THREADS:
            parallel = getattr(scatter._scatter[1], "dispatcher", scatter._scatter[1])  # unwrap _OneLaunchAtATime
            assert parallel.signatures, "the parent did not run the parallel kernel variants"
        _FORK["model"] = model
        pool = mp.get_context("fork").Pool(2)
        try:
            got = pool.map_async(_forces_in_child, seeds).get(timeout=120)
        except mp.TimeoutError:
            pytest.fail("fork-started Pool workers did not finish within 120 s (hang after fork)")
        finally:
            pool.terminate()
            pool.join()
            _FORK.clear()
    for s, (res, child_torch, child_numba), ref in zip(seeds, got, want):
        _assert_same(res, ref, f"fork child, seed {s}")
        assert child_torch == 1, "torch in a fork child must run on one thread (GNU OpenMP pool)"
        assert child_numba == (2 if TWO_THREADS else 1), "the fork child lost the parent's Numba thread count"


def test_fork_child_torch_parallel_op_does_not_hang():
    """torch's own OpenMP pool in a fork child, after the parent used it: no hang."""
    code = """
    import os, sys, torch, acepy
    x = torch.rand(1_000_000, dtype=torch.float64)
    torch.set_num_threads(2)
    float(torch.exp(x).sum())          # starts torch's OpenMP pool in the parent
    pid = os.fork()
    if pid == 0:
        float(torch.exp(x).sum())      # hangs without acepy's fork handler
        os._exit(0 if torch.get_num_threads() == 1 else 3)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
    """
    assert _python(code, timeout=60).split()[-1] == "0"


@needs_two
def test_concurrent_evaluations_from_two_threads():
    """Two Python threads evaluating at the same time (each its own scope: one thread, two threads)
    get the numbers of a lone call, and each sees its own thread count."""
    model = acepy.load(CU)
    structures = {0: _cu(10), 1: _cu(11)}
    want = {k: _results(model.evaluate(a)) for k, a in structures.items()}
    start = threading.Barrier(2)
    errors, seen = [], {0: set(), 1: set()}

    def work(k):
        try:
            start.wait()
            with num_threads(k + 1):
                for _ in range(4):
                    seen[k].add(numba.get_num_threads())
                    _assert_same(_results(model.evaluate(structures[k])), want[k], f"thread {k}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert not any(w.is_alive() for w in workers), "evaluation threads did not finish"
    assert not errors, errors[0]
    assert seen == {0: {1}, 1: {2}}, f"the thread counts leaked between Python threads: {seen}"


# ---- 3. the threading layer ---------------------------------------------------------------------
@pytest.mark.skipif(not threads_mod._load_tbb(), reason="no TBB runtime (pip install tbb) on this platform")
def test_threading_layer_is_tbb_and_leaves_torch_alone():
    """Without NUMBA_THREADING_LAYER acepy starts Numba on TBB, and starting it does not reset
    torch's thread count (Numba's omp layer shares torch's libgomp and did)."""
    out = _python("""
    import torch
    torch.set_num_threads(1)
    import acepy
    from acepy.kernels import threading_layer
    print(threading_layer(), torch.get_num_threads())
    """, env={"NUMBA_THREADING_LAYER": None})
    assert out.split() == ["tbb", "1"], out


def test_threading_layer_honours_the_environment_and_serialises_workqueue():
    """A user's NUMBA_THREADING_LAYER wins; on ``workqueue`` (not thread-safe: it aborts the process
    on concurrent launches) two threads evaluating at once still finish, with the right numbers."""
    out = _python("""
    import threading, numpy as np, acepy
    from ase.build import bulk
    from acepy.kernels import threading_layer, num_threads
    m = acepy.load("Cu-synthetic-pbe-core-rep")
    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((4, 4, 4)); a.rattle(0.05, seed=1)
    ref = m.evaluate(a)["forces"].numpy()
    ok = []
    def run():
        with num_threads(2):
            ok.extend(np.allclose(m.evaluate(a)["forces"].numpy(), ref, rtol=1e-12, atol=1e-12) for _ in range(3))
    ts = [threading.Thread(target=run) for _ in range(2)]
    [t.start() for t in ts]; [t.join() for t in ts]
    print(threading_layer(), all(ok) and len(ok) == 6)
    """, env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert out.split()[-2:] == ["workqueue", "True"], out


# ---- 4. the thread-count API --------------------------------------------------------------------
def test_num_threads_sets_and_restores():
    before_numba, before_torch = numba.get_num_threads(), torch.get_num_threads()
    with num_threads(1):
        assert numba.get_num_threads() == 1 and torch.get_num_threads() == 1
        if TWO_THREADS:
            with num_threads(2):  # nested
                assert numba.get_num_threads() == 2 and torch.get_num_threads() == 1
            assert numba.get_num_threads() == 1
        with num_threads(10**6):  # capped at the threads Numba started
            assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
        with num_threads(None):
            assert numba.get_num_threads() == default_num_threads()
    assert (numba.get_num_threads(), torch.get_num_threads()) == (before_numba, before_torch)


def test_num_threads_restores_after_an_exception():
    before = (numba.get_num_threads(), torch.get_num_threads())
    with pytest.raises(KeyError):
        with num_threads(1):
            raise KeyError("inside")
    assert (numba.get_num_threads(), torch.get_num_threads()) == before


@pytest.mark.parametrize("bad", [0, -2, 1.5, 2.0, "2", True, [2]])
def test_num_threads_rejects_a_bad_count(bad):
    with pytest.raises(ValueError, match=r"num_threads must be a positive integer.*got " + re.escape(repr(bad))):
        with num_threads(bad):
            pass


def test_num_threads_accepts_numpy_integers():
    with num_threads(np.int64(1)):
        assert numba.get_num_threads() == 1


def test_default_num_threads_follows_affinity_and_cgroup_quota(monkeypatch):
    cpus = len(os.sched_getaffinity(0))
    assert default_num_threads() == max(1, min(cpus, numba.config.NUMBA_NUM_THREADS,
                                               threads_mod._cgroup_cpu_limit() or cpus))
    monkeypatch.setattr(threads_mod.os, "sched_getaffinity", lambda pid: {0})
    assert default_num_threads() == 1
    monkeypatch.setattr(threads_mod.os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(threads_mod, "_cgroup_cpu_limit", lambda: 3)
    assert default_num_threads() == min(3, numba.config.NUMBA_NUM_THREADS)


def test_cgroup_cpu_limit_parses_quota(monkeypatch, tmp_path):
    files = {"/sys/fs/cgroup/cpu.max": "150000 100000\n"}
    real_open = open

    def fake_open(path, *args, **kwargs):
        if path in files:
            p = tmp_path / Path(path).name
            p.write_text(files[path])
            return real_open(p, *args, **kwargs)
        if str(path).startswith("/sys/fs/cgroup"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    assert threads_mod._cgroup_cpu_limit() == 2  # 1.5 CPUs: two threads
    files["/sys/fs/cgroup/cpu.max"] = "max 100000\n"
    assert threads_mod._cgroup_cpu_limit() is None


@needs_two
def test_one_and_two_threads_agree():
    """The same structure on one thread (serial kernels) and on two (parallel kernels)."""
    from acepy.kernels.numba_cpu import _compile

    model = acepy.load(CU)
    atoms = _cu(7)
    with num_threads(1):
        assert not _compile.use_parallel(10**6)
        one = _results(model.evaluate(atoms))
    with num_threads(2):
        assert _compile.use_parallel(10**6)
        two = _results(model.evaluate(atoms))
    _assert_same(two, one, "2 threads vs 1")


# ---- 4. the on-disk kernel cache ----------------------------------------------------------------
def test_kernel_cache_is_dropped_when_any_kernel_source_changes(tmp_path):
    """Numba checks a cached kernel against its own file only; the kernels inline helpers from the
    other files of their folder, so an edit of any of them must drop the folder's cache files (and
    only then: an unchanged folder keeps its cache)."""
    from acepy.kernels.numba_cpu._compile import _drop_stale_cache

    (tmp_path / "kernel.py").write_text("x = 1\n")
    (tmp_path / "helper.py").write_text("y = 2\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    entries = [cache / "kernel._k-10.py311.nbi", cache / "kernel._k-10.py311.1.nbc"]

    def write_entries():
        for f in entries:
            f.write_bytes(b"compiled")

    write_entries()
    (cache / "kernel.cpython-311.pyc").write_bytes(b"bytecode")
    assert _drop_stale_cache(tmp_path)  # no digest yet: what is there cannot be trusted
    assert not any(f.exists() for f in entries) and (cache / "kernel.cpython-311.pyc").exists()
    write_entries()
    assert not _drop_stale_cache(tmp_path) and all(f.exists() for f in entries)
    (tmp_path / "helper.py").write_text("y = 3\n")  # the inlined helper alone changes
    assert _drop_stale_cache(tmp_path) and not any(f.exists() for f in entries)
    write_entries()
    (tmp_path / "new_kernel.py").write_text("z = 4\n")  # a new file is a change too
    assert _drop_stale_cache(tmp_path) and not any(f.exists() for f in entries)
    assert not _drop_stale_cache(tmp_path)
