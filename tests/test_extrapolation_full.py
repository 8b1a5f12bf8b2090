"""Full (dE/dc) projections and active sets (python-ace's ``pace_activeset -f``), linear/full
detection from an .asi's sizes, batches, backends and devices of the extrapolation grade.

python-ace 0.4.0rc1's own full projections (``compute_B_projections(..., is_full=True)``) come out
all zero: its ``ACEBEvaluator`` fills ``dE_dc`` only once a non-linear active set is loaded. The
reference here is therefore python-ace's evaluator with a (K P) x (K P) identity active set loaded
(``_python_ace_full``), then its calculator's gamma with a real active set."""

import numpy as np
import pytest
import torch

import acepy
from acepy.calculators import ACECalculator
from acepy.fit import LinearBasis, extrapolation
from acepy.fit.active_set import write_asi
from acepy.fit.extrapolation import ExtrapolationGrade, attach, projections, select_active_set
from data_paths import pacemaker_yaml

NI2 = "python-ace__tests__Ni_2dens_bug_case.yaml"  # Ni, 2 densities, 2 functions
AL13 = "python-ace__tests__Al.pbe.13.2.yaml"  # Al, 2 densities, 197 functions
ALNI = "python-ace__tests__Al-Ni_opt_all.yaml"  # Al 1 density, Ni 2 densities


def _cells(symbols, a0, rng, count, repeat=(2, 2, 2), rattle=0.1, strain=0.05):
    from ase.build import bulk

    out = []
    for _ in range(count):
        a = bulk("Al", "fcc", a=a0 * rng.uniform(1 - strain, 1 + strain), cubic=True).repeat(repeat)
        a.set_chemical_symbols(rng.choice(symbols, len(a)).tolist())
        a.rattle(rattle, seed=int(rng.integers(1 << 30)))
        out.append(a)
    return out


def _python_ace_full(path, structures, sizes, tmp_path):
    """python-ace's dE_dc rows per species index (the evaluator with an identity active set loaded)."""
    from pyace import aseatoms_to_atomicenvironment
    from pyace.basis import ACEBBasisSet, BBasisConfiguration
    from pyace.calculator import ACECalculator as PyCalc
    from pyace.evaluator import ACEBEvaluator

    bbasis = ACEBBasisSet(BBasisConfiguration(str(path)))
    evaluator = ACEBEvaluator(bbasis)
    calc = PyCalc(evaluator)
    write_asi(tmp_path / "identity.asi", {el: np.eye(k) for el, k in sizes.items()})
    evaluator.load_active_set(str(tmp_path / "identity.asi"))
    out = {st: [] for st in range(len(sizes))}
    for atoms in structures:
        ae = aseatoms_to_atomicenvironment(atoms, cutoff=bbasis.cutoffmax,
                                           elements_mapper_dict=bbasis.elements_to_index_map)
        calc.compute(ae, compute_projections=True)
        rows = np.array(calc.dE_dc).reshape(len(atoms), -1)
        for i, st in enumerate(ae.species_type[:ae.n_atoms_real]):
            out[st].append(rows[i])
    return {st: np.array(v) for st, v in out.items()}


def _python_ace_gamma(path, asi, structures):
    from pyace import PyACECalculator

    calc = PyACECalculator(str(path))
    calc.set_active_set(str(asi))
    out = []
    for atoms in structures:
        a = atoms.copy()
        a.calc = calc
        a.get_potential_energy()
        out.append(np.asarray(calc.results["gamma"]))
    return np.concatenate(out)


@pytest.mark.parametrize("name,a0,count", [(NI2, 3.52, 3), (AL13, 4.05, 2)])
def test_full_projections_equal_python_aces_dE_dc(name, a0, count, tmp_path):
    path = pacemaker_yaml(name)
    pytest.importorskip("pyace")
    rng = np.random.default_rng(len(name) + 20)
    el = "Ni" if "Ni" in name else "Al"
    structures = _cells([el], a0, rng, count, strain=0.12)
    mine = projections(path, structures, full=True)[el]
    theirs = _python_ace_full(path, structures, {el: mine.shape[1]}, tmp_path)[0]
    assert mine.shape == theirs.shape and mine.shape[1] % 2 == 0  # (atoms, 2 K): density-major
    assert np.abs(mine - theirs).max() <= 1e-12 * np.abs(theirs).max()
    lin = projections(path, structures)[el]
    np.testing.assert_array_equal(lin.shape[1] * 2, mine.shape[1])


