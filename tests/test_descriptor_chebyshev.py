"""The aenet Chebyshev descriptor (``acepy.descriptors.ChebyshevDescriptor``): the Fortran aenet
reference tables on every backend and dtype; gradients (dense, per-edge Jacobian, VJP and virial)
against autograd of the torch reference and against central finite differences; the translation
sum rule; rotation, permutation and lattice-shift invariance; supercells; batches; finite values
on collinear triplets, clusters, tiny periodic cells and mixed pbc; clear errors."""

import ase
import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk

import acepy
from acepy.descriptors import ChebyshevDescriptor, type_spins
from conftest import TOLERANCE, assert_close, device_for, fast_backends
from data_paths import EXPECTED

F64 = torch.float64
AENET = EXPECTED / "aenet"
LMNTO = ["Li", "Mo", "Ni", "Ti", "O"]
# (structure, table, species, rad_order, rad_Rc, ang_order, ang_Rc): tests/data/expected/aenet/README.md
TABLES = {
    "water": ("water.xyz", "water_ref.csv", ["O", "H"], 10, 4.0, 3, 1.5),
    "lmnto": ("lmnto_structure001.xsf", "lmnto_ref.csv", LMNTO, 10, 4.0, 3, 1.5),
    "aucu": ("aucu.xsf", "aucu_ref.csv", ["Au", "Cu"], 5, 3.5, 5, 3.5),
}
BACKENDS = ["torch"] + fast_backends()


def read(name):
    return ase.io.read(AENET / TABLES[name][0])


def descriptor(name, **kw):
    return ChebyshevDescriptor(*TABLES[name][2:], **kw)


def lmnto_rattled(seed=1):
    atoms = read("lmnto")
    atoms.rattle(0.05, seed=seed)
    return atoms


# a wider angular cutoff than the table's (more triplets), still below the radial one
WIDE = dict(species=LMNTO, rad_order=6, rad_cutoff=4.0, ang_order=4, ang_cutoff=2.6)


# ---- the reference tables ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TABLES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_reference_tables(name, backend, dtype):
    expected = torch.as_tensor(np.loadtxt(AENET / TABLES[name][1], delimiter=","))
    d = descriptor(name, backend=backend, dtype=dtype, device=device_for(backend))
    out = d.features(read(name))
    assert out.dtype == dtype and out.shape == expected.shape == (len(read(name)), d.n_features)
    assert_close(out, expected, dtype, what=f"{name} {backend}")


def test_type_spins_and_layout():
    assert [type_spins(n) for n in range(1, 6)] == [[0], [-1, 1], [-1, 0, 1], [-2, -1, 1, 2], [-2, -1, 0, 1, 2]]
    d = descriptor("lmnto")
    assert d.n_features == 30 and d.feature_names[:2] == ["rad0", "rad1"] and d.feature_names[11] == "ang0"
    assert d.feature_names[15] == "rad_s0" and "ang_s3" == d.feature_names[-1]
    one = ChebyshevDescriptor(["Cu"], 4, 3.0, 2, 3.0)
    assert one.n_features == 8 and one.feature_names == ["rad0", "rad1", "rad2", "rad3", "rad4", "ang0", "ang1", "ang2"]
    assert "n_features=8" in repr(one)


def test_one_species_is_the_unweighted_block():
    cu = bulk("Cu", "fcc", a=3.6).repeat(2)
    cu.rattle(0.05, seed=2)
    one = ChebyshevDescriptor(["Cu"], 6, 4.0, 4, 3.0, backend="torch").features(cu)
    two = ChebyshevDescriptor(["Cu", "Au"], 6, 4.0, 4, 3.0, backend="torch").features(cu)
    assert_close(two[:, :12], one, F64)
    # every neighbour has the spin of Cu, -1: the weighted radial block flips, the angular one (s_j s_k = 1) not
    assert_close(two[:, 12:19], -one[:, :7], F64)
    assert_close(two[:, 19:], one[:, 7:], F64)


# ---- gradients ----------------------------------------------------------------------------------
def autograd_reference(d_kwargs, atoms, cotangent):
    """dL/dx and dL/dstrain of L = sum(cotangent * G), by autograd of the torch reference."""
    ref = ChebyshevDescriptor(**d_kwargs, backend="torch")
    batch = acepy.batch_from_atoms(atoms).requires_grad_()
    loss = (ref.features(batch) * cotangent).sum()
    gx, gc = torch.autograd.grad(loss, (batch.positions, batch.cell))
    strain = batch.positions.detach().T @ gx + batch.cell.detach()[0].T @ gc[0]
    return gx, strain


