"""Shared test set-up.

Without CUDA the Triton kernels run through the Triton interpreter, which must be switched on
before any ``@triton.jit`` decorator runs, hence before acepy's Triton modules are imported.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from acepy.kernels import available_backends  # noqa: E402

CUDA = torch.cuda.is_available()

# Per-dtype tolerances, relative to the largest magnitude of the reference.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


def device_for(backend: str) -> torch.device:
    """Where a backend runs in this session: Triton on the GPU when there is one."""
    return torch.device("cuda") if (backend == "triton" and CUDA) else torch.device("cpu")


def fast_backends() -> list[str]:
    """The compiled backends that can run here (the torch reference is what they are checked against)."""
    out = [b for b in ("numba",) if b in available_backends("cpu")]
    triton_dev = "cuda" if CUDA else "cpu"
    if "triton" in available_backends(triton_dev):
        out.append("triton")
    return out


def assert_close(actual, expected, dtype, scale_floor=1.0, what=""):
    """max |actual - expected| <= tol(dtype) * max(|expected|, scale_floor), with NaN never passing."""
    actual = actual.detach().cpu().double()
    expected = expected.detach().cpu().double()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    if expected.numel() == 0:
        return
    scale = max(float(expected.abs().max()), scale_floor)
    err = float((actual - expected).abs().max())
    tol = TOLERANCE[dtype] * scale
    assert err <= tol, f"{what}: max error {err:.3e} > {tol:.3e} (scale {scale:.3e})"


@pytest.fixture(params=fast_backends())
def backend(request):
    return request.param


@pytest.fixture(params=[torch.float64, torch.float32], ids=["f64", "f32"])
def dtype(request):
    return request.param


def pytest_collection_modifyitems(config, items):
    if CUDA:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
