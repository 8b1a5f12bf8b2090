"""Tests of the LAMMPS `pair_style table` reader on the ACEpotentials.jl TiAl pair table and on
small synthetic tables."""

from __future__ import annotations

import numpy as np
import pytest

from acepy.io import PotentialFileError, read_pair_table

from data_paths import TIAL_TABLE as TABLE


@pytest.fixture(scope="module")
def tial():
    return read_pair_table(TABLE)


def test_tial_sections(tial):
    assert list(tial.sections) == ["Al_Al", "Al_Ti", "Ti_Ti"]
    assert tial.path == str(TABLE)
    for name, s in tial.sections.items():
        assert s.keyword == name
        assert s.params == {"N": 6901}
        assert s.r.shape == s.energy.shape == s.force.shape == (6901,)
        assert s.r[0] == 0.1 and s.r[-1] == 7.0
        assert np.allclose(np.diff(s.r), 0.001, rtol=0, atol=1e-12)
        assert np.array_equal(s.r, s.r_file)  # no R/RSQ: LAMMPS uses the file's r
        assert s.energy[-1] == 0.0 and s.force[-1] == 0.0
    assert [s.line for s in tial.sections.values()] == [4, 6909, 13814]
    al_al = tial.sections["Al_Al"]
    assert (al_al.r[0], al_al.energy[0], al_al.force[0]) == (0.1, 10.996041221955899, -269.81058294994193)


def test_section_for(tial):
    assert tial.section_for("Ti", "Al") is tial.sections["Al_Ti"]
    assert tial.section_for("Al", "Ti") is tial.sections["Al_Ti"]
    assert tial.section_for("Ti", "Ti") is tial.sections["Ti_Ti"]
    with pytest.raises(KeyError, match="Al_Ni"):
        tial.section_for("Al", "Ni")


def test_force_is_minus_dE_dr(tial):
    """F = -dE/dr, checked with a 4th-order central difference of the tabulated E.

    Above 0.5 A the difference is ~3e-10 of the largest force (rounding of the printed E divided
    by h); the table has kinks (the join of the repulsive core) below about 0.35 A, so the tight
    check starts at 0.5 A.
    """
    for name, s in tial.sections.items():
        h = 0.001
        e = s.energy
        fd = -(-e[4:] + 8 * e[3:-1] - 8 * e[1:-3] + e[:-4]) / (12 * h)
        r, f = s.r[2:-2], s.force[2:-2]
        keep = r >= 0.5
        scale = np.abs(f[keep]).max()
        assert np.abs(fd[keep] - f[keep]).max() <= 1e-7 * scale, name
        # with the 2nd-order stencil everywhere, including the steep core (error O(h^2 E''')):
        fd2 = -(e[2:] - e[:-2]) / (s.r[2:] - s.r[:-2])
        assert np.abs(fd2 - s.force[1:-1]).max() <= 2e-4 * np.abs(s.force).max(), name


def _write(tmp_path, text, name="t.table"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(r, e=None, f=None, start=1):
    e = np.exp(-np.asarray(r)) if e is None else e
    f = np.exp(-np.asarray(r)) if f is None else f
    rows = zip(r, e, f)
    return "".join(f"{start + i} {float(ri)!r} {float(ei)!r} {float(fi)!r}\n" for i, (ri, ei, fi) in enumerate(rows))


def test_r_rsq_fprime_and_comments(tmp_path):
    r_file = [1.0, 1.5, 2.0, 2.5, 3.0]
    text = ("# header comment\n\nA_B   # trailing words and comments are ignored\n"
            "N 5 R 1.0 3.0 FPRIME -1.0 0.5\n\n" + _rows([1.0, 1.5, 2.0001, 2.5, 3.0]) + "\n"
            "C_C\nN 5 RSQ 1.0 3.0\n\n" + _rows(r_file))
    t = read_pair_table(_write(tmp_path, text))
    ab = t.sections["A_B"]
    assert ab.params == {"N": 5, "R": (1.0, 3.0), "FPRIME": (-1.0, 0.5)}
    assert ab.r.tolist() == r_file and ab.r_file[2] == 2.0001  # LAMMPS recomputes r from R
    cc = t.sections["C_C"]
    assert np.allclose(cc.r, np.sqrt(np.linspace(1.0, 9.0, 5)), rtol=1e-15)
    assert t.section_for("B", "A") is ab


def test_wrong_n(tmp_path):
    table = TABLE.read_text()
    too_big = table.replace("Al_Al\nN 6901", "Al_Al\nN 6902", 1)
    with pytest.raises(PotentialFileError) as info:
        read_pair_table(_write(tmp_path, too_big, "big.table"))
    msg = str(info.value)
    assert "big.table" in msg and "line 6909" in msg and "'Al_Al'" in msg and "N = 6902" in msg, msg

    too_small = table.replace("Al_Ti\nN 6901", "Al_Ti\nN 6900", 1)
    with pytest.raises(PotentialFileError) as info:
        read_pair_table(_write(tmp_path, too_small, "small.table"))
    msg = str(info.value)
    assert "small.table" in msg and "line 13812" in msg and "more data lines than N = 6900" in msg, msg

    truncated = "X_X\nN 4\n\n" + _rows([1.0, 2.0, 3.0])
    with pytest.raises(PotentialFileError, match=r"t\.table: line 6: .*after 3 of N = 4"):
        read_pair_table(_write(tmp_path, truncated))


_BREAKS = [
    ("non-monotone", "X_X\nN 3\n\n" + _rows([1.0, 3.0, 2.0]), "line 6", "not strictly increasing"),
    ("bad number", "X_X\nN 3\n\n1 1.0 0.5 0.5\n2 2.0 0.x 0.5\n3 3.0 0 0\n", "line 5", "bad number"),
    ("nan", "X_X\nN 3\n\n1 1.0 0.5 0.5\n2 2.0 nan 0.5\n3 3.0 0 0\n", "line 5", "non-finite"),
    ("three columns", "X_X\nN 3\n\n1 1.0 0.5\n2 2.0 0.1 0.5\n3 3.0 0 0\n", "line 4", "expected 'index r e f'"),
    ("no N", "X_X\nR 1.0 3.0\n\n" + _rows([1.0, 2.0, 3.0]), "line 2", "N (the number of table points"),
    ("bitmap", "X_X\nN 3 BITMAP 1.0 3.0\n\n" + _rows([1.0, 2.0, 3.0]), "line 2", "BITMAP"),
    ("unknown keyword", "X_X\nN 3 FP 1 2\n\n" + _rows([1.0, 2.0, 3.0]), "line 2", "unknown keyword 'FP'"),
    ("duplicate", "X_X\nN 2\n\n" + _rows([1.0, 2.0]) + "\nX_X\nN 2\n\n" + _rows([1.0, 2.0]), "line 7", "appears twice"),
    ("r zero", "X_X\nN 2\n\n" + _rows([0.0, 2.0]), "line 4", "r must be > 0"),
    ("empty", "# nothing\n", None, "no table sections"),
]


@pytest.mark.parametrize("text,line,fragment", [b[1:] for b in _BREAKS], ids=[b[0] for b in _BREAKS])
def test_malformed_table(tmp_path, text, line, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(PotentialFileError) as info:
        read_pair_table(path)
    msg = str(info.value)
    assert str(path) in msg and fragment in msg, msg
    if line:
        assert f"{line}:" in msg, msg


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.table"):
        read_pair_table(tmp_path / "none.table")
