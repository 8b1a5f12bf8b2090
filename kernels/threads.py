"""Threads of acepy's CPU kernels: the thread count of a call, the Numba threading layer, and what
has to happen once per process (and after ``fork()``) for results not to depend on threads.

Thread count of a call::

    with acepy.kernels.num_threads(2):   # None: default_num_threads()
        model.evaluate(atoms)

* Numba: ``numba.set_num_threads`` is thread-local, so concurrent Python threads may use
  different counts; the scope sets it for the calling thread and restores it on exit.
* torch: inside a scope the calling thread's torch (ATen) ops run on **one** thread, restored on
  exit. acepy's own torch ops are small and memory-bound; on torch's OpenMP pool, next to Numba's
  TBB pool, the two pools oversubscribe the cores (calls 25-50% slower than with torch on one
  thread). ``torch.set_num_threads`` stores a process-wide default, but with OpenMP the count
  that parallel regions use is per thread (OpenMP's nthreads ICV), so other threads that already
  use torch keep their own setting.
* Outside any scope the kernels run on Numba's own setting (``NUMBA_NUM_THREADS`` threads unless
  ``numba.set_num_threads`` was called).

Process-wide set-up, here so that it happens in one place before any kernel runs:

* MKL VML, once (at import). ATen computes ``exp``, ``log``, ``sin``, ``cos``, ``sqrt``, ... of
  contiguous float tensors with MKL's VML, called from each intra-op OpenMP thread on its chunk.
  MKL 2024.2 (as bundled in torch's wheels) picks the VML kernel from a CPU type that it caches
  in one unsynchronised static on the first call: ``mkl_vml_serv_cpu_detect`` stores the raw type
  first and the mapped one a few instructions later, and a thread that reads the cache in between
  indexes the kernel table with the raw value. On Intel AVX-512 CPUs (raw 9, mapped 5) that is
  the AVX2 *EP* (reduced-accuracy) kernel, relative error up to 3.3e-9, instead of the HA one,
  for that thread's chunk of that one call (pytorch/pytorch#188792). In acepy the first such call was
  the ``exp`` of the ChebExpCos radial basis while building the spline tables in ``acepy.load``:
  the second half of the nodes of the first table came out wrong in a few percent of fresh
  processes. One single-threaded VML call (a one-element tensor stays below ATen's grain size,
  so no OpenMP region) fills the cache before any other thread can race on it; every VML
  function shares that cache.
* The Numba threading layer (:func:`configure_numba`, before the first parallel launch): TBB.
  Numba's default on Linux without TBB is its ``omp`` layer on GNU OpenMP, which is not
  fork-safe (a ``multiprocessing`` fork child dies with "fork() called from a process already
  using GNU OpenMP", and the pool waits for it forever), and which shares torch's libgomp
  (same soname), resetting torch's thread count when it starts. TBB is fork-safe and
  thread-safe, and its work stealing keeps a call from waiting on a worker that the OS has not
  scheduled. With GNU OpenMP every parallel region (each torch op above ATen's grain size, each
  Numba kernel) splits its work statically and waits at a barrier for all threads, so a thread
  on a busy core stalls the whole call: on 2 cores with one busy process, 2 OpenMP threads took
  1.8-2.5x the time of one thread (up to 9x with two busy processes); 2 TBB threads (torch on
  one) took the time of one thread under load and 0.75-0.9x of it on an idle machine.
  A ``NUMBA_THREADING_LAYER`` set by the user (or ``numba.config.THREADING_LAYER`` set before
  acepy starts Numba) is honoured.
  The ``tbb`` wheel installs ``libtbb.so.12`` in ``<prefix>/lib``, where Numba's ``dlopen`` of
  the bare name does not look, so it is loaded here first. Without TBB the fallback is
  ``workqueue`` (fork-safe), whose launches are serialised by :mod:`.numba_cpu._compile`
  because it aborts the process on concurrent launches from two Python threads.
* After ``fork()``: the child's torch runs on one thread. GNU OpenMP has no fork handler, so a
  child whose parent had started torch's OpenMP pool hangs in its first parallel region
  (PyTorch's DataLoader workers do the same). Numba's TBB layer re-initialises itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import operator
import os
import threading
import warnings

import torch

__all__ = ["configure_numba", "default_num_threads", "num_threads", "threading_layer"]

ENV_LAYER = "NUMBA_THREADING_LAYER"

# numba's own check: TBB older than 2021.6 (interface 12060) is refused
_TBB_MIN_INTERFACE = 12060
_TBB_NAMES = ("libtbb.so.12", "libtbb.12.dylib", "tbb12.dll")


# ---- once per process: MKL VML ------------------------------------------------------------------
def _initialise_mkl_vml() -> None:
    """Make MKL's one-time VML dispatch on this (the importing) thread, before any parallel call."""
    torch.exp(torch.zeros(1, dtype=torch.float64))


_initialise_mkl_vml()


