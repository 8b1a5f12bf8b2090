"""Coulomb (Ewald, PME, direct) as a stack component: Madelung constants, an independent numpy
Ewald sum, supercells, the conformance checks, Hessians, stacking with ACE, and bad input.

Needs torch-pme (the reciprocal sums); skipped without it. DSF: tests/test_coulomb_dsf.py; PME's
accuracy and its departure from the acoustic sum rule: tests/test_coulomb_pme.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from scipy.special import erfc

import acepy
from acepy.errors import StructureError
from acepy.models import Coulomb, Stack
from acepy.models.coulomb import find_coulomb
from acepy.models.coulomb_params import COULOMB_CONSTANT as K

import conformance as C
from coulomb_cases import rattled_salt as _rattled_triclinic

pytest.importorskip("torchpme")

NACL = {"Na": 1.0, "Cl": -1.0}

# Madelung constants referred to the nearest-neighbour distance (OEIS A085469 NaCl, A181152 CsCl;
# zincblende from Zucker, J. Phys. A 8, 1734 (1975))
MADELUNG = {
    "NaCl": (lambda a: bulk("NaCl", "rocksalt", a=a, cubic=True), lambda a: a / 2, 1.7475645946331821906),
    "CsCl": (lambda a: bulk("CsCl", "cesiumchloride", a=a), lambda a: a * math.sqrt(3) / 2, 1.7626747730709883979),
    "ZnS": (lambda a: bulk("ZnS", "zincblende", a=a, cubic=True), lambda a: a * math.sqrt(3) / 4, 1.6380550533887894),
}


def _charges_of(atoms):
    first = atoms.get_chemical_symbols()[0]
    second = next(s for s in atoms.get_chemical_symbols() if s != first)
    return {first: 1.0, second: -1.0}


@pytest.mark.parametrize("method", ["ewald", "pme"])
@pytest.mark.parametrize("name", list(MADELUNG))
def test_madelung_constants(name, method):
    make, nearest, madelung = MADELUNG[name]
    a = float(np.random.default_rng().uniform(3.5, 6.0))
    atoms = make(a)
    charges = _charges_of(atoms)
    stack = Stack([Coulomb(charges, method=method, cutoff=8.0, accuracy=1e-13 if method == "ewald" else 1e-10)],
                  sorted(charges))
    energy = float(stack.evaluate(atoms, compute_forces=False)["energy"][0])
    expected = -madelung * K * len(atoms) / 2 / nearest(a)
    assert abs(energy - expected) <= 1e-10 * abs(expected), (energy, expected)


# ---- an independent Ewald sum (numpy, explicit loops over images and k-vectors) -----------------
def numpy_ewald(positions, cell, q, alpha, rc, kc):
    """E = 1/2 sum' q_i q_j erfc(alpha r)/r + (2 pi / V) sum_(k != 0) exp(-k^2/4a^2)/k^2 |S(k)|^2
    - alpha/sqrt(pi) sum q^2, with k = 2 pi n cell^-T (Frenkel & Smit eq. 12.1.25), times K."""
    volume = abs(np.linalg.det(cell))
    recip = 2 * np.pi * np.linalg.inv(cell).T
    reach = [int(np.ceil(rc * np.linalg.norm(b) / (2 * np.pi))) + 1 for b in recip]
    real = 0.0
    for s in itertools.product(*[range(-m, m + 1) for m in reach]):
        shift = np.array(s) @ cell
        d = positions[None, :, :] + shift - positions[:, None, :]
        r = np.linalg.norm(d, axis=2)
        mask = (r < rc) & (r > 1e-12)
        real += 0.5 * np.sum((q[:, None] * q[None, :] * erfc(alpha * r) / np.where(mask, r, 1.0))[mask])
    reach = [int(np.floor(kc * np.linalg.norm(a) / (2 * np.pi))) for a in cell]
    recip_sum = 0.0
    for m in itertools.product(*[range(-m, m + 1) for m in reach]):
        k = np.array(m) @ recip
        k2 = k @ k
        if k2 == 0 or k2 > kc * kc:
            continue
        s = np.sum(q * np.exp(1j * positions @ k))
        recip_sum += np.exp(-k2 / (4 * alpha ** 2)) / k2 * abs(s) ** 2
    return K * (real + 2 * np.pi / volume * recip_sum - alpha / np.sqrt(np.pi) * np.sum(q ** 2))


@pytest.mark.parametrize("method", ["ewald", "pme"])
def test_against_numpy_ewald_on_rattled_triclinic_cells(method):
    rng = np.random.default_rng()
    atoms = _rattled_triclinic(rng)
    stack = Stack([Coulomb("initial_charges", method=method, cutoff=7.0,
                           accuracy=1e-13 if method == "ewald" else 1e-10)], ["Na", "Cl"])
    energy = float(stack.evaluate(atoms, compute_forces=False)["energy"][0])
    # the reference uses its own splitting (alpha 0.45, 11 A, |k| <= 5.2): the total does not depend on it
    expected = numpy_ewald(atoms.positions, atoms.cell[:], atoms.get_initial_charges(), 0.45, 11.0, 5.2)
    assert abs(energy - expected) <= 1e-9 * abs(expected), (energy, expected)


def test_supercell_energy_is_n_times_the_cell():
    """Ewald and DSF to rounding; PME to its discretisation (the mesh of the supercell is not the
    cell's mesh repeated)."""
    rng = np.random.default_rng()
    atoms = _rattled_triclinic(rng)
    big = atoms.repeat((2, 1, 2))
    for method, kw, rtol in (("ewald", {"accuracy": 1e-12}, 1e-10), ("dsf", {}, 1e-10),
                             ("pme", {"accuracy": 1e-8}, 1e-8)):
        stack = Stack([Coulomb("initial_charges", method=method, cutoff=7.0, **kw)], ["Na", "Cl"])
        one, four = (float(stack.evaluate(x, compute_forces=False)["energy"][0]) for x in (atoms, big))
        assert abs(four - 4 * one) <= rtol * abs(four), (method, four, 4 * one)


def test_ewald_in_chunks_of_k_vectors_equals_one_call(monkeypatch):
    """Large structures run torch-pme on chunks of k-vectors (checkpointed): the same energy,
    forces, stress and Hessian to rounding."""
    from acepy.models.coulomb_reciprocal import CoulombReciprocal

    rng = np.random.default_rng()
    atoms = _rattled_triclinic(rng)
    stack = Stack([Coulomb("initial_charges", method="ewald", cutoff=6.0, accuracy=1e-10)], ["Na", "Cl"])
    one, h_one = stack.evaluate(atoms), stack.hessian(atoms, method="autograd")
    monkeypatch.setattr(CoulombReciprocal, "CHUNK_ELEMENTS", 256)
    many, h_many = stack.evaluate(atoms), stack.hessian(atoms, method="autograd")
    for key in ("energy", "forces", "stress"):
        C._close(many[key], one[key], rtol=1e-12, what=key)
    C._close(h_many, h_one, rtol=1e-12, what="hessian")


def test_ewald_hessian_matrix_products_in_chunks_and_tiles_equal_autograd(monkeypatch):
    """The Ewald Hessian as M^T M over chunks of the half k-sphere and tiles of the upper triangle
    equals double autograd of torch-pme's energy (1e-12) however the chunks and tiles fall."""
    from acepy.models import coulomb_hessians

    rng = np.random.default_rng()
    atoms = _rattled_triclinic(rng, (2, 1, 1))
    stack = Stack([Coulomb("initial_charges", method="ewald", cutoff=5.0, accuracy=1e-8)], ["Na", "Cl"])
    ref = stack.hessian(atoms, method="autograd")
    scale = float(ref.abs().max())
    one = stack.hessian(atoms)
    monkeypatch.setattr(coulomb_hessians, "EWALD_CHUNK_ELEMENTS", 7 * 2 * 3 * len(atoms))  # 7 k per chunk
    monkeypatch.setattr(coulomb_hessians, "EWALD_TILE", 10)  # tiles that cut through atoms' 3-blocks
    many = stack.hessian(atoms)
    for hess in (one, many):
        assert float((hess - ref).abs().max()) <= 1e-12 * scale
        assert float((hess - hess.permute(2, 3, 0, 1)).abs().max()) <= 1e-14 * scale


# ---- the shared conformance checks --------------------------------------------------------------
def _salt(rng, n=1):
    return _rattled_triclinic(rng, (n, 1, 1))


def _cluster(rng):
    atoms = Atoms("NaClNaClNa", positions=rng.normal(scale=2.0, size=(5, 3)))
    while min(np.linalg.norm(atoms.positions[i] - atoms.positions[j]) for i in range(5) for j in range(i)) < 1.5:
        atoms.positions = rng.normal(scale=2.0, size=(5, 3))
    atoms.set_initial_charges(rng.uniform(-1, 1, 5))
    return atoms


COULOMBS = {
    "ewald": lambda: Coulomb("initial_charges", method="ewald", cutoff=6.0, accuracy=1e-8),
    "ewald-fixed": lambda: Coulomb(NACL, method="ewald", cutoff=5.0, accuracy=1e-6),
    "dsf": lambda: Coulomb("initial_charges", method="dsf", cutoff=6.0, alpha=0.25),
    "direct": lambda: Coulomb("initial_charges", method="direct"),
}


@pytest.fixture(params=list(COULOMBS))
def coulomb_case(request):
    name = request.param
    rng = np.random.default_rng()

    def make(backend):
        return Stack([COULOMBS[name]()], ["Na", "Cl"], backend=backend)

    if name == "direct":
        structures = [_cluster(rng), _cluster(rng)[:4]]
    elif name == "ewald-fixed":
        structures = [bulk("NaCl", "rocksalt", a=5.6, cubic=True), bulk("NaCl", "rocksalt", a=5.7)]
        for s in structures:
            s.rattle(0.1, seed=int(rng.integers(1 << 30)))
    else:
        structures = [_salt(rng), _salt(rng)[:4]]
        structures[1].set_initial_charges(structures[1].get_initial_charges() - structures[1].get_initial_charges().mean())
        if name == "dsf":
            structures.append(_cluster(rng))
    return make, structures, rng


def test_conformance(coulomb_case):
    make, structures, rng = coulomb_case
    for atoms in structures:
        C.check_fast_equals_exact(make, atoms)
        C.check_energy_is_differentiable(make, atoms)
    for backend in ("torch", "numba"):
        for atoms in structures[:2]:
            C.check_finite_differences(make(backend), atoms, rng, h=1e-5, atol_f=1e-7, atol_s=1e-8)
    C.check_batch_equals_singles(make("numba"), structures)
    for atoms in structures:
        C.check_invariances(make("numba"), atoms, rng)
    C.check_input_not_mutated(make("numba"), structures[0])
    C.check_hessian(make, structures[-1])


def _pair_near(atoms, cutoff: float, width: float) -> bool:
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, cutoff + width)
    return bool(np.any(np.abs(d - cutoff) < width))


