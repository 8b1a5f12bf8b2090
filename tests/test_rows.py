"""Basis rows of a linear ACE basis (acepy.fit.rows): rows @ c + reference equal the model's energy,
per-atom energies, forces, virial, Hessian and Hessian-vector products (the model being
``LinearBasis.model(c)``: OneBody + ACE on its own fast and exact paths); force rows equal central
differences of the energy rows, virial rows differences under strain, Hessian rows differences of
the force rows; chunking changes nothing; bad input raises clearly.

Fresh random coefficients and rattled structures (periodic and cluster, one and two elements).
Tolerances: model identities 1e-12 relative to the largest value compared (float64 rounding);
central differences with h = 1e-4 A (and strain) to 1e-7 relative (O(h^2) truncation).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from acepy.basis import generate_basis
from acepy.basis.generator import BondSpec
from acepy.errors import UnsupportedInputError
from acepy.fit.rows import LinearBasis


@pytest.fixture(scope="module")
def alni():
    b = generate_basis(["Al", "Ni"], [3, 2, 2], [0, 2, 1], bonds=BondSpec(rcut=4.5, radparameters=(3.0,)))
    return LinearBasis.from_generated(b, E0=[-0.7, -1.3])


@pytest.fixture(scope="module")
def cu():
    b = generate_basis(["Cu"], [4, 3, 2, 1], [0, 3, 2, 1], bonds=BondSpec(radbasename="ChebPow", rcut=4.6,
                                                                        radparameters=(2.0,)))
    return LinearBasis.from_generated(b)


def _alni_structures(seed):
    at = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
    at.symbols[[0, 3, 5]] = "Ni"
    at.rattle(0.1, seed=seed)
    cluster = at[:6].copy()
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    return at, cluster


def _cu_structures(seed):
    at = bulk("Cu", "fcc", a=3.61, cubic=True)
    at.rattle(0.08, seed=seed)
    at.set_cell(at.cell[:] @ (np.eye(3) + 0.02 * np.random.default_rng(seed).normal(size=(3, 3))), scale_atoms=True)
    cluster = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))[:5]
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    cluster.rattle(0.1, seed=seed + 1)
    return at, cluster


def _close(a, b, rel=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(a - b).max() <= rel * scale, (np.abs(a - b).max(), scale)


@pytest.mark.parametrize("which", ["alni", "cu"])
def test_rows_times_coefficients_equal_the_model(which, request):
    basis = request.getfixturevalue(which)
    rng = np.random.default_rng(7 if which == "alni" else 8)
    periodic, cluster = (_alni_structures if which == "alni" else _cu_structures)(int(rng.integers(1000)))
    c = rng.normal(size=basis.ncoefficients) * 0.05
    probes = rng.normal(size=(2, len(periodic) + len(cluster), 3))
    rows = basis.rows([periodic, cluster], per_atom=True, hessian=True, probes=probes)
    assert rows.kind == "linear" and basis.is_linear
    k = basis.ncoefficients
    assert rows.energy.shape == (2, k) and rows.forces.shape == (len(periodic) + len(cluster), 3, k)
    assert rows.virial.shape == (2, 3, 3, k) and rows.per_atom.shape == (len(periodic) + len(cluster), k)
    model = basis.model(c)
    out = model.evaluate([periodic, cluster], compute_stress=False)
    _close(rows.energy @ c + rows.reference["energy"], out["energy"].numpy())
    _close(rows.per_atom @ c + rows.reference["per_atom"], out["energies"].numpy())
    _close(rows.forces @ c + rows.reference["forces"], out["forces"].numpy())
    virial = model.evaluate(periodic)["virials"][0].numpy()
    _close(rows.virial[0] @ c + rows.reference["virial"][0], virial)
    for h_rows, h_ref, h_model in zip(rows.hessian, rows.reference["hessian"], model.hessian([periodic, cluster])):
        _close(h_rows @ c + h_ref, h_model.numpy())
    hvp = model.hessian_vector_product([periodic, cluster], probes).numpy()
    _close(rows.hvp @ c + rows.reference["hvp"], hvp)
    # the reference part is the model with every coefficient zero, and E0 sits in it
    zero = basis.model(np.zeros(k)).evaluate([periodic, cluster], compute_stress=False)
    _close(rows.reference["energy"], zero["energy"].numpy())


def _energy_rows(basis, atoms):
    return basis.rows(atoms, forces=False, virial=False).energy[0]


def test_force_and_virial_rows_are_derivatives_of_energy_rows(alni):
    periodic, _ = _alni_structures(11)
    rows = alni.rows(periodic)
    h = 1e-4
    scale = np.abs(rows.forces).max()
    for i, a in [(0, 0), (3, 1), (6, 2)]:
        plus, minus = periodic.copy(), periodic.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        fd = -(_energy_rows(alni, plus) - _energy_rows(alni, minus)) / (2 * h)
        assert np.abs(rows.forces[i, a] - fd).max() <= 1e-7 * scale
    # virial = -dE/d(strain) with x -> x (I + eps), cell -> cell (I + eps)
    eps = 1e-4
    vscale = np.abs(rows.virial).max()
    for a, b in [(0, 0), (1, 2), (2, 0)]:
        e = []
        for sign in (1.0, -1.0):
            d = np.eye(3)
            d[a, b] += sign * eps
            s = periodic.copy()
            s.set_cell(periodic.cell[:] @ d, scale_atoms=False)
            s.positions = periodic.positions @ d
            e.append(_energy_rows(alni, s))
        fd = -(e[0] - e[1]) / (2 * eps)
        assert np.abs(rows.virial[0, a, b] - fd).max() <= 1e-7 * vscale


def test_hessian_rows_are_derivatives_of_force_rows_and_symmetric(cu):
    _, cluster = _cu_structures(21)
    rows = cu.rows(cluster, hessian=True)
    hess = rows.hessian[0]
    n, k = len(cluster), cu.ncoefficients
    assert hess.shape == (n, 3, n, 3, k)
    flat = hess.reshape(3 * n, 3 * n, k)
    assert np.abs(flat - flat.transpose(1, 0, 2)).max() <= 1e-12 * np.abs(flat).max()
    # acoustic sum rule: a rigid translation changes no basis function
    assert np.abs(hess.sum(axis=2)).max() <= 1e-11 * np.abs(hess).max()
    h = 1e-4
    for j, b in [(0, 0), (2, 1), (4, 2)]:
        plus, minus = cluster.copy(), cluster.copy()
        plus.positions[j, b] += h
        minus.positions[j, b] -= h
        fp = cu.rows(plus, energy=False, virial=False).forces
        fm = cu.rows(minus, energy=False, virial=False).forces
        fd = -(fp - fm) / (2 * h)
        assert np.abs(hess[:, :, j, b] - fd).max() <= 1e-7 * np.abs(hess).max()


def test_hvp_rows_equal_hessian_rows_times_probes(alni):
    periodic, cluster = _alni_structures(31)
    rng = np.random.default_rng(31)
    n = len(periodic) + len(cluster)
    probes = rng.normal(size=(3, n, 3))
    rows = alni.rows([periodic, cluster], energy=False, forces=False, virial=False, hessian=True, probes=probes)
    expected = np.zeros_like(rows.hvp)
    start = 0
    for hess in rows.hessian:
        nb = hess.shape[0]
        expected[:, start:start + nb] = np.einsum("iajbk,pjb->piak", hess, probes[:, start:start + nb])
        start += nb
    _close(rows.hvp, expected)
    only = alni.rows([periodic, cluster], energy=False, forces=False, virial=False, hessian="hvp", probes=probes)
    assert only.hessian is None
    _close(only.hvp, rows.hvp, rel=1e-14)


def test_chunked_rows_equal_unchunked(alni):
    periodic, cluster = _alni_structures(41)
    probes = np.random.default_rng(41).normal(size=(1, len(periodic) + len(cluster), 3))
    whole = alni.rows([periodic, cluster], per_atom=True, hessian=True, probes=probes)
    parts = alni.rows([periodic, cluster], per_atom=True, hessian=True, probes=probes, chunk_atoms=5)
    for key in ("energy", "forces", "virial", "per_atom", "hvp"):
        _close(getattr(parts, key), getattr(whole, key), rel=1e-14)
    for a, b in zip(parts.hessian, whole.hessian):
        _close(a, b, rel=1e-14)


def test_columns_labels_and_spec(alni):
    k = alni.ncoefficients
    assert len(alni.columns) == k and alni.degrees.shape == (k,) and alni.l_sums.shape == (k,)
    sl = alni.species_slices
    assert sl[0].start == 0 and sl[0].stop == sl[1].start and sl[1].stop == k
    assert all(c["species"] == "Al" for c in alni.columns[sl[0]])
    assert all(c["species"] == "Ni" for c in alni.columns[sl[1]])
    assert all(c["rank"] == len(c["ls"]) and sum(c["ls"]) % 2 == 0 for c in alni.columns)
    # the spec agrees with the generator's own to_spec
    rng = np.random.default_rng(3)
    c = rng.normal(size=k)
    periodic, _ = _alni_structures(3)
    b = generate_basis(["Al", "Ni"], [3, 2, 2], [0, 2, 1], bonds=BondSpec(rcut=4.5, radparameters=(3.0,)))
    from acepy.models.ace import ACE
    from acepy.models.stack import Stack

    theirs = b.to_spec([c[sl[0]], c[sl[1]]])
    stack = Stack([ACE(theirs)], theirs.elements)
    mine = alni.model(c).evaluate(periodic)["energy"].numpy() + 0.7 * 5 + 1.3 * 3  # without E0
    _close(mine, stack.evaluate(periodic)["energy"].numpy())


def test_bad_input(alni):
    periodic, cluster = _alni_structures(51)
    with pytest.raises(ValueError, match=r"expected shape \(192,\)"):
        alni.model(np.zeros(191))
    with pytest.raises(ValueError, match="must be finite"):
        alni.spec(np.full(192, np.nan))
    with pytest.raises(ValueError, match="above max_hessian_bytes"):
        alni.rows(periodic, hessian=True, max_hessian_bytes=10**5)
    with pytest.raises(ValueError, match="needs probes"):
        alni.rows(periodic, hessian="hvp")
    with pytest.raises(ValueError, match="probes must have shape|vectors must have shape"):
        alni.rows(periodic, probes=np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="hessian must be"):
        alni.rows(periodic, hessian="dense")
    with pytest.raises(ValueError, match="chunk_atoms"):
        alni.rows(periodic, chunk_atoms=0)
    far = periodic.copy()
    far.symbols[0] = "Cu"
    with pytest.raises(Exception, match="Cu"):
        alni.rows(far)
    nan = periodic.copy()
    nan.positions[2, 1] = np.nan
    with pytest.raises(Exception, match="atom 2"):
        alni.rows(nan)


def test_nonlinear_basis_gives_jacobian_rows_and_refuses_hessians():
    from acepy.basis import default_embedding

    b = generate_basis(["Cu"], [3, 2, 1], [0, 2, 1], bonds=BondSpec(rcut=4.5, radparameters=(3.0,)),
                       embeddings=default_embedding(2))
    basis = LinearBasis.from_generated(b)
    assert not basis.is_linear and basis.kind == "jacobian"
    assert basis.ncoefficients == 2 * b.nfunctions()
    at, _ = _cu_structures(61)
    with pytest.raises(ValueError, match="not linear.*FinnisSinclairShiftedScaled"):
        basis.rows(at)
    with pytest.raises(ValueError, match="expected shape"):
        basis.coefficients = np.zeros(3)
    basis.coefficients = np.random.default_rng(61).normal(size=basis.ncoefficients)
    rows = basis.rows(at)
    assert rows.kind == "jacobian"
    with pytest.raises(UnsupportedInputError, match="linear embedding"):
        basis.rows(at, hessian=True)
