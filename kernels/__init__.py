"""acepy.kernels: array-in, array-out primitives with torch, Numba and Triton implementations.

Nothing here knows about ACE files, species or ASE. Each primitive has one contract (its public
function below) and three implementations (``reference/``, ``numba_cpu/``, ``triton_gpu/``),
picked by :func:`resolve_backend`.
"""

# first: the process-wide thread set-up (MKL's one-time VML dispatch) before anything else runs
from .threads import default_num_threads, num_threads, threading_layer  # isort: skip
from .backend import (
    BACKENDS,
    BackendUnavailableError,
    available_backends,
    resolve_backend,
    triton_interpret,
)
from .angular import angular_sum, angular_sum_edge_grads, angular_sum_jacobian
from .atomic_base import atomic_base, atomic_base_edge_grads
from .chebyshev import chebyshev
from .product_basis import ProductBasisPlan, encode_factor, product_basis, product_basis_adjoint
from .scatter import scatter_forces_virials, stress_from_virials
from .segment import segment_sum
from .sph_harm import lm_index, n_lm, spherical_harmonics
from .spline import SplineGrid, SplineRangeError, SplineTable, build_spline_table, hermite_segments, spline_eval

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "ProductBasisPlan",
    "SplineGrid",
    "SplineRangeError",
    "SplineTable",
    "angular_sum",
    "angular_sum_edge_grads",
    "angular_sum_jacobian",
    "atomic_base",
    "atomic_base_edge_grads",
    "available_backends",
    "build_spline_table",
    "chebyshev",
    "default_num_threads",
    "encode_factor",
    "hermite_segments",
    "lm_index",
    "n_lm",
    "num_threads",
    "product_basis",
    "product_basis_adjoint",
    "resolve_backend",
    "scatter_forces_virials",
    "segment_sum",
    "spherical_harmonics",
    "spline_eval",
    "stress_from_virials",
    "threading_layer",
    "triton_interpret",
]