@pytest.mark.parametrize("method", ["ewald", "dsf", "direct"])
def test_hessian_against_finite_differences_of_forces(method):
    """Stack.hessian (graph part: per-edge blocks; reciprocal: autograd) is symmetric, obeys the
    acoustic sum rule to rounding and equals central differences of the forces to 1e-7."""
    rng = np.random.default_rng()
    atoms = _cluster(rng) if method == "direct" else _salt(rng)
    kw = {} if method == "direct" else {"cutoff": 6.0}
    while method != "direct" and _pair_near(atoms, 6.0, 10 * 2e-4):
        # a pair within a few FD steps of the real-space cutoff, where DSF's V'' and the truncated
        # Ewald force jump, makes the finite differences (not the Hessian) wrong: draw another cell
        atoms = _salt(rng)
    stack = Stack([Coulomb("initial_charges", method=method, **kw)], ["Na", "Cl"])
    hess, info = stack.hessian(atoms, return_info=True)
    n = len(atoms)
    scale = float(hess.abs().max())
    if method == "ewald":  # the k-space sum's own closed form equals double autograd of the energy
        assert info["routes"]["CoulombReciprocal"] == "k-space matrix products"
        assert float((hess - stack.hessian(atoms, method="autograd")).abs().max()) <= 1e-12 * scale
    assert float((hess - hess.permute(2, 3, 0, 1)).abs().max()) <= 1e-12 * scale
    assert float(hess.sum(dim=2).abs().max()) <= 1e-11 * scale
    fd = stack.hessian(atoms, method="fd", step=2e-4)
    assert float((hess - fd).abs().max()) <= 1e-7 * scale
    v = torch.as_tensor(rng.normal(size=(2, n, 3)))
    hv = stack.hessian_vector_product(atoms, v)
    assert torch.allclose(hv, torch.einsum("iajb,kjb->kia", hess, v), rtol=0, atol=1e-11 * scale)


