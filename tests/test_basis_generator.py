"""The basis generator (acepy.basis.generator): enumeration, invariance, independence, and the same
function space as python-ace's `create_multispecies_basis_config` for the same per-rank box.

Function values are computed on explicit random environments (random neighbour vectors, species
and per-neighbour radial values; A = sum_j R_nl(j) Y_lm(r_j) with the kernels' PACE harmonics), so
every check is of the functions themselves, not of their coefficients.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial.transform import Rotation

from acepy.basis.evaluate import atomic_base, product_value
from acepy.basis.generator import BondSpec, default_embedding, generate_basis

SPECS = [  # (elements, nradmax_by_orders, lmax_by_orders): 1 to 3 elements, ranks up to 5
    (["Al"], [4, 3, 2, 2, 1], [0, 3, 3, 2, 2]),
    (["Al", "Ni"], [2, 2, 2, 1, 1], [0, 3, 2, 2, 1]),
    (["Al", "Ni", "Cu"], [2, 2, 1, 1], [0, 2, 2, 1]),
]


def random_bases(rng, n_env, nelements, nmax, lmax, nneigh=(4, 12)):
    """A of n_env random environments: (n_env, nelements, nmax, lmax + 1, 2 lmax + 1)."""
    out = []
    for _ in range(n_env):
        k = int(rng.integers(*nneigh))
        out.append(atomic_base(rng.normal(size=(k, 3)), rng.integers(0, nelements, k),
                               rng.normal(size=(k, nmax, lmax + 1)), nelements, lmax))
    return np.array(out)


def block_values(A, block):
    """(F, n_env) values of the functions of one tuple block."""
    return np.atleast_2d(product_value(A, block.mus, block.ns, block.ls, block.ms_combs, block.coupling.T).T)


def numerical_rank(m, rel=1e-9):
    if m.size == 0:
        return 0
    m = m / np.linalg.norm(m, axis=1, keepdims=True)  # rows differ in scale by orders of magnitude
    s = np.linalg.svd(m, compute_uv=False)
    return int(np.sum(s > rel * s[0]))


@pytest.mark.parametrize("elements,nrad,lmaxs", SPECS, ids=["1el-r5", "2el-r5", "3el-r4"])
def test_same_function_space_as_python_ace(elements, nrad, lmaxs):
    """For every (mu0; (mu, n, l)...) tuple: rank(ours) = rank(python-ace) = rank(both stacked) =
    number of our functions, on random environments: nothing missing, nothing extra, independent."""
    pyace = pytest.importorskip("pyace")
    conf = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": elements,
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}},
        "bonds": {"ALL": {"radbase": "ChebPow", "radparameters": [2.0], "rcut": 5.0, "dcut": 0.01,
                          "NameOfCutoffFunction": "cos"}},
        "functions": {"ALL": {"nradmax_by_orders": nrad, "lmax_by_orders": lmaxs}},
    })
    theirs_basis = pyace.ACEBBasisSet(conf)
    ours_basis = generate_basis(elements, nrad, lmaxs)
    rng = np.random.default_rng()
    nel, lmax = len(elements), max(lmaxs)
    A = random_bases(rng, 40, nel, max(nrad), lmax)
    theirs: dict = {}
    for mu0 in range(nel):
        for f in list(theirs_basis.basis_rank1[mu0]) + list(theirs_basis.basis[mu0]):
            key = (mu0, tuple(sorted(zip(f.mus, f.ns, f.ls))))
            theirs.setdefault(key, []).append(
                product_value(A, f.mus, f.ns, f.ls, np.array(f.ms_combs), np.array(f.gen_cgs)))
    ours = {}
    for mu0 in range(nel):
        for block in ours_basis.blocks[mu0]:
            key = (mu0, tuple(zip(block.mus.tolist(), block.ns.tolist(), block.ls.tolist())))
            assert key not in ours, f"tuple {key} generated twice"
            ours[key] = block_values(A, block)
    assert set(ours) == set(theirs), (sorted(set(ours) - set(theirs))[:5], sorted(set(theirs) - set(ours))[:5])
    for key, a in ours.items():
        t = np.array(theirs[key])
        ra, rt, rb = numerical_rank(a), numerical_rank(t), numerical_rank(np.vstack([a, t]))
        assert ra == len(a) == rt == rb, f"{key}: ours {len(a)} functions rank {ra}, python-ace rank {rt}, joint {rb}"
    assert ours_basis.nfunctions() == sum(len(theirs_basis.basis[m]) + len(theirs_basis.basis_rank1[m])
                                          for m in range(nel))


def test_all_functions_jointly_independent():
    """Rank of the values of every function of one species (all tuples and ranks together)."""
    basis = generate_basis(["Al", "Ni"], [3, 2, 2, 1], [0, 2, 2, 1])
    rng = np.random.default_rng()
    for mu0 in range(2):
        nf = basis.nfunctions(mu0)
        A = random_bases(rng, nf + 30, 2, 3, 2)
        values = np.vstack([block_values(A, b) for b in basis.blocks[mu0]])
        assert values.shape[0] == nf > 40
        assert numerical_rank(values) == nf
    # a control: a duplicated function is detected as dependent (the check can fail)
    assert numerical_rank(np.vstack([values, values[5:6] * 3.0])) == nf


def _random_orthogonal(rng):
    q = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    return q if rng.random() < 0.5 else -q


def test_every_function_invariant_under_rotations_and_reflections():
    basis = generate_basis(["Al", "Ni"], [3, 2, 2, 1, 1], [0, 4, 3, 2, 1])
    rng = np.random.default_rng()
    lmax = 4
    k = 10
    vectors = rng.normal(size=(k, 3))
    species = rng.integers(0, 2, k)
    radial = rng.normal(size=(k, 3, lmax + 1))
    A = atomic_base(vectors, species, radial, 2, lmax)
    qs = [_random_orthogonal(rng) for _ in range(3)] + [-np.eye(3)]
    A_rot = [atomic_base(vectors @ q.T, species, radial, 2, lmax) for q in qs]
    count = 0
    for mu0 in range(2):
        for block in basis.blocks[mu0]:
            coeffs = block.coupling.T
            value = product_value(A, block.mus, block.ns, block.ls, block.ms_combs, coeffs)
            scale = product_value(np.abs(A), block.mus, block.ns, block.ls, block.ms_combs, np.abs(coeffs))
            for Ar in A_rot:
                rotated = product_value(Ar, block.mus, block.ns, block.ls, block.ms_combs, coeffs)
                np.testing.assert_array_less(np.abs(rotated - value), 1e-12 * scale + 1e-300)
            count += block.nfunctions
    assert count == basis.nfunctions()
    # a control: the odd-parity triple product ls = (1, 1, 1) of three different channels (which the
    # generator leaves out) changes sign under the inversion -I, so the check above can fail
    from acepy.coupling import coupling_table

    ms, c = coupling_table([1, 1, 1], [1])

    def triple(A_):  # the complex coupled sum; for odd parity it is purely imaginary
        lm = (A_.shape[-1] - 1) // 2
        return np.sum(c * A_[0, 0, 1, lm + ms[:, 0]] * A_[0, 1, 1, lm + ms[:, 1]] * A_[1, 0, 1, lm + ms[:, 2]])

    v, v_inv = triple(A), triple(A_rot[-1])
    assert abs(v.imag) > 1e-8 and abs(v + v_inv) < 1e-12 * abs(v)


def test_permutation_of_same_species_neighbours(tmp_path):
    """Full model: permuting atoms of the same species permutes the site energies and forces."""
    import acepy
    from acepy.io import write_yace

    elements = ["Al", "Ni"]
    rng = np.random.default_rng()
    basis = generate_basis(elements, [3, 2, 2, 1], [0, 2, 2, 1],
                           bonds=BondSpec(radbasename="ChebExpCos", radparameters=[3.0], rcut=4.5, dcut=0.3))
    coeffs = [rng.normal(size=basis.nfunctions(m)) * 0.1 for m in range(2)]
    path = write_yace(basis.to_spec(coeffs), tmp_path / "perm.yace")
    model = acepy.load(path, backend="torch")
    n = 12
    pos = rng.uniform(0, 5.0, size=(n, 3))
    symbols = ["Al"] * 6 + ["Ni"] * 6
    perm = np.concatenate([rng.permutation(6), 6 + rng.permutation(6)])
    a = Atoms(symbols, positions=pos)
    b = Atoms([symbols[i] for i in perm], positions=pos[perm])
    oa, ob = model.evaluate([a]), model.evaluate([b])
    ea, eb = oa["energies"].numpy(), ob["energies"].numpy()
    assert np.abs(ea).max() > 1e-3
    np.testing.assert_allclose(eb, ea[perm], rtol=1e-12, atol=1e-12 * np.abs(ea).max())
    np.testing.assert_allclose(ob["forces"].numpy(), oa["forces"].numpy()[perm], rtol=1e-11,
                               atol=1e-11 * np.abs(oa["forces"].numpy()).max())


def test_degree_rule_and_box():
    D, wL = 7, 1.5
    basis = generate_basis(["Al"], [6, 5, 4], [0, 3, 2], max_degree=D, l_weight=wL)
    got = set()
    for block in basis.blocks[0]:
        rank = block.rank
        assert np.sum(block.ns + wL * block.ls) <= D + 1e-12
        assert block.ns.max() <= [6, 5, 4][rank - 1] and block.ls.max() <= [0, 3, 2][rank - 1]
        got.add(tuple(zip(block.mus.tolist(), block.ns.tolist(), block.ls.tolist())))
    # brute force: every sorted tuple in the box and degree with even sum(l) that admits an invariant
    full = generate_basis(["Al"], [6, 5, 4], [0, 3, 2])
    expected = {tuple(zip(b.mus.tolist(), b.ns.tolist(), b.ls.tolist())) for b in full.blocks[0]
                if np.sum(b.ns + wL * b.ls) <= D + 1e-12}
    assert got == expected and len(got) > 20
    # the degree rule keeps whole tuples: the functions of a kept tuple are those of the full box
    n_full = {tuple(zip(b.mus.tolist(), b.ns.tolist(), b.ls.tolist())): b.nfunctions for b in full.blocks[0]}
    for block in basis.blocks[0]:
        assert block.nfunctions == n_full[tuple(zip(block.mus.tolist(), block.ns.tolist(), block.ls.tolist()))]


def test_tuples_are_canonical_and_complete():
    basis = generate_basis(["Al", "Ni"], [2, 2, 1], [0, 2, 2])
    for mu0 in range(2):
        keys = [tuple(zip(b.mus.tolist(), b.ns.tolist(), b.ls.tolist())) for b in basis.blocks[mu0]]
        assert all(list(k) == sorted(k) for k in keys)
        triples = [(mu, n, l) for mu in range(2) for n in (1, 2) for l in range(3)]
        rank2 = {k for k in keys if len(k) == 2}
        # rank 2: an invariant exists exactly when l1 == l2
        assert rank2 == {t for t in itertools.combinations_with_replacement(triples, 2) if t[0][2] == t[1][2]}


def test_cu_shaped_basis_generates_in_seconds():
    t0 = time.perf_counter()
    basis = generate_basis(["Cu"], [10, 5, 4, 2, 1, 1], [0, 6, 4, 2, 1, 1],
                           bonds=BondSpec(radbasename="ChebPow", radparameters=[2.0], rcut=7.4),
                           embeddings=default_embedding(2))
    seconds = time.perf_counter() - t0
    print(f"Cu-shaped basis: {basis.nfunctions()} functions, {basis.nctilde()} C-tilde functions, {seconds:.2f} s")
    assert basis.nfunctions() == 745 and basis.nctilde() == 732  # python-ace: 745 B-functions
    assert seconds < 20.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="same length"):
        generate_basis(["Al"], [2, 2], [0, 1, 1])
    with pytest.raises(ValueError, match=r"lmax_by_orders\[0\] must be 0"):
        generate_basis(["Al"], [2, 2], [1, 1])
    with pytest.raises(ValueError, match="unknown radial basis 'Foo'"):
        generate_basis(["Al"], [2, 2], [0, 1], bonds=BondSpec(radbasename="Foo"))
    with pytest.raises(ValueError, match=r"missing \[\('Ni', 'Al'\)\]"):
        generate_basis(["Al", "Ni"], [2, 2], [0, 1], bonds={("Al", "Al"): BondSpec(), ("Ni", "Ni"): BondSpec(),
                                                            ("Al", "Ni"): BondSpec()})
    with pytest.raises(ValueError, match="crad: expected shape"):
        generate_basis(["Al"], [2, 2], [0, 1], bonds=BondSpec(crad=np.zeros((1, 1, 1))))
    basis = generate_basis(["Al"], [2, 2], [0, 1])
    with pytest.raises(ValueError, match=r"coefficients\[0\] \(Al\): expected shape"):
        basis.to_spec([np.zeros(basis.nfunctions(0) + 1)])
