"""Tests of the legacy `.ace` text reader: pyace agreement, equality with the derived `.yace`
files (converted by load() + save_yaml()), layout details and malformed files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from acepy.io import PotentialFileError, read_ace, read_potential, read_yace

try:  # the pyace comparison lives beside the yace tests
    from test_io_yace import assert_matches_pyace, assert_spec_equal
except ImportError:  # pytest --import-mode=importlib does not put tests/ on sys.path
    import importlib.util

    _spec = importlib.util.spec_from_file_location("_test_io_yace", Path(__file__).with_name("test_io_yace.py"))
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    assert_matches_pyace, assert_spec_equal = _mod.assert_matches_pyace, _mod.assert_spec_equal

import data_paths as D

# every .ace file is python-ace's (ASL, not in tests/data): from ../shared/reference or generated stand-ins
ACE_FILES = [D.potential_path(n) for n in D.ACE_FILES]
RHOCORE = D.potential_path("python-ace__tests__Al.pbe.rhocore.ace")
RANK1 = D.potential_path("python-ace__tests__Al.pbe.in-rank1.ace")
CORE_REP = D.potential_path("python-ace__tests__Al.pbe-in.rank3-core-rep.ace")


def _line(text: str, needle: str) -> int:
    """The 1-based number of the line where ``needle`` (found once) starts."""
    assert text.count(needle) == 1, needle
    return text[: text.index(needle)].count("\n") + 1


def _ctilde_rows(text: str) -> list[str]:
    """The ``< 0 >:`` lines of a rank-1 file (one per function, a number per density)."""
    return re.findall(r"^< 0 >:.*\n", text, flags=re.M)


def _derived(path: Path) -> Path:
    return D.potential_path("derived/" + path.stem + ".DERIVED.yace")


@pytest.mark.parametrize("path", D.params(ACE_FILES))
def test_ace_matches_pyace(path):
    spec = read_ace(path)
    assert spec.radial_kind == "pace" and spec.inner_cutoff_type == "density"
    assert spec.source == str(path)
    assert_matches_pyace(spec, path)


@pytest.mark.parametrize("path", D.params(ACE_FILES))
def test_ace_equals_derived_yace(path):
    assert_spec_equal(read_potential(path), read_yace(D.require(_derived(path))))


@D.needs(RHOCORE)
def test_crad_order_is_converted():
    """The file lists crad k-outer, then n, then l; the spec holds [n][l][k]."""
    text = RHOCORE.read_text()
    block = text[text.index("crad=") + len("crad="): text.index("rankmax=")]
    tokens = block.split()
    spec = read_ace(RHOCORE)
    b = spec.bonds[(0, 0)]
    nradbase, nradmax, lmax = 12, 4, 5  # upstream's and the stand-in's (tests/generated_data.py)
    assert (b.nradbasemax, b.nradmax, b.lmax) == (nradbase, nradmax, lmax)
    assert b.crad.shape == (nradmax, lmax + 1, nradbase)
    assert len(tokens) == nradbase * nradmax * (lmax + 1)
    t = 0
    for k in range(nradbase):
        for n in range(nradmax):
            for l in range(lmax + 1):
                assert b.crad[n, l, k] == float(tokens[t]), (n, l, k)
                t += 1
    second_line = float(block.strip().splitlines()[1].split()[0])  # lmax + 1 numbers a line
    assert b.crad[1, 0, 0] == second_line
    if D.upstream(RHOCORE):
        assert second_line == -0.032251812048376162


@D.needs(RANK1, CORE_REP)
def test_ace_details():
    spec = read_ace(RANK1)
    emb = spec.embeddings[0]
    assert (emb.npoti, emb.ndensity, emb.fs_parameters.tolist()) == ("FinnisSinclairShiftedScaled", 2, [1, 1, 1, 0.5])
    assert (emb.rho_core_cutoff, emb.drho_core_cutoff) == (100000.0, 250.0)
    b = spec.bonds[(0, 0)]
    assert b.crad.shape == (0, 1, 12) and spec.nradmax == 0 and spec.nradbase == 12
    assert (b.rcut, b.dcut, b.rcut_in, b.dcut_in) == (8.7, 0.01, 0.0, 0.0)
    assert spec.E0.tolist() == [0.0] and spec.delta_spline_bins == 0.001
    assert [f.ns.tolist() for f in spec.functions[0]] == [[n] for n in range(1, 13)]
    second = [float(x) for x in _ctilde_rows(RANK1.read_text())[1].split()[3:]]
    assert spec.functions[0][1].ctildes.tolist() == [second]
    if D.upstream(RANK1):
        assert second == [1527.528470746425455218, -13408.315757728185417363]
    core = read_ace(CORE_REP).bonds[(0, 0)]  # "core repulsion parameters:100.0..." has no blank
    assert (core.prehc, core.lambdahc) == (100.0, 1.0)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@D.needs(RHOCORE)
def test_leading_comments_and_optional_e0(tmp_path):
    text = RHOCORE.read_text()
    commented = _write(tmp_path, "c.ace", "# written by hand\n# nelements is below\n\n" + text)
    assert_spec_equal(read_ace(commented), read_ace(RHOCORE))
    # upstream's file has no E0 line, python-ace's writer (the stand-in) one after the core energy cut-off
    without = re.sub(r"^E0:.*\n", "", text, flags=re.M)
    assert read_ace(_write(tmp_path, "no_e0.ace", without)).E0.tolist() == [0.0]
    with_e0 = re.sub(r"^(core energy-cutoff parameters:.*\n)", r"\1E0: -3.75\n", without, flags=re.M)
    spec = read_ace(_write(tmp_path, "e0.ace", with_e0))
    assert spec.E0.tolist() == [-3.75]


@D.needs(RANK1)
def test_missing_embedding_function(tmp_path):
    """Without `embedding-function:` FinnisSinclair is assumed, but only for a linear embedding."""
    line = _line(RANK1.read_text(), "embedding-function:")  # the FS parameters' line, once it is gone
    text = RANK1.read_text().replace("embedding-function: FinnisSinclairShiftedScaled\n", "")
    expect_error(_write(tmp_path, "nonlinear.ace", text), f"line {line}", "non-linear embedding")
    linear = text.replace("1.000000 1.000000 1.000000 0.500000", "1.000000 1.000000 1.000000 1.000000")
    assert read_ace(_write(tmp_path, "linear.ace", linear)).embeddings[0].npoti == "FinnisSinclair"


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no_such.ace"):
        read_ace(D.POTENTIALS / "no_such.ace")


def expect_error(path, *fragments):
    with pytest.raises(PotentialFileError) as info:
        read_potential(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


@D.needs(CORE_REP, RANK1)
def test_truncated_ace(tmp_path):
    text = CORE_REP.read_text()
    lines = text.splitlines(keepends=True)
    cut = _write(tmp_path, "cut.ace", "".join(lines[: len(lines) // 2]))
    expect_error(cut, f"line {len(lines) // 2}", "end of file")
    # a block cut short: the next label is read where a number belongs
    rank1 = RANK1.read_text()
    row = _ctilde_rows(rank1)[0]  # two densities: two numbers; the error is on the next function's line
    short = _write(tmp_path, "short.ace", rank1.replace(row, " ".join(row.split()[:4]) + "\n"))
    expect_error(short, f"line {_line(rank1, row) + 1}", "ctilde: expected a number, got 'ctilde_basis_func:'")


LINE = object()  # in a fragment list: "line N" for the line where the changed text starts
HEADER = object()  # "line N" for the header line of the function whose text changes (the line before)
SECOND_CTILDE = object()  # as the text to change: the first number of the second function's ctildes
_RANK1_BREAKS = [
    ("bad number", ("radparameter= 5.250000000000000000", "radparameter= 5.25.0"), [LINE, "radparameter"]),
    ("nan", (SECOND_CTILDE, "< 0 >:  nan"), [LINE, "non-finite"]),
    ("missing label", ("deltaSplineBins=0.001", "deltaSplineBin=0.001"), [LINE, "expected 'deltaSplineBins='"]),
    ("ACE.jl.Basic", ("radbasename=ChebExpCos", "radbasename=ACE.jl.Basic"), [LINE, "unsupported"]),
    ("unknown radbase", ("radbasename=ChebExpCos", "radbasename=SBessel"), [LINE, "unknown radbasename 'SBessel'"]),
    ("multi-species", ("nelements=1\nelements: Al", "nelements=2\nelements: Al Ni"), ["line 1", "multi-species"]),
    ("ndens mismatch", ("rank=1 ndens=2 mu0=0 mu=( 0 )\nn=( 3 )", "rank=1 ndens=1 mu0=0 mu=( 0 )\nn=( 3 )"),
     [LINE, "ndens = 1 but ndensitymax = 2"]),
    ("n out of range", ("n=( 12 )", "n=( 13 )"), [HEADER, "ns [13] out of range 1..12"]),
    ("FS count", ("4 FS parameters:  1.000000 1.000000 1.000000 0.500000", "2 FS parameters:  1.000000 1.000000"),
     ["ndensitymax = 2 needs 4"]),
    ("unknown npoti", ("embedding-function: FinnisSinclairShiftedScaled", "embedding-function: Foo"),
     [LINE, "unknown embedding-function 'Foo'"]),
    ("trailing text", ("total_basis_size: 0 \n", "total_basis_size: 0 \nextra\n"), ["unexpected text"]),
    ("no nelements", ("nelements=1", "nelement=1"), ["no line starting with 'nelements='"]),
]
# upstream's line numbers, checked where the upstream file is the one read
_UPSTREAM_LINES = {"bad number": 15, "nan": 36, "missing label": 13, "ACE.jl.Basic": 9, "unknown radbase": 9,
                   "ndens mismatch": 37, "n out of range": 82, "unknown npoti": 5}


@D.needs(RANK1)
@pytest.mark.parametrize("case,change,fragments", _RANK1_BREAKS, ids=[b[0] for b in _RANK1_BREAKS])
def test_malformed_ace(tmp_path, case, change, fragments):
    old, new = change
    text = RANK1.read_text()
    if old is SECOND_CTILDE:
        old = re.match(r"< 0 >:\s+\S+", _ctilde_rows(text)[1]).group(0)
    line = _line(text, old)
    if case == "trailing text":
        fragments = [f"line {line + 1}", *fragments]
    if HEADER in fragments:
        line -= 1
    if D.upstream(RANK1) and case in _UPSTREAM_LINES:
        assert line == _UPSTREAM_LINES[case]
    fragments = [f"line {line}" if f is LINE or f is HEADER else f for f in fragments]
    expect_error(_write(tmp_path, "broken.ace", text.replace(old, new)), *fragments)


@D.needs(RHOCORE)
def test_rank_exceeding_rankmax(tmp_path):
    text = RHOCORE.read_text().replace("rankmax=5", "rankmax=3")
    expect_error(_write(tmp_path, "rankmax.ace", text), "exceeds rankmax = 3")
