"""acepy.lammps.ACEMLIAPUnified: the `pair_style mliap unified` adapter, inside an emulator of
LAMMPS's domain decomposition, against Stack.evaluate to 1e-10.

The emulator does what LAMMPS does around ``compute_forces(data)`` (src/ML-IAP/mliap_data.cpp,
mliap_unified.cpp; see acepy/lammps/mliap.py): it splits a periodic cell into 2-4 slabs (one per
"rank"), gives each rank its local atoms plus ghost images (periodic images and atoms of other
slabs within the cutoff), builds the full pair list of the local atoms within the cutoff
(``rij = x_j - x_i``, in a shuffled order), applies ``update_pair_forces`` (``f[i] += fij``,
``f[j] -= fij``, virial ``-rij (x) fij``), then sums the ghosts' forces back onto their owners
(reverse communication). Energy, forces and virial summed over ranks must equal the single-process
evaluation. A real LAMMPS run with the Python ML-IAP coupling is tested where one is importable.
"""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from acepy.lammps import ACEMLIAPUnified
from acepy.loading import load
from data_paths import POTENTIALS, TIAL_STEM


class FakeData:
    """The attributes of LAMMPS's MLIAPDataPy that the adapter reads, and update_pair_forces."""

    def __init__(self, elems, iatoms, pair_i, pair_j, rij):
        self.elems, self.iatoms = np.asarray(elems, np.int32), np.asarray(iatoms, np.int32)
        self.pair_i, self.pair_j = np.asarray(pair_i, np.int32), np.asarray(pair_j, np.int32)
        self.jatoms = self.pair_j
        self.rij = np.ascontiguousarray(rij, dtype=np.float64)
        self.ntotal, self.nlistatoms, self.npairs = len(elems), len(iatoms), len(pair_i)
        self.f = np.zeros((self.ntotal, 3))
        self.virial = np.zeros((3, 3))
        self.eatoms = self.energy = None

    def update_pair_forces(self, fij):
        assert fij.shape == (self.npairs, 3) and fij.dtype == np.float64 and fij.flags.c_contiguous
        np.add.at(self.f, self.pair_i, fij)
        np.subtract.at(self.f, self.pair_j, fij)
        self.virial -= np.einsum("pa,pb->ab", self.rij, fij)  # PairMLIAP::v_tally


def decompose(atoms: Atoms, cutoff: float, n_domains: int, rng):
    """Per rank: (owner of each local+ghost atom, positions, list of local atoms in a random order)."""
    frac = atoms.get_scaled_positions(wrap=True)
    x = frac @ atoms.cell[:]
    reach = [int(np.ceil(cutoff * np.linalg.norm(np.linalg.inv(atoms.cell[:])[:, k]))) + 1 for k in range(3)]
    shifts = np.array(list(itertools.product(*[range(-r, r + 1) for r in reach])))
    images = (x[None, :, :] + (shifts @ atoms.cell[:])[:, None, :]).reshape(-1, 3)
    owner = np.tile(np.arange(len(atoms)), len(shifts))
    zero = np.flatnonzero((shifts == 0).all(axis=1))[0]
    ranks = []
    for d in range(n_domains):
        local = np.flatnonzero((frac[:, 0] >= d / n_domains) & (frac[:, 0] < (d + 1) / n_domains))
        rng.shuffle(local)
        own_idx = zero * len(atoms) + local
        dist = np.linalg.norm(images[:, None, :] - x[None, local, :], axis=2).min(axis=1)
        ghosts = np.setdiff1d(np.flatnonzero(dist < cutoff + 1.0), own_idx)  # LAMMPS keeps a skin too
        idx = np.concatenate([own_idx, ghosts])
        ranks.append((owner[idx], images[idx], len(local)))
    return ranks


def pair_list(pos, nlocal, cutoff, rng):
    d = pos[None, :, :] - pos[:nlocal, None, :]  # x_j - x_i
    r = np.linalg.norm(d, axis=2)
    i, j = np.nonzero((r < cutoff) & (r > 0))
    perm = rng.permutation(len(i))  # LAMMPS's order is by list atom; the adapter must not rely on it
    return i[perm], j[perm], d[i[perm], j[perm]]


def run_emulated(adapter, atoms, n_domains, seed):
    rng = np.random.default_rng(seed)
    cutoff = 2 * adapter.rcutfac
    species = np.array([adapter.element_types.index(s) for s in atoms.get_chemical_symbols()])
    forces = np.zeros((len(atoms), 3))
    energy, eatoms, virial = 0.0, np.zeros(len(atoms)), np.zeros((3, 3))
    for owner, pos, nlocal in decompose(atoms, cutoff, n_domains, rng):
        pi, pj, rij = pair_list(pos, nlocal, cutoff, rng)
        iatoms = np.arange(nlocal)
        data = FakeData(species[owner], iatoms, pi, pj, rij)
        adapter.compute_forces(data)
        energy += data.energy
        eatoms[owner[:nlocal]] += data.eatoms
        np.add.at(forces, owner, data.f)  # reverse communication: ghosts' forces to their owners
        virial += data.virial
    return energy, eatoms, forces, virial


def tial():
    return load(POTENTIALS / f"{TIAL_STEM}.yace", pair_table=POTENTIALS / f"{TIAL_STEM}_pairpot.table")


def tial_structure(seed):
    atoms = Atoms("Ti2Al2", scaled_positions=[[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]],
                  cell=[4.0, 4.0, 4.07], pbc=True).repeat((3, 2, 2))
    atoms.set_cell(atoms.cell[:] @ np.array([[1, 0.05, 0], [0, 1, -0.04], [0.03, 0, 1]]), scale_atoms=True)
    atoms.rattle(0.08, seed=seed)
    return atoms


