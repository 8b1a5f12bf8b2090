"""The sparse product contraction of the ACE basis and its adjoint: plain complex loops, the
reference's autograd, finite differences, and every backend against the reference."""


import numpy as np
import pytest
import torch

from acepy.kernels import ProductBasisPlan, encode_factor, product_basis, product_basis_adjoint
from conftest import assert_close, compile_check_sm90, device_for, fast_backends


def random_problem(rng, n, h, group_sizes, rmax, p, interior_padding=False):
    """Atoms in groups, terms of rank 1..rmax (trailing -1 padding), random conj/neg flags, some
    terms repeating a column, and some groups without terms."""
    group_offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(group_sizes)]))
    s = int(group_offsets[-1])
    columns = rng.integers(0, h, (s, rmax))
    if rmax > 1:  # duplicate columns within a term (with other flags, drawn below)
        dup = rng.random(s) < 0.3
        columns[dup, 1] = columns[dup, 0]
    codes = 4 * columns + 2 * rng.integers(0, 2, (s, rmax)) + rng.integers(0, 2, (s, rmax))
    rank = rng.integers(1, rmax + 1, s)
    codes[np.arange(rmax)[None, :] >= rank[:, None]] = -1
    if interior_padding and rmax > 2:
        codes[rng.random((s, rmax)) < 0.2] = -1
    a_re, a_im = (torch.as_tensor(rng.normal(size=(n, h))) for _ in range(2))
    group = torch.as_tensor(rng.integers(0, len(group_sizes), n))
    coeff = torch.as_tensor(rng.normal(size=(s, p)))
    w_rho = torch.as_tensor(rng.normal(size=(n, p)))
    return a_re, a_im, group, group_offsets, torch.as_tensor(codes), coeff, w_rho