# ---- stacking ---------------------------------------------------------------------------------
def test_ace_plus_coulomb_is_the_sum_of_the_parts_with_one_neighbour_search():
    rng = np.random.default_rng()
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
    atoms.set_initial_charges(np.tile([0.4, -0.4], len(atoms) // 2))
    coulomb = Coulomb("initial_charges", method="ewald", cutoff=6.0)
    ace = acepy.load("Cu-synthetic-pbe-core-rep")
    both = acepy.load("Cu-synthetic-pbe-core-rep", coulomb=coulomb)
    alone = Stack([coulomb], ["Cu"])
    both.graph_cache.reset_counters()
    out, a, c = both.evaluate(atoms), ace.evaluate(atoms), alone.evaluate(atoms)
    for key in ("energy", "forces", "stress"):
        np.testing.assert_allclose(out[key].numpy(), (a[key] + c[key]).numpy(), rtol=1e-12, atol=1e-12, err_msg=key)
    # one search serves ACE (cutoff ~5 A) and the real-space sum (6 A): a filtered view for the smaller
    assert both.graph_cache.n_searches == 1 and both.graph_cache.n_views <= 2
    assert find_coulomb(both) is not None and find_coulomb(both).method == "ewald"
    assert "coulomb" in both.load_options
    hb, ha, hc = both.hessian(atoms[:6]), ace.hessian(atoms[:6]), alone.hessian(atoms[:6])
    np.testing.assert_allclose(hb.numpy(), (ha + hc).numpy(), rtol=0, atol=1e-10 * float(hb.abs().max()))


def test_batch_equals_one_by_one_and_the_ase_calculator():
    from acepy.calculators.ase import ACECalculator

    rng = np.random.default_rng()
    structures = [_salt(rng), _salt(rng, 2)]
    stack = Stack([Coulomb("initial_charges", method="ewald", cutoff=6.0)], ["Na", "Cl"])
    C.check_batch_equals_singles(stack, structures)
    atoms = structures[0]
    atoms.calc = ACECalculator(stack)
    ref = stack.evaluate(atoms)
    assert abs(atoms.get_potential_energy() - float(ref["energy"][0])) < 1e-12
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"].numpy(), rtol=0, atol=1e-12)


# ---- bad input --------------------------------------------------------------------------------
def test_clear_errors():
    rng = np.random.default_rng()
    salt = _salt(rng)
    charged = salt.copy()
    charged.set_initial_charges(charged.get_initial_charges() + 0.1)
    for method in ("ewald", "pme", "dsf"):
        stack = Stack([Coulomb("initial_charges", method=method, cutoff=6.0)], ["Na", "Cl"])
        with pytest.raises(StructureError, match="net charge"):
            stack.evaluate(charged)
    cluster = _cluster(rng)
    for method in ("ewald", "pme"):
        with pytest.raises(StructureError, match="periodic in all three"):
            Stack([Coulomb(NACL, method=method, cutoff=6.0)], ["Na", "Cl"]).evaluate(cluster)
    with pytest.raises(StructureError, match="direct"):
        Stack([Coulomb(NACL, method="direct")], ["Na", "Cl"]).evaluate(salt)
    with pytest.raises(ValueError, match=r"no charge for element\(s\) \['Cl'\]"):
        Stack([Coulomb({"Na": 1.0}, method="ewald")], ["Na", "Cl"])
    with pytest.raises(ValueError, match="method"):
        Coulomb(NACL, method="p4m")
    with pytest.raises(ValueError, match="accuracy"):
        Coulomb(NACL, accuracy=2.0)
    with pytest.raises(ValueError, match="charges"):
        Coulomb("charges")


# ---- CUDA tensors -----------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("method", ["ewald", "pme", "dsf"])
def test_cuda_equals_cpu(method):
    """Energies, forces, stress and the Hessian on CUDA tensors (torch and triton backends) equal
    the CPU's to rounding."""
    rng = np.random.default_rng()
    atoms = _salt(rng, 2)
    kw = {"cutoff": 6.0} | ({"accuracy": 1e-6} if method != "dsf" else {})
    cpu = Stack([Coulomb("initial_charges", method=method, **kw)], ["Na", "Cl"])
    small = _salt(rng)  # a neutral cell of 8 atoms for the Hessian
    ref, ref_h = cpu.evaluate(atoms), cpu.hessian(small)
    for backend in ("torch", "triton"):
        gpu = Stack([Coulomb("initial_charges", method=method, device="cuda", **kw)], ["Na", "Cl"], device="cuda",
                    backend=backend)
        out = gpu.evaluate(atoms)
        assert out["forces"].device.type == "cuda"
        for key in ("energy", "forces", "stress"):
            C._close(out[key].cpu(), ref[key], rtol=1e-10, what=f"{backend} {key}")
        hess = gpu.hessian(small)
        C._close(hess.cpu(), ref_h, rtol=1e-10, what=f"{backend} hessian")
