"""The tabulated pair term (LAMMPS ``pair_style table spline N``) and the stacked TiAl model.

The reference here is an independent re-implementation of LAMMPS's table semantics
(``src/pair_table.cpp``: file splines in r, N-point tables evenly spaced in r^2, clamped end
conditions, energy and force from separate splines) written with ``scipy.interpolate.CubicSpline``
and ASE's neighbour list, not with acepy's code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list
from scipy.interpolate import CubicSpline

import acepy
from acepy.graph import edge_vectors, neighbor_graph
from acepy.io import PotentialFileError, read_pair_table
from acepy.kernels import BackendUnavailableError
from acepy.errors import TooCloseError
from acepy.models.component import BatchGraph
from acepy.models.pair import Pair

from data_paths import TIAL_TABLE as TABLE, TIAL_YACE as YACE


# ---- independent reference of LAMMPS's table ------------------------------------------------------
def reference_table(section, n, cut=None):
    """(V(r), fpair(r)) callables as LAMMPS builds them, via scipy's clamped cubic splines."""
    r, e, f = section.r, section.energy, section.force
    p = section.params
    ranged = p.get("R") or p.get("RSQ")
    r_in = ranged[0] if ranged else r[0]
    r_c = cut if cut is not None else (ranged[1] if ranged else r[-1])
    if "FPRIME" in p:
        f_lo, f_hi = p["FPRIME"]
    else:
        f_lo, f_hi = np.diff(f[:2])[0] / np.diff(r[:2])[0], np.diff(f[-2:])[0] / np.diff(r[-2:])[0]
    file_e = CubicSpline(r, e, bc_type=((1, -f[0]), (1, -f[-1])))
    file_f = CubicSpline(r, f, bc_type=((1, f_lo), (1, f_hi)))
    s = np.linspace(r_in**2, r_c**2, n)  # the internal grid, uniform in s = r^2
    step = s[1] - s[0]
    force = file_f(np.sqrt(s))
    energy_s = CubicSpline(s, file_e(np.sqrt(s)), bc_type=((1, -force[0] / (2 * r_in)), (1, -force[-1] / (2 * r_c))))

    def secant(s1, s2):  # d(f/r)/ds over [s1, s2] from the file spline
        return (file_f(np.sqrt(s2)) / np.sqrt(s2) - file_f(np.sqrt(s1)) / np.sqrt(s1)) / (s2 - s1)

    # d(f/r)/ds = (f'/r - f/r^2) / (2r)
    slope_lo = (f_lo / r_in - force[0] / r_in**2) / (2 * r_in) if "FPRIME" in p else secant(s[0], s[0] + 0.1 * step)
    exact_hi = "FPRIME" in p and r_c == r[-1]
    slope_hi = (f_hi / r_c - force[-1] / r_c**2) / (2 * r_c) if exact_hi else secant(s[-1] - 0.1 * step, s[-1])
    fpair_s = CubicSpline(s, force / np.sqrt(s), bc_type=((1, slope_lo), (1, slope_hi)))
    return (lambda x: energy_s(np.asarray(x) ** 2)), (lambda x: fpair_s(np.asarray(x) ** 2)), r_in, r_c


def reference_pair(atoms, table_path, elements, n):
    """Energies per atom, forces and ASE stress of the pair term, pair by pair with ASE's list."""
    table = read_pair_table(table_path)
    refs = {}
    for a in elements:
        for b in elements:
            refs[a, b] = reference_table(table.section_for(a, b), n)
    cut = max(v[3] for v in refs.values())
    i, j, d = neighbor_list("ijD", atoms, cut + 0.01)
    sym = atoms.get_chemical_symbols()
    energies = np.zeros(len(atoms))
    forces = np.zeros((len(atoms), 3))
    virial = np.zeros((3, 3))
    for k in range(len(i)):
        v_fn, f_fn, r_in, r_c = refs[sym[i[k]], sym[j[k]]]
        rsq = d[k] @ d[k]
        if rsq >= r_c**2:
            continue
        r = np.sqrt(rsq)
        energies[i[k]] += 0.5 * v_fn(r)
        fp = f_fn(r)
        forces[i[k]] -= fp * d[k]  # LAMMPS: f_i += (x_i - x_j) fpair
        virial += 0.5 * fp * np.outer(d[k], d[k])
    stress = -virial / atoms.get_volume() if atoms.cell.rank == 3 else None
    return energies, forces, stress