def alcuni_structure(seed):
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((3, 2, 2))
    rng = np.random.default_rng(seed)
    atoms.symbols[rng.choice(len(atoms), 16, replace=False)] = "Cu"
    atoms.symbols[rng.choice(len(atoms), 8, replace=False)] = "Ni"
    atoms.rattle(0.08, seed=seed)
    return atoms


def tial_dsf():
    """ACE + pair table + Coulomb DSF with per-element charges: the charges come from the species,
    so ML-IAP's pair list serves it (a third cutoff, 9 A, beyond the table's 7 A)."""
    from acepy.models.coulomb import Coulomb

    return load(POTENTIALS / f"{TIAL_STEM}.yace", pair_table=POTENTIALS / f"{TIAL_STEM}_pairpot.table",
                coulomb=Coulomb({"Ti": 0.5, "Al": -0.5}, method="dsf", cutoff=9.0))


CASES = {"TiAl ACE + pair table": (tial, tial_structure), "AlCuNi bundled": (lambda: load("AlCuNi-synthetic-r4"),
                                                                              alcuni_structure)}
try:
    import acepy.models.coulomb  # noqa: F401

    CASES["TiAl + table + Coulomb DSF"] = (tial_dsf, tial_structure)
except ImportError:  # an acepy without electrostatics
    pass


@pytest.mark.parametrize("n_domains", [2, 3, 4])
@pytest.mark.parametrize("case", sorted(CASES))
def test_domain_decomposition_equals_stack_evaluate(case, n_domains):
    make_model, make_atoms = CASES[case]
    model = make_model()
    seed = int(np.random.default_rng().integers(1 << 30))
    atoms = make_atoms(seed)
    energy, eatoms, forces, virial = run_emulated(ACEMLIAPUnified(model), atoms, n_domains, seed)
    ref = model.evaluate(atoms)
    scale = max(1.0, abs(float(ref["energy"][0])))
    assert abs(energy - float(ref["energy"][0])) <= 1e-10 * scale, seed
    np.testing.assert_allclose(eatoms, ref["energies"].numpy(), rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(forces, ref["forces"].numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(virial, ref["virials"][0].numpy(), rtol=0, atol=1e-10 * scale)


def test_sign_conventions_against_finite_differences():
    """fij is dE/dr_ij (LAMMPS adds it to f_i): the emulated forces equal -dE/dx by central differences."""
    model = load("AlCuNi-synthetic-r4")
    adapter = ACEMLIAPUnified(model)
    atoms = alcuni_structure(5)
    _, _, forces, _ = run_emulated(adapter, atoms, 2, 5)
    h = 1e-5
    for i, a in [(0, 0), (7, 2), (20, 1)]:
        e = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[i, a] += sign * h
            e.append(run_emulated(adapter, moved, 2, 5)[0])
        assert abs(-(e[0] - e[1]) / (2 * h) - forces[i, a]) < 1e-6


def test_cutoff_and_elements_for_lammps():
    model = tial()
    adapter = ACEMLIAPUnified(model)
    assert adapter.element_types == model.elements
    assert 2 * adapter.rcutfac == model.cutoff  # MLIAPDummyDescriptor::init: cut = 2 radelem rcutfac, radelem 1


def test_pickle_records_the_file_not_tensors(tmp_path):
    adapter = ACEMLIAPUnified(tial())
    adapter.pickle(tmp_path / "acepy.pkl")
    assert (tmp_path / "acepy.pkl").stat().st_size < 2000
    with open(tmp_path / "acepy.pkl", "rb") as fp:
        again = pickle.load(fp)
    atoms = tial_structure(1)
    assert run_emulated(again, atoms, 2, 1)[0] == pytest.approx(float(adapter.model.evaluate(atoms)["energy"][0]),
                                                                abs=1e-9)
    from acepy.models.stack import Stack

    built = Stack(adapter.model.components[:2], adapter.model.elements)  # no file behind it
    with pytest.raises(pickle.PicklingError, match="loaded from a file"):
        pickle.dumps(ACEMLIAPUnified(built))


def test_components_mliap_cannot_serve_are_refused():
    from acepy.models.component import Component
    from acepy.models.stack import Stack

    class Charged(Component):
        cutoff = 3.0
        per_atom_data = ("charges",)

    class Reciprocal(Component):
        def structure_energies(self, inputs):
            return torch.zeros(inputs.n_systems, dtype=torch.float64)

    with pytest.raises(ValueError, match="charges"):
        ACEMLIAPUnified(Stack([Charged()], ["Al"]))
    with pytest.raises(ValueError, match="whole structure"):
        ACEMLIAPUnified(Stack([Reciprocal()], ["Al"]))


def test_real_lammps_mliap_unified(tmp_path, monkeypatch):
    """A LAMMPS with ML-IAP's Python coupling runs the adapter; skipped where there is none."""
    from lammps_support import lammps_or_skip

    lmp = lammps_or_skip(packages=("ML-IAP", "PYTHON"))
    pytest.importorskip("lammps.mliap")
    from lammps.mliap import activate_mliappy, load_unified

    model = tial()
    atoms = tial_structure(3)
    from acepy.lammps import write_input

    deck = write_input(tmp_path, model, atoms, run="")
    activate_mliappy(lmp)
    load_unified(ACEMLIAPUnified(model))
    text = deck.input.read_text().splitlines()
    keep = [line for line in text if not line.startswith(("pair_style", "pair_coeff"))]
    monkeypatch.chdir(tmp_path)
    lmp.commands_list(keep + ["pair_style mliap unified EXISTS 0", "pair_coeff * * " + " ".join(model.elements),
                              "run 0"])
    assert lmp.get_thermo("pe") == pytest.approx(float(model.evaluate(atoms)["energy"][0]), abs=1e-8)
