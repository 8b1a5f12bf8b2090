"""Hessians and Hessian-vector products (acepy/models/hessian.py, ace_hessian.py).

The exact per-site route (``method="sites"``) against plain dense autograd of ``Stack.energy`` on
the positions (to 1e-12 of max|H|) on every public potential file, the bundled ones and random
python-ace potentials of every inner-cutoff kind (the zbl switch included), on periodic cells
small enough that atoms see their own images and on clusters; against a closed-form pair-potential
Hessian (a rank-1 linear ACE, neighbours from ASE); against central differences of the fast
forces; symmetry, the acoustic sum rule, rotation covariance, permutation, batch = singles,
chunking; HVP = H v; the ASE calculator's (3N, 3N) layout; vibrations against ASE's
``Vibrations`` and force constants against phonopy's own finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

import acepy
import acepy.models.ace_hessian as ace_hessian
from acepy.models.component import Component
from acepy.calculators import ACECalculator, phonopy_force_constants, vibrations

# python-ace's (ASL) and FitSNAP's (GPL-2.0) files are not in tests/data: from ../shared/reference, else the
# tests that open them skip with that reason (data_paths.potential); TiAl (MIT): tests/data, used everywhere else
from data_paths import ACE_FILES, TIAL_TABLE, TIAL_YACE, YACE_FILES, potential

EXACT = 1e-12  # of max|H|: both routes are exact, they differ by rounding only
# Two python-ace test files sum radial coefficients of +-1e3..1e4 into energies of order 1 (rank 1)
# or 1e3 eV (rank 3 with core repulsion): rounding is that much larger relative to max|H|.
ILL_CONDITIONED = {"python-ace__tests__Al.pbe.in-rank1.ace": 1e-10, "python-ace__tests__Al.pbe-in.rank3-core-rep.ace": 1e-10}

PUBLIC = list(YACE_FILES + ACE_FILES)  # the full list, never a glob
BUNDLED = ["Cu-synthetic-pbe-core-rep", "AlCuNi-synthetic-r4", "AlTi-synthetic-linear"]


def _rel(a, b) -> float:
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _load(name, backend="numba", **kw):
    if name in BUNDLED:
        return acepy.load(name, backend=backend, **kw)
    if name == TIAL_YACE.name:
        kw.setdefault("pair_table", TIAL_TABLE)
    return acepy.load(potential(name), backend=backend, **kw)


def _structures(model, rng):
    """A periodic cell small enough that every atom sees its own images (2 atoms, triclinic), and a
    cluster, with the model's elements."""
    el = model.elements
    cell = bulk("Cu", "fcc", a=3.9).cell[:] * 1.0 + rng.normal(scale=0.05, size=(3, 3))
    small = Atoms([el[0], el[-1]], scaled_positions=[[0, 0, 0], [0.5, 0.45, 0.55]], cell=cell, pbc=True)
    small.rattle(0.05, seed=int(rng.integers(1 << 30)))
    pos = rng.normal(size=(5, 3))
    pos *= 2.6 / min(np.linalg.norm(pos[i] - pos[j]) for i in range(5) for j in range(i))
    cluster = Atoms([el[k % len(el)] for k in range(5)], positions=pos)
    return [small, cluster]


def _dense_autograd(model, atoms):
    return model.hessian(atoms, method="autograd")


def _check_symmetric_sum_rule(h, tol=EXACT):
    n = h.shape[0]
    scale = float(h.abs().max())
    assert float((h - h.permute(2, 3, 0, 1)).abs().max()) <= tol * scale, "not symmetric"
    assert float(h.sum(dim=2).abs().max()) <= tol * scale * n, "acoustic sum rule"


@pytest.mark.parametrize("name", PUBLIC + BUNDLED)
def test_sites_route_equals_dense_autograd(name):
    rng = np.random.default_rng()
    model = _load(name)
    for atoms in _structures(model, rng):
        h, info = model.hessian(atoms, return_info=True)
        assert info["method"] == "sites" and info["routes"]["ACE"].startswith("chain rule")
        ref = _dense_autograd(model, atoms)
        assert h.shape == (len(atoms), 3, len(atoms), 3)
        tol = ILL_CONDITIONED.get(name, EXACT)
        assert _rel(h, ref) <= tol, (name, atoms.get_chemical_formula(), _rel(h, ref))
        _check_symmetric_sum_rule(h, tol)


