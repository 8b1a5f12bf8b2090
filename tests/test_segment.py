"""Segment sums over a CSR edge list: against a plain numpy loop, on every backend."""

import numpy as np
import pytest
import torch

from acepy.kernels import segment_sum
from conftest import assert_close, device_for


def random_csr(rng, n, mean_degree):
    counts = rng.poisson(mean_degree, n)
    counts[rng.random(n) < 0.2] = 0  # atoms with no neighbours
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return torch.as_tensor(offsets)


def numpy_segment_sum(values, offsets):
    out = np.zeros((len(offsets) - 1,) + values.shape[1:])
    for i in range(len(offsets) - 1):
        out[i] = values[offsets[i] : offsets[i + 1]].sum(axis=0)
    return out


@pytest.mark.parametrize("n,tail", [(1, ()), (13, (3,)), (200, (17,)), (37, (2, 5))])
def test_backends_agree_with_numpy(backend, dtype, n, tail):
    rng = np.random.default_rng()
    offsets = random_csr(rng, n, 9)
    values = torch.as_tensor(rng.normal(size=(int(offsets[-1]),) + tail))
    expected = torch.as_tensor(numpy_segment_sum(values.numpy(), offsets.numpy()))
    ref = segment_sum(values, offsets, backend="torch")
    assert_close(ref, expected, torch.float64, what="reference vs numpy")
    device = device_for(backend)
    out = segment_sum(values.to(device, dtype), offsets.to(device), backend=backend)
    assert out.dtype == dtype and out.shape == (n,) + tail
    assert_close(out, expected, dtype, what=backend)


def test_empty_inputs(backend):
    device = device_for(backend)
    out = segment_sum(torch.zeros(0, 4, device=device), torch.zeros(1, dtype=torch.long, device=device), backend=backend)
    assert out.shape == (0, 4)
    out = segment_sum(torch.zeros(0, 4, device=device), torch.zeros(6, dtype=torch.long, device=device), backend=backend)
    assert out.shape == (5, 4) and torch.all(out == 0)


def test_reference_is_differentiable():
    offsets = torch.tensor([0, 2, 2, 5])
    values = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    out = segment_sum(values, offsets, backend="torch")
    (g,) = torch.autograd.grad((out * torch.arange(3.0, dtype=torch.float64)[:, None]).sum(), values)
    assert torch.equal(g, torch.tensor([0.0, 0, 2, 2, 2], dtype=torch.float64)[:, None].expand(5, 3))


def test_bad_offsets():
    with pytest.raises(ValueError, match="offsets"):
        segment_sum(torch.zeros(4), torch.tensor([0, 3, 2, 4]))
    with pytest.raises(ValueError, match="offsets"):
        segment_sum(torch.zeros(4), torch.tensor([0, 3]))