def test_full_active_sets_both_ways_give_python_aces_gamma(tmp_path):
    path = pacemaker_yaml(NI2)
    pytest.importorskip("pyace")
    from pyace.activelearning import compute_active_set

    rng = np.random.default_rng(7)
    train = _cells(["Ni"], 3.52, rng, 4, strain=0.08)
    tests = _cells(["Ni"], 3.52, rng, 2, strain=0.08) + _cells(["Ni"], 3.52 * 0.8, rng, 1)
    mine = select_active_set(path, train, full=True)
    mine.write(tmp_path / "acepy.asi")
    assert mine.inverses["Ni"].shape == (4, 4)
    proj = _python_ace_full(path, train, {"Ni": 4}, tmp_path)
    theirs = compute_active_set({0: proj[0].copy()})
    write_asi(tmp_path / "pyace.asi", {"Ni": np.linalg.inv(theirs[0])})
    for asi in ("acepy.asi", "pyace.asi"):
        grade = ExtrapolationGrade(path, tmp_path / asi)
        assert grade.kind == "full"
        want = _python_ace_gamma(path, tmp_path / asi, tests)
        np.testing.assert_allclose(grade(tests), want, rtol=1e-10, atol=1e-12)
        calc = ACECalculator(str(path), active_set=tmp_path / asi)
        got = []
        for atoms in tests:
            atoms = atoms.copy()
            atoms.calc = calc
            atoms.get_potential_energy()
            got.append(calc.results["gamma"])
        np.testing.assert_allclose(np.concatenate(got), want, rtol=1e-10, atol=1e-12)
        assert grade(train).max() <= 1.001 + 1e-9  # MaxVol's bound on its own data
        assert want.max() > 1.05  # the compressed cell is outside


def test_full_gamma_of_a_large_basis_equals_python_ace(tmp_path):
    # Al.pbe.13.2's full projections of fcc cells have rank < 2 K (MaxVol refuses them), so a random
    # well-conditioned inverse stands in for the active set: the sizes make both codes take it as full
    path = pacemaker_yaml(AL13)
    pytest.importorskip("pyace")
    rng = np.random.default_rng(13)
    structures = _cells(["Al"], 4.05, rng, 2, strain=0.1)
    k = projections(path, structures[:1], full=True)["Al"].shape[1]
    inv = rng.normal(size=(k, k)) / np.sqrt(k)
    write_asi(tmp_path / "random.asi", {"Al": inv})
    want = _python_ace_gamma(path, tmp_path / "random.asi", structures)
    got = ExtrapolationGrade(path, tmp_path / "random.asi")(structures)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert want.min() > 1e-3


def test_full_projections_are_the_jacobian_rows_on_mixed_densities():
    # Al-Ni: Al one density, Ni two (python-ace's full mode refuses it): dE_i/dc from the basis rows
    # (LinearBasis.rows(per_atom=True), kind "jacobian": s_i F'_p B_f, s_i = 1 away from cores)
    path = pacemaker_yaml(ALNI)
    rng = np.random.default_rng(3)
    structures = _cells(["Al", "Ni"], 4.0, rng, 2)
    basis = LinearBasis.from_file(path)
    rows = basis.rows(structures, energy=False, forces=False, virial=False, per_atom=True)
    assert rows.kind == "jacobian" and np.all(rows.site_scale == 1.0)
    numbers = np.concatenate([a.numbers for a in structures])
    mine = projections(path, structures, full=True)
    from acepy.fit.extrapolation import _python_ace_columns

    columns = _python_ace_columns(basis)
    for mu, el in enumerate(basis.elements):
        atoms = numbers == (13 if el == "Al" else 28)
        p_count = basis.embeddings[mu].ndensity
        k = len(columns[mu])
        assert mine[el].shape == (atoms.sum(), k * p_count)
        for p in range(p_count):
            for j, f in enumerate(columns[mu]):
                col = np.nonzero((basis._col_function == f) & (basis._col_density == p))[0]
                assert col.size == 1
                np.testing.assert_allclose(mine[el][:, p * k + j], rows.per_atom[atoms, col[0]], rtol=1e-12,
                                           atol=1e-12 * np.abs(rows.per_atom).max())


def test_kind_follows_the_sizes_and_refuses_what_fits_neither(tmp_path):
    path = pacemaker_yaml(NI2)
    write_asi(tmp_path / "lin.asi", {"Ni": np.eye(2)})
    write_asi(tmp_path / "full.asi", {"Ni": np.eye(4)})
    write_asi(tmp_path / "odd.asi", {"Ni": np.eye(3)})
    assert ExtrapolationGrade(path, tmp_path / "lin.asi").kind == "linear"
    assert ExtrapolationGrade(path, tmp_path / "full.asi").kind == "full"
    with pytest.raises(ValueError, match=r"entry 'Ni' is 3 x 3, the potential has 2 projections for Ni"):
        ExtrapolationGrade(path, tmp_path / "odd.asi")
    with pytest.raises(ValueError, match=r"entry 'Ni' is 2 x 2.*other entries are full"):
        ExtrapolationGrade(path, tmp_path / "lin.asi", kind="full")
    with pytest.raises(ValueError, match="kind must be one of"):
        ExtrapolationGrade(path, tmp_path / "lin.asi", kind="nonlinear")
    write_asi(tmp_path / "extra.asi", {"Ni": np.eye(2), "Cu": np.eye(2)})
    with pytest.raises(ValueError, match=r"entries \['Cu'\] are not elements of the potential"):
        ExtrapolationGrade(path, tmp_path / "extra.asi")
    # mixed densities: Al (1 density) is 9 x 9 either way, Ni's 16 x 16 makes the set full
    alni = pacemaker_yaml(ALNI)
    write_asi(tmp_path / "alni.asi", {"Al": np.eye(9), "Ni": np.eye(16)})
    assert ExtrapolationGrade(alni, tmp_path / "alni.asi").kind == "full"


