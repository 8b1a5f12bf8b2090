"""acepy against python-ace's C++ evaluator (``PyACECalculator``) on random multi-element potentials.

The potentials are made here with python-ace (pacemaker's basis-configuration dictionaries, random
radial and basis coefficients, saved as C-tilde ``.yace``): ChebExpCos, ChebPow and SBessel radial
bases (mixed per pair in one of them), ndensity 1 to 3 with FinnisSinclair and
FinnisSinclairShiftedScaled embeddings, ranks up to 5, and the three energy-level inner cutoffs
(density, distance, zbl). The structures: rattled bulk, a triclinic cell, a cell shorter than the
cutoff, a slab (pbc T,T,F; PyACE takes no mixed pbc, so it gets a periodic cell with more vacuum
than the cutoff) and a cluster. Every backend is compared; Triton runs through its interpreter on
the CPU, so only on the smallest potential and structure. The public potential files are also
compared on a slab and a rattled bulk cell with the torch and Numba backends (test_model_reference.py
covers their other structures on the exact path).

The random seed is fresh for every run and printed in every failure message; set
``ACEPY_TEST_SEED`` to replay one.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from ase.build import bulk

import acepy
from acepy.kernels import BackendUnavailableError

import data_paths as D

pyace = pytest.importorskip("pyace")

SEED = int(os.environ.get("ACEPY_TEST_SEED", np.random.SeedSequence().entropy % (1 << 63)))
WHY = f"(replay with ACEPY_TEST_SEED={SEED})"


def load_or_skip(path, backend):
    """``acepy.load`` that skips, with the reason, while a backend is not available here."""
    try:
        return acepy.load(path, backend=backend)
    except BackendUnavailableError as err:
        pytest.skip(f"backend {backend!r} unavailable: {err}")


# ---- random potentials ----------------------------------------------------------------------------
def _fs(rng, ndensity):
    """fs_parameters [w_1, m_1, ...]: the first density linear-ish, the others random powers."""
    out = [1.0, 1.0]
    for _ in range(ndensity - 1):
        out += [float(rng.uniform(0.5, 1.5)), float(rng.choice([0.5, 0.75, float(rng.uniform(0.3, 0.95)), 1.5]))]
    return out


def _recipes(rng):
    """Basis configurations (pacemaker's dictionary form) with randomised parameters."""
    def rcut():
        return float(rng.uniform(3.8, 4.6))

    return {
        # smallest: for the Triton interpreter too
        "tiny-ChebExpCos-FS1-distance-r2": {
            "elements": ["Al", "Ni"],
            "embeddings": {"ALL": {"npot": "FinnisSinclair", "fs_parameters": [1, 1], "ndensity": 1}},
            "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [float(rng.uniform(1, 3))], "rcut": rcut(),
                              "dcut": float(rng.uniform(0.01, 0.5)), "r_in": 0.0, "delta_in": 0.0}},
            "functions": {"ALL": {"nradmax_by_orders": [3, 1], "lmax_by_orders": [0, 1]}},
        },
        "ChebExpCos-FS1-density-r3": {
            "elements": ["Al", "Ni"],
            "embeddings": {"ALL": {"npot": "FinnisSinclair", "fs_parameters": [1, float(rng.uniform(0.4, 0.9))],
                                   "ndensity": 1, "rho_core_cut": float(rng.uniform(1.5, 3.5)),
                                   "drho_core_cut": float(rng.uniform(1, 2))}},
            "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [float(rng.uniform(1, 3))], "rcut": rcut(),
                              "dcut": float(rng.uniform(0.01, 0.5)), "inner_cutoff_type": "density",
                              "core-repulsion": [float(rng.uniform(5, 10)), float(rng.uniform(0.1, 0.3))]}},
            "functions": {"ALL": {"nradmax_by_orders": [4, 2, 2], "lmax_by_orders": [0, 2, 1]}},
        },
        "ChebPow-FS2-FSS2-distance-r4": {
            "elements": ["Ni", "Al"],
            "embeddings": {
                "Al": {"npot": "FinnisSinclair", "fs_parameters": _fs(rng, 2), "ndensity": 2},
                "Ni": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": _fs(rng, 2), "ndensity": 2},
            },
            "bonds": {"ALL": {"radbase": "ChebPow", "radparameters": [float(rng.uniform(1.5, 4))], "rcut": rcut(),
                              "dcut": 0.01, "inner_cutoff_type": "distance", "r_in": float(rng.uniform(2.0, 2.3)),
                              "delta_in": float(rng.uniform(0.2, 0.6)),
                              "core-repulsion": [float(rng.uniform(1, 5)), float(rng.uniform(0.5, 2))]}},
            "functions": {"ALL": {"nradmax_by_orders": [4, 2, 1, 1], "lmax_by_orders": [0, 1, 1, 1]}},
        },
        "SBessel+ChebExpCos-FSS3-zbl-r5": {
            "elements": ["Al", "Ni", "Cu"],
            "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": _fs(rng, 3),
                                   "ndensity": 3}},
            "bonds": {
                "ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": rcut(), "dcut": 0.01,
                        "inner_cutoff_type": "zbl", "r_in": float(rng.uniform(2.0, 2.3)),
                        "delta_in": float(rng.uniform(0.2, 0.6)),
                        "core-repulsion": [float(rng.uniform(0.5, 2)), 1.0]},  # zbl: prehc scales ZBL
                ("Al", "Ni"): {"radbase": "ChebExpCos", "radparameters": [float(rng.uniform(1, 3))], "rcut": rcut(),
                               "dcut": float(rng.uniform(0.05, 0.5))},
                ("Cu", "Cu"): {"radbase": "ChebPow", "radparameters": [float(rng.uniform(1.5, 4))], "rcut": rcut()},
            },
            "functions": {"ALL": {"nradmax_by_orders": [3, 1, 1, 1, 1], "lmax_by_orders": [0, 1, 1, 0, 0]}},
        },
    }