# ---- fork ---------------------------------------------------------------------------------------
def _after_fork_in_child() -> None:
    # libgomp has no fork handler: the parent's pool threads do not exist in the child
    if getattr(torch._C, "has_openmp", False) and torch.get_num_threads() > 1:
        torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---- the Numba threading layer ------------------------------------------------------------------
_configure_lock = threading.Lock()
_layer: str | None = None  # what configure_numba settled on


def _load_tbb() -> bool:
    """Load a TBB runtime that Numba accepts (the tbb wheel's, else the system's); True if one is."""
    candidates = []
    try:
        from importlib import metadata

        candidates = [str(f.locate()) for f in (metadata.files("tbb") or []) if f.name in _TBB_NAMES]
    except Exception:  # noqa: BLE001 - no tbb distribution, or an unreadable RECORD
        pass
    for name in candidates + list(_TBB_NAMES):
        try:
            lib = ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
            version = lib.TBB_runtime_interface_version
        except (OSError, AttributeError):
            continue
        version.restype = ctypes.c_int
        if version() >= _TBB_MIN_INTERFACE:
            return True
    return False


def configure_numba() -> str:
    """Choose the Numba threading layer before the first parallel launch; returns the layer that
    was asked for (``tbb``, the ``workqueue`` fallback, or the user's ``NUMBA_THREADING_LAYER``).

    Idempotent. If Numba's threads were already launched (by other code in the process), nothing
    can be changed any more and the layer in use is returned.
    """
    global _layer
    with _configure_lock:
        if _layer is not None:
            return _layer
        import numba
        from numba.np.ufunc import parallel

        if parallel._is_initialized:
            _layer = numba.threading_layer()
        elif os.environ.get(ENV_LAYER, "").strip() or numba.config.THREADING_LAYER != "default":
            # the user's choice, which Numba applies itself (TBB loaded in case it names tbb/safe/...)
            _load_tbb()
            _layer = numba.config.THREADING_LAYER
        elif _load_tbb():
            numba.config.THREADING_LAYER = _layer = "tbb"
        else:
            warnings.warn("acepy: TBB (pip install tbb) is not available; Numba's parallel kernels use the "
                          "'workqueue' threading layer, one launch at a time", RuntimeWarning, stacklevel=2)
            numba.config.THREADING_LAYER = _layer = "workqueue"
        return _layer


def threading_layer() -> str:
    """The Numba threading layer in use (starts Numba's threads if they are not running yet)."""
    configure_numba()
    import numba

    numba.get_num_threads()  # launches the layer
    return numba.threading_layer()


# ---- thread counts ------------------------------------------------------------------------------
def _cgroup_cpu_limit() -> int | None:
    """CPUs allowed by a cgroup CPU quota (containers: ``docker --cpus``), or None without one."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:  # cgroup v2: "<quota> <period>" or "max <period>"
            quota, period = fh.read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as fq, open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as fp:
            quota, period = int(fq.read()), int(fp.read())
        return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


_cgroup_limits: dict = {}


def _cgroup_limit_once() -> int | None:
    """:func:`_cgroup_cpu_limit`, read once per process (a container's quota does not change under
    a running process; reading two files on every call cost ~40 us of an 8-atom call). Keyed by
    the function, so that a replaced one (tests) is read afresh."""
    fn = _cgroup_cpu_limit
    if fn not in _cgroup_limits:
        _cgroup_limits[fn] = fn()
    return _cgroup_limits[fn]


def default_num_threads() -> int:
    """The thread count of a call that names none: the CPUs this process may run on (its affinity
    mask, and a cgroup CPU quota where there is one), at most Numba's ``NUMBA_NUM_THREADS``.

    Not reduced for machine load: with the TBB layer a worker that does not get a core leaves its
    share to the threads that do (work stealing), so on a loaded machine a call takes about the
    time of one thread, and less wherever a core is free (measurements in the module docstring).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    limit = _cgroup_limit_once()
    if limit is not None:
        cpus = min(cpus, limit)
    import numba

    return max(1, min(cpus, numba.config.NUMBA_NUM_THREADS))


def _check_count(n) -> int:
    try:
        value = None if isinstance(n, bool) else operator.index(n)  # ints and NumPy integers, not 2.0
    except TypeError:
        value = None
    if value is None or value < 1:
        raise ValueError(f"num_threads must be a positive integer (or None for the default), got {n!r}")
    return value


@contextlib.contextmanager
def num_threads(n: int | None = None):
    """Run the enclosed acepy kernel calls of this Python thread on ``n`` threads (None: the default,
    :func:`default_num_threads`); the previous setting is restored on exit. Scopes nest.

    ``n`` above Numba's ``NUMBA_NUM_THREADS`` (the threads it starts) is capped there. Inside the
    scope this thread's torch ops run on one thread (see the module docstring for why).
    Raises ``ValueError`` for an ``n`` that is not a positive integer.
    """
    count = default_num_threads() if n is None else _check_count(n)
    configure_numba()
    import numba

    previous = numba.get_num_threads()
    previous_torch = torch.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    if previous_torch != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous_torch != 1:
            torch.set_num_threads(previous_torch)
        numba.set_num_threads(previous)