@pytest.mark.parametrize("backend", BACKENDS)
def test_vjp_and_virial_against_autograd(backend, dtype):
    atoms = lmnto_rattled()
    cot = torch.as_tensor(np.random.default_rng(0).normal(size=(len(atoms), 24)))
    gx, strain = autograd_reference(WIDE, atoms, cot)
    d = ChebyshevDescriptor(**WIDE, backend=backend, dtype=dtype, device=device_for(backend))
    out = d.vjp(atoms, cot.to(d.device, dtype))
    assert out.forces.shape == (len(atoms), 3) and out.virial.shape == (1, 3, 3)
    assert_close(out.forces, -gx, dtype, what="forces = -dL/dx")
    assert_close(out.virial[0], -strain, dtype, what="virial = -dL/dstrain")
    assert_close(out.forces.sum(0), torch.zeros(3, dtype=F64), dtype, scale_floor=float(gx.abs().max()),
                 what="translation sum rule")
    assert d.graph_cache.n_searches == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_gradients_against_autograd_jacobian(backend):
    atoms = read("aucu")
    atoms.rattle(0.08, seed=3)
    ref = descriptor("aucu", backend="torch")
    pos = torch.as_tensor(atoms.positions)

    def g_of(x):
        b = acepy.batch_from_atoms(atoms)
        return ref.features(acepy.Batch(positions=x, numbers=b.numbers, cell=b.cell, pbc=b.pbc,
                                        system_idx=b.system_idx))

    expected = torch.autograd.functional.jacobian(g_of, pos)  # (N, F, N, 3)
    dense = descriptor("aucu", backend=backend, device=device_for(backend)).gradients(atoms)
    assert dense.shape == (4, 24, 4, 3)
    assert_close(dense, expected, F64, what="dense gradients")
    assert_close(dense.sum(2), torch.zeros(4, 24, 3, dtype=F64), F64, scale_floor=float(expected.abs().max()),
                 what="translation sum rule")


def test_edge_jacobian_contracts_to_the_vjp():
    atoms = lmnto_rattled(4)
    d = ChebyshevDescriptor(**WIDE, backend="numba")
    jac = d.edge_jacobian(atoms)
    cot = torch.as_tensor(np.random.default_rng(5).normal(size=(len(atoms), d.n_features)))
    g = d.edge_grads(atoms, cot)
    assert jac.values.shape == (g.grads.shape[0], d.n_features, 3)
    assert_close(torch.einsum("ef,efx->ex", cot[jac.centers], jac.values), g.grads, F64)
    ref = ChebyshevDescriptor(**WIDE, backend="torch").edge_jacobian(atoms)
    assert_close(jac.values, ref.values, F64)


@pytest.mark.parametrize("name", ["lmnto", "tiny cell", "mixed pbc", "collinear chain"])
def test_central_finite_differences(name):
    atoms = STRUCTURES[name]()
    species = sorted(set(atoms.get_chemical_symbols()))
    d = ChebyshevDescriptor(species, 6, 3.5, 4, 2.9, backend="numba")
    cot = torch.as_tensor(np.random.default_rng(6).normal(size=(len(atoms), d.n_features)))
    out = d.vjp(atoms, cot)
    loss = lambda a: float((d.features(a) * cot).sum())  # noqa: E731
    h = 1e-5
    rng = np.random.default_rng(7)
    for atom in rng.choice(len(atoms), size=min(4, len(atoms)), replace=False):
        for x in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[atom, x] += h
            minus.positions[atom, x] -= h
            fd = (loss(plus) - loss(minus)) / (2 * h)
            assert abs(-float(out.forces[atom, x]) - fd) <= 1e-6 * max(1.0, abs(fd)), (name, atom, x)
    if atoms.pbc.all():  # the virial: L under a symmetric strain of positions and cell
        eps = np.zeros((3, 3))
        eps[0, 1] = eps[1, 0] = 0.5
        strained = lambda s: _strain(atoms, np.eye(3) + s * eps)  # noqa: E731
        fd = (loss(strained(h)) - loss(strained(-h))) / (2 * h)
        assert abs(-float((out.virial[0] * torch.as_tensor(eps)).sum()) - fd) <= 1e-6 * max(1.0, abs(fd))


