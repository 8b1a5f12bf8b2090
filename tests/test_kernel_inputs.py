"""What users pass to the public kernels, checked the same way for every kernel (one dispatch
prologue, ``kernels/backend.py``): array-likes are accepted, non-floating data and non-integer
indices are refused naming the argument, tensors that require grad are refused by the compiled
(non-differentiable) backends, and ``check=False`` reads no tensor values (no host sync)."""

import re

import numpy as np
import pytest
import torch

import acepy.kernels as K
from acepy.kernels import BackendUnavailableError, ProductBasisPlan
from conftest import assert_close, device_for, fast_backends

F64 = torch.float64


def _spline():
    grid = K.SplineGrid.from_spacing(4.0, 0.1)
    rng = np.random.default_rng(0)
    vals = [rng.normal(size=(grid.nlut, 3)) for _ in range(2)]
    table = K.build_spline_table([grid, grid], vals, vals)
    return K.spline_eval, dict(table=table, r=torch.tensor([0.5, 1.55, 3.02], dtype=F64),
                               table_index=torch.tensor([0, 1, 0]), order=2)


def _chebyshev():
    return K.chebyshev, dict(r=torch.tensor([0.3, 1.7, 4.2], dtype=F64), n_max=4, transform="linear", rcut=5.0)


def _vectors(e=5, seed=1):
    return torch.as_tensor(np.random.default_rng(seed).normal(size=(e, 3)))


def _sph_harm():
    return K.spherical_harmonics, dict(vectors=_vectors(), lmax=3)


def _segment():
    return K.segment_sum, dict(values=torch.as_tensor(np.random.default_rng(2).normal(size=(5, 2))),
                               offsets=torch.tensor([0, 2, 2, 5]))


def _scatter():
    return K.scatter_forces_virials, dict(edge_grads=_vectors(4, 3), edge_vectors=_vectors(4, 4),
                                          centers=torch.tensor([0, 0, 1, 2]), neighbors=torch.tensor([1, 2, 0, 0]),
                                          edge_system=torch.tensor([0, 0, 0, 1]), n_atoms=3, n_systems=2)


def _graph(nrad=2, lmax=2):
    v = _vectors(4, 5)
    y_re, y_im, dy_re, dy_im = K.spherical_harmonics(v, lmax, backend="torch")
    radial = torch.as_tensor(np.random.default_rng(6).normal(size=(4, nrad, lmax + 1)))
    return dict(radial=radial, y_re=y_re, y_im=y_im, dy_re=dy_re, dy_im=dy_im, vectors=v,
                offsets=torch.tensor([0, 3, 4]), nbr_species=torch.tensor([0, 1, 1, 0]))


def _atomic_base():
    g = _graph()
    return K.atomic_base, dict(radial=g["radial"], y_re=g["y_re"], y_im=g["y_im"], offsets=g["offsets"],
                               nbr_species=g["nbr_species"], nspecies=2)


def _atomic_base_fused():
    g = _graph()
    return K.atomic_base, dict(radial=g["radial"], y_re=None, y_im=None, offsets=g["offsets"],
                               nbr_species=g["nbr_species"], nspecies=2, vectors=g["vectors"])


def _edge_grads():
    g = _graph()
    ga = torch.as_tensor(np.random.default_rng(7).normal(size=(2, 2, 2, 2, 6)))
    return K.atomic_base_edge_grads, dict(ga_re=ga[0], ga_im=ga[1], offsets=g["offsets"],
                                          nbr_species=g["nbr_species"], radial=g["radial"],
                                          dradial=g["radial"] * 0.5 + 1.0, y_re=g["y_re"], y_im=g["y_im"],
                                          dy_re=g["dy_re"], dy_im=g["dy_im"], vectors=g["vectors"])


def _plan():
    codes = torch.tensor([[0, -1, -1], [4, 9, -1], [2, 6, 11], [3, -1, -1]])
    coeff = torch.as_tensor(np.random.default_rng(8).normal(size=(4, 2)))
    return ProductBasisPlan(codes, coeff, torch.tensor([0, 3, 4]))


def _product():
    a = torch.as_tensor(np.random.default_rng(9).normal(size=(2, 3, 3)))
    return K.product_basis, dict(a_re=a[0], a_im=a[1], group=torch.tensor([1, 0, 0]), plan=_plan())