@pytest.fixture(scope="module")
def random_potentials(tmp_path_factory):
    """python-ace potentials of every radial kind and inner cutoff (density, distance, zbl)."""
    pytest.importorskip("pyace")
    from test_model_random import _recipes, make_potential

    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("hessian_random")
    return {name: make_potential(cfg, folder / f"{name}.yace", rng) for name, cfg in _recipes(rng).items()}


def test_sites_route_on_random_potentials_of_every_inner_cutoff(random_potentials):
    rng = np.random.default_rng()
    seen = set()
    for name, path in random_potentials.items():
        model = acepy.load(path, backend="numba")
        seen.add(model.components[1].inner_cutoff_type)
        for atoms in _structures(model, rng):
            ref = _dense_autograd(model, atoms)
            assert _rel(model.hessian(atoms), ref) <= EXACT, name
    assert seen == {"density", "distance", "zbl"}


def test_pair_table_and_ace_each_alone_and_stacked():
    """No component's curvature is dropped: the TiAl ACE, its LAMMPS pair table and the stack of
    both, each against dense autograd."""
    from acepy.io import read_pair_table
    from acepy.models.pair import Pair
    from acepy.models.stack import Stack

    rng = np.random.default_rng()
    stacked = acepy.load(TIAL_YACE, pair_table=TIAL_TABLE, backend="numba")
    pair = Stack([Pair(read_pair_table(TIAL_TABLE), ["Al", "Ti"])], ["Al", "Ti"], backend="numba")
    ace = acepy.load(TIAL_YACE, backend="numba")
    atoms = bulk("Al", "fcc", a=4.0, cubic=True)
    atoms.set_chemical_symbols(["Al", "Ti", "Ti", "Al"])
    atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
    parts = []
    for model in (pair, ace, stacked):
        h, info = model.hessian(atoms, return_info=True)
        assert _rel(h, _dense_autograd(model, atoms)) <= EXACT
        parts.append(h)
    assert info["routes"]["Pair"] == "edge autograd"
    assert _rel(parts[0] + parts[1], parts[2]) <= EXACT
    assert float(parts[0].abs().max()) > 1e-3 * float(parts[2].abs().max())  # the table matters here


def test_rank1_linear_potential_equals_closed_form_pair_hessian(tmp_path):
    """A rank-1 ACE with a linear embedding is a pair potential E = sum over ordered pairs u(r):
    H_ij = -(u'' rr^T + u'/r (1 - rr^T)) for i != j, summed over images, H_ii from the sum rule.
    Neighbours from ASE's neighbour list; u', u'' from autograd of the radial basis in r alone."""
    text = potential("python-ace__tests__Al.pbe.in-rank1.ace").read_text()
    text = text.replace("4 FS parameters:  1.000000 1.000000 1.000000 0.500000",
                        "4 FS parameters:  1.000000 1.000000 0.000000 0.500000")
    assert "0.000000 0.500000" in text
    path = tmp_path / "Al-rank1-linear.ace"
    path.write_text(text)
    model = acepy.load(path, backend="numba")
    ace = model.components[1]
    rng = np.random.default_rng()
    atoms = bulk("Al", "fcc", a=4.05).repeat((2, 1, 1))
    atoms.rattle(0.08, seed=int(rng.integers(1 << 30)))
    i, j, d, dvec = neighbor_list("ijdD", atoms, ace.cutoff - 1e-9)
    r = torch.tensor(d, requires_grad=True)
    zeros = torch.zeros(len(d), dtype=torch.long)
    gk = ace.radial.evaluate(r, zeros, zeros, backend="torch").gk
    u = gk @ ace._rank1[0, :, 0]
    (du,) = torch.autograd.grad(u.sum(), r, create_graph=True)
    (d2u,) = torch.autograd.grad(du.sum(), r)
    rhat = torch.tensor(dvec) / r.detach()[:, None]
    k = d2u[:, None, None] * rhat[:, :, None] * rhat[:, None, :] + \
        (du.detach() / r.detach())[:, None, None] * (torch.eye(3) - rhat[:, :, None] * rhat[:, None, :])
    n = len(atoms)
    ref = torch.zeros((n, 3, n, 3), dtype=torch.float64)
    for e in range(len(d)):  # every ordered edge is one term u(r_e) of E
        a, b = int(i[e]), int(j[e])
        ref[a, :, a] += k[e]
        ref[b, :, b] += k[e]
        ref[a, :, b] -= k[e]
        ref[b, :, a] -= k[e]
    assert _rel(model.hessian(atoms), ref) <= 1e-11


