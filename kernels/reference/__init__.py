"""Torch reference implementations: plain torch ops, exact in float64, twice differentiable.

They are the test oracle for the Numba and Triton kernels and the "exact path" of the models
(Hessians, basis derivatives, training).
"""
