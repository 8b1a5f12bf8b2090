"""Backend selection for the kernel primitives.

Every primitive has three implementations with one contract:

* ``"torch"``: the reference, plain torch ops, exact in float64 and twice differentiable;
* ``"numba"``: compiled CPU kernels, for CPU tensors;
* ``"triton"``: GPU kernels, for CUDA tensors (or CPU tensors when ``TRITON_INTERPRET=1`` was set
  before the kernels were imported: the Triton interpreter, used in CI on small sizes).

``backend=None`` picks from the environment variable ``ACEPY_BACKEND`` if it is set, else from the
device of the tensors: CUDA goes to Triton, CPU to Numba. An explicit choice that cannot run raises
:class:`BackendUnavailableError`; there is never a silent fallback.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

BACKENDS = ("torch", "numba", "triton")
ENV_VAR = "ACEPY_BACKEND"


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run on the given tensors or on this machine."""


def triton_interpret() -> bool:
    """True when the Triton interpreter is on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


@functools.cache
def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available_backends(device: torch.device | str = "cpu") -> tuple[str, ...]:
    """The backends that can run on tensors of ``device`` on this machine."""
    out = []
    for name in BACKENDS:
        try:
            resolve_backend(name, device)
        except BackendUnavailableError:
            continue
        out.append(name)
    return tuple(out)


def resolve_backend(backend: str | None, device: torch.device | str) -> str:
    """Return the backend name that will run on tensors living on ``device``.

    ``backend`` is ``None`` (the default: ``ACEPY_BACKEND`` if set, else by device), or one of
    ``"torch"``, ``"numba"``, ``"triton"``. Raises :class:`BackendUnavailableError` if the choice
    cannot run, and ``ValueError`` for an unknown name.
    """
    device = torch.device(device)
    source = "backend argument"
    if backend is None:
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env:
            backend, source = env, f"environment variable {ENV_VAR}"
        else:
            return "triton" if device.type == "cuda" else ("numba" if device.type == "cpu" else "torch")
    backend = backend.lower()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} from the {source}; choose one of {BACKENDS}")
    if backend == "torch":
        return backend
    if backend == "numba":
        if device.type != "cpu":
            raise BackendUnavailableError(
                f"backend 'numba' (from the {source}) runs on CPU tensors only, got device {device}; "
                "use backend='triton' or 'torch' for CUDA tensors"
            )
        if not _have("numba"):
            raise BackendUnavailableError("backend 'numba' requested but numba is not installed")
        return backend
    # triton
    if not _have("triton"):
        raise BackendUnavailableError(
            f"backend 'triton' (from the {source}) requested but triton is not installed"
        )
    if device.type == "cuda":
        return backend
    if device.type == "cpu" and triton_interpret():
        return backend
    raise BackendUnavailableError(
        f"backend 'triton' (from the {source}) needs CUDA tensors, got device {device}; "
        "set TRITON_INTERPRET=1 before importing acepy to run the Triton interpreter on the CPU"
    )


def check_same_device(*tensors: torch.Tensor) -> torch.device:
    """The common device of ``tensors``; raises ``ValueError`` if they differ."""
    devices = {t.device for t in tensors if t is not None}
    if len(devices) > 1:
        raise ValueError(f"tensors live on different devices: {sorted(map(str, devices))}")
    return devices.pop()


_PACKAGES = {"torch": "reference", "numba": "numba_cpu", "triton": "triton_gpu"}


def implementation(backend: str, primitive: str):
    """The module implementing ``primitive`` (``"spline"``, ``"chebyshev"``, ...) for ``backend``.

    Imported lazily, so that ``TRITON_INTERPRET`` is read when a Triton kernel is first needed
    and Numba compiles (or loads its cache) only for the kernels in use.
    """
    return importlib.import_module(f"{__package__}.{_PACKAGES[backend]}.{primitive}")
