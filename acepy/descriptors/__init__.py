"""Atomic-environment descriptors built on acepy's kernels (layer 4).

:class:`ChebyshevDescriptor`: aenet's Chebyshev (AUC) descriptor with analytic per-edge
Jacobians and vector-Jacobian products on the torch, Numba and Triton backends.
"""

from .chebyshev import VJP, ChebyshevDescriptor, EdgeGrads, EdgeJacobian, type_spins

__all__ = ["VJP", "ChebyshevDescriptor", "EdgeGrads", "EdgeJacobian", "type_spins"]