def _adjoint():
    fn, kw = _product()
    return K.product_basis_adjoint, dict(kw, w_rho=torch.as_tensor(np.random.default_rng(10).normal(size=(3, 2))))


# name -> (builder, floating arguments, index arguments, has a ``check`` keyword)
CASES = {
    "spline_eval": (_spline, ["r"], ["table_index"], True),
    "chebyshev": (_chebyshev, ["r"], [], False),
    "spherical_harmonics": (_sph_harm, ["vectors"], [], False),
    "segment_sum": (_segment, ["values"], ["offsets"], True),
    "scatter_forces_virials": (_scatter, ["edge_grads", "edge_vectors"], ["centers", "neighbors", "edge_system"],
                               True),
    "atomic_base": (_atomic_base, ["radial", "y_re", "y_im"], ["offsets", "nbr_species"], True),
    "atomic_base(vectors)": (_atomic_base_fused, ["radial", "vectors"], ["offsets", "nbr_species"], True),
    "atomic_base_edge_grads": (_edge_grads, ["ga_re", "ga_im", "radial", "dradial", "y_re", "y_im", "dy_re", "dy_im",
                                             "vectors"], ["offsets", "nbr_species"], True),
    "product_basis": (_product, ["a_re", "a_im"], ["group"], True),
    "product_basis_adjoint": (_adjoint, ["a_re", "a_im", "w_rho"], ["group"], True),
}
FLOAT_ARGS = [(case, arg) for case, (_, floats, _, _) in CASES.items() for arg in floats]
INDEX_ARGS = [(case, arg) for case, (_, _, indices, _) in CASES.items() for arg in indices]
CHECKED = [case for case, spec in CASES.items() if spec[3]]


def _outputs(out):
    """The output tensors of a kernel, flat (``None`` entries dropped)."""
    return [t for t in (out if isinstance(out, tuple) else (out,)) if t is not None]


def _same(actual, expected, what):
    actual, expected = _outputs(actual), _outputs(expected)
    assert len(actual) == len(expected), what
    for q, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == e.dtype, f"{what} output {q}: dtype {a.dtype} != {e.dtype}"
        assert_close(a, e, torch.float64, what=f"{what} output {q}")


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("form", ["numpy", "list"])
def test_array_likes_are_accepted(case, backend, form):
    fn, kw = CASES[case][0]()
    expected = fn(**kw, backend="torch")
    convert = (lambda t: t.numpy()) if form == "numpy" else (lambda t: t.tolist())
    given = {k: convert(v) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
    _same(fn(**given, backend=backend), expected, f"{case} from {form} on {backend}")


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_a_scalar_is_one_distance(backend):
    fn, kw = _chebyshev()
    _same(K.chebyshev(**dict(kw, r=1.7), backend=backend), K.chebyshev(**dict(kw, r=torch.tensor([1.7], dtype=F64))),
          "chebyshev of a scalar")
    fn, kw = _spline()
    one = K.spline_eval(**dict(kw, r=torch.tensor([1.55], dtype=F64), table_index=torch.tensor([1])))
    _same(K.spline_eval(**dict(kw, r=1.55, table_index=1), backend=backend), one, "spline_eval of a scalar")
    _same(K.spline_eval(**dict(kw, r=np.float64(1.55), table_index=np.int64(1)), backend=backend), one,
          "spline_eval of numpy scalars")


def test_integer_distances_no_longer_give_integer_chebyshev():
    """chebyshev(tensor([1, 2]), 3, ...) used to return integer rows [1, 0, 0, 0]."""
    with pytest.raises(TypeError, match=r"chebyshev: r must be a floating-point tensor, got dtype torch\.int64"):
        K.chebyshev(torch.tensor([1, 2]), 3, transform="linear", rcut=5.0)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex128],
                         ids=["int64", "int32", "bool", "complex128"])
@pytest.mark.parametrize("case,arg", FLOAT_ARGS)
def test_non_floating_data_is_refused(case, arg, dtype):
    fn, kw = CASES[case][0]()
    kw[arg] = kw[arg].to(dtype)
    message = rf"\b{arg}\b must be a floating-point tensor, got dtype {re.escape(str(dtype))}"
    with pytest.raises(TypeError, match=message):
        fn(**kw)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bool], ids=["f64", "f32", "bool"])