# ---- invariances and structure -------------------------------------------------------------------
def test_rotation_permutation_and_lattice_shift_invariance():
    atoms = lmnto_rattled(8)
    d = ChebyshevDescriptor(**WIDE, backend="numba")
    g = d.features(atoms)
    rotated = atoms.copy()
    rotated.rotate(37, (1, 2, 3), rotate_cell=True)
    assert_close(d.features(rotated), g, F64, what="rotation")
    perm = np.random.default_rng(9).permutation(len(atoms))
    assert_close(d.features(atoms[perm]), g[perm], F64, what="permutation")
    shifted = atoms.copy()
    shifted.positions[::3] += atoms.cell[0] - 2 * atoms.cell[2]
    assert_close(d.features(shifted), g, F64, what="lattice shift")
    moved = atoms.copy()
    moved.translate([0.3, -1.1, 2.0])
    moved.wrap()
    assert_close(d.features(moved), g, F64, what="translation + wrap")


def test_supercell_features_are_the_tiled_cell():
    atoms = read("aucu")
    atoms.rattle(0.05, seed=10)
    d = descriptor("aucu", backend="numba")
    g = d.features(atoms)
    big = atoms.repeat((2, 1, 3))
    assert_close(d.features(big), g.repeat(6, 1), F64, what="supercell")
    cot = torch.as_tensor(np.random.default_rng(11).normal(size=(4, d.n_features)))
    small, large = d.vjp(atoms, cot), d.vjp(big, cot.repeat(6, 1))
    assert_close(large.forces, small.forces.repeat(6, 1), F64, what="supercell forces")
    assert_close(large.virial, 6 * small.virial, F64, what="supercell virial")


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_equals_one_by_one(backend):
    structures = [lmnto_rattled(12), _tiny(), lmnto_rattled(13)[:20], _slab()]
    species = LMNTO
    d = ChebyshevDescriptor(species, 5, 3.5, 3, 2.6, backend=backend, device=device_for(backend))
    rng = np.random.default_rng(14)
    cots = [torch.as_tensor(rng.normal(size=(len(a), d.n_features)), device=d.device) for a in structures]
    g = d.features(structures)
    out = d.vjp(structures, torch.cat(cots))
    start = 0
    for b, (atoms, cot) in enumerate(zip(structures, cots)):
        stop = start + len(atoms)
        assert_close(g[start:stop], d.features(atoms), F64, what=f"features {b}")
        one = d.vjp(atoms, cot)
        assert_close(out.forces[start:stop], one.forces, F64, what=f"forces {b}")
        assert_close(out.virial[b], one.virial[0], F64, what=f"virial {b}")
        start = stop