def tial(rng, repeat=(2, 2, 2), a=4.05, rattle=0.15):
    atoms = bulk("Al", "fcc", a=a, cubic=True).repeat(repeat)
    atoms.set_cell(atoms.cell[:] + rng.normal(scale=0.1, size=(3, 3)), scale_atoms=True)
    atoms.rattle(rattle, seed=int(rng.integers(1 << 30)))
    atoms.set_chemical_symbols(rng.choice(["Al", "Ti"], len(atoms)).tolist())
    return atoms


def pair_on(pair, atoms, fast=False):
    """Evaluate the Pair component alone: (energies, forces, stress) by autograd or the fast path."""
    batch = acepy.batch_from_atoms(atoms)
    graph = neighbor_graph(batch, pair.cutoff)
    species = torch.tensor([pair.elements.index(s) for s in atoms.get_chemical_symbols()])
    pos = batch.positions.clone().requires_grad_(not fast)
    cell = batch.cell.clone().requires_grad_(not fast)
    vectors = edge_vectors(pos, cell, graph)
    volume = abs(float(torch.det(batch.cell[0])))
    if fast:
        energies, g = pair.energies_and_edge_grads(BatchGraph(batch, species, graph, vectors), "numba")
        forces = torch.zeros_like(pos).index_add(0, graph.centers, g).index_add(0, graph.neighbors, -g)
        stress = torch.einsum("ea,eb->ab", vectors, g) / volume
        return energies.numpy(), forces.numpy(), stress.numpy()
    energies = pair.site_energies(BatchGraph(batch, species, graph, vectors))
    gpos, gcell = torch.autograd.grad(energies.sum(), (pos, cell))
    # dE/d(strain) = pos^T dE/dpos + cell^T dE/dcell (rows are vectors), divided by the volume
    stress = (pos.detach().T @ gpos + cell.detach()[0].T @ gcell[0]) / volume
    return energies.detach().numpy(), -gpos.numpy(), stress.numpy()


@pytest.fixture(scope="module")
def pair():
    return Pair(read_pair_table(TABLE), ["Al", "Ti"])


# ---- the table itself -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [None, "random"])
def test_table_matches_independent_lammps_semantics(n):
    """Energy and fpair of every TiAl section against the scipy re-implementation, at fresh random
    distances over the whole table (including the steep core), for the file's N and a random N."""
    rng = np.random.default_rng()
    table = read_pair_table(TABLE)
    n = 6901 if n is None else int(rng.integers(500, 8000))
    pair = Pair(table, ["Al", "Ti"], tablength=n)
    for tb in pair.lammps_tables:
        v_fn, f_fn, r_in, r_c = reference_table(table.sections[tb.keyword], n)
        assert (tb.inner, tb.cut) == (r_in, r_c)
        r = np.concatenate([rng.uniform(r_in, r_c, 20000), [r_in, np.nextafter(r_c, 0)]])
        e, f = tb.evaluate(r)
        ev, fv = v_fn(r), f_fn(r)
        assert np.abs(e - ev).max() <= 1e-12 * np.abs(ev).max(), (n, tb.keyword)
        assert np.abs(f - fv).max() <= 1e-12 * np.abs(fv).max(), (n, tb.keyword)
        if n != 6901:
            continue
        # with as many points as the file, the table reproduces it where both are smooth (above
        # the kinked core)
        s = table.sections[tb.keyword]
        far = s.r > 1.0
        e_file, f_file = tb.evaluate(s.r[far][:-1])
        assert np.abs(e_file - s.energy[far][:-1]).max() < 1e-8 * np.abs(s.energy[far]).max() + 1e-12
        assert np.abs(f_file * s.r[far][:-1] - s.force[far][:-1]).max() < 1e-6 * np.abs(s.force[far]).max()


