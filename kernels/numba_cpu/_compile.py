"""Compile one kernel twice: a serial and a parallel variant, both cached on disk.

Numba's on-disk cache names its files after the function's module, qualified name and line, and
keys the entries by signature and CPU only, not by the ``parallel`` flag. Two dispatchers built
from the same Python function would therefore share (and overwrite) one cache entry, and the
parallel launcher could silently load the serial machine code. The parallel variant is thus
compiled from a renamed copy of the function, which gets cache files of its own.

The threading layer is chosen (``acepy.kernels.threads``) and started when this module is
imported, before any of these kernels can be compiled or launched.
"""

from __future__ import annotations

import threading
import types

import numba

from ..threads import threading_layer

_LAYER = threading_layer()

# Below this many work items the thread start-up costs more than it saves.
PARALLEL_MIN_WORK = 4096


def _renamed(fn, suffix: str):
    """A copy of ``fn`` (same code and globals) whose qualified name ends with ``suffix``."""
    clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    clone.__qualname__ = fn.__qualname__ + suffix
    clone.__module__ = fn.__module__
    clone.__doc__ = fn.__doc__
    return clone


class _OneLaunchAtATime:
    """A parallel dispatcher whose launches are serialised: Numba's ``workqueue`` layer (the
    fallback without TBB) aborts the whole process when two Python threads launch at once."""

    _lock = threading.Lock()

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher

    def __call__(self, *args):
        with self._lock:
            return self.dispatcher(*args)


def compile_pair(fn, fastmath=False):
    """``(serial, parallel)`` dispatchers of ``fn``; ``numba.prange`` runs as ``range`` in the serial one.
    ``fastmath``: Numba's flag or set of LLVM fast-math flags (both variants get the same)."""
    serial = numba.njit(cache=True, fastmath=fastmath)(fn)
    parallel = numba.njit(parallel=True, cache=True, fastmath=fastmath)(_renamed(fn, "__parallel"))
    if _LAYER == "workqueue":
        parallel = _OneLaunchAtATime(parallel)
    return serial, parallel


def use_parallel(work: int) -> bool:
    """Whether a launch of ``work`` items should take the parallel variant."""
    return work > PARALLEL_MIN_WORK and numba.get_num_threads() > 1


def pick(pair, work: int):
    """The variant of ``pair = (serial, parallel)`` for a launch of ``work`` items."""
    return pair[1] if use_parallel(work) else pair[0]
