"""The stand-ins for the licence-excluded test files (tests/generated_data.py): one for every file the
catalogue in data_paths names, the same bytes on every run, and the features they stand for."""

from __future__ import annotations

import pytest

import data_paths as D
import generated_data as G

pytest.importorskip("pyace")

LEFT_OUT = [("potentials", n) for n in D.YACE_FILES + D.ACE_FILES + D.DERIVED_FILES if D._licence(n.split("/")[-1])] + [
    ("pacemaker-yaml", n) for n in D.PACEMAKER_YAML_FILES]


def test_every_left_out_file_has_a_stand_in(generated_data):
    assert len(LEFT_OUT) == 17
    for folder, name in LEFT_OUT:
        assert (generated_data / folder / name).is_file(), f"{folder}/{name}"


def test_generation_is_deterministic(tmp_path, generated_data):
    """Fixed seeds: a second generation writes the same bytes (tests compare runs and cache the folder)."""
    again = G.generate(tmp_path / "again")
    for folder, name in LEFT_OUT:
        assert (again / folder / name).read_bytes() == (generated_data / folder / name).read_bytes(), name


def test_stand_ins_keep_the_features(generated_data):
    """What each upstream file exercises: the reader paths and model features the tests rely on."""
    from acepy.io import read_potential

    pot = generated_data / "potentials"
    rhocore = read_potential(pot / "python-ace__tests__Al.pbe.rhocore.ace")
    assert (rhocore.embeddings[0].rho_core_cutoff, rhocore.embeddings[0].drho_core_cutoff) == (40.0, 20.0)
    assert rhocore.rankmax == 5 and rhocore.ndensitymax == 2
    rank1 = read_potential(pot / "python-ace__tests__Al.pbe.in-rank1.ace")
    assert rank1.rankmax == 1 and rank1.nradmax == 0 and rank1.nradbase == 12
    core = read_potential(pot / "python-ace__tests__Al.pbe-in.rank3-core-rep.ace").bonds[(0, 0)]
    assert (core.prehc, core.lambdahc) == (100.0, 1.0)
    zbl = read_potential(generated_data / "pacemaker-yaml" / "python-ace__tests__ZBL_rep.yaml")
    assert zbl.inner_cutoff_type == "zbl" and zbl.bonds[(0, 0)].radbasename == "SBessel"
    alni = read_potential(pot / "python-ace__tests__Al-Ni_opt_all.yace")
    assert [b.radbasename for b in (alni.bonds[(0, 0)], alni.bonds[(1, 1)])] == ["ChebExpCos", "ChebPow"]
    assert "inner_cutoff_type" not in (pot / "python-ace__tests__Al-Ni_opt_all.yace").read_text()
    for name in G.FITSNAP_NAMES.values():
        text = (pot / name).read_text()
        assert text.splitlines()[0].endswith("] ") and text.splitlines()[2] == "deltaSplineBins: 0.001000 "
        spec = read_potential(pot / name)
        assert spec.inner_cutoff_type == "distance" and all(b.prehc == 0 for b in spec.bonds.values())