RECIPES = list(_recipes(np.random.default_rng(0)))


def make_potential(config, path, rng):
    """Save the basis with random radial and basis coefficients as a C-tilde .yace."""
    from pyace import ACEBBasisSet, create_multispecies_basis_config

    conf = create_multispecies_basis_config(config)
    blocks = conf.funcspecs_blocks
    radial = {}  # one radial coefficient array per unordered pair (PACE requires the symmetry)
    for block in blocks:
        els = list(block.elements_vec)
        key = tuple(sorted(els)) if len(els) == 2 else (els[0], els[0])
        if key not in radial:
            radial[key] = rng.normal(size=np.array(block.radcoefficients).shape)
        block.radcoefficients = radial[key].tolist()
        # c ~ N(0, 1) / (16^(rank - 1) sqrt(functions of that rank)): every A sums ~10-20 neighbours, so
        # this keeps each rank's contribution, and the energies, at a physical scale
        ranks = np.array([len(f.ns) for f in block.funcspecs])
        count = {r: int((ranks == r).sum()) for r in set(ranks.tolist())}
        block.set_func_coeffs(np.concatenate([
            rng.normal(size=len(f.coeffs)) / (16.0 ** (len(f.ns) - 1) * np.sqrt(count[len(f.ns)]))
            for f in block.funcspecs]))
    conf.funcspecs_blocks = blocks
    ACEBBasisSet(conf).to_ACECTildeBasisSet().save_yaml(str(path))
    return path


@pytest.fixture(scope="module")
def potentials(tmp_path_factory):
    rng = np.random.default_rng(SEED)
    folder = tmp_path_factory.mktemp("random_potentials")
    return {name: make_potential(cfg, folder / f"{name}.yace", rng) for name, cfg in _recipes(rng).items()}


# ---- structures -----------------------------------------------------------------------------------
KINDS = ["bulk", "triclinic", "small", "slab", "cluster"]