def test_batch_equals_one_by_one_linear_and_full(tmp_path, monkeypatch):
    path = pacemaker_yaml(ALNI)
    rng = np.random.default_rng(21)
    train = _cells(["Al", "Ni"], 4.05, rng, 12)
    structures = _cells(["Al", "Ni"], 4.05, rng, 3, repeat=(2, 1, 1)) + _cells(["Al", "Ni"], 3.8, rng, 2)
    for full in (False, True):
        grade = ExtrapolationGrade(path, select_active_set(path, train, full=full))
        assert grade.kind == ("full" if full else "linear")
        together = grade(structures)
        apart = np.concatenate([grade(a) for a in structures])
        np.testing.assert_allclose(together, apart, rtol=1e-13, atol=1e-14)
        with monkeypatch.context() as m:  # chunks of 7 atoms: seams inside structures
            m.setattr(extrapolation, "CHUNK_ATOMS", {"cpu": 7})
            np.testing.assert_allclose(grade(structures), apart, rtol=1e-13, atol=1e-14)
        assert together.max() > 1.0


@pytest.mark.parametrize("backend", ["numba", "torch", "triton"])
def test_gamma_is_the_same_with_every_backend(backend, tmp_path):
    # the projections run on the model's backend (Triton through its interpreter without CUDA)
    from conftest import device_for, fast_backends

    if backend != "torch" and backend not in fast_backends():
        pytest.skip(f"{backend} cannot run here")
    device = device_for(backend)
    path = str(pacemaker_yaml(ALNI))
    rng = np.random.default_rng(5)
    select_active_set(path, _cells(["Al", "Ni"], 4.05, rng, 12)).write(tmp_path / "a.asi")
    atoms = _cells(["Al", "Ni"], 4.0, rng, 1, repeat=(2, 1, 1))[0]
    want = ExtrapolationGrade(path, tmp_path / "a.asi")(atoms)  # Numba on the CPU
    calc = ACECalculator(path, backend=backend, device=str(device), active_set=tmp_path / "a.asi")
    a = atoms.copy()
    a.calc = calc
    a.get_forces()
    np.testing.assert_allclose(calc.results["gamma"], want, rtol=1e-12, atol=1e-14)
    projector = calc.grade._projectors[f"{device}/{backend}"]
    assert projector.ref.backend == backend
    # gamma reused the force call's neighbour search: one search for both
    assert calc.model.graph_cache.n_searches == 1 and projector.ref.graph_cache.n_searches == 0
    model = acepy.load(path, backend=backend, device=str(device))
    attach(model, ExtrapolationGrade(path, tmp_path / "a.asi"))
    got = model.extrapolation_grade([atoms, atoms])
    assert got.device == model.device
    np.testing.assert_allclose(got.cpu().numpy(), np.concatenate([want, want]), rtol=1e-12, atol=1e-14)


@pytest.mark.gpu
def test_cuda_gamma_equals_cpu_gamma(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    path = str(pacemaker_yaml(ALNI))
    rng = np.random.default_rng(8)
    train = _cells(["Al", "Ni"], 4.05, rng, 12)
    structures = _cells(["Al", "Ni"], 4.05, rng, 3) + _cells(["Al", "Ni"], 3.8, rng, 1)
    for full in (False, True):
        aset = select_active_set(path, train, full=full)
        cpu = ExtrapolationGrade(path, aset)(structures)
        gpu = ExtrapolationGrade(path, aset, device="cuda")
        got = gpu.gamma(structures)
        assert got.device.type == "cuda"
        np.testing.assert_allclose(got.cpu().numpy(), cpu, rtol=1e-10, atol=1e-12)
        aset.write(tmp_path / "a.asi")
        calc = ACECalculator(path, device="cuda", active_set=tmp_path / "a.asi")  # the Triton backend
        a = structures[0].copy()
        a.calc = calc
        a.get_forces()
        np.testing.assert_allclose(calc.results["gamma"], cpu[:len(a)], rtol=1e-10, atol=1e-12)
        model = acepy.load(path, device="cuda")
        attach(model, ExtrapolationGrade(path, aset))
        g = model.extrapolation_grade(structures)
        assert g.device.type == "cuda"
        np.testing.assert_allclose(g.cpu().numpy(), cpu, rtol=1e-10, atol=1e-12)
