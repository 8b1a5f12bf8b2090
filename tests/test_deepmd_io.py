"""DeePMD npy data and extxyz frames: round trips, the layout DeePMD-kit documents, clear errors.

The layout (DeePMD-kit docs "Data > System" and "Fit energy Hessian"): type.raw, type_map.raw,
nopbc, set.*/box.npy (nframes, 9), coord.npy (nframes, 3N), energy.npy (nframes,), force.npy
(nframes, 3N), virial.npy (nframes, 9) = -stress * volume, hessian.npy (nframes, 9 N^2) row-major.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from acepy.errors import StructureError
from acepy.io import frame_labels, make_frame, read_deepmd, read_extxyz, write_deepmd, write_extxyz


def _labelled(atoms, seed, hessian=True, config_type="bulk"):
    """EMT labels (an independent calculator), and a random symmetric 'Hessian' of the right shape."""
    atoms = atoms.copy()
    atoms.rattle(0.05, seed=seed)
    atoms.calc = EMT()
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    s = atoms.get_stress(voigt=False) if atoms.pbc.any() else None
    h = None
    if hessian:
        m = np.random.default_rng(seed).standard_normal((3 * len(atoms),) * 2)
        h = m + m.T
    return make_frame(atoms.get_chemical_symbols(), atoms.positions, atoms.cell[:], atoms.pbc, energy=e, forces=f,
                      stress=s, hessian=h, config_type=config_type)


def _frames():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    cuni = cu.copy()
    cuni[1].symbol = "Ni"
    frames = [_labelled(cu, s) for s in range(3)] + [_labelled(cuni, 10 + s, hessian=False) for s in range(2)]
    frames.append(_labelled(molecule("H2O"), 20, hessian=True, config_type="molecule"))
    return frames


def _same(a, b, atol=0.0):
    """Equal frames; ``atol`` for per-atom columns (ASE's extxyz writes them with 8 decimals)."""
    la, lb = frame_labels(a), frame_labels(b)
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=atol)
    np.testing.assert_array_equal(a.cell[:], b.cell[:])
    assert a.pbc.any() == b.pbc.any()
    for key in ("energy", "forces", "hessian"):
        if la[key] is None:
            assert lb[key] is None, key
        else:
            np.testing.assert_allclose(lb[key], la[key], rtol=0, atol=atol if key == "forces" else 0.0, err_msg=key)
    if la["stress"] is None:
        assert lb["stress"] is None
    else:
        np.testing.assert_allclose(lb["stress"], la["stress"], rtol=1e-14, atol=1e-18)


def test_deepmd_round_trip_and_layout(tmp_path):
    frames = _frames()
    systems = write_deepmd(frames, tmp_path / "data", set_size=2)
    assert len(systems) == 3  # Cu4 with Hessians, Cu3Ni without, H2O non-periodic
    back = read_deepmd(tmp_path / "data")
    assert len(back) == len(frames)
    key = {tuple(f.get_chemical_symbols()): [] for f in frames}
    for f in frames:
        key[tuple(f.get_chemical_symbols())].append(f)
    for f in back:
        orig = key[tuple(f.get_chemical_symbols())].pop(0)
        _same(orig, f)
        assert f.info["config_type"] == orig.info["config_type"]

    cu_sys = next(s for s in systems if (s / "set.000" / "hessian.npy").exists() and not (s / "nopbc").exists())
    assert sorted(p.name for p in cu_sys.iterdir()) == ["config_type.raw", "set.000", "set.001", "type.raw",
                                                        "type_map.raw"]
    assert cu_sys.name == "bulk.Cu4-000" and (cu_sys / "config_type.raw").read_text() == "bulk\n"
    assert (cu_sys / "type_map.raw").read_text().split() == ["Cu", "H", "Ni", "O"]
    assert (cu_sys / "type.raw").read_text().split() == ["0", "0", "0", "0"]
    s0 = cu_sys / "set.000"
    assert np.load(s0 / "coord.npy").shape == (2, 12)
    assert np.load(s0 / "box.npy").shape == (2, 9)
    assert np.load(s0 / "energy.npy").shape == (2,)
    assert np.load(s0 / "force.npy").shape == (2, 12)
    assert np.load(s0 / "hessian.npy").shape == (2, 144)
    # virial = -stress * volume, row-major 3x3 (DeePMD's sign), computed independently from EMT
    atoms = frames[0].copy()
    atoms.calc = EMT()
    v = np.load(s0 / "virial.npy")[0].reshape(3, 3)
    np.testing.assert_allclose(v, -atoms.get_stress(voigt=False) * atoms.get_volume(), rtol=1e-12, atol=1e-14)
    # hessian.npy row 3 i + a, column 3 j + b, row-major
    np.testing.assert_array_equal(np.load(s0 / "hessian.npy")[1].reshape(12, 12), frame_labels(frames[1])["hessian"])
    mol = next(s for s in systems if (s / "nopbc").exists())
    assert not (mol / "set.000" / "box.npy").exists() and not (mol / "set.000" / "virial.npy").exists()