def test_finite_differences_of_the_fast_forces():
    """Against central differences of the fast forces: the spline-table potentials' error falls
    with the step (until rounding / h takes over), to about 1e-7 of max|H| at h = 1e-4 A."""
    rng = np.random.default_rng()
    model = acepy.load("Cu-synthetic-pbe-core-rep", backend="numba")
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
    h = model.hessian(atoms)
    errs = [_rel(model.hessian(atoms, method="fd", step=s), h) for s in (1e-2, 1e-3, 1e-4)]
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] <= 1e-6, errs
    _, info = model.hessian(atoms, method="fd", step=1e-4, return_info=True)
    assert info == {"method": "fd", "step": 1e-4, "seconds": info["seconds"]}


class SmoothPair(Component):
    """E_i = 1/2 sum_j D (1 - exp(-a (r - r0)))^2 (1 - (r/rc)^2)^3: smooth everywhere (no tables),
    for the finite-difference check at a tight tolerance. ``edge_local`` picks the per-edge route
    (3 x 3 blocks) or the generic per-slot autograd route."""

    cutoff = 5.0

    def __init__(self, edge_local: bool):
        self.edge_local = edge_local

    def site_energies(self, inputs, backend="torch"):
        r = inputs.distances
        v = 0.4 * (1 - torch.exp(-1.3 * (r - 2.6))) ** 2 * (1 - (r / self.cutoff) ** 2) ** 3
        return r.new_zeros(inputs.n_atoms).index_add(0, inputs.centers, 0.5 * v)


@pytest.mark.parametrize("edge_local", [True, False], ids=["edge-route", "slot-route"])
def test_smooth_potential_matches_finite_differences_tightly(edge_local):
    from acepy.models.stack import Stack

    rng = np.random.default_rng()
    model = Stack([SmoothPair(edge_local)], ["Cu"], backend="torch")
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
    h, info = model.hessian(atoms, return_info=True)
    assert info["routes"]["SmoothPair"] == ("edge autograd" if edge_local else "slot autograd")
    assert _rel(h, _dense_autograd(model, atoms)) <= EXACT
    assert _rel(model.hessian(atoms, method="fd", step=1e-4), h) <= 1e-6
    _check_symmetric_sum_rule(h)


def test_hessian_vector_products_equal_h_times_v_over_a_batch():
    rng = np.random.default_rng()
    model = _load(TIAL_YACE.name)  # ACE + pair table
    structures = _structures(model, rng)
    hs = model.hessian(structures)
    n = sum(len(a) for a in structures)
    v = torch.as_tensor(rng.normal(size=(3, n, 3)))
    ref = torch.zeros_like(v)
    start = 0
    for atoms, h in zip(structures, hs):
        m = len(atoms)
        ref[:, start:start + m] = torch.einsum("iajb,kjb->kia", h, v[:, start:start + m])
        start += m
    for method in ("sites", "autograd"):
        out = model.hessian_vector_product(structures, v, method=method)
        assert out.shape == v.shape and _rel(out, ref) <= EXACT, method
    one = model.hessian_vector_product(structures, v[1])
    assert one.shape == (n, 3) and _rel(one, ref[1]) <= EXACT
    assert _rel(model.hessian_vector_product(structures, v, method="fd", step=1e-5), ref) <= 1e-6
    # what ran is reported: the ACE route by the number of vectors, the pair table's, the fd step
    from acepy.models import ace_hvp

    names = [type(c).__name__ for c in model.components]
    for k, route in ((1, "forward-mode tangent"), (ace_hvp.MAX_VECTORS + 1, "per-site")):
        out, info = model.hessian_vector_product(structures, v[:1].expand(k, n, 3), return_info=True)
        assert _rel(out[-1], ref[0]) <= EXACT and info is model.last_hvp_info
        assert info["method"] == "sites" and info["vectors"] == k and list(info["routes"]) == names
        assert info["routes"]["ACE"].startswith(route) and info["seconds"] > 0, info
    _, info = model.hessian_vector_product(structures, v, method="fd", step=1e-5, return_info=True)
    assert info["method"] == "fd" and info["step"] == 1e-5 and "routes" not in info


