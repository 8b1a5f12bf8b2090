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

import hashlib
import os
import threading
import types
from pathlib import Path

import numba

from ..threads import threading_layer

_LAYER = threading_layer()


def _drop_stale_cache(folder: Path = Path(__file__).resolve().parent) -> bool:
    """Delete this folder's Numba cache files when any kernel source here changed since they were
    written; returns whether it did.

    Numba checks a cached kernel against its own file's time stamp only, and the kernels inline
    helpers from their neighbours (the fused ACE kernel takes the spline, harmonics, product-basis
    and embedding steps from four other files): after an edit of a helper alone, the old machine
    code would go on running. One digest of all the sources, kept beside the cache, catches that.
    Only the cache in ``__pycache__`` beside the sources is handled (an installed package's files
    never change one at a time; ``NUMBA_CACHE_DIR`` users clear their own)."""
    cache = folder / "__pycache__"
    digest = hashlib.sha256()
    for source in sorted(folder.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    stamp = cache / "acepy-kernel-sources.sha256"
    try:
        if stamp.read_text() == digest.hexdigest():
            return False
    except OSError:
        pass
    try:
        for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")  # atomic: processes may start together
        tmp.write_text(digest.hexdigest())
        os.replace(tmp, stamp)
    except OSError:  # a read-only install: Numba caches elsewhere (and its files do not change)
        return False
    return True


_drop_stale_cache()

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
