"""The `.yace` writer: exact round trip through acepy's reader, the same energies, forces and stresses
in python-ace's C++ evaluator (PyACECalculator) and in acepy for generated potentials, atomic
writing and named errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

import acepy
from acepy.basis.generator import BondSpec, default_embedding, generate_basis
from acepy.io import read_yace, write_yace
from acepy.spec import Embedding

from data_paths import ALNI_YACE, require

REFERENCE = str(ALNI_YACE)


def _random_potential(rng, elements, nrad, lmaxs, radbases, ndensity, inner="density"):
    n = len(elements)
    bonds = {}
    for i in range(n):
        for j in range(n):
            bonds[(i, j)] = BondSpec(
                radbasename=radbases[(i + j) % len(radbases)], radparameters=[float(rng.uniform(1.5, 4.0))],
                rcut=float(rng.uniform(4.2, 4.8)), dcut=float(rng.uniform(0.1, 0.5)),
                prehc=float(rng.uniform(0, 5)), lambdahc=float(rng.uniform(1, 3)),
                rcut_in=1.2 if inner == "distance" else 0.0, dcut_in=0.2 if inner == "distance" else 0.0,
                inner_cutoff_type=inner,
                crad=rng.normal(size=(max(nrad[1:]), max(lmaxs[1:]) + 1, max(nrad))) * 0.5)
    emb = []
    for _ in range(n):
        e = default_embedding(ndensity)
        e.fs_parameters = np.array([1.0, 1.0] + [float(x) for _ in range(ndensity - 1)
                                                 for x in (rng.uniform(0.5, 1.5), rng.choice([0.5, 0.75, 2.0]))])
        emb.append(e)
    basis = generate_basis(elements, nrad, lmaxs, bonds=bonds, embeddings=emb)
    coeffs = []
    for mu0 in range(n):
        ranks = np.concatenate([[b.rank] * b.nfunctions for b in basis.blocks[mu0]])
        coeffs.append(rng.normal(size=(basis.nfunctions(mu0), ndensity)) * (0.3 ** (ranks - 1))[:, None])
    return basis.to_spec(coeffs, E0=rng.normal(size=n))


def _assert_same_spec(a, b):
    assert a.elements == b.elements and a.lmax == b.lmax and a.inner_cutoff_type == b.inner_cutoff_type
    assert np.array_equal(a.E0, b.E0) and a.delta_spline_bins == b.delta_spline_bins
    for ea, eb in zip(a.embeddings, b.embeddings, strict=True):
        assert (ea.ndensity, ea.npoti, ea.rho_core_cutoff, ea.drho_core_cutoff) == \
               (eb.ndensity, eb.npoti, eb.rho_core_cutoff, eb.drho_core_cutoff)
        assert np.array_equal(ea.fs_parameters, eb.fs_parameters)
    assert a.bonds.keys() == b.bonds.keys()
    for k in a.bonds:
        ba, bb = a.bonds[k], b.bonds[k]
        for name in ("radbasename", "nradmax", "lmax", "nradbasemax", "prehc", "lambdahc", "rcut", "dcut",
                     "rcut_in", "dcut_in", "inner_cutoff_type"):
            assert getattr(ba, name) == getattr(bb, name), (k, name)
        assert np.array_equal(ba.crad, bb.crad) and np.array_equal(ba.radparameters, bb.radparameters)
    for fa, fb in zip(a.functions, b.functions, strict=True):
        assert len(fa) == len(fb)
        for x, y in zip(fa, fb):
            assert (x.mu0, x.rank, x.ndensity) == (y.mu0, y.rank, y.ndensity)
            for name in ("mus", "ns", "ls", "ms_combs", "ctildes"):
                assert np.array_equal(getattr(x, name), getattr(y, name)), name


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng()
    spec = _random_potential(rng, ["Al", "Ni"], [3, 2, 2, 1], [0, 2, 2, 1], ["ChebExpCos", "SBessel"], 2)
    again = read_yace(write_yace(spec, tmp_path / "a.yace"))
    _assert_same_spec(spec, again)
    # an independent file from python-ace: read, write, read gives the same
    require(ALNI_YACE)  # python-ace's (ASL): from ../shared/reference, else its generated stand-in
    ref = read_yace(REFERENCE)
    _assert_same_spec(ref, read_yace(write_yace(ref, tmp_path / "ref.yace")))
    # and a second write is byte-identical (stable formatting)
    write_yace(again, tmp_path / "b.yace")
    assert (tmp_path / "a.yace").read_bytes() == (tmp_path / "b.yace").read_bytes()


CASES = {
    "1el-ChebPow-r5-2dens": (["Cu"], [4, 3, 2, 1, 1], [0, 3, 2, 1, 1], ["ChebPow"], 2, "density"),
    "2el-mixed-r4-3dens": (["Al", "Ni"], [3, 2, 2, 1], [0, 2, 2, 1], ["ChebExpCos", "SBessel", "ChebPow"], 3, "distance"),
    "3el-ChebExpCos-r3-1dens": (["Al", "Cu", "Ni"], [3, 2, 1], [0, 2, 1], ["ChebExpCos"], 1, "density"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_generated_yace_same_in_pyace_and_acepy(case, tmp_path):
    pyace = pytest.importorskip("pyace")
    seed = int(np.random.SeedSequence().entropy % (1 << 32))
    rng = np.random.default_rng(seed)
    elements, nrad, lmaxs, radbases, ndensity, inner = CASES[case]
    path = write_yace(_random_potential(rng, elements, nrad, lmaxs, radbases, ndensity, inner), tmp_path / "p.yace")
    model = acepy.load(path)
    structures = []
    for kind in ("fcc", "bcc", "triclinic"):
        if kind == "fcc":
            atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 1))
        elif kind == "bcc":
            atoms = bulk("Fe", "bcc", a=3.0, cubic=True).repeat((2, 2, 2))
        else:
            atoms = bulk("Cu", "fcc", a=3.7).repeat((2, 2, 2))
            atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.uniform(-0.08, 0.08, (3, 3))), scale_atoms=True)
        atoms.rattle(0.15, seed=int(rng.integers(1 << 30)))
        atoms.set_chemical_symbols(rng.choice(elements, len(atoms)).tolist())
        structures.append(atoms)
    for atoms in structures:
        what = f"{case}, seed {seed}, {atoms.get_chemical_formula()}"
        ref = atoms.copy()
        ref.calc = pyace.PyACECalculator(str(path))
        e_ref, f_ref, s_ref = ref.get_potential_energy(), ref.get_forces(), ref.get_stress()
        out = model.evaluate([atoms])
        n = len(atoms)
        e = float(out["energy"][0])
        assert abs(e - e_ref) / n <= 1e-8 + 1e-11 * abs(e_ref / n), f"{what}: energy {e} vs {e_ref}"
        assert np.abs(f_ref).max() > 1e-3, what  # a test with nothing to compare could not fail
        np.testing.assert_allclose(out["forces"].numpy(), f_ref, rtol=1e-9, atol=1e-6, err_msg=what)
        s = out["stress"][0].numpy()
        voigt = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        np.testing.assert_allclose(voigt, s_ref, rtol=1e-9, atol=1e-7, err_msg=what)


def test_writing_is_atomic_and_errors_are_named(tmp_path):
    rng = np.random.default_rng()
    spec = _random_potential(rng, ["Al"], [2, 2], [0, 1], ["ChebExpCos"], 1)
    target = tmp_path / "pot.yace"
    write_yace(spec, target)
    before = target.read_bytes()
    spec.functions[0][-1].ctildes[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"functions\[0\]\[\d+\]\.ctildes\[0\]: non-finite"):
        write_yace(spec, target)
    assert target.read_bytes() == before  # untouched
    assert sorted(os.listdir(tmp_path)) == ["pot.yace"]  # no temporary left behind
    spec.functions[0][-1].ctildes[0, 0] = 1.0
    spec.embeddings[0] = Embedding(ndensity=1, fs_parameters=np.array([1.0, 1.0]), npoti="Linear",
                                   rho_core_cutoff=1e5, drho_core_cutoff=1.0)
    with pytest.raises(ValueError, match=r"embeddings\[0\]\.npoti: unknown embedding 'Linear'"):
        write_yace(spec, target)
    spec = _random_potential(rng, ["Al", "Ni"], [2, 2], [0, 1], ["ChebExpCos"], 1)
    del spec.bonds[(1, 0)]
    with pytest.raises(ValueError, match=r"missing \[\(1, 0\)\]"):
        write_yace(spec, target)
    spec = _random_potential(rng, ["Al"], [2, 2], [0, 1], ["ChebExpCos"], 1)
    spec.functions[0][-1].ls = spec.functions[0][-1].ls + 5
    with pytest.raises(ValueError, match=r"functions\[0\]\[\d+\]: ls .* out of range"):
        write_yace(spec, target)


def test_element_names_that_yaml_would_misread(tmp_path):
    """`No` (nobelium) is a YAML 1.1 boolean: the writer quotes it and both readers get the string."""
    pyace = pytest.importorskip("pyace")
    rng = np.random.default_rng()
    spec = _random_potential(rng, ["No", "Al"], [2, 2], [0, 1], ["ChebExpCos"], 1)
    path = write_yace(spec, tmp_path / "no.yace")
    assert '"No"' in path.read_text()
    assert read_yace(path).elements == ["No", "Al"]
    atoms = Atoms("NoAl", positions=[[0, 0, 0], [2.5, 0, 0]], cell=np.eye(3) * 20, pbc=True)
    atoms.calc = pyace.PyACECalculator(str(path))
    e_ref = atoms.get_potential_energy()
    e = float(acepy.load(path).evaluate([atoms])["energy"][0])
    assert abs(e - e_ref) <= 1e-8 * max(1.0, abs(e_ref))
