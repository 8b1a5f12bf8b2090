"""Generalized Clebsch-Gordan coefficients (acepy.coupling) against independent references:
sympy's Clebsch-Gordan coefficients, their orthogonality, rotation/reflection invariance of the
coupled products, and python-ace's own B-functions (its ``gen_cgs``)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from acepy.coupling import (
    clebsch_gordan,
    clebsch_gordan_exact,
    coupling_table,
    coupling_tree,
    expand_LS,
    generalized_cg,
    generalized_cg_exact,
    valid_LS,
)
from acepy.basis.evaluate import atomic_base, product_value


def test_clebsch_gordan_matches_sympy():
    from sympy.physics.quantum.cg import CG

    rng = np.random.default_rng()
    checked = 0
    while checked < 150:
        j1, j2 = (int(x) for x in rng.integers(0, 7, size=2))
        J = int(rng.integers(abs(j1 - j2), j1 + j2 + 1))
        m1, m2 = int(rng.integers(-j1, j1 + 1)), int(rng.integers(-j2, j2 + 1))
        if abs(m1 + m2) > J:
            continue
        ref = CG(j1, m1, j2, m2, J, m1 + m2).doit()
        sign, square = clebsch_gordan_exact(j1, m1, j2, m2, J, m1 + m2)
        assert sign * sign * square == ref**2  # exact, in rationals
        # correctly rounded: equal to the 50-digit value rounded to double
        assert clebsch_gordan(j1, m1, j2, m2, J, m1 + m2) == float(ref.evalf(50))
        checked += 1


@pytest.mark.parametrize("j1,j2", [(0, 3), (2, 2), (3, 4), (5, 2)])
def test_clebsch_gordan_orthonormal_exactly(j1, j2):
    # sum_{m1,m2} <j1 m1 j2 m2|J M><j1 m1 j2 m2|J' M'> = delta_JJ' delta_MM', in exact arithmetic.
    Js = range(abs(j1 - j2), j1 + j2 + 1)
    for J, Jp in itertools.product(Js, Js):
        for M in range(-min(J, Jp), min(J, Jp) + 1):
            total = 0.0
            exact_norm = Fraction(0)
            for m1 in range(-j1, j1 + 1):
                m2 = M - m1
                if abs(m2) > j2:
                    continue
                total += clebsch_gordan(j1, m1, j2, m2, J, M) * clebsch_gordan(j1, m1, j2, m2, Jp, M)
                if J == Jp:
                    exact_norm += clebsch_gordan_exact(j1, m1, j2, m2, J, M)[1]
            assert total == pytest.approx(1.0 if J == Jp else 0.0, abs=1e-14)
            if J == Jp:
                assert exact_norm == 1


def test_coupling_tree_is_pacemakers():
    assert coupling_tree(1) == ()
    assert coupling_tree(2) == ((0, 1, 2),)
    assert coupling_tree(3) == ((0, 1, 3), (3, 2, 4))
    assert coupling_tree(4) == ((0, 1, 4), (2, 3, 5), (4, 5, 6))
    assert coupling_tree(5) == ((0, 1, 5), (2, 3, 6), (5, 6, 7), (7, 4, 8))
    assert coupling_tree(6) == ((0, 1, 6), (2, 3, 7), (4, 5, 8), (6, 7, 9), (8, 9, 10))
    for rank in range(2, 10):  # every leaf and intermediate is used exactly once as a child
        children = sorted(x for a, b, _ in coupling_tree(rank) for x in (a, b))
        assert children == list(range(2 * rank - 2))


def test_explicit_low_rank_values():
    # rank 2: <l m l -m | 0 0> = (-1)^(l-m) / sqrt(2l+1)
    for l in range(5):
        for m in range(-l, l + 1):
            assert generalized_cg([l, l], [], [m, -m]) == pytest.approx((-1) ** (l - m) / np.sqrt(2 * l + 1), rel=1e-15)
    # rank 3, ls = (1, 1, 2), L1 = 2: <1 1 1 1|2 2><2 2 2 -2|0 0> = 1/sqrt(5)
    assert generalized_cg([1, 1, 2], [2], [1, 1, -2]) == pytest.approx(1 / np.sqrt(5), rel=1e-15)
    # rank 1: only l = 0, m = 0
    assert generalized_cg([0], [], [0]) == 1.0
    ms, c = coupling_table([3])
    assert ms.shape == (0, 1) and c.shape == (0,)


def test_short_LS_is_expanded_like_python_ace():
    assert expand_LS([1, 1, 2], []) == (2,)
    assert expand_LS([1, 1, 2, 2], [1]) == (1, 1)
    assert expand_LS([1, 1, 2, 2, 3], [0, 3]) == (0, 3, 3)
    assert expand_LS([1, 1, 2, 2, 3, 3], [1, 2, 2]) == (1, 2, 2, 2)
    a = coupling_table([1, 1, 2, 2, 3, 3], [1, 2, 2])
    b = coupling_table([1, 1, 2, 2, 3, 3], [1, 2, 2, 2])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="LS"):
        generalized_cg([1, 1, 1, 1], [0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(ValueError, match=r"\|m\| > l at factor 1"):
        generalized_cg([1, 1], [], [0, 2])
    with pytest.raises(ValueError, match="3 entries"):
        generalized_cg([1, 1], [], [0, 0, 0])
    with pytest.raises(ValueError, match="non-negative"):
        coupling_table([1, -1])
    assert generalized_cg([1, 1], [], [1, 0]) == 0.0  # sum(ms) != 0: not in the invariant


def _random_ls_LS(rng, rank, lmax):
    while True:
        ls = [int(x) for x in rng.integers(0, lmax + 1, size=rank)]
        if sum(ls) % 2:
            continue
        LS = [int(x) for x in rng.integers(0, 2 * lmax + 1, size=max(rank - 2, 0))]
        if rank >= 3:
            LS = list(expand_LS(ls, LS[:-1]))
        if valid_LS(ls, LS) and coupling_table(ls, LS)[0].shape[0]:
            return ls, LS


@pytest.mark.parametrize("rank", [2, 3, 4, 5, 6])
def test_table_entries_and_symmetry(rank):
    rng = np.random.default_rng()
    for _ in range(4):
        ls, LS = _random_ls_LS(rng, rank, 3)
        ms, c = coupling_table(ls, LS)
        assert np.all(ms.sum(axis=1) == 0) and np.all(np.abs(ms) <= np.array(ls))
        assert np.all(c != 0)
        for row, value in zip(ms[:20], c[:20]):
            assert generalized_cg(ls, LS, row) == value
        # every non-zero coefficient is listed: brute force over the whole m-space
        listed = {tuple(r) for r in ms.tolist()}
        full = itertools.product(*[range(-l, l + 1) for l in ls])
        nonzero = {m for m in full if sum(m) == 0 and generalized_cg_exact(ls, LS, m)[0] != 0}
        assert listed == nonzero
        # C(-ms) = C(ms) for even parity: pacemaker's half basis relies on it
        lookup = dict(zip(map(tuple, ms.tolist()), c))
        for row, value in lookup.items():
            assert lookup[tuple(-x for x in row)] == value


def _random_orthogonal(rng):
    q = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    return q if rng.random() < 0.5 else -q  # half the time a rotation-reflection


@pytest.mark.parametrize("rank", [2, 3, 4, 5, 6])
def test_coupled_products_are_invariant(rank):
    """Invariance under random rotations and reflections to 1e-12 of the rounding scale
    sum_s |c_s| prod_t |A_t|; distinct radial channels per factor, so no product vanishes by symmetry."""
    rng = np.random.default_rng()
    lmax, nneigh = 4, 9
    vectors = rng.normal(size=(nneigh, 3))
    radial = rng.normal(size=(nneigh, rank, lmax + 1))
    species = np.zeros(nneigh, dtype=int)
    mus, ns = [0] * rank, list(range(1, rank + 1))
    A = atomic_base(vectors, species, radial, 1, lmax)
    for _ in range(3):
        ls, LS = _random_ls_LS(rng, rank, lmax)
        ms, c = coupling_table(ls, LS)
        value = product_value(A, mus, ns, ls, ms, c)
        scale = product_value(np.abs(A), mus, ns, ls, ms, np.abs(c))
        assert abs(value) > 1e-6 * scale  # a generic, non-vanishing invariant
        q = _random_orthogonal(rng)
        A_rot = atomic_base(vectors @ q.T, species, radial, 1, lmax)
        rotated = product_value(A_rot, mus, ns, ls, ms, c)
        assert abs(rotated - value) <= 1e-12 * scale, (ls, LS, value, rotated)
        # a non-invariant control: dropping one m-tuple breaks invariance (the test can fail)
        if len(c) > 1:
            broken = product_value(A, mus, ns, ls, ms[1:], c[1:])
            assert abs(broken - product_value(A_rot, mus, ns, ls, ms[1:], c[1:])) > 1e-8 * scale


def _python_ace_config(elements, nradmax_by_orders, lmax_by_orders):
    return {
        "deltaSplineBins": 0.001,
        "elements": elements,
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}},
        "bonds": {"ALL": {"radbase": "ChebPow", "radparameters": [2.0], "rcut": 5.0, "dcut": 0.01,
                          "NameOfCutoffFunction": "cos"}},
        "functions": {"ALL": {"nradmax_by_orders": nradmax_by_orders, "lmax_by_orders": lmax_by_orders}},
    }


def test_matches_python_ace_gen_cgs():
    """Each python-ace B-function (its ls and LS before sorting, as a pacemaker .yaml lists them)
    coupled with our coefficients gives the same value, on random atomic bases A with the symmetry
    A_{l,-m} = (-1)^m conj(A_{lm}), as python-ace's own ms_combs/gen_cgs (its sorted half basis)."""
    pyace = pytest.importorskip("pyace")
    elements = ["Al", "Ni"]
    bconf = pyace.create_multispecies_basis_config(
        _python_ace_config(elements, [2, 2, 2, 1, 1, 1], [0, 3, 3, 2, 2, 1]))
    bbasis = pyace.ACEBBasisSet(bconf)
    rng = np.random.default_rng()
    lmax = 3
    A = rng.normal(size=(3, 2, 2, lmax + 1, 2 * lmax + 1)) + 1j * rng.normal(size=(3, 2, 2, lmax + 1, 2 * lmax + 1))
    for l in range(lmax + 1):  # impose A_{l,-m} = (-1)^m conj(A_{l,m}) as for any real environment
        A[..., l, lmax] = A[..., l, lmax].real
        for m in range(1, l + 1):
            A[..., l, lmax - m] = (-1) ** m * np.conj(A[..., l, lmax + m])
    ours: dict = {}
    for block in bconf.funcspecs_blocks:
        for spec in block.funcspecs:
            if len(spec.ns) < 2:
                continue
            mu0 = elements.index(spec.elements[0])
            mus = [elements.index(e) for e in spec.elements[1:]]
            ms, c = coupling_table(spec.ls, spec.LS)
            key = (mu0, tuple(sorted(zip(mus, spec.ns, spec.ls))))
            ours.setdefault(key, []).append(product_value(A, mus, spec.ns, spec.ls, ms, c))
    theirs: dict = {}
    ranks = set()
    for mu0 in range(len(elements)):
        for f in bbasis.basis[mu0]:
            key = (mu0, tuple(sorted(zip(f.mus, f.ns, f.ls))))
            theirs.setdefault(key, []).append(product_value(A, f.mus, f.ns, f.ls, np.array(f.ms_combs), np.array(f.gen_cgs)))
            ranks.add(f.rank)
    assert ranks == {2, 3, 4, 5, 6}
    assert ours.keys() == theirs.keys()
    count = 0
    for key in ours:
        # python-ace reorders factors and functions; compare the sorted values of each (mu, n, l) tuple
        a, b = np.array(ours[key]), np.array(theirs[key])
        a, b = a[np.argsort(a[:, 0])], b[np.argsort(b[:, 0])]
        assert a.shape == b.shape, key
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max(), err_msg=str(key))
        count += len(a)
    assert count > 1000
