"""Backend selection for the kernel primitives.

Every primitive has three implementations with one contract:

* ``"torch"``: the reference, plain torch ops, exact in float64 and twice differentiable;
* ``"numba"``: compiled CPU kernels, for CPU tensors;
* ``"triton"``: GPU kernels, for CUDA tensors (or CPU tensors when ``TRITON_INTERPRET=1`` was set
  before the kernels were imported: the Triton interpreter, used in CI on small sizes).

``backend=None`` picks from the environment variable ``ACEPY_BACKEND`` if it is set, else from the
device of the tensors: CUDA goes to Triton, CPU to Numba. An explicit choice that cannot run raises
:class:`BackendUnavailableError`; there is never a silent fallback.

Every public kernel starts with :func:`prepare` (array-likes to tensors, dtype checks and casts,
one device, the backend, the autograd guard of the compiled backends, contiguity), which reads no
tensor values. The value checks (:func:`check_offsets`, :func:`check_range`) read values, so on a
GPU they synchronise with the host: the kernels run them only with ``check=True``.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
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


# ---- the dispatch prologue shared by every public kernel ---------------------------------------


class KernelCall:
    """What :func:`prepare` hands back: the backend that runs, its implementation module, the
    device and compute dtype, and the converted tensors by argument name (``call.r``, ``call.offsets``).

    ``impl`` imports the implementation on first use, so an early return (empty inputs) compiles
    and imports nothing.
    """

    def __init__(self, fn: str, primitive: str, backend: str, device: torch.device, dtype, tensors: dict):
        self.fn = fn
        self.primitive = primitive
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.tensors = tensors

    @property
    def impl(self):
        return implementation(self.backend, self.primitive)

    @property
    def compiled(self) -> bool:
        """True for the Numba and Triton kernels (not differentiable, contiguous inputs)."""
        return self.backend != "torch"

    def zeros(self, shape) -> torch.Tensor:
        """A zero result of the compute dtype on the call's device (the empty-input answers)."""
        return torch.zeros(shape, dtype=self.dtype, device=self.device)

    def __getattr__(self, name):
        # only reached when ordinary lookup fails: the tensors by argument name
        tensors = self.__dict__.get("tensors", {})
        if name in tensors:
            return tensors[name]
        raise AttributeError(f"{self.__dict__.get('fn', 'KernelCall')} has no argument {name!r}")


def is_integer_dtype(dtype: torch.dtype) -> bool:
    """True for the dtypes an index may have (int8 ... int64, uint8; not bool)."""
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def as_tensor_arg(fn: str, name: str, x, device) -> torch.Tensor:
    """``x`` as a tensor: tensors as they are, array-likes through ``torch.as_tensor`` on ``device``.

    Lists and Python scalars go through numpy first, so that Python floats become float64 (the
    project's default dtype) rather than torch's default float32.
    """
    if isinstance(x, torch.Tensor):
        return x
    try:
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype == object:
            raise TypeError(f"no numeric dtype (numpy made an object array of {type(x).__name__})")
        return torch.as_tensor(x, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{fn}: {name} must be a tensor or an array-like of numbers, got {type(x).__name__}: "
                        f"{err}") from None