def test_batch_equals_singles_and_chunking_changes_nothing(monkeypatch):
    rng = np.random.default_rng()
    model = acepy.load("AlCuNi-synthetic-r4", backend="numba")
    a = bulk("Al", "fcc", a=4.0, cubic=True).repeat((2, 1, 1))
    a.set_chemical_symbols(rng.choice(["Al", "Cu", "Ni"], len(a)).tolist())
    a.rattle(0.1, seed=int(rng.integers(1 << 30)))
    structures = [a] + _structures(model, rng)
    batch = model.hessian(structures)
    for atoms, h in zip(structures, batch):
        assert _rel(h, model.hessian(atoms)) <= EXACT
    monkeypatch.setattr(ace_hessian, "CHUNK_BYTES", 1)  # one atom per chunk
    assert _rel(model.hessian(a), batch[0]) <= EXACT
    v = torch.as_tensor(rng.normal(size=(len(a), 3)))
    assert _rel(model.hessian_vector_product(a, v), torch.einsum("iajb,jb->ia", batch[0], v)) <= EXACT


def test_rotation_covariance_and_permutation():
    rng = np.random.default_rng()
    model = _load(TIAL_YACE.name)
    atoms = bulk("Al", "fcc", a=4.0, cubic=True)
    atoms.set_chemical_symbols(["Al", "Ti", "Al", "Ti"])
    atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
    h = model.hessian(atoms)
    q, rr = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(rr))
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell[:] @ q.T, scale_atoms=False)
    rotated.positions = atoms.positions @ q.T
    qt = torch.as_tensor(q)
    assert _rel(model.hessian(rotated), torch.einsum("ba,iajc,dc->ibjd", qt, h, qt)) <= 1e-11
    perm = rng.permutation(len(atoms))
    permuted = atoms[perm]
    p = torch.as_tensor(perm)
    assert _rel(model.hessian(permuted), h[p][:, :, p]) <= EXACT