def python_rho(a_re, a_im, group, group_offsets, codes, coeff):
    """Python complex arithmetic, term by term: an oracle independent of the reference."""
    a = a_re.numpy() + 1j * a_im.numpy()
    rho = np.zeros((a.shape[0], coeff.shape[1]))
    for i in range(a.shape[0]):
        g = int(group[i])
        for s in range(int(group_offsets[g]), int(group_offsets[g + 1])):
            prod = 1.0 + 0j
            for c in codes[s].tolist():
                if c < 0:
                    continue
                f = a[i, c // 4]
                f = f.conjugate() if (c // 2) % 2 else f
                prod *= -f if c % 2 else f
            rho[i] += coeff[s].numpy() * prod.real
    return torch.as_tensor(rho)


CASES = {
    "one": (1, 1, [3], 1, 1),
    "empty-group": (6, 7, [5, 0, 40], 4, 3),
    "rank6": (5, 10, [17, 9], 6, 2),
    "rank8-wideP": (4, 5, [30], 8, 33),
    "long": (3, 12, [150], 3, 1),  # more terms than one block
}


@pytest.mark.parametrize("case", list(CASES))
def test_backends_agree_with_reference(backend, dtype, case):
    n, h, sizes, rmax, p = CASES[case]
    rng = np.random.default_rng()
    # the reference sees the same rounded inputs as the backend
    a_re, a_im, group, goff, codes, coeff, w_rho = (
        t.to(dtype).double() if t.is_floating_point() else t for t in random_problem(rng, n, h, sizes, rmax, p))
    plan = ProductBasisPlan(codes, coeff, goff)
    rho_ref = product_basis(a_re, a_im, group, plan, backend="torch")
    g_ref = product_basis_adjoint(a_re, a_im, group, plan, w_rho, backend="torch")
    d = device_for(backend)
    c = lambda t: t.to(d, dtype) if t.is_floating_point() else t.to(d)  # noqa: E731
    args = [c(a_re), c(a_im), c(group), plan.to(d, dtype)]
    rho = product_basis(*args, backend=backend)
    assert rho.dtype == dtype and rho.shape == (n, p)
    assert_close(rho, rho_ref, dtype, what=f"{backend} rho")
    g = product_basis_adjoint(*args, c(w_rho), backend=backend)
    for q, what in enumerate(("re", "im")):
        assert g[q].dtype == dtype and g[q].shape == (n, h)
        assert_close(g[q], g_ref[q], dtype, what=f"{backend} adjoint {what}")


@pytest.mark.parametrize("split", [1, 3])
def test_triton_term_slices(split):
    """Several programs per atom (few atoms, many terms on a GPU) add their partial sums atomically."""
    if "triton" not in fast_backends():
        pytest.skip("Triton cannot run here")
    from acepy.kernels.triton_gpu import product_basis as T

    rng = np.random.default_rng()
    a_re, a_im, group, goff, codes, coeff, w_rho = random_problem(rng, 3, 6, [200, 0, 90], 4, 2)
    d = device_for("triton")
    plan = ProductBasisPlan(codes, coeff, goff)
    args = [a_re.to(d), a_im.to(d), group.to(d), plan.to(d)]
    rho = T.product_basis(*args, split=split)
    assert_close(rho, product_basis(a_re, a_im, group, plan, backend="torch"), torch.float64,
                 what=f"rho split {split}")
    g = T.product_basis_adjoint(*args, w_rho.to(d), split=split)
    g_ref = product_basis_adjoint(a_re, a_im, group, plan, w_rho, backend="torch")
    assert_close(g[0], g_ref[0], torch.float64, what=f"adjoint re split {split}")
    assert_close(g[1], g_ref[1], torch.float64, what=f"adjoint im split {split}")


def test_reference_against_python_loops_and_a_hand_value():
    rng = np.random.default_rng()
    for interior in (False, True):
        problem = random_problem(rng, 7, 5, [11, 0, 6], 5, 3, interior_padding=interior)
        a_re, a_im, group, goff, codes, coeff = problem[:6]
        assert_close(product_basis(a_re, a_im, group, ProductBasisPlan(codes, coeff, goff), backend="torch"),
                     python_rho(a_re, a_im, group, goff, codes, coeff), torch.float64, what="reference")
    # Re( conj(a0) * (-a1) * a1 ) with a0 = 2 + i, a1 = 1 - 3i: conj(a0) a1^2 = (2 - i)(-8 - 6i) = -22 - 4i
    a_re = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
    a_im = torch.tensor([[1.0, -3.0]], dtype=torch.float64)
    codes = torch.tensor([[encode_factor(0, True, False), encode_factor(1, False, True), encode_factor(1, False, False),
                           -1]])
    assert codes.tolist() == [[2, 5, 4, -1]]
    for backend in ("torch", "numba"):
        plan = ProductBasisPlan(codes, torch.tensor([[1.0, 0.5]], dtype=torch.float64), torch.tensor([0, 1]))
        rho = product_basis(a_re, a_im, torch.tensor([0]), plan, backend=backend)
        assert torch.allclose(rho, torch.tensor([[22.0, 11.0]], dtype=torch.float64), rtol=0, atol=1e-13), backend


def test_interior_padding_is_a_factor_one(backend):
    """A -1 anywhere in a term is the factor 1 on every backend."""
    rng = np.random.default_rng()
    a_re, a_im, group, goff, codes, coeff, w_rho = random_problem(rng, 4, 6, [25, 8], 5, 2, interior_padding=True)
    d = device_for(backend)
    plan = ProductBasisPlan(codes, coeff, goff)
    args = [a_re.to(d), a_im.to(d), group.to(d), plan.to(d)]
    assert_close(product_basis(*args, backend=backend), python_rho(a_re, a_im, group, goff, codes, coeff),
                 torch.float64, what=backend)
    g_ref = product_basis_adjoint(a_re, a_im, group, plan, w_rho, backend="torch")
    g = product_basis_adjoint(*args, w_rho.to(d), backend=backend)
    assert_close(g[0], g_ref[0], torch.float64, what=f"{backend} adjoint re")
    assert_close(g[1], g_ref[1], torch.float64, what=f"{backend} adjoint im")


def test_adjoint_matches_finite_differences():
    rng = np.random.default_rng()
    a_re, a_im, group, goff, codes, coeff, w_rho = random_problem(rng, 6, 8, [40, 3, 0], 6, 3)
    args = (group, ProductBasisPlan(codes, coeff, goff))
    g_re, g_im = product_basis_adjoint(a_re, a_im, *args, w_rho, backend="torch")
    g_nb = product_basis_adjoint(a_re, a_im, *args, w_rho, backend="numba")
    assert_close(g_nb[0], g_re, torch.float64, what="numba re")
    assert_close(g_nb[1], g_im, torch.float64, what="numba im")

    def energy(x_re, x_im):
        return float((product_basis(x_re, x_im, *args, backend="torch") * w_rho).sum())

    eps = 1e-6
    for _ in range(3):
        d_re, d_im = torch.randn_like(a_re), torch.randn_like(a_im)
        fd = (energy(a_re + eps * d_re, a_im + eps * d_im) - energy(a_re - eps * d_re, a_im - eps * d_im)) / (2 * eps)
        exact = float((g_re * d_re).sum() + (g_im * d_im).sum())
        assert abs(fd - exact) <= 1e-6 * max(1.0, abs(exact)), (fd, exact)


def test_reference_is_twice_differentiable():
    rng = np.random.default_rng()
    a_re, a_im, group, goff, codes, coeff, w_rho = random_problem(rng, 3, 4, [12], 3, 2)
    x = a_re.clone().requires_grad_()
    rho = product_basis(x, a_im, group, ProductBasisPlan(codes, coeff, goff), backend="torch")
    (g,) = torch.autograd.grad((rho * w_rho).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g[0, 0], x)
    assert torch.isfinite(h).all() and h.shape == x.shape


def test_empty_inputs(backend):
    d = device_for(backend)
    f64 = dict(dtype=torch.float64, device=d)
    lng = dict(dtype=torch.long, device=d)
    rng = np.random.default_rng()
    # no atoms
    plan = ProductBasisPlan(torch.tensor([[0, -1], [4, 8]], device=d), torch.ones(2, 5, **f64),
                            torch.tensor([0, 2], device=d))
    rho = product_basis(torch.zeros(0, 3, **f64), torch.zeros(0, 3, **f64), torch.zeros(0, **lng), plan,
                        backend=backend)
    assert rho.shape == (0, 5)
    # no terms at all, and atoms whose groups have no terms
    a = torch.ones(3, 4, **f64)
    plan = ProductBasisPlan(torch.zeros(0, 2, **lng), torch.zeros(0, 2, **f64), torch.zeros(2, **lng))
    rho = product_basis(a, a, torch.zeros(3, **lng), plan, backend=backend)
    assert rho.shape == (3, 2) and not rho.any()
    a_re, a_im, group, goff, codes, coeff, w_rho = random_problem(rng, 5, 4, [0, 6, 0], 3, 2)
    group = torch.tensor([0, 2, 0, 2, 2])
    args = [a_re.to(d), a_im.to(d), group.to(d), ProductBasisPlan(codes, coeff, goff).to(d)]
    assert not product_basis(*args, backend=backend).any()
    g = product_basis_adjoint(*args, w_rho.to(d), backend=backend)
    assert not g[0].any() and not g[1].any()
    # no output columns
    args[-1] = ProductBasisPlan(codes, coeff[:, :0], goff).to(d)
    assert product_basis(*args, backend=backend).shape == (5, 0)
    # RMAX = 0: every term is the empty product 1
    group = torch.tensor([1, 0, 1, 1, 2], device=d)
    args = [a_re.to(d), a_im.to(d), group, ProductBasisPlan(torch.zeros(6, 0, **lng), coeff, goff).to(d)]
    assert_close(product_basis(*args, backend=backend), coeff.sum(0).expand(5, 2) * (group == 1)[:, None].cpu(),
                 torch.float64, what="rank 0")
    g = product_basis_adjoint(*args, w_rho.to(d), backend=backend)
    assert not g[0].any() and not g[1].any()


def test_bad_inputs():
    rng = np.random.default_rng(0)
    a_re, a_im, group, goff, codes, coeff, w_rho = random_problem(rng, 4, 5, [6, 3], 3, 2)

    def call(**kw):
        args = dict(a_re=a_re, a_im=a_im, group=group, group_offsets=goff, codes=codes, coeff=coeff)
        args.update(kw)
        plan = ProductBasisPlan(args.pop("codes"), args.pop("coeff"), args.pop("group_offsets"))
        return product_basis(plan=plan, **args)

    with pytest.raises(ValueError, match="a_re / a_im"):
        call(a_im=a_im[:, :3])
    with pytest.raises(ValueError, match="a_re / a_im"):
        call(a_re=a_re[0])
    with pytest.raises(ValueError, match="group must be"):
        call(group=group[:3])
    with pytest.raises(ValueError, match="codes must be"):
        call(coeff=coeff[:5])
    with pytest.raises(ValueError, match="codes must be"):
        call(codes=codes[:, 0])
    with pytest.raises(ValueError, match="group_offsets"):
        call(group_offsets=torch.tensor([0, 6, 8]))
    with pytest.raises(ValueError, match="group_offsets"):
        call(group_offsets=torch.tensor([0, 7, 6, 9]))
    with pytest.raises(IndexError, match="group must lie"):
        call(group=torch.tensor([0, 1, 2, 0]))
    with pytest.raises(IndexError, match="group must lie"):
        call(group=torch.tensor([0, -1, 1, 0]))
    bad = codes.clone()
    bad[2, 0] = 4 * 5  # column 5 of a row of 5
    with pytest.raises(IndexError, match="factor codes"):
        call(codes=bad)
    bad[2, 0] = -2
    with pytest.raises(IndexError, match="factor codes"):
        call(codes=bad)
    with pytest.raises(ValueError, match="w_rho"):
        product_basis_adjoint(a_re, a_im, group, ProductBasisPlan(codes, coeff, goff), w_rho[:, :1])
    with pytest.raises(ValueError, match="devices"):
        call(codes=codes.to("meta"))


def test_plan_shapes_properties_and_validation():
    rng = np.random.default_rng(1)
    _, _, _, goff, codes, coeff, _ = random_problem(rng, 4, 5, [6, 0, 3], 3, 2)
    plan = ProductBasisPlan(codes, coeff, goff)
    assert (plan.n_terms, plan.rank_max, plan.n_densities, plan.n_groups) == (9, 3, 2, 3)
    assert plan.validate(5) is plan
    assert plan.max_group_terms == 6
    expected_length = [max([t + 1 for t, c in enumerate(row) if c >= 0], default=0) for row in codes.tolist()]
    assert plan.term_length.tolist() == expected_length
    # array-likes, converted once: int64 codes and offsets, contiguous
    from_lists = ProductBasisPlan(codes.tolist(), coeff.numpy(), goff.tolist())
    assert from_lists.codes.dtype == from_lists.group_offsets.dtype == torch.int64
    assert from_lists.coeff.dtype == torch.float64 and torch.equal(from_lists.codes, codes)
    narrow = ProductBasisPlan(codes.to(torch.int32), coeff, goff.to(torch.int16))
    assert narrow.codes.dtype == narrow.group_offsets.dtype == torch.int64
    # the value checks are validate's, not the constructor's
    unchecked = ProductBasisPlan(codes, coeff, torch.tensor([0, 7, 6, 9]))
    with pytest.raises(ValueError, match="group_offsets must start at 0, be non-decreasing and end at S=9"):
        unchecked.validate(5)
    with pytest.raises(ValueError, match="group_offsets"):
        ProductBasisPlan(codes, coeff, torch.tensor([0, 6, 8])).validate(5)
    one = torch.ones(1, 1, dtype=torch.float64)
    ProductBasisPlan([[-1, 15]], one, [0, 1]).validate(4)  # column 3, conjugated and negated: fine
    for bad in (16, -2):  # column 4 of a row of 4; no such flag
        with pytest.raises(IndexError, match=r"factor codes must be -1 or 4\*h \+ flags with h < H=4"):
            ProductBasisPlan([[0, bad]], one, [0, 1]).validate(4)


def test_plan_refuses_wrong_dtypes_and_shapes():
    rng = np.random.default_rng(2)
    _, _, _, goff, codes, coeff, _ = random_problem(rng, 4, 5, [6, 3], 3, 2)
    with pytest.raises(TypeError, match="codes must be an integer tensor, got dtype torch.float64"):
        ProductBasisPlan(codes.double(), coeff, goff)
    with pytest.raises(TypeError, match="group_offsets must be an integer tensor, got dtype torch.float32"):
        ProductBasisPlan(codes, coeff, goff.float())
    with pytest.raises(TypeError, match="coeff must be a floating-point tensor, got dtype torch.int64"):
        ProductBasisPlan(codes, coeff.long(), goff)
    with pytest.raises(ValueError, match="codes must be"):
        ProductBasisPlan(codes, coeff[:5], goff)
    with pytest.raises(ValueError, match="group_offsets must be"):
        ProductBasisPlan(codes, coeff, goff[None])
    with pytest.raises(ValueError, match="devices"):
        ProductBasisPlan(codes.to("meta"), coeff, goff)
    a = torch.zeros(4, 5, dtype=torch.float64)
    with pytest.raises(TypeError, match="plan must be a ProductBasisPlan, got tuple"):
        product_basis(a, a, torch.zeros(4, dtype=torch.long), (codes, coeff, goff))
    with pytest.raises(TypeError, match="dtype must be floating"):
        ProductBasisPlan(codes, coeff, goff).to(dtype=torch.int64)


def test_plan_to_keeps_itself_and_its_caches():
    rng = np.random.default_rng(3)
    _, _, _, goff, codes, coeff, _ = random_problem(rng, 4, 5, [6, 3], 3, 2)
    plan = ProductBasisPlan(codes, coeff, goff).validate(5)
    assert plan.to("cpu", torch.float64) is plan and plan.to() is plan
    f32 = plan.to(dtype=torch.float32)
    assert f32.coeff.dtype == torch.float32 and f32.codes is plan.codes and f32.group_offsets is plan.group_offsets
    # the value-derived quantities carry over, so that moving a plan reads no values again
    assert f32.__dict__["max_group_terms"] == 6
    meta = plan.to("meta")
    assert meta.codes.device.type == meta.coeff.device.type == "meta" and meta.max_group_terms == 6


def test_validated_plan_with_check_false_gives_the_same(backend):
    """The model's pattern: validate the plan once, then every chunk runs with check=False."""
    rng = np.random.default_rng()
    a_re, a_im, group, goff, codes, coeff, w_rho = random_problem(rng, 9, 6, [30, 4, 0], 4, 3)
    d = device_for(backend)
    plan = ProductBasisPlan(codes, coeff, goff).to(d).validate(6)
    args = (a_re.to(d), a_im.to(d), group.to(d), plan)
    assert_close(product_basis(*args, backend=backend, check=False),
                 product_basis(a_re, a_im, group, plan.to("cpu"), backend="torch"), torch.float64, what="rho")
    g = product_basis_adjoint(*args, w_rho.to(d), backend=backend, check=False)
    g_ref = product_basis_adjoint(a_re, a_im, group, plan.to("cpu"), w_rho, backend="torch")
    assert_close(g[0], g_ref[0], torch.float64, what="adjoint re")
    assert_close(g[1], g_ref[1], torch.float64, what="adjoint im")


COMPILE_BODY = """
    from acepy.kernels.triton_gpu import product_basis as P

    for ft in ("*fp64", "*fp32"):
        common = dict(are_ptr=ft, aim_ptr=ft, grp_ptr="*i64", goff_ptr="*i64", codes_ptr="*i64", coeff_ptr=ft)
        for rmax in (0, 3, 8):
            compile_sm90(P._product_kernel, dict(common, rho_ptr=ft, H="i32", P="i32", SPLIT="i32"),
                         dict(RMAX=rmax, BLOCK_S=32, BLOCK_P=32, ATOMIC=rmax == 3))
            compile_sm90(P._adjoint_kernel, dict(common, w_ptr=ft, gre_ptr=ft, gim_ptr=ft, H="i32", P="i32",
                                                 SPLIT="i32"),
                         dict(RMAX=rmax, R=triton.next_power_of_2(max(rmax, 1)), BLOCK_S=32, BLOCK_P=16))
"""


def test_triton_kernels_compile_for_sm90():
    """The interpreter runs numpy: compile the kernels for real (float32 and float64, sm_90)."""
    compile_check_sm90(COMPILE_BODY)


def test_rank3_terms_sharing_prefixes(backend):
    """Many rank-3 terms over few columns (so that sorted terms share their first two factors in
    runs, also runs of one term, and repeat a code within a term), mixed with terms of other
    ranks and interior padding, in two groups: the Numba kernels' shared-prefix path against
    Python complex loops (rho) and the reference's adjoint."""
    rng = np.random.default_rng()
    n, h, sizes, p = 7, 3, [120, 45], 2
    a_re, a_im, group, goff, codes, coeff, w_rho = random_problem(rng, n, h, sizes, 4, p)
    codes = codes.clone()
    rank3 = torch.as_tensor(rng.random(codes.shape[0]) < 0.7)
    codes[rank3, 3] = -1  # most terms rank 3, in random order between the others
    codes[rank3, :3] = torch.as_tensor(4 * rng.integers(0, h, (int(rank3.sum()), 3))
                                       + rng.integers(0, 4, (int(rank3.sum()), 3)))
    codes[~rank3 & torch.as_tensor(rng.random(codes.shape[0]) < 0.3), 1] = -1  # rank 3 with a hole: not a triple
    plan = ProductBasisPlan(codes, coeff, goff)
    d = device_for(backend)
    args = [a_re.to(d), a_im.to(d), group.to(d), plan.to(d)]
    assert_close(product_basis(*args, backend=backend), python_rho(a_re, a_im, group, goff, codes, coeff),
                 torch.float64, what=f"{backend} rho")
    g_ref = product_basis_adjoint(a_re, a_im, group, plan, w_rho, backend="torch")
    g = product_basis_adjoint(*args, w_rho.to(d), backend=backend)
    for q, what in enumerate(("re", "im")):
        assert_close(g[q], g_ref[q], torch.float64, what=f"{backend} adjoint {what}")


def shared_prefix_problem(rng, n, h, sizes, p):
    """Terms of rank 0..5 over few columns (many share their sorted factors but the last, in runs
    of several lengths), trailing and interior padding, in several groups (species)."""
    a_re, a_im, group, goff, codes, coeff, w_rho = random_problem(rng, n, h, sizes, 6, p, interior_padding=True)
    codes = codes.clone()
    s = codes.shape[0]
    rank = torch.as_tensor(rng.choice([0, 1, 2, 3, 3, 3, 4, 5], s))
    codes[:, :5] = torch.as_tensor(4 * rng.integers(0, h, (s, 5)) + rng.integers(0, 4, (s, 5)))
    codes[torch.arange(6)[None, :] >= rank[:, None]] = -1
    holes = torch.as_tensor(rng.random(codes.shape) < 0.1)  # a -1 inside: the factor 1
    codes[holes & (torch.arange(6)[None, :] < 5)] = -1
    codes = codes[:, torch.as_tensor(rng.permutation(6))]  # padding anywhere
    return a_re, a_im, group, goff, codes, coeff, w_rho


def test_prefix_plan_layout():
    """Every term once, as its prefix times its last factor with its coefficients; the runs
    column-major (diagonals shrink, term j of a diagonal has its block's prefix j)."""
    from acepy.kernels.numba_cpu.product_basis import prefix_plan

    rng = np.random.default_rng()
    _, _, _, goff, codes, coeff, _ = shared_prefix_problem(rng, 3, 3, [150, 0, 60], 2)
    block_group, block_m, block_pre, block_diag, diag_start, pre_codes, last, coeff_t, const, width = prefix_plan(
        ProductBasisPlan(codes, coeff, goff))
    assert pre_codes.dtype == last.dtype == np.uint32
    for g in range(3):
        expect, got = [], []
        for s in range(int(goff[g]), int(goff[g + 1])):
            factors = tuple(sorted(c for c in codes[s].tolist() if c >= 0))
            if factors:
                expect.append((factors, tuple(coeff[s].tolist())))
        for b in range(block_group[g], block_group[g + 1]):
            m, q0 = block_m[b], block_pre[b]
            sizes = np.diff(diag_start[block_diag[b]:block_diag[b + 1] + 1])
            assert sizes[0] == block_pre[b + 1] - q0 and (np.diff(sizes) <= 0).all()
            for d in range(block_diag[b], block_diag[b + 1]):
                for j in range(diag_start[d + 1] - diag_start[d]):
                    s = diag_start[d] + j
                    prefix = pre_codes[:m, q0 + j].tolist()
                    assert prefix == sorted(prefix) and (not prefix or prefix[-1] <= last[s])
                    got.append((tuple(prefix) + (int(last[s]),), tuple(coeff_t[:, s].tolist())))
        assert sorted(got) == sorted(expect)
        n_t = diag_start[block_diag[block_group[g + 1]]] - diag_start[block_diag[block_group[g]]]
        assert width >= n_t and width >= block_pre[block_group[g + 1]] - block_pre[block_group[g]]
        rank0 = [s for s in range(int(goff[g]), int(goff[g + 1])) if (codes[s] < 0).all()]
        assert np.allclose(const[g], coeff[rank0].sum(0).numpy(), rtol=0, atol=1e-14)


def test_per_atom_functions_against_reference():
    """The per-atom functions as the fused kernel calls them: the prefix plan's densities, then its
    adjoint reusing their prefix products (``ab_ready``), on terms of rank 0..5 with padding
    anywhere, in several species, against the reference to 1e-12."""
    import numba

    from acepy.kernels.numba_cpu import product_basis as nb

    @numba.njit
    def prefix_driver(a_re, a_im, group, pp, w_rho, rho, ga_re, ga_im):
        h = a_re.shape[1]
        work = np.empty((5, nb._prefix_width_jit(pp)))
        row_re, row_im = np.empty(4 * h), np.empty(4 * h)
        for i in range(a_re.shape[0]):
            grad_re, grad_im = np.zeros(4 * h), np.zeros(4 * h)
            nb._load_signed_row_jit(a_re, a_im, i, row_re, row_im)
            nb._atom_densities_prefix_jit(row_re, row_im, group[i], pp, work, rho[i])
            nb._atom_adjoint_prefix_jit(row_re, row_im, group[i], pp, work, True, w_rho[i], grad_re, grad_im)
            nb._fold_gradient_jit(grad_re, grad_im, ga_re, ga_im, i)

    rng = np.random.default_rng()
    a_re, a_im, group, goff, codes, coeff, w_rho = shared_prefix_problem(rng, 9, 4, [0, 300, 90], 3)
    plan = ProductBasisPlan(codes, coeff, goff)
    rho_ref = product_basis(a_re, a_im, group, plan, backend="torch")
    g_ref = product_basis_adjoint(a_re, a_im, group, plan, w_rho, backend="torch")
    args = (a_re.numpy(), a_im.numpy(), group.numpy())
    rho, ga_re, ga_im = np.full((9, 3), np.nan), np.full((9, 4), np.nan), np.full((9, 4), np.nan)
    prefix_driver(*args, nb.prefix_plan(plan), w_rho.numpy(), rho, ga_re, ga_im)
    assert_close(torch.as_tensor(rho), rho_ref, torch.float64, what="prefix rho")
    assert_close(torch.as_tensor(ga_re), g_ref[0], torch.float64, what="prefix adjoint re")
    assert_close(torch.as_tensor(ga_im), g_ref[1], torch.float64, what="prefix adjoint im")


@pytest.mark.parametrize("n_k", [1, 3])
def test_tangents_against_forward_mode_autograd(n_k):
    """The forward-mode kernels of the Hessian-vector product (``ace_tangent_product.py``) on the
    prefix plan: the densities and their tangents, the adjoint and its tangent (with weight
    tangents), against torch.func.jvp of the float64 reference, on terms of rank 0..5 (prefixes of
    every length, repeated factors) with padding anywhere, in several species, to 1e-12."""
    from acepy.kernels.numba_cpu.ace_tangent_product import dual_adjoint, product_jvp

    rng = np.random.default_rng()
    a_re, a_im, group, goff, codes, coeff, w_rho = shared_prefix_problem(rng, 11, 5, [0, 400, 120], 3)
    plan = ProductBasisPlan(codes, coeff, goff)
    da_re, da_im = (torch.as_tensor(rng.normal(size=(n_k,) + a_re.shape)) for _ in range(2))
    dw_rho = torch.as_tensor(rng.normal(size=(n_k,) + w_rho.shape))

    def densities(x_re, x_im):
        return product_basis(x_re, x_im, group, plan, backend="torch")

    def adjoint(x_re, x_im, w):  # d/dA sum_p w_p rho_p, by autograd of the reference's densities
        return torch.func.grad(lambda y_re, y_im: (densities(y_re, y_im) * w).sum(), argnums=(0, 1))(x_re, x_im)

    rho, drho = product_jvp(a_re.numpy(), a_im.numpy(), da_re.numpy(), da_im.numpy(), group.numpy(), plan)
    ga_re, ga_im, dga_re, dga_im = dual_adjoint(a_re.numpy(), a_im.numpy(), da_re.numpy(), da_im.numpy(),
                                                group.numpy(), plan, w_rho.numpy(), dw_rho.numpy())
    assert_close(torch.as_tensor(rho), densities(a_re, a_im), torch.float64, what="rho")
    g_ref = product_basis_adjoint(a_re, a_im, group, plan, w_rho, backend="torch")
    assert_close(torch.as_tensor(ga_re), g_ref[0], torch.float64, what="adjoint re")
    assert_close(torch.as_tensor(ga_im), g_ref[1], torch.float64, what="adjoint im")
    for k in range(n_k):
        _, ref = torch.func.jvp(densities, (a_re, a_im), (da_re[k], da_im[k]))
        assert_close(torch.as_tensor(drho[k]), ref, torch.float64, what=f"drho {k}")
        _, (ref_re, ref_im) = torch.func.jvp(adjoint, (a_re, a_im, w_rho), (da_re[k], da_im[k], dw_rho[k]))
        assert_close(torch.as_tensor(dga_re[k]), ref_re, torch.float64, what=f"adjoint tangent re {k}")
        assert_close(torch.as_tensor(dga_im[k]), ref_im, torch.float64, what=f"adjoint tangent im {k}")