def prepare(
    fn: str,
    primitive: str,
    backend: str | None,
    *,
    floats: dict,
    indices: dict | None = None,
    fixed: dict | None = None,
    one_d: tuple[str, ...] = (),
    numba_views: tuple[str, ...] = (),
) -> KernelCall:
    """The prologue of every public kernel ``fn`` (implemented in ``<backend>/<primitive>.py``).

    * ``floats``: floating arguments (``None`` passes through). Array-likes become tensors; an
      integer, bool or complex dtype raises ``TypeError`` naming the argument. All are cast to the
      dtype of the first one, the compute dtype (a no-op when it matches).
    * ``indices``: index arguments. Array-likes become tensors; a non-integer dtype raises
      ``TypeError``; they are cast to int64 (a no-op for int64).
    * ``fixed``: tensors the kernel library built itself (a spline table's ``rscale``, a plan's
      codes): device and autograd checks only, no conversion or cast.
    * ``one_d``: arguments that are ``(E,)`` vectors, where a scalar means one element.
    * ``numba_views``: arguments the Numba kernels read as strided views (no contiguous copy).

    Then: one common device (array-likes are placed on the device of the tensor arguments),
    the backend from :func:`resolve_backend`, and for the compiled backends: tensors that require
    grad are refused while autograd is on (the kernels are not differentiable) and detached under
    ``torch.no_grad()``, and every tensor is made contiguous (a no-op when it is). Reads no tensor
    values: nothing here synchronises with a GPU.
    """
    indices = indices or {}
    fixed = fixed or {}
    given = [x for group in (floats, indices, fixed) for x in group.values() if isinstance(x, torch.Tensor)]
    home = given[0].device if given else torch.device("cpu")
    tensors: dict = {}
    dtype = None
    for name, x in floats.items():
        if x is None:
            tensors[name] = None
            continue
        t = as_tensor_arg(fn, name, x, home)
        if not t.dtype.is_floating_point:
            raise TypeError(f"{fn}: {name} must be a floating-point tensor, got dtype {t.dtype}")
        if name in one_d and t.ndim == 0:
            t = t.reshape(1)
        if dtype is None:
            dtype = t.dtype
        tensors[name] = t
    for name, x in indices.items():
        t = as_tensor_arg(fn, name, x, home)
        if not is_integer_dtype(t.dtype):
            raise TypeError(f"{fn}: {name} is an index argument and must be an integer tensor, got dtype {t.dtype}")
        tensors[name] = t.reshape(1) if (name in one_d and t.ndim == 0) else t
    tensors.update(fixed)
    device = check_same_device(*(t for t in tensors.values() if t is not None))
    chosen = resolve_backend(backend, device)
    # (each conversion only where needed: this runs on every call, per chunk of atoms)
    for key in floats:
        t = tensors[key]
        if t is not None and t.dtype != dtype:
            tensors[key] = t.to(dtype)
    for key in indices:
        t = tensors[key]
        if t.dtype != torch.int64:
            tensors[key] = t.long()
    if chosen != "torch":
        for key, t in tensors.items():
            if t is None:
                continue
            if t.requires_grad:
                if torch.is_grad_enabled():
                    raise BackendUnavailableError(
                        f"{fn}: {key} requires grad, but the {chosen} kernels are not differentiable; use "
                        f"backend='torch' (the exact path) for gradients, or detach the inputs"
                    )
                t = t.detach()  # under no_grad nothing would be recorded anyway: a view, no copy
            # Numba reads strided views as they are (the model's R_nl is a column slice of one
            # spline evaluation): a copy would cost more than the strided reads
            if not (t.is_contiguous() or (chosen == "numba" and key in numba_views)):
                t = t.contiguous()
            tensors[key] = t
    return KernelCall(fn, primitive, chosen, device, dtype, tensors)


# ---- value checks (they read tensor values: a host sync on a GPU) ---------------------------------


def check_offsets(fn: str, name: str, offsets: torch.Tensor, total: int, what: str = "E") -> None:
    """CSR offsets start at 0, never decrease and end at ``total`` (``ValueError`` otherwise)."""
    if int(offsets[0]) != 0 or int(offsets[-1]) != total or bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(f"{fn}: {name} must start at 0, be non-decreasing and end at {what}={total}")


def check_range(fn: str, name: str, index: torch.Tensor, bound: int) -> None:
    """Every entry of ``index`` lies in ``[0, bound)`` (``IndexError`` naming the first one otherwise)."""
    if index.numel() == 0:
        return
    bad = (index < 0) | (index >= bound)
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        raise IndexError(f"{fn}: {name} must lie in 0..{bound - 1}, but {name}[{k}] = {int(index[k])} "
                         f"({int(bad.sum())} entries outside)")