def _l10_tial() -> Atoms:
    """L1_0 TiAl (4 atoms): the ideal positions are a minimum at fixed cell by symmetry."""
    return Atoms("Ti2Al2", scaled_positions=[[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                 cell=[4.0, 4.0, 4.07], pbc=True)


def _tial_calculator() -> ACECalculator:
    return ACECalculator(str(TIAL_YACE), pair_table=str(TIAL_TABLE))


def test_calculator_layout_and_vibrations_against_ase():
    """get_hessian is (3N, 3N) with row 3i + a; on a relaxed L1_0 TiAl cell (ACEpotentials.jl's
    fitted tutorial potential with its pair table) the Hessian and the frequencies agree with
    ASE's Vibrations run on the calculator to its finite-difference accuracy."""
    from ase.optimize import BFGS
    from ase.vibrations import Vibrations

    calc = _tial_calculator()
    atoms = _l10_tial().repeat((2, 1, 1))
    atoms.rattle(0.02, seed=int(np.random.default_rng().integers(1 << 30)))
    atoms.calc = calc
    BFGS(atoms, logfile=None).run(fmax=1e-6, steps=300)
    big = calc.get_hessian()
    n = len(atoms)
    h = calc.model.hessian(atoms)
    assert big.shape == (3 * n, 3 * n) and np.array_equal(big, h.numpy().reshape(3 * n, 3 * n))
    assert big[3 * 1 + 2, 3 * 3 + 0] == float(h[1, 2, 3, 0])
    ours = vibrations(calc, atoms)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        vib = Vibrations(atoms, name=f"{folder}/vib", delta=0.002, nfree=4)
        vib.run()
        theirs = vib.get_vibrations()
    scale = np.abs(big).max()
    assert np.abs(theirs.get_hessian_2d() - big).max() <= 1e-5 * scale
    e_ours, e_theirs = ours.get_energies(), theirs.get_energies()
    assert np.abs(e_ours[3:] - e_theirs[3:]).max() <= 1e-4 * np.abs(e_theirs).max()
    assert np.abs(e_ours[3:].imag).max() == 0 and e_ours[3:].real.min() > 0  # a minimum: real frequencies
    some = vibrations(calc, atoms, indices=[0, 2]).get_hessian_2d()
    rows = [0, 1, 2, 6, 7, 8]
    assert np.array_equal(some, big[np.ix_(rows, rows)])


def test_phonopy_force_constants_against_phonopy_finite_differences():
    phonopy = pytest.importorskip("phonopy")
    from phonopy.structure.atoms import PhonopyAtoms

    calc = _tial_calculator()
    cell = _l10_tial()
    unit = PhonopyAtoms(symbols=cell.get_chemical_symbols(), cell=cell.cell[:], scaled_positions=cell.get_scaled_positions())
    ph = phonopy.Phonopy(unit, supercell_matrix=np.diag([2, 2, 2]), primitive_matrix="auto")
    fc = phonopy_force_constants(calc, ph)
    assert fc.shape == (32, 32, 3, 3) and np.array_equal(ph.force_constants, fc)
    qpoints = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, 0.0, 0.0]]  # commensurate with the supercell
    ph.run_qpoints(qpoints)
    ours = ph.qpoints.frequencies.copy()
    ph.generate_displacements(distance=0.003)
    forces = []
    for sc in ph.supercells_with_displacements:
        a = Atoms(numbers=sc.numbers, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        a.calc = calc
        forces.append(a.get_forces())
    ph.forces = forces
    ph.produce_force_constants()
    ph.run_qpoints(qpoints)
    assert np.abs(ours - ph.qpoints.frequencies).max() <= 1e-4 * np.abs(ours).max()
    assert ours[1:].min() > 1.0 and np.abs(ours[0, :3]).max() < 1e-6  # THz: stable; acoustic zero at Gamma


def test_float32_hessian_states_its_accuracy():
    rng = np.random.default_rng()
    atoms = bulk("Al", "fcc", a=4.0, cubic=True)
    atoms.set_chemical_symbols(["Al", "Ti", "Al", "Al"])
    atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
    h64 = _load(TIAL_YACE.name).hessian(atoms)
    h32 = _load(TIAL_YACE.name, dtype="float32").hessian(atoms)
    assert h32.dtype == torch.float32
    assert _rel(h32, h64) <= 1e-4  # the accuracy the README and the module docstring state


def test_bad_arguments_are_named():
    model = _load(TIAL_YACE.name)
    atoms = bulk("Al", "fcc", a=4.05)
    with pytest.raises(ValueError, match="method must be one of"):
        model.hessian(atoms, method="exact")
    with pytest.raises(ValueError, match="step"):
        model.hessian(atoms, method="fd", step=-1.0)
    with pytest.raises(ValueError, match=r"shape \(1, 3\) or \(K, 1, 3\)"):
        model.hessian_vector_product(atoms, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        model.hessian_vector_product(atoms, torch.full((1, 3), float("nan")))
    calc = _tial_calculator()
    with pytest.raises(ValueError, match="no atoms"):
        calc.get_hessian()


@pytest.mark.gpu
def test_exact_hessian_on_cuda_tensors():
    rng = np.random.default_rng()
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
    atoms.set_chemical_symbols(rng.choice(["Al", "Ti"], len(atoms)).tolist())
    atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
    cpu = _load(TIAL_YACE.name).hessian(atoms)
    for backend in ("torch", "triton"):
        gpu = _load(TIAL_YACE.name, device="cuda", backend=backend).hessian(atoms)
        assert gpu.device.type == "cuda" and _rel(gpu.cpu(), cpu) <= EXACT, backend