def _synthetic_table(tmp_path, rng):
    """A table with R, RSQ and FPRIME sections: a Morse-like V with its exact -dV/dr."""
    def v(r, d, a, r0):
        x = np.exp(-a * (r - r0))
        return d * (x * x - 2 * x), 2 * a * d * (x * x - x)  # (V, F = -dV/dr)

    text = "# synthetic\n\n"
    specs = {}
    for name, kind in [("A_A", "R"), ("A_B", "RSQ"), ("B_B", "plain")]:
        d, a, r0 = rng.uniform(0.2, 1.0), rng.uniform(1.0, 2.0), rng.uniform(2.0, 3.0)
        n = int(rng.integers(200, 600))
        lo, hi = float(rng.uniform(0.8, 1.2)), float(rng.uniform(5.5, 6.5))
        if kind == "RSQ":
            r = np.sqrt(np.linspace(lo * lo, hi * hi, n))
        else:
            r = np.linspace(lo, hi, n)
        e, f = v(r, d, a, r0)
        # exact dF/dr at both ends for FPRIME
        h = 1e-6
        fp = [float(v(x + h, d, a, r0)[1] - v(x - h, d, a, r0)[1]) / (2 * h) for x in (lo, hi)]
        params = f"N {n}"
        if kind in ("R", "RSQ"):
            params += f" {kind} {lo!r} {hi!r}"
        if kind != "plain":
            params += f" FPRIME {fp[0]!r} {fp[1]!r}"
        text += f"{name}\n{params}\n\n"
        text += "".join(f"{k + 1} {float(x)!r} {float(y)!r} {float(z)!r}\n" for k, (x, y, z) in enumerate(zip(r, e, f)))
        text += "\n"
        specs[name] = (d, a, r0)
    path = tmp_path / "synthetic.table"
    path.write_text(text)
    return path


def test_fprime_r_rsq_and_pair_coeff_cutoff(tmp_path):
    """The FPRIME, R, RSQ and pair_coeff-cutoff branches of LAMMPS's construction."""
    rng = np.random.default_rng()
    path = _synthetic_table(tmp_path, rng)
    table = read_pair_table(path)
    n = int(rng.integers(300, 3000))
    cut = float(rng.uniform(4.0, 5.0))
    for cutoff in (None, cut, {("A", "B"): cut}):
        pair = Pair(table, ["A", "B"], tablength=n, cutoff=cutoff)
        for tb in pair.lammps_tables:
            rc = cutoff if isinstance(cutoff, float) else (cut if isinstance(cutoff, dict) and tb.keyword == "A_B" else None)
            v_fn, f_fn, r_in, r_c = reference_table(table.sections[tb.keyword], n, rc)
            assert tb.inner == r_in and tb.cut == r_c
            r = rng.uniform(r_in, r_c, 5000)
            e, f = tb.evaluate(r)
            assert np.abs(e - v_fn(r)).max() <= 1e-12 * np.abs(v_fn(r)).max(), tb.keyword
            assert np.abs(f - f_fn(r)).max() <= 1e-12 * np.abs(f_fn(r)).max(), tb.keyword
        assert pair.cutoff == max(tb.cut for tb in pair.lammps_tables)
    assert Pair(table, ["A", "B"], cutoff={("B", "A"): cut}).pair_cutoff("A", "B") == cut
    with pytest.raises(PotentialFileError, match="cutoff 9.0 outside of the table"):
        Pair(table, ["A", "B"], cutoff=9.0)


# ---- the component on structures -------------------------------------------------------------------
def test_component_matches_reference_on_structures(pair):
    """Exact path (autograd), fast path and the pair-by-pair reference agree on random TiAl cells,
    including a small cell (many periodic images) and a slab."""
    rng = np.random.default_rng()
    small = tial(rng, (1, 1, 1))
    slab = tial(rng, (2, 2, 1))
    slab.pbc = (True, True, False)
    for atoms in (tial(rng), small, slab):
        e_ref, f_ref, s_ref = reference_pair(atoms, TABLE, ["Al", "Ti"], 6901)
        for fast in (False, True):
            e, f, s = pair_on(pair, atoms, fast=fast)
            np.testing.assert_allclose(e, e_ref, rtol=0, atol=1e-12 * max(1.0, np.abs(e_ref).max()))
            np.testing.assert_allclose(f, f_ref, rtol=0, atol=1e-11 * max(1.0, np.abs(f_ref).max()))
            np.testing.assert_allclose(s, s_ref, rtol=0, atol=1e-12 * max(1.0, np.abs(s_ref).max()))