@pytest.mark.parametrize("case,arg", INDEX_ARGS)
def test_non_integer_indices_are_refused(case, arg, dtype):
    fn, kw = CASES[case][0]()
    kw[arg] = kw[arg].to(dtype)
    with pytest.raises(TypeError, match=rf"\b{arg}\b is an index argument and must be an integer tensor, got dtype "
                                        rf"{re.escape(str(dtype))}"):
        fn(**kw)


@pytest.mark.parametrize("case,arg", INDEX_ARGS)
def test_narrow_integer_indices_are_accepted(case, arg):
    fn, kw = CASES[case][0]()
    expected = fn(**kw, backend="torch")
    kw[arg] = kw[arg].to(torch.int32)
    _same(fn(**kw), expected, f"{case} with int32 {arg}")


@pytest.mark.parametrize("backend", fast_backends())
@pytest.mark.parametrize("case,arg", FLOAT_ARGS)
def test_compiled_backends_refuse_tensors_that_require_grad(case, arg, backend):
    fn, kw = CASES[case][0]()
    expected = fn(**kw, backend="torch")
    kw = _on(kw, device_for(backend))
    kw[arg] = kw[arg].clone().requires_grad_()
    with pytest.raises(BackendUnavailableError,
                       match=rf"{arg} requires grad, but the {backend} kernels are not differentiable; use "
                             rf"backend='torch'"):
        fn(**kw, backend=backend)
    with torch.no_grad():  # nothing to differentiate: the values, from detached views
        _same(fn(**kw, backend=backend), expected, f"{case} under no_grad on {backend}")
    # the exact path takes them, and differentiates (the reference adjoint of the product basis
    # is autograd of the forward on detached inputs: first order only)
    out = _outputs(fn(**_on(kw, "cpu"), backend="torch"))
    if case != "product_basis_adjoint":
        assert any(t.requires_grad for t in out), f"{case}: no output depends on {arg} on the torch backend"


@pytest.mark.parametrize("backend", fast_backends())
def test_plan_coefficients_that_require_grad_are_refused(backend):
    fn, kw = _product()
    expected = K.product_basis(**kw, backend="torch")
    plan = kw["plan"]
    kw["plan"] = ProductBasisPlan(plan.codes, plan.coeff.clone().requires_grad_(), plan.group_offsets)
    assert K.product_basis(**kw, backend="torch").requires_grad
    kw = _on(kw, device_for(backend))
    with pytest.raises(BackendUnavailableError, match="coeff requires grad"):
        K.product_basis(**kw, backend=backend)
    with torch.no_grad():
        _same(K.product_basis(**kw, backend=backend), expected, f"under no_grad on {backend}")