def make_structure(kind, elements, rng, cutoff):
    """(atoms for acepy, atoms for PyACE): nearest neighbours near 2.6 A, inside the inner cutoffs."""
    if kind == "bulk":
        atoms = (bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 1)) if rng.random() < 0.5
                 else bulk("Fe", "bcc", a=3.0, cubic=True).repeat((2, 2, 2)))
    elif kind == "triclinic":
        atoms = bulk("Cu", "fcc", a=3.7).repeat((2, 2, 2))
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.uniform(-0.08, 0.08, (3, 3))), scale_atoms=True)
    elif kind == "small":
        atoms = bulk("Cu", "fcc", a=3.7) if rng.random() < 0.5 else bulk("Fe", "bcc", a=3.0, cubic=True)
    elif kind == "slab":
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 2))
    else:  # cluster
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 2))[:int(rng.integers(6, 20))]
    atoms.set_cell(atoms.cell[:] + rng.normal(scale=0.05, size=(3, 3)), scale_atoms=True)
    atoms.rattle(0.15 if kind != "small" else 0.1, seed=int(rng.integers(1 << 30)))
    atoms.set_chemical_symbols(rng.choice(elements, len(atoms)).tolist())
    atoms.wrap()
    ref = atoms.copy()
    if kind == "slab":
        # acepy: open along z; PyACE: periodic, with more vacuum than the cutoff above the slab
        cell = atoms.cell[:].copy()
        cell[2] = [0.0, 0.0, np.ptp(atoms.positions[:, 2]) + cutoff + 3.0]
        atoms.pbc = (True, True, False)
        ref.set_cell(cell, scale_atoms=False)
        ref.pbc = True
    elif kind == "cluster":
        atoms.pbc = False
        atoms.cell = np.zeros((3, 3))
        ref.cell = np.eye(3) * (np.ptp(ref.positions, axis=0).max() + 2 * cutoff + 5.0)
        ref.pbc = True
    return atoms, ref


_REFERENCE: dict = {}


def pyace_reference(name, kind, path, elements, cutoff):
    """Structure and PyACE energy/forces/stress, made once per (potential, kind) and run."""
    key = (name, kind)
    if key not in _REFERENCE:
        rng = np.random.default_rng([SEED, RECIPES.index(name), KINDS.index(kind)])
        atoms, ref = make_structure(kind, elements, rng, cutoff)
        ref.calc = pyace.PyACECalculator(str(path))
        stress = None
        if kind != "cluster":
            # the virial is the same for the slab's two cells: rescale PyACE's stress to acepy's volume
            stress = ref.get_stress() * ref.get_volume() / atoms.get_volume()
        _REFERENCE[key] = (atoms, ref.get_potential_energy(), ref.get_forces(), stress)
    return _REFERENCE[key]


def assert_matches(out, atoms, e_ref, f_ref, s_ref, what):
    n = len(atoms)
    e = float(out["energy"][0])
    err = abs(e - e_ref) / n
    assert err <= 1e-8 + 1e-11 * abs(e_ref / n), f"{what}: energy/atom {e / n!r} vs {e_ref / n!r} (error {err:.3g})"
    f = out["forces"].detach().cpu().numpy()
    np.testing.assert_allclose(f, f_ref, rtol=1e-9, atol=1e-6, err_msg=f"{what}: forces")
    if s_ref is not None:
        s = out["stress"][0].detach().cpu().numpy()
        voigt = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        np.testing.assert_allclose(voigt, s_ref, rtol=1e-9, atol=1e-7, err_msg=f"{what}: stress")


# ---- tests ----------------------------------------------------------------------------------------
CASES = [(name, kind, backend) for name in RECIPES for kind in KINDS for backend in ("torch", "numba")]
CASES += [(RECIPES[0], "small", "triton")]