def test_forces_stress_and_hessian_against_finite_differences(pair):
    """Forces and stress against central differences of the pair energy. They agree only as well
    as the table's e and f columns (LAMMPS takes forces from the force spline): ~1e-8 eV/A per pair
    at these distances, hence the tolerance. The second derivative (double autograd through the
    force spline) against differences of the forces."""
    rng = np.random.default_rng()
    atoms = tial(rng, (2, 1, 1))
    _, forces, stress = pair_on(pair, atoms)
    h = 1e-5

    def energy(x):
        return pair_on(pair, x)[0].sum()

    for i, a in [(0, 0), (3, 2), (6, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        assert forces[i, a] == pytest.approx(-(energy(plus) - energy(minus)) / (2 * h), abs=2e-6)
    for a, b in [(0, 0), (2, 2), (0, 1), (1, 2)]:
        unit = np.zeros((3, 3))
        unit[a, b] = unit[b, a] = 0.5 if a != b else 1.0
        strained = []
        for d in (h, -h):
            x = atoms.copy()
            x.set_cell(atoms.cell[:] @ (np.eye(3) + d * unit), scale_atoms=True)
            strained.append(energy(x))
        assert stress[a, b] == pytest.approx((strained[0] - strained[1]) / (2 * h) / atoms.get_volume(), abs=1e-7)

    # Hessian rows by double autograd vs differences of the (fast-path) forces
    batch = acepy.batch_from_atoms(atoms)
    graph = neighbor_graph(batch, pair.cutoff)
    species = torch.tensor([pair.elements.index(s) for s in atoms.get_chemical_symbols()])
    pos = batch.positions.clone().requires_grad_(True)
    e = pair.site_energies(BatchGraph(batch, species, graph, edge_vectors(pos, batch.cell, graph))).sum()
    (g,) = torch.autograd.grad(e, pos, create_graph=True)
    for i, a in [(1, 0), (4, 2)]:
        (row,) = torch.autograd.grad(g[i, a], pos, retain_graph=True)
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        fd = -(pair_on(pair, plus, fast=True)[1] - pair_on(pair, minus, fast=True)[1]) / (2 * h)
        np.testing.assert_allclose(row.numpy(), fd, rtol=0, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_edges_beyond_the_pair_cutoff_are_dropped():
    """The graph may be searched at a larger cutoff: edges at or beyond the table cutoff add nothing.
    A pair_coeff cutoff of 4 A on a 7 A table must equal the reference restricted to r < 4."""
    rng = np.random.default_rng()
    pair4 = Pair(read_pair_table(TABLE), ["Al", "Ti"], cutoff=4.0)
    atoms = tial(rng, (2, 1, 1))
    batch = acepy.batch_from_atoms(atoms)
    graph = neighbor_graph(batch, 7.5)  # larger than any pair cutoff
    species = torch.tensor([pair4.elements.index(s) for s in atoms.get_chemical_symbols()])
    vectors = edge_vectors(batch.positions, batch.cell, graph)
    e4 = pair4.site_energies(BatchGraph(batch, species, graph, vectors))
    e4_fast, g4 = pair4.energies_and_edge_grads(BatchGraph(batch, species, graph, vectors), "numba")
    torch.testing.assert_close(e4_fast, e4, rtol=0, atol=1e-13)
    far = vectors.norm(dim=1) >= 4.0
    assert bool(far.any()) and float(g4[far].abs().max()) == 0.0
    table = read_pair_table(TABLE)
    i, j, d = neighbor_list("ijd", atoms, 4.0)
    sym = atoms.get_chemical_symbols()
    ref = np.zeros(len(atoms))
    for k in range(len(i)):
        v_fn = reference_table(table.section_for(sym[i[k]], sym[j[k]]), 6901, 4.0)[0]
        ref[i[k]] += 0.5 * v_fn(d[k])
    np.testing.assert_allclose(e4.numpy(), ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def _edge_at_the_cutoff(rng, cut, inner_r):
    """A non-periodic trimer whose edge 0-1 the graph at ``cut`` keeps (|r| < cut, as the search
    decides) while its r^2 rounds to >= cut^2; atom 2 sits ``inner_r`` from atom 0, opposite atom 1.
    Random directions until one rounds that way (about one in 20 does)."""
    for _ in range(2000):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        x1 = u * cut * (1.0 - rng.integers(0, 3) * 2.0**-53)  # within a few ulps of the cutoff
        atoms = Atoms(rng.choice(["Al", "Ti"], 3).tolist(), positions=[np.zeros(3), x1, -inner_r * u])
        batch = acepy.batch_from_atoms(atoms)
        graph = neighbor_graph(batch, cut)
        vectors = edge_vectors(batch.positions, batch.cell, graph)
        at_cut = (graph.centers == 0) & (graph.neighbors == 1)
        if bool(at_cut.any()) and float((vectors[at_cut] ** 2).sum()) >= cut * cut:
            return atoms, batch, graph, vectors
    raise AssertionError("no direction put r^2 at the cutoff by rounding")


def test_edge_at_the_cutoff_by_rounding_is_not_counted():
    """The graph keeps an edge with |r| < rc that r^2 >= rc^2 drops (LAMMPS: r^2 < cut^2). With the
    graph at the pair cutoff the component masks it (no index selection): it must add nothing, on
    both paths, and the rest must equal the scipy reference pair by pair. V(4 A) is 0.07-0.6 eV
    for these sections, so counting the edge would show."""
    rng = np.random.default_rng()
    cut, inner_r = 4.0, rng.uniform(2.5, 3.5)
    pair4 = Pair(read_pair_table(TABLE), ["Al", "Ti"], cutoff=cut)
    atoms, batch, graph, vectors = _edge_at_the_cutoff(rng, cut, inner_r)
    assert graph.cutoff == pair4.cutoff and graph.n_edges == 4  # 0-1 both ways (at the cutoff), 0-2 both ways
    species = torch.tensor([pair4.elements.index(s) for s in atoms.get_chemical_symbols()])
    sym = atoms.get_chemical_symbols()
    v_fn, f_fn = reference_table(read_pair_table(TABLE).section_for(sym[0], sym[2]), pair4.tablength, cut)[:2]
    d02 = atoms.positions[2] - atoms.positions[0]
    r02 = np.linalg.norm(d02)
    v02, fp02 = float(v_fn(r02)), float(f_fn(r02))
    expected = np.array([0.5 * v02, 0.0, 0.5 * v02])
    exact_vectors = vectors.clone().requires_grad_(True)
    energies = pair4.site_energies(BatchGraph(batch, species, graph, exact_vectors))
    (g_exact,) = torch.autograd.grad(energies.sum(), exact_vectors)
    fast, g_fast = pair4.energies_and_edge_grads(BatchGraph(batch, species, graph, vectors), "numba")
    scale = max(1.0, abs(v02))
    np.testing.assert_allclose(energies.detach().numpy(), expected, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(fast.numpy(), expected, rtol=0, atol=1e-12 * scale)
    assert float(energies[1].detach()) == 0.0 and float(fast[1]) == 0.0
    at_cut = ((graph.centers == 1) | (graph.neighbors == 1)).numpy()
    assert float(g_exact[at_cut].abs().max()) == 0.0 and float(g_fast[at_cut].abs().max()) == 0.0
    # the inner edges: dE/dr_ij = -fpair/2 r_ij (LAMMPS's force spline, module doc of acepy.models.pair)
    g_ref = -0.5 * fp02 * vectors[~at_cut].numpy()
    for g in (g_exact, g_fast):
        # (an absolute floor: fpair of Al-Al crosses zero near 3 A)
        np.testing.assert_allclose(g[~at_cut].numpy(), g_ref, rtol=0, atol=1e-12 * max(1.0, np.abs(g_ref).max()))


# ---- the stacked model ------------------------------------------------------------------------------
def _load(backend="torch", **kw):
    try:
        return acepy.load(YACE, pair_table=TABLE, backend=backend, **kw)
    except BackendUnavailableError as err:
        pytest.skip(f"backend {backend!r} not available yet: {err}")


@pytest.mark.parametrize("backend", ["torch", "numba", "triton"])
def test_stacked_tial_equals_ace_plus_pair(backend):
    """acepy.load(yace, pair_table=...) = ACE-only model (exact path) + the independent pair
    reference, on every backend (Triton, through its interpreter on the CPU, on 4 atoms only)."""
    rng = np.random.default_rng()
    model = _load(backend)
    ace_only = acepy.load(YACE, backend="torch")
    assert [type(c).__name__ for c in model.components] == ["OneBody", "ACE", "Pair"]
    assert model.cutoff == 7.0
    structures = [tial(rng, (1, 1, 1))] if backend == "triton" else [tial(rng), tial(rng, (1, 1, 1))]
    out = model.evaluate(structures)
    start = 0
    for k, atoms in enumerate(structures):
        e_ref, f_ref, s_ref = reference_pair(atoms, TABLE, ["Al", "Ti"], 6901)
        ace = ace_only.evaluate(atoms)
        sl = slice(start, start + len(atoms))
        start += len(atoms)
        np.testing.assert_allclose(out["energies"][sl].numpy(), ace["energies"].numpy() + e_ref, rtol=1e-13, atol=1e-10)
        assert float(out["energy"][k]) == pytest.approx(float(ace["energy"][0]) + e_ref.sum(), rel=1e-13, abs=1e-9)
        np.testing.assert_allclose(out["forces"][sl].numpy(), ace["forces"].numpy() + f_ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(out["stress"][k].numpy(), ace["stress"][0].numpy() + s_ref, rtol=0, atol=1e-11)


def test_one_neighbour_search_per_call():
    """One vesin search per geometry for three components with cutoffs None, 5.5 and 7.0, reused
    while nothing changes, also through the ASE calculator (energy, forces, stress)."""
    rng = np.random.default_rng()
    model = _load()
    atoms = tial(rng)
    cache = model.graph_cache
    cache.reset_counters()
    model.evaluate(atoms)
    assert (cache.n_searches, cache.n_views) == (1, 1)  # search at 7.0, one view at 5.5
    model.evaluate(atoms, compute_forces=True, compute_stress=True)
    assert cache.n_searches == 1
    moved = atoms.copy()
    moved.positions[0, 0] += 0.01
    model.evaluate(moved)
    assert cache.n_searches == 2
    cache.reset_counters()
    atoms.calc = acepy.ACECalculator(model)
    atoms.get_potential_energy()
    atoms.get_forces()
    atoms.get_stress()
    assert cache.n_searches == 1


def test_stacked_forces_against_finite_differences():
    rng = np.random.default_rng()
    model = _load()
    atoms = tial(rng, (1, 1, 1), rattle=0.1)
    out = model.evaluate(atoms)
    h = 1e-5  # the ACE radial tables are C1 cubics on a 0.001 A grid; h spans at most a few knots

    def energy(x):
        return float(model.evaluate(x)["energies"].sum() - model.components[0].site_energies(
            BatchGraph(None, model.species_of(torch.as_tensor(x.numbers)))).sum())

    for i, a in [(0, 0), (2, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        assert float(out["forces"][i, a]) == pytest.approx(-(energy(plus) - energy(minus)) / (2 * h), abs=2e-5)


# ---- bad input ---------------------------------------------------------------------------------------
def test_too_close_names_the_atoms(pair):
    atoms = Atoms("AlAlTi", positions=[[0, 0, 0], [3.0, 0, 0], [3.05, 0, 0]])
    with pytest.raises(TooCloseError, match=r"atoms 1 and 2 \(Al-Ti\) are 0.05 A apart.*inner distance 0.1") as info:
        pair_on(pair, atoms)
    assert str(TABLE) in str(info.value) and "Al_Ti" in str(info.value)
    with pytest.raises(TooCloseError, match="atoms 1 and 2"):
        pair_on(pair, atoms, fast=True)
    model = _load()
    # 0.09 A: the ACE radial basis may or may not reach that far in; either error must name the atoms
    with pytest.raises(TooCloseError, match="atoms (1 and 2|2 and 1)"):
        model.evaluate(Atoms("AlAlTi", positions=[[0, 0, 0], [3.0, 0, 0], [3.09, 0, 0]]))


def test_missing_section_and_bad_settings(tmp_path):
    text = TABLE.read_text()
    start = text.index("Al_Ti\n")
    end = text.index("Ti_Ti\n")
    path = tmp_path / "no_alti.table"
    path.write_text(text[:start] + text[end:])
    with pytest.raises(PotentialFileError, match="element pair Al-Ti") as info:
        acepy.load(YACE, pair_table=path)
    assert str(path) in str(info.value) and "Al_Ti or" not in str(info.value)
    with pytest.raises(ValueError, match="not supported"):
        Pair(read_pair_table(TABLE), ["Al", "Ti"], style="bitmap")
    with pytest.raises(ValueError, match="at least 2"):
        Pair(read_pair_table(TABLE), ["Al", "Ti"], tablength=1)
    with pytest.raises(FileNotFoundError, match="none.table"):
        acepy.load(YACE, pair_table=tmp_path / "none.table")