def test_deepmd_reads_a_handmade_system(tmp_path):
    """A system written by hand in DeePMD's layout (not by write_deepmd) reads to the right frames."""
    rng = np.random.default_rng(3)
    sysdir = tmp_path / "sys"
    (sysdir / "set.000").mkdir(parents=True)
    (sysdir / "type.raw").write_text("1 0 1\n")
    (sysdir / "type_map.raw").write_text("O\nH\n")
    box = np.diag([5.0, 6.0, 7.0]).reshape(1, 9).repeat(2, 0)
    coord = rng.uniform(0, 4, (2, 9))
    virial = rng.standard_normal((2, 9))
    hess = rng.standard_normal((2, 81))
    for name, arr in dict(box=box, coord=coord, energy=np.array([-1.0, -2.0]), force=rng.standard_normal((2, 9)),
                          virial=virial, hessian=hess).items():
        np.save(sysdir / "set.000" / f"{name}.npy", arr)
    frames = read_deepmd(sysdir)
    assert [f.get_chemical_symbols() for f in frames] == [["H", "O", "H"]] * 2
    lab = frame_labels(frames[1])
    assert lab["energy"] == -2.0
    np.testing.assert_allclose(lab["virial"], virial[1].reshape(3, 3), rtol=1e-14)
    v = virial[1].reshape(3, 3)  # ASE's get_stress keeps the symmetric part (through Voigt)
    np.testing.assert_allclose(frames[1].get_stress(voigt=False), -(v + v.T) / 2 / 210.0, rtol=1e-14)
    np.testing.assert_array_equal(lab["hessian"], hess[1].reshape(9, 9))
    np.testing.assert_array_equal(frames[1].positions, coord[1].reshape(3, 3))


def test_deepmd_bad_data_names_the_frame(tmp_path):
    frames = [_labelled(bulk("Cu", "fcc", a=3.6, cubic=True), s) for s in range(3)]
    (sysdir,) = write_deepmd(frames, tmp_path / "d")
    energy = np.load(sysdir / "set.000" / "energy.npy")
    energy[2] = np.nan
    np.save(sysdir / "set.000" / "energy.npy", energy)
    with pytest.raises(StructureError, match=r"set\.000, frame 2.*energy\.npy is not finite"):
        read_deepmd(sysdir)
    energy[2] = 0.0
    np.save(sysdir / "set.000" / "energy.npy", energy)
    np.save(sysdir / "set.000" / "hessian.npy", np.zeros((3, 12 * 11)))  # triangular-ish: wrong size
    with pytest.raises(StructureError, match=r"hessian\.npy.*\(3, 144\).*\(12, 12\) matrix"):
        read_deepmd(sysdir)
    (sysdir / "set.000" / "hessian.npy").unlink()
    (sysdir / "type_map.raw").unlink()
    with pytest.raises(StructureError, match=r"no type_map\.raw"):
        read_deepmd(sysdir)
    assert len(read_deepmd(sysdir, type_map=["Cu"])) == 3
    (sysdir / "type.raw").write_text("0 0 0 3\n")
    with pytest.raises(StructureError, match=r"frame 0: atom 3 has type 3"):
        read_deepmd(sysdir, type_map=["Cu"])
    # writing refuses a frame with a NaN force or a Hessian of the wrong shape, naming it
    bad = frames[1].copy()
    bad.calc = frames[1].calc
    frames[1].calc.results["forces"][0, 1] = np.nan
    with pytest.raises(StructureError, match=r"frame 1: the forces label is not finite"):
        write_deepmd(frames, tmp_path / "e")
    frames[1].calc.results["forces"][0, 1] = 0.0
    frames[2].info["hessian"] = np.zeros((6, 6))
    with pytest.raises(StructureError, match=r"frame 2: the Hessian of 4 atoms must be \(12, 12\)"):
        write_deepmd(frames, tmp_path / "e")
    assert not (tmp_path / "e").exists()
    with pytest.raises(FileExistsError):
        write_deepmd(frames[:1], tmp_path / "d")


def test_extxyz_keys_and_round_trip(tmp_path):
    frames = _frames()
    path = write_extxyz(frames, tmp_path / "data.xyz")
    back = read_extxyz(path)
    for a, b in zip(frames, back):
        _same(a, b, atol=5e-9)
        assert a.info["config_type"] == b.info["config_type"]
    # another code's key names, and a virial instead of a stress
    text = ('2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:REF_forces:R:3 REF_energy=-3.5 '
            'REF_virial="1 0 0 0 2 0 0 0 3" config_type=dimer pbc="T T T"\n'
            'Cu 0 0 0 0.1 0 0\nCu 2 0 0 -0.1 0 0\n')
    (tmp_path / "other.xyz").write_text(text)
    (frame,) = read_extxyz(tmp_path / "other.xyz", energy_key="REF_energy", forces_key="REF_forces",
                           virial_key="REF_virial")
    lab = frame_labels(frame)
    assert lab["energy"] == -3.5 and lab["config_type"] == "dimer"
    np.testing.assert_allclose(lab["virial"], np.diag([1.0, 2.0, 3.0]), rtol=1e-14)
    np.testing.assert_allclose(frame.get_stress(voigt=False), -np.diag([1.0, 2.0, 3.0]) / 64.0, rtol=1e-14)
    (tmp_path / "nan.xyz").write_text(text.replace("-0.1 0 0", "nan 0 0"))
    with pytest.raises(StructureError, match=r"nan\.xyz, frame 0: the forces label is not finite"):
        read_extxyz(tmp_path / "nan.xyz", energy_key="REF_energy", forces_key="REF_forces", virial_key="REF_virial")