@pytest.mark.parametrize("name,kind,backend", CASES)
def test_random_potential_matches_pyace(potentials, name, kind, backend):
    path = potentials[name]
    model = load_or_skip(path, backend)
    atoms, e_ref, f_ref, s_ref = pyace_reference(name, kind, path, model.elements, model.cutoff)
    out = model.evaluate(atoms)
    assert_matches(out, atoms, e_ref, f_ref, s_ref, f"{name} on {kind} ({len(atoms)} atoms), {backend} {WHY}")


def test_random_potentials_are_what_was_asked(potentials):
    """The generated files carry the features the comparison is meant to cover."""
    from acepy.io import read_potential

    seen = {"radbase": set(), "inner": set(), "ndensity": set(), "npoti": set(), "rank": set()}
    for path in potentials.values():
        spec = read_potential(path)
        seen["inner"].add(spec.inner_cutoff_type)
        for bond in spec.bonds.values():
            seen["radbase"].add(bond.radbasename)
        for emb in spec.embeddings:
            seen["ndensity"].add(emb.ndensity)
            seen["npoti"].add(emb.npoti)
        for fns in spec.functions:
            seen["rank"].update(int(f.rank) for f in fns)
    assert seen["radbase"] == {"ChebExpCos", "ChebPow", "SBessel"}, (seen, WHY)
    assert seen["inner"] == {"density", "distance", "zbl"}, (seen, WHY)
    assert seen["ndensity"] == {1, 2, 3} and seen["npoti"] == {"FinnisSinclair", "FinnisSinclairShiftedScaled"}, seen
    assert seen["rank"] == {1, 2, 3, 4, 5}, (seen, WHY)


def test_batch_of_mixed_structures_matches_pyace(potentials):
    """One batch holding bulk, slab, small cell and cluster equals PyACE structure by structure."""
    name = RECIPES[3]
    model = load_or_skip(potentials[name], "torch")
    refs = [pyace_reference(name, kind, potentials[name], model.elements, model.cutoff) for kind in KINDS]
    out = model.evaluate([r[0] for r in refs])
    start = 0
    for k, (atoms, e_ref, f_ref, s_ref) in enumerate(refs):
        sl = slice(start, start + len(atoms))
        start += len(atoms)
        one = {"energy": out["energy"][k:k + 1], "forces": out["forces"][sl]}
        assert "stress" not in out  # the cluster has no cell
        assert_matches(one, atoms, e_ref, f_ref, None, f"{name}, batch entry {k} ({KINDS[k]}) {WHY}")


# ---- the public files, on the structures test_model_reference.py does not cover -----------------------
def _public_files():
    # the full list, never a glob: the python-ace and FitSNAP files (not redistributable under MIT) come from
    # ../shared/reference, else generated stand-ins
    return [D.potential_path(n) for n in D.YACE_FILES + D.ACE_FILES + D.DERIVED_FILES]


PUBLIC = _public_files()


@pytest.mark.parametrize("kind", ["slab", "bulk"])
@pytest.mark.parametrize("path", D.params(PUBLIC, ids=lambda p: p.name.split("__")[-1]))
@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_public_file_matches_pyace(path, kind, backend):
    model = load_or_skip(path, backend)
    key = (str(path), kind)
    if key not in _REFERENCE:
        rng = np.random.default_rng([SEED, PUBLIC.index(path), KINDS.index(kind), 7])
        atoms, ref = make_structure(kind, model.elements, rng, model.cutoff)
        ref.calc = pyace.PyACECalculator(str(path))
        stress = ref.get_stress() * ref.get_volume() / atoms.get_volume()
        _REFERENCE[key] = (atoms, ref.get_potential_energy(), ref.get_forces(), stress)
    atoms, e_ref, f_ref, s_ref = _REFERENCE[key]
    out = model.evaluate(atoms)
    assert_matches(out, atoms, e_ref, f_ref, s_ref, f"{path.name} on {kind} ({len(atoms)} atoms), {backend} {WHY}")