class _Stub:
    """Stands in for every implementation module: records the call, returns sentinels."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def run(*args, **kwargs):
            self.calls.append(name)
            return (self,) * 4  # four: what spherical_harmonics returns, for the atomic base

        return run


def _on(kw, device):
    """The arguments on ``device`` (tensors, spline tables and plans; the rest as they are)."""
    movable = (torch.Tensor, K.SplineTable, ProductBasisPlan)
    return {k: v.to(device) if isinstance(v, movable) else v for k, v in kw.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_check_false_reads_no_tensor_values(case, monkeypatch):
    """Meta tensors have shapes and dtypes but no values: reading one raises. With check=False the
    whole prologue runs on them and reaches the implementation; with check=True the value checks
    read them (so they do run, and are what check=False skips)."""
    import acepy.kernels.backend as B

    fn, kw = CASES[case][0]()
    meta = _on(kw, "meta")
    stub = _Stub()
    monkeypatch.setattr(B, "implementation", lambda backend, primitive: stub)
    if CASES[case][3]:
        with pytest.raises((RuntimeError, NotImplementedError), match="meta"):
            fn(**meta, backend="torch")
        assert not stub.calls
        fn(**meta, backend="torch", check=False)
    else:  # no value checks at all: the prologue alone
        fn(**meta, backend="torch")
    assert stub.calls and stub.calls[-1] == fn.__name__


@pytest.mark.parametrize("backend", fast_backends())
@pytest.mark.parametrize("case", CHECKED)
def test_check_false_computes_the_same(case, backend):
    fn, kw = CASES[case][0]()
    _same(fn(**_on(kw, device_for(backend)), backend=backend, check=False), fn(**kw, backend="torch"),
          f"{case} check=False on {backend}")


def test_check_false_lets_an_out_of_range_distance_through():
    """The spline range check is what check=False skips (the caller has checked the distances)."""
    fn, kw = _spline()
    kw["r"] = torch.tensor([0.05, 1.0], dtype=F64)  # below the first node 0.1
    kw["table_index"] = torch.tensor([0, 0])
    with pytest.raises(K.SplineRangeError, match="edge 0"):
        fn(**kw)
    f, _, _ = fn(**kw, backend="torch", check=False)
    assert f.shape == (2, 3)


def test_array_likes_follow_the_tensor_arguments_device():
    fn, kw = _segment()
    kw["values"] = kw["values"].to("meta")
    kw["offsets"] = [0, 2, 2, 5]  # a list beside a meta tensor: converted onto meta, not left on the CPU
    out = K.segment_sum(**kw, backend="torch", check=False)
    assert out.device.type == "meta" and out.shape == (3, 2)


def test_objects_that_are_not_numbers_are_refused():
    with pytest.raises(TypeError, match="segment_sum: values must be a tensor or an array-like of numbers"):
        K.segment_sum(["a", "b"], [0, 2])
    with pytest.raises(TypeError, match="plan must be a ProductBasisPlan"):
        fn, kw = _product()
        plan = kw.pop("plan")
        K.product_basis(**kw, plan=(plan.codes, plan.coeff, plan.group_offsets))
    with pytest.raises(TypeError, match="table must be a SplineTable"):
        fn, kw = _spline()
        K.spline_eval(**dict(kw, table=kw["table"].coeffs))


def test_numba_reads_strided_radial_views_without_a_copy(monkeypatch):
    """The model's R_nl is a column slice of one spline evaluation: the Numba kernels read it as a
    strided view (a copy per chunk would cost more), while every other input reaches the kernel
    as the very tensor given (no conversion copies when dtypes and layouts already fit)."""
    from acepy.kernels.numba_cpu import atomic_base as N

    g = _graph()
    spline_out = torch.as_tensor(np.random.default_rng(11).normal(size=(4, 3 + 2 * 3 + 1)))
    radial = spline_out[:, 3:9].reshape(4, 2, 3)
    assert not radial.is_contiguous()
    seen = {}
    real = N.atomic_base

    def spy(radial_, y_re, y_im, offsets, nbr_species, nspecies, vectors=None):
        seen.update(radial=radial_, offsets=offsets, nbr_species=nbr_species, vectors=vectors)
        return real(radial_, y_re, y_im, offsets, nbr_species, nspecies, vectors=vectors)

    monkeypatch.setattr(N, "atomic_base", spy)
    out = K.atomic_base(radial, None, None, g["offsets"], g["nbr_species"], 2, vectors=g["vectors"], backend="numba")
    assert seen["radial"] is radial
    for name in ("offsets", "nbr_species", "vectors"):
        assert seen[name] is g[name], name
    ref = K.atomic_base(radial, None, None, g["offsets"], g["nbr_species"], 2, vectors=g["vectors"], backend="torch")
    _same(out, ref, "strided radial")


def test_other_backends_get_contiguous_inputs():
    """Triton (and Numba for everything but R_nl) index flat memory: strided inputs are copied."""
    from acepy.kernels.backend import prepare

    for backend in fast_backends():
        x = torch.zeros(4, 6, dtype=F64, device=device_for(backend))[:, ::2]
        call = prepare("f", "segment", backend, floats={"radial": x, "values": x}, numba_views=("radial",))
        assert call.values.is_contiguous()
        assert call.radial.is_contiguous() == (backend != "numba")
    x = torch.zeros(4, 6, dtype=F64)[:, ::2]
    call = prepare("f", "segment", "torch", floats={"values": x})
    assert call.values is x  # the reference takes any layout