@pytest.mark.parametrize("name", ["cluster", "collinear chain", "tiny cell", "fcc one atom", "mixed pbc",
                                  "linear molecule"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_finite_everywhere(name, backend):
    atoms = STRUCTURES[name]()
    d = ChebyshevDescriptor(LMNTO, 6, 4.0, 4, 3.8, backend=backend, device=device_for(backend))
    g = d.features(atoms)
    dense = d.gradients(atoms)
    assert torch.isfinite(g).all() and torch.isfinite(dense).all(), name
    assert g.abs().sum() > 0
    scale = float(dense.abs().max())
    assert float(dense.sum(2).abs().max()) <= TOLERANCE[F64] * max(scale, 1.0), "translation sum rule"
    ref = ChebyshevDescriptor(LMNTO, 6, 4.0, 4, 3.8, backend="torch").gradients(atoms)
    assert_close(dense, ref, F64, what=name)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_chunks_change_nothing(backend, monkeypatch):
    """Features and VJP computed in many small chunks of atoms equal those of one chunk."""
    from acepy.descriptors import _blocks

    atoms = lmnto_rattled(18)
    d = ChebyshevDescriptor(**WIDE, backend=backend)
    cot = torch.as_tensor(np.random.default_rng(19).normal(size=(len(atoms), d.n_features)))
    g, out = d.features(atoms), d.vjp(atoms, cot)
    monkeypatch.setitem(_blocks.EDGE_CHUNK, "cpu", 50)
    monkeypatch.setattr(_blocks, "PAIR_CHUNK", 40)
    assert len(_blocks.atom_chunks(d.graph_cache.graphs(acepy.batch_from_atoms(atoms))[4.0].offsets, 50)) > 10
    assert_close(d.features(atoms), g, F64, what="chunked features")
    chunked = d.vjp(atoms, cot)
    assert_close(chunked.forces, out.forces, F64, what="chunked forces")
    assert_close(chunked.virial, out.virial, F64, what="chunked virial")


# ---- errors ----------------------------------------------------------------------------------
def test_errors():
    with pytest.raises(ValueError, match=r"structure 0, atom 1 is Cu, which is not among"):
        ChebyshevDescriptor(["Au"], 3, 3.0, 2, 3.0).features(ase.Atoms("AuCu", positions=[[0, 0, 0], [0, 0, 2]]))
    with pytest.raises(ValueError, match="not chemical element symbols"):
        ChebyshevDescriptor(["Au", "Xx"], 3, 3.0, 2, 3.0)
    with pytest.raises(ValueError, match="more than once"):
        ChebyshevDescriptor(["Au", "Cu", "Au"], 3, 3.0, 2, 3.0)
    with pytest.raises(TypeError, match="species"):
        ChebyshevDescriptor("AuCu", 3, 3.0, 2, 3.0)
    with pytest.raises(TypeError, match="species"):
        ChebyshevDescriptor([], 3, 3.0, 2, 3.0)
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises((TypeError, ValueError), match="rad_order"):
            ChebyshevDescriptor(["Au"], bad, 3.0, 2, 3.0)
    for bad in (0.0, -2.0, float("nan"), float("inf"), "4"):
        with pytest.raises((TypeError, ValueError), match="ang_cutoff"):
            ChebyshevDescriptor(["Au"], 3, 3.0, 2, bad)
    with pytest.raises(TypeError, match="dtype"):
        ChebyshevDescriptor(["Au"], 3, 3.0, 2, 3.0, dtype=torch.int64)
    with pytest.raises(ValueError, match="unknown backend"):
        ChebyshevDescriptor(["Au"], 3, 3.0, 2, 3.0, backend="cuda")
    d = ChebyshevDescriptor(["Au"], 3, 3.0, 2, 3.0)
    dimer = ase.Atoms("Au2", positions=[[0, 0, 0], [0, 0, 2.5]])
    with pytest.raises(ValueError, match=r"cotangent must be \(N, F\) = \(2, 7\)"):
        d.vjp(dimer, torch.zeros(2, 6, dtype=F64))
    with pytest.raises(ValueError, match="atoms 0 and 1 .* same place"):
        d.features(ase.Atoms("Au2", positions=[[0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="not finite"):
        d.features(ase.Atoms("Au2", positions=[[0, 0, 0], [0, 0, np.nan]]))


# ---- structures ------------------------------------------------------------------------------
def _tiny():
    """A periodic cell much smaller than the cutoffs: every atom sees many images of itself."""
    atoms = ase.Atoms("LiO", positions=[[0, 0, 0], [0.9, 1.0, 0.8]], cell=[[1.8, 0.1, 0], [0, 1.9, 0], [0.2, 0, 1.7]],
                      pbc=True)
    atoms.rattle(0.02, seed=15)
    return atoms


def _slab():
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((2, 1, 2))
    atoms.symbols[::3] = "Ti"
    atoms.pbc = (True, False, True)
    atoms.rattle(0.04, seed=16)
    return atoms


def _cluster():
    atoms = ase.Atoms("Ni4OLi", positions=[[0, 0, 0], [2.2, 0, 0], [0, 2.1, 0], [0, 0, 2.3], [1.1, 1.0, 0.9],
                                           [-1.5, -1.2, 0.3]])
    atoms.rattle(0.03, seed=17)
    return atoms


def _chain():
    """A periodic straight chain along z (cos theta = -1 and +1 for every centre) plus a bent one."""
    atoms = ase.Atoms("NiONiO", positions=[[0, 0, 0], [0, 0, 1.9], [0, 0, 3.8], [0, 0, 5.7]],
                      cell=[[8, 0, 0], [0, 8, 0], [0, 0, 7.6]], pbc=True)
    return atoms


STRUCTURES = {
    "lmnto": lmnto_rattled,
    "tiny cell": _tiny,
    "mixed pbc": _slab,
    "collinear chain": _chain,
    "cluster": _cluster,
    "fcc one atom": lambda: bulk("Ni", "fcc", a=3.52),
    "linear molecule": lambda: ase.Atoms("OTiO", positions=[[0, 0, 0], [0, 0, 1.9], [0, 0, 3.8]]),
}


def _strain(atoms, f):
    out = atoms.copy()
    out.set_cell(atoms.cell[:] @ f.T, scale_atoms=False)
    out.positions = atoms.positions @ f.T
    return out
