"""Sums over pairs of edges of one centre (``acepy.kernels.angular_sum`` and its adjoint and
Jacobian): against a plain numpy loop, against autograd of the torch reference, on every backend,
on odd sizes, empty inputs and collinear pairs (cos theta = +-1)."""

import numpy as np
import pytest
import torch

import acepy.kernels as K
from conftest import assert_close, compile_check_sm90, device_for, fast_backends

F64 = torch.float64


def random_case(seed, n, mean_degree, c, collinear=False):
    """Random CSR edges (some centres with 0 or 1 edge), vectors of length 0.5..3, weights with a
    radial derivative."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean_degree, n)
    counts[rng.random(n) < 0.15] = 0
    counts[rng.random(n) < 0.15] = 1
    offsets = np.concatenate([[0], np.cumsum(counts)])
    e = int(offsets[-1])
    u = rng.normal(size=(e, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    if collinear:  # a parallel and an antiparallel partner in the first centre with 3 edges or more
        counts[0] = max(counts[0], 3)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        e = int(offsets[-1])
        u = rng.normal(size=(e, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        u[1], u[2] = u[0], -u[0]
    vectors = u * rng.uniform(0.5, 3.0, size=(e, 1))
    weights = rng.normal(size=(e, c))
    dweights = rng.normal(size=(e, c))
    return (torch.as_tensor(vectors), torch.as_tensor(weights), torch.as_tensor(dweights),
            torch.as_tensor(offsets))


def numpy_angular_sum(vectors, weights, offsets, n_max):
    n, c = len(offsets) - 1, weights.shape[1]
    out = np.zeros((n, c, n_max + 1))
    for i in range(n):
        for j in range(offsets[i], offsets[i + 1]):
            for k in range(j + 1, offsets[i + 1]):
                cos = vectors[j] @ vectors[k] / np.linalg.norm(vectors[j]) / np.linalg.norm(vectors[k])
                t = np.polynomial.chebyshev.chebvander(cos, n_max)  # recurrence, no arccos
                out[i] += np.outer(weights[j] * weights[k], t)
    return out


def reference_by_autograd(vectors, weights, dweights, offsets, n_max, grad):
    """Adjoint and Jacobian of the reference from autograd, with the weights made functions of the
    length (w(d) = w + dw (d - d0)), so that d w / d r = dw r_hat as the contract says."""
    d0 = vectors.norm(dim=1)

    def g_of(v):
        w = weights + dweights * (v.norm(dim=1) - d0)[:, None]
        return K.angular_sum(v, w, offsets, n_max, backend="torch")

    v = vectors.clone().requires_grad_(True)
    (adj,) = torch.autograd.grad((g_of(v) * grad).sum(), v)
    full = torch.autograd.functional.jacobian(g_of, vectors)  # (N, C, n+1, E, 3)
    owner = torch.repeat_interleave(torch.arange(offsets.shape[0] - 1), offsets[1:] - offsets[:-1])
    jac = full[owner, :, :, torch.arange(vectors.shape[0]), :]  # dG[owner(e)] / dr_e
    return adj, jac


@pytest.mark.parametrize("n,degree,c,n_max", [(1, 4, 1, 0), (7, 5, 2, 1), (19, 9, 2, 5), (11, 20, 3, 4)])
def test_reference_against_numpy(n, degree, c, n_max):
    vectors, weights, _, offsets = random_case(n * 7 + c, n, degree, c)
    expected = numpy_angular_sum(vectors.numpy(), weights.numpy(), offsets.numpy(), n_max)
    out = K.angular_sum(vectors, weights, offsets, n_max, backend="torch")
    assert_close(out, torch.as_tensor(expected), F64, what="reference vs numpy")


@pytest.mark.parametrize("collinear", [False, True])
def test_reference_derivatives_against_autograd(collinear):
    vectors, weights, dweights, offsets = random_case(3, 6, 6, 2, collinear=collinear)
    grad = torch.as_tensor(np.random.default_rng(4).normal(size=(6, 2, 5)))
    adj_auto, jac_auto = reference_by_autograd(vectors, weights, dweights, offsets, 4, grad)
    adj = K.angular_sum_edge_grads(grad, vectors, weights, dweights, offsets, backend="torch")
    jac = K.angular_sum_jacobian(vectors, weights, dweights, offsets, 4, backend="torch")
    assert_close(adj, adj_auto, F64, what="adjoint vs autograd")
    assert_close(jac, jac_auto, F64, what="jacobian vs autograd")
    # the adjoint is the Jacobian contracted with the centre's cotangent row
    owner = torch.repeat_interleave(torch.arange(6), offsets[1:] - offsets[:-1])
    assert_close(torch.einsum("ecn,ecnx->ex", grad[owner], jac), adj, F64, what="adjoint vs jacobian")


def test_reference_is_twice_differentiable():
    vectors, weights, _, offsets = random_case(5, 3, 4, 2, collinear=True)
    v = vectors.clone().requires_grad_(True)
    w = weights.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda v, w: K.angular_sum(v, w, offsets, 3, backend="torch"), (v, w))


CASES = [(1, 3, 1, 0), (5, 4, 2, 1), (23, 9, 2, 6), (9, 37, 3, 3)]  # odd sizes; 37 > two edge blocks


@pytest.mark.parametrize("n,degree,c,n_max", CASES)
@pytest.mark.parametrize("backend", fast_backends())
def test_backends_agree_with_reference(backend, dtype, n, degree, c, n_max):
    vectors, weights, dweights, offsets = random_case(100 * n + degree, n, degree, c, collinear=True)
    grad = torch.as_tensor(np.random.default_rng(n).normal(size=(n, c, n_max + 1)))
    ref = K.angular_sum(vectors, weights, offsets, n_max, backend="torch")
    ref_adj = K.angular_sum_edge_grads(grad, vectors, weights, dweights, offsets, backend="torch")
    ref_jac = K.angular_sum_jacobian(vectors, weights, dweights, offsets, n_max, backend="torch")
    dev = device_for(backend)
    args = [t.to(dev, dtype) for t in (vectors, weights, dweights)]
    off = offsets.to(dev)
    out = K.angular_sum(args[0], args[1], off, n_max, backend=backend)
    assert out.dtype == dtype and out.shape == ref.shape
    assert_close(out, ref, dtype, what=f"{backend} angular_sum")
    adj = K.angular_sum_edge_grads(grad.to(dev, dtype), *args, off, backend=backend)
    assert_close(adj, ref_adj, dtype, what=f"{backend} edge grads")
    jac = K.angular_sum_jacobian(*args, off, n_max, backend=backend)
    assert_close(jac, ref_jac, dtype, what=f"{backend} jacobian")


@pytest.mark.parametrize("backend", ["torch"] + fast_backends())
def test_empty_and_lonely_inputs(backend):
    dev = device_for(backend)
    z = lambda *s: torch.zeros(s, dtype=F64, device=dev)  # noqa: E731
    assert K.angular_sum(z(0, 3), z(0, 2), torch.zeros(1, dtype=torch.long, device=dev), 3,
                         backend=backend).shape == (0, 2, 4)
    none = torch.zeros(4, dtype=torch.long, device=dev)  # 3 centres, no edges
    assert torch.all(K.angular_sum(z(0, 3), z(0, 2), none, 3, backend=backend) == 0)
    assert K.angular_sum_edge_grads(z(3, 2, 4), z(0, 3), z(0, 2), z(0, 2), none, backend=backend).shape == (0, 3)
    assert K.angular_sum_jacobian(z(0, 3), z(0, 2), z(0, 2), none, 3, backend=backend).shape == (0, 2, 4, 3)
    # one edge per centre: no pair, zeros everywhere
    single = torch.tensor([0, 1, 2], device=dev)
    v = torch.tensor([[1.0, 0, 0], [0, 2.0, 0]], dtype=F64, device=dev)
    w = torch.ones(2, 1, dtype=F64, device=dev)
    assert torch.all(K.angular_sum(v, w, single, 2, backend=backend) == 0)
    assert torch.all(K.angular_sum_edge_grads(z(2, 1, 3), v, w, w, single, backend=backend) == 0)
    assert torch.all(K.angular_sum_jacobian(v, w, w, single, 2, backend=backend) == 0)


def test_bad_inputs():
    v, w, dw, off = random_case(0, 3, 3, 2)
    with pytest.raises(TypeError, match="vectors must be a floating-point"):
        K.angular_sum(v.long(), w, off, 2)
    with pytest.raises(ValueError, match="weights must be"):
        K.angular_sum(v, w[:-1], off, 2)
    with pytest.raises(ValueError, match="n_max"):
        K.angular_sum(v, w, off, -1)
    with pytest.raises(ValueError, match="offsets"):
        K.angular_sum(v, w, off.flip(0), 2)
    with pytest.raises(ValueError, match="dweights"):
        K.angular_sum_jacobian(v, w, dw[:, :1], off, 2)
    with pytest.raises(ValueError, match="grad must be"):
        K.angular_sum_edge_grads(torch.zeros(2, 2, 3, dtype=F64), v, w, dw, off)


def test_array_likes_and_autograd_guard():
    v, w, dw, off = random_case(1, 4, 4, 1)
    ref = K.angular_sum(v, w, off, 2, backend="torch")
    assert_close(K.angular_sum(v.tolist(), w.numpy(), off.tolist(), 2, backend="numba"), ref, F64, what="array-likes")
    with pytest.raises(K.BackendUnavailableError, match="requires grad"):
        K.angular_sum(v.clone().requires_grad_(True), w, off, 2, backend="numba")


def test_triton_kernels_compile_for_sm90():
    compile_check_sm90("""
        from acepy.kernels.triton_gpu import angular as A
        for ft in ("*fp64", "*fp32"):
            for block, block_c in ((16, 2), (32, 2), (16, 4)):
                consts = dict(N_MAX=7, BLOCK=block, BLOCK_C=block_c)
                compile_sm90(A._angular_sum_kernel, dict(v_ptr=ft, w_ptr=ft, off_ptr="*i64", out_ptr=ft, C="i32"),
                             dict(consts, BLOCK_N=8))
                compile_sm90(A._edge_grads_kernel, dict(g_ptr=ft, v_ptr=ft, w_ptr=ft, dw_ptr=ft, off_ptr="*i64",
                                                        out_ptr=ft, C="i32"), consts)
                compile_sm90(A._jacobian_kernel, dict(v_ptr=ft, w_ptr=ft, dw_ptr=ft, off_ptr="*i64", out_ptr=ft,
                                                      C="i32"), dict(consts, BLOCK_N=8))
    """)
