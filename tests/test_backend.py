"""Backend dispatch: defaults by device, the ACEPY_BACKEND override, and clear errors."""

import pytest
import torch

from acepy.kernels import BackendUnavailableError, available_backends, resolve_backend, segment_sum


def test_default_by_device(monkeypatch):
    monkeypatch.delenv("ACEPY_BACKEND", raising=False)
    assert resolve_backend(None, "cpu") == "numba"
    assert resolve_backend(None, torch.device("cuda")) == "triton"
    assert resolve_backend("torch", "cpu") == "torch"
    assert "torch" in available_backends("cpu")


def test_environment_override(monkeypatch):
    monkeypatch.setenv("ACEPY_BACKEND", "torch")
    assert resolve_backend(None, "cpu") == "torch"
    assert resolve_backend("numba", "cpu") == "numba"  # an explicit argument wins
    monkeypatch.setenv("ACEPY_BACKEND", "fortran")
    with pytest.raises(ValueError, match="ACEPY_BACKEND"):
        resolve_backend(None, "cpu")


def test_explicit_backend_that_cannot_run(monkeypatch):
    with pytest.raises(BackendUnavailableError, match="CPU tensors only"):
        resolve_backend("numba", torch.device("cuda"))
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET"):
        resolve_backend("triton", "cpu")
    with pytest.raises(BackendUnavailableError):
        segment_sum(torch.ones(3), torch.tensor([0, 3]), backend="triton")
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("cuda", "cpu")


def test_default_dispatch_runs_numba_on_cpu(monkeypatch):
    monkeypatch.delenv("ACEPY_BACKEND", raising=False)
    out = segment_sum(torch.arange(6.0, dtype=torch.float64), torch.tensor([0, 2, 6]))
    assert out.tolist() == [1.0, 14.0]
