"""Issue 11: every bad input a clear error, naming the file and key, or the structure and atom.

One section per item of the issue. The cases that once exhausted memory or ran for minutes run in
a subprocess with a memory limit (``resource.setrlimit``) and a timeout, so that the old behaviour
fails the test instead of taking the machine down. The fuzz test is ``test_fuzz_potentials.py``.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.cluster import Octahedron

import acepy
from acepy.errors import (
    AcepyError,
    DeviceUnavailableError,
    NonFiniteError,
    PotentialFileError,
    PotentialFileWarning,
    StructureError,
    TooCloseError,
    TooManyPairsError,
    UnsupportedInputError,
)
from acepy.io import read_yace, write_yace

from data_paths import ACE_FILES, TIAL_YACE, YACE_FILES, missing, needs, pacemaker_yaml_path, potential_path

# The main subject is a bundled potential (acepy's own, in every clone): Al, Cu, Ni; ChebExpCos;
# FinnisSinclairShiftedScaled, 2 densities; core repulsion (prehc 10, lambdahc 4); inner cutoff
# type density. TIAL_YACE (SHIPs) is in tests/data (MIT). python-ace's (ASL) files are not in
# tests/data: read from ../shared/reference, else from python-ace's stand-ins (tests/generated_data.py).
BUNDLED = Path(acepy.__file__).resolve().parent / "data" / "AlCuNi-synthetic-r4.yace"
BOND00 = "prehc: 10, lambdahc: 4, rcut: 4.8, dcut: 0.01, rcut_in: 0, dcut_in: 0"  # bonds[0, 0], after its crad
RANK1_ACE = potential_path("python-ace__tests__Al.pbe.in-rank1.ace")
ALNI_YAML = pacemaker_yaml_path("python-ace__tests__Al-Ni_opt_all.yaml")


def _tight(text: str) -> str:
    """Flow lists without the blanks inside the brackets: python-ace writes ``[ 1, 1 ]`` in upstream's
    pacemaker files and ``[1, 1]`` in the stand-ins (tests/generated_data.py)."""
    return text.replace("[ ", "[").replace(" ]", "]")


def _edit(tmp_path, source: Path, *replacements, name=None) -> Path:
    """A copy of ``source`` with each ``(old, new)`` replaced once (old must occur, as written or
    without the blanks inside brackets)."""
    text = source.read_text()
    for old, new in replacements:
        if old not in text and _tight(old) in text:
            old, new = _tight(old), _tight(new)
        assert old in text, old
        text = text.replace(old, new, 1)
    out = tmp_path / (name or source.name)
    out.write_text(text)
    return out


def _at_line(pattern: str, source: Path, old: str) -> str:
    """``pattern`` with ``{line}`` as the line of ``source`` where ``old`` starts (the .ace writers of
    upstream's file and of the stand-in lay the header out on different lines)."""
    if "{line}" not in pattern:
        return pattern
    text = source.read_text()
    return pattern.replace("{line}", str(text[: text.index(old)].count("\n") + 1))


def _cell():
    atoms = bulk("Al", "fcc", a=3.8, cubic=True)
    atoms.symbols = ["Al", "Cu", "Ni", "Al"]
    return atoms


def _bond00(**values) -> tuple[str, str]:
    """The replacement of bonds[0, 0]'s scalar tail with ``values`` changed."""
    new = BOND00
    for key, value in values.items():
        new = re.sub(rf"\b{key}: [^,]*", f"{key}: {value}", new)
    return BOND00, new


LIMITED = """
import resource, sys, time
import acepy
with open("/proc/self/status") as fh:
    size = int(next(l for l in fh if l.startswith("VmSize:")).split()[1]) * 1024
limit = size + {extra}
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
start = time.perf_counter()
try:
{body}
    print("RESULT ok")
except acepy.errors.AcepyError as exc:
    print("RESULT", type(exc).__name__, exc)
except BaseException as exc:
    print("RESULT other", type(exc).__name__, exc)
print("SECONDS", time.perf_counter() - start)
"""


def run_limited(body: str, extra_bytes: int = 1 << 30, timeout: float = 60.0, printed: list | None = None):
    """Run ``body`` (Python, indented into a try block) in a fresh process that may allocate at
    most ``extra_bytes`` beyond what importing acepy took; its result line and seconds (and in
    ``printed`` the lines it printed)."""
    code = LIMITED.format(extra=extra_bytes, body=textwrap.indent(textwrap.dedent(body), "    "))
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                             cwd=Path(__file__).parent)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ran past {timeout} s")
    lines = res.stdout.splitlines()
    if printed is not None:
        printed.extend(lines)
    result = next((line[7:] for line in lines if line.startswith("RESULT ")), f"no result: {res.stderr[-2000:]}")
    seconds = float(next((line.split()[1] for line in lines if line.startswith("SECONDS ")), "nan"))
    return result, seconds


# --------------------------------------------------------------------------------------------
# Absurd radial tables: refused at load, naming the key and the memory, before allocating
# --------------------------------------------------------------------------------------------

TABLE_CASES = {
    "yace rcut 1e6": (BUNDLED, _bond00(rcut="1e6"), r"bonds\[0, 0\]\.rcut: .*would need about [\d.e+]+ GiB"),
    "yace deltaSplineBins 1e-9": (BUNDLED, ("deltaSplineBins: 0.001", "deltaSplineBins: 1e-9"),
                                  r"deltaSplineBins: .*would need about [\d.e+]+ GiB"),
    "yace nradmax 10**12": (BUNDLED, ("{nradmax: 2, lmax: 3", "{nradmax: 1000000000000, lmax: 3"),
                            r"bonds\[0, 0\]\.nradmax: integer 1000000000000 is out of range"),
    "yace nradmax 10**6": (BUNDLED, ("{nradmax: 2, lmax: 3", "{nradmax: 1000000, lmax: 3"),
                           r"bonds\[0, 0\]\.radcoefficients: has 2 entries for n, nradmax = 1000000 needed"),
    "yace lmax 10**6": (BUNDLED, ("{nradmax: 2, lmax: 3", "{nradmax: 2, lmax: 1000000"),
                        r"bonds\[0, 0\]\.radcoefficients\[0\]: has 4 entries for l"),
    "ace cutoff 1e6": (RANK1_ACE, ("cutoff= 8.699999999999999289", "cutoff= 1e6"), r"line {line} \(rcut\): .*GiB"),
    "yaml rcutij 1e6": (ALNI_YAML, ("rcutij: 8.6999999999999993", "rcutij: 1e6"),
                        r"species\[0\]\.rcutij: .*would need about [\d.e+]+ GiB"),
}


def test_absurd_radial_tables_are_refused_at_load_before_allocating(tmp_path):
    """Once: a bare numpy MemoryError, or the out-of-memory killer (here: a 1 GiB address-space
    limit, which the refusal must not touch). The .ace and .yaml cases need python-ace's files."""
    cases = [c for c in TABLE_CASES if not missing(TABLE_CASES[c][0])]
    paths = [_edit(tmp_path, TABLE_CASES[c][0], TABLE_CASES[c][1], name=f"{k}{TABLE_CASES[c][0].suffix}")
             for k, c in enumerate(cases)]
    body = f"""
for k, path in enumerate({[str(p) for p in paths]!r}):
    try:
        acepy.load(path)
        print("CASE", k, "loaded")
    except acepy.errors.AcepyError as exc:
        print("CASE", k, type(exc).__name__, str(exc).replace(chr(10), " "))
"""
    code = LIMITED.format(extra=1 << 30, body=textwrap.indent(body, "    "))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "RESULT ok" in res.stdout, res.stdout[-3000:] + res.stderr[-3000:]
    found = {int(line.split()[1]): line for line in res.stdout.splitlines() if line.startswith("CASE ")}
    for k, case in enumerate(cases):
        line = found[k]
        source, (old, _), pattern = TABLE_CASES[case]
        assert "PotentialFileError" in line and re.search(_at_line(pattern, source, old), line), (case, line)


def test_table_limit_can_be_raised_and_lowered(tmp_path):
    big = _edit(tmp_path, BUNDLED, ("deltaSplineBins: 0.001", "deltaSplineBins: 0.0005"))
    with pytest.raises(PotentialFileError, match=r"deltaSplineBins: .*would need about [\d.]+ MiB \(the limit is 1 MiB"):
        acepy.load(big, max_table_bytes=1 << 20)
    assert acepy.load(big, max_table_bytes=1 << 30).evaluate(_cell())["energy"].isfinite().all()
    wide = _edit(tmp_path, BUNDLED, ("{nradmax: 2, lmax: 3, nradbasemax: 5", "{nradmax: 0, lmax: 3, nradbasemax: 3000"),
                 ("radcoefficients: [[[0.88", "radcoefficients: [], x: [[[0.88"), name="wide.yace")
    with pytest.raises(PotentialFileError, match=r"bonds\[0, 0\]\.nradbasemax: .*\(the limit is 1 MiB"):
        acepy.io.read_potential(wide, max_table_bytes=1 << 20)


# --------------------------------------------------------------------------------------------
# Neighbour searches that run away: estimated and refused before searching
# --------------------------------------------------------------------------------------------


def test_cutoff_1000_is_refused_before_the_search(tmp_path):
    """Once: 14 s, then vesin's "could not allocate memory for growing neighbor list" (or the OOM killer)."""
    text = re.sub(r"rcut: [\d.]+,", "rcut: 1000,", BUNDLED.read_text()).replace("deltaSplineBins: 0.001",
                                                                              "deltaSplineBins: 1")
    path = tmp_path / "rc1000.yace"
    path.write_text(text)
    result, seconds = run_limited(f"""
        from ase.build import bulk
        model = acepy.load({str(path)!r})
        model.evaluate([bulk("Al", "fcc", a=4.05, cubic=True)])
    """, timeout=60)
    assert result.startswith("TooManyPairsError structure 0: the neighbour list within the cutoff 1000 A would hold "
                             "about 1.0") and "max_pairs" in result, result
    assert seconds < 10


def test_nearly_singular_cell():
    """Once: minutes in vesin even for one atom (a strongly skewed cell), and a 32-atom cell would
    exhaust memory. Now the cell is reduced before the search, so one atom gets its clear
    TooCloseError (its own image is 4e-4 A away) at once, and 32 atoms (9e7 pairs) are refused
    before the search, naming the structure. Run with a memory limit and a timeout."""
    printed = []
    result, seconds = run_limited(f"""
        import numpy as np
        from ase import Atoms
        from ase.build import bulk
        model = acepy.load({str(BUNDLED)!r})
        for n in (1, 32):
            atoms = Atoms("Al" * n, scaled_positions=np.random.default_rng(0).random((n, 3)),
                          cell=[[4, 0, 0], [4, 4e-4, 0], [0, 0, 4]], pbc=True)
            try:
                model.evaluate([bulk("Al", "fcc", a=4.05, cubic=True), atoms])
            except acepy.errors.AcepyError as exc:
                print("N", n, type(exc).__name__, exc)
    """, timeout=90, printed=printed)
    assert result == "ok" and seconds < 30, (result, seconds)
    assert any(line.startswith("N 1 TooCloseError structure 1: atom 0 and its own periodic image shifted by cell "
                               "vectors") for line in printed), printed
    assert any(re.match(r"N 32 TooManyPairsError structure 1: .*cutoff 5.2 A would hold about 9\.\d+e\+07 pairs",
                        line) for line in printed), printed


def test_max_pairs_is_the_users_to_raise():
    atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    strict = acepy.load(BUNDLED, max_pairs=1000)
    with pytest.raises(TooManyPairsError, match=r"structure 0: .*about 1\.\d+e\+03 pairs \(32 atoms.*max_pairs = 1000"):
        strict.evaluate(atoms)
    strict.graph_cache.max_pairs = None  # no limit
    reference = acepy.load(BUNDLED).evaluate(atoms)
    assert torch.equal(strict.evaluate(atoms)["energy"], reference["energy"])
    with pytest.raises(ValueError, match="max_pairs"):
        acepy.load(BUNDLED, max_pairs=0)


@pytest.mark.parametrize("kind", ["bulk", "slab", "wire", "cluster"])
def test_pair_estimate_is_close_to_the_count(kind):
    from acepy.graph import neighbor_graph
    from acepy.graph_checks import estimate_pairs

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(4)
    atoms.rattle(0.05, seed=3)
    if kind == "slab":
        atoms.pbc = (True, True, False)
    elif kind == "wire":
        atoms.pbc = (False, False, True)
    elif kind == "cluster":
        atoms.pbc = False
    rc = 6.0
    count = neighbor_graph(acepy.batch_from_atoms(atoms), rc).n_edges
    estimate = estimate_pairs(atoms.positions, atoms.cell[:], atoms.pbc, rc)
    assert count / 1.5 < estimate < 4 * count, (kind, count, estimate)


def test_skewed_cell_gives_the_same_pairs_as_ase():
    """The reduction of skewed periodic vectors changes the search, not the pairs (shifts are along
    the vectors as given)."""
    from ase.neighborlist import primitive_neighbor_list

    from acepy.graph import neighbor_graph

    rng = np.random.default_rng(5)
    cell = np.array([[3.0, 0, 0], [8.7, 3.1, 0], [-5.9, 6.2, 3.3]])  # reduces to a near-cubic cell
    for periodic in (np.array([True, True, True]), np.array([True, True, False])):
        atoms = Atoms("Cu4", scaled_positions=rng.random((4, 3)), cell=cell, pbc=periodic)
        graph = neighbor_graph(acepy.batch_from_atoms(atoms), 5.0)
        ours = sorted(zip(graph.centers.tolist(), graph.neighbors.tolist(), map(tuple, graph.shifts.tolist())))
        i, j, s = primitive_neighbor_list("ijS", periodic, cell, atoms.positions, 5.0)
        assert ours == sorted(zip(i.tolist(), j.tolist(), map(tuple, s.tolist())))


# --------------------------------------------------------------------------------------------
# Values that make an embedding, radial basis or cutoff meaningless: refused (or warned) at load
# --------------------------------------------------------------------------------------------

REFUSED = {
    "fs exponent < 0 (shifted scaled)": (BUNDLED, ("FS_parameters: [1, 1, 1, 0.5]", "FS_parameters: [1, 1, 1, -0.5]"),
                                         r"embeddings\[0\]\.FS_parameters\[3\]: exponent m = -0.5"),
    "fs exponent 0": (BUNDLED, ("FS_parameters: [1, 1, 1, 0.5]", "FS_parameters: [1, 0, 1, 0.5]"),
                      r"embeddings\[0\]\.FS_parameters\[1\]"),
    "negative dcut": (BUNDLED, _bond00(dcut=-0.01), r"bonds\[0, 0\]\.dcut: must be >= 0"),
    "negative dcut_in": (BUNDLED, _bond00(dcut_in=-0.01), r"bonds\[0, 0\]\.dcut_in: must be >= 0"),
    "negative rcut_in": (BUNDLED, _bond00(rcut_in=-1.2), r"bonds\[0, 0\]\.rcut_in: must be >= 0"),
    "inner cutoff beyond the outer": (BUNDLED, _bond00(rcut_in=7.5, dcut_in=0.1),
                                      r"bonds\[0, 0\]\.rcut_in: the inner cutoff 7.5 is not below the outer"),
    "negative rho_core_cutoff": (BUNDLED, ("rho_core_cutoff: 100000", "rho_core_cutoff: -5"),
                                 r"embeddings\[0\]\.rho_core_cutoff: must be >= 0"),
    "negative drho_core_cutoff": (BUNDLED, ("drho_core_cutoff: 250", "drho_core_cutoff: -250"),
                                  r"embeddings\[0\]\.drho_core_cutoff: must be >= 0"),
    "lambdahc 0 with a core": (BUNDLED, _bond00(lambdahc=0), r"bonds\[0, 0\]\.lambdahc: is 0 with prehc = 10"),
    "lambda 0": (BUNDLED, ("radparameters: [4]", "radparameters: [0]"),
                 r"bonds\[0, 0\]\.radparameters\[0\]: lambda = 0.0 must be > 0 for ChebExpCos"),
    "lmax beyond the harmonics": (TIAL_YACE, ("lmax: 1", "lmax: 25"), r": lmax: 25 is above 20"),
    "ships rcut <= 0": (TIAL_YACE, ("rcut: 5.5", "rcut: 0"), r"bonds\[0, 0\]\.rcut: must be > 0"),
    "ships p <= 0": (TIAL_YACE, ("p: 2\n", "p: 0\n"), r"bonds\[0, 0\]\.p: must be > 0"),
    "ships xl == xr": (TIAL_YACE, ("xl: 0.3563171597633136", "xl: 2.022901419836431"),
                       r"bonds\[0, 0\]\.xl: xl = 2.02\d* must be below xr"),
    "ships r0 < 0": (TIAL_YACE, ("r0: 2.88", "r0: -0.5"), r"bonds\[0, 0\]\.r0: must be >= 0"),
    "ace fs exponent": (RANK1_ACE, ("1.000000 1.000000 1.000000 0.500000", "1.000000 1.000000 1.000000 -0.500000"),
                        r"line {line} \(FS_parameters\[3\]\): exponent m = -0.5"),
    "ace negative dcut": (RANK1_ACE, ("dcut= 0.010000000000000000", "dcut= -0.01"),
                          r"line {line} \(dcut\): must be >= 0"),
    "yaml fs exponent": (ALNI_YAML, ("parameters: [ 1, 1, 1, 0.5 ]", "parameters: [ 1, 1, 1, -0.5 ]"),
                         r"species\[\d\]\.parameters\[3\]: exponent m = -0.5"),
    "yaml negative dcut": (ALNI_YAML, ("dcutij: 0.01", "dcutij: -0.01"), r"species\[0\]\.dcutij: must be >= 0"),
    "yaml lambdahc 0": (ALNI_YAML, ("core-repulsion: [ 400, 7 ]", "core-repulsion: [ 400, 0 ]"),
                        r"species\[0\]\.core-repulsion\[1\]: is 0 with prehc = 400"),
}


@pytest.mark.parametrize("case", [pytest.param(c, marks=needs(REFUSED[c][0])) for c in REFUSED])
def test_meaningless_values_are_refused_at_load_naming_the_key(case, tmp_path):
    """Once: loaded and gave nonsense silently, a torch error ('Index put requires the source and
    destination dtypes match' for the negative shifted-scaled exponent), or a kernel ValueError."""
    source, replacement, pattern = REFUSED[case]
    path = _edit(tmp_path, source, replacement)
    pattern = _at_line(pattern, source, replacement[0])
    with pytest.raises(PotentialFileError, match=str(path.name).replace(".", r"\.") + ".*" + pattern):
        acepy.load(path)


WARNED = {
    "negative prehc": (_bond00(prehc=-10), r"bonds\[0, 0\]\.prehc: is negative \(-10.0\); PACE uses"),
    "negative lambdahc": (_bond00(lambdahc=-4), r"bonds\[0, 0\]\.lambdahc: is negative"),
}


@pytest.mark.parametrize("case", list(WARNED))
def test_values_python_ace_reads_as_their_absolute_value_load_with_a_warning(case, tmp_path):
    replacement, pattern = WARNED[case]
    path = _edit(tmp_path, BUNDLED, replacement)
    with pytest.warns(PotentialFileWarning, match=pattern):
        model = acepy.load(path)
    atoms = _cell()
    atoms.rattle(0.1, seed=2)
    assert torch.equal(model.evaluate(atoms)["energy"], acepy.load(BUNDLED).evaluate(atoms)["energy"])


def test_overflowing_embedding_warns_at_load_and_raises_instead_of_minus_inf(tmp_path):
    """Once: FS_parameters [1, 1e5] (Finnis-Sinclair) gave E = -inf and NaN forces, silently."""
    path = _edit(tmp_path, BUNDLED, ("FS_parameters: [1, 1, 1, 0.5], npoti: FinnisSinclairShiftedScaled",
                                     "FS_parameters: [1, 1e5, 1, 0.5], npoti: FinnisSinclair"))
    with pytest.warns(PotentialFileWarning, match=r"embeddings\[0\]\.FS_parameters\[1\]: exponent m = 100000.0"):
        model = acepy.load(path)
    compressed = _cell()
    compressed.set_cell(compressed.cell * 0.85, scale_atoms=True)
    with pytest.raises(NonFiniteError, match=r"structure 0, atom 0 \(Al\): the ACE energy is -?inf.*"
                                             r"embeddings\[0\]\.FS_parameters = \[1.0, 100000.0, 1.0, 0.5\]"):
        model.evaluate(compressed)
    assert model.evaluate(_cell())["energy"].isfinite().all()  # |rho| < 1 here: |rho|^1e5 is finite
    with pytest.warns(PotentialFileWarning):
        exact = acepy.load(path, backend="torch")
    with pytest.raises(NonFiniteError):
        exact.energy(compressed)


# --------------------------------------------------------------------------------------------
# float32 far from the origin
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [1e4, 1e6])
@pytest.mark.parametrize("kind", ["cluster", "bulk"])
def test_float32_far_from_the_origin(kind, offset):
    """Once (cast before the edge vectors were formed; python-ace's Al-Ni file): a 44-atom Al-Ni
    cluster lost 1.4 eV at 1e4 A and 89 eV at 1e6 A; a periodic 32-atom cell 1.5 eV at 1e6 A."""
    if kind == "cluster":
        atoms = Octahedron("Al", 4)
        atoms.center(vacuum=0.0)
        atoms.cell, atoms.pbc = None, False
    else:
        atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=0)
    atoms.symbols[::3] = "Ni"
    atoms.symbols[1::3] = "Cu"
    ref = acepy.load(BUNDLED).evaluate(atoms)
    far = atoms.copy()
    far.positions += offset
    out = acepy.load(BUNDLED, dtype="float32").evaluate(far)
    scale = float(ref["energy"].abs().max()) + len(atoms)
    assert abs(float(out["energy"][0]) - float(ref["energy"][0])) < 2e-5 * scale
    assert float((out["forces"].double() - ref["forces"]).abs().max()) < 1e-4 * (1 + float(ref["forces"].abs().max()))


def test_float32_cast_is_a_translation_per_structure():
    atoms = [bulk("Al", "fcc", a=4.05, cubic=True), Atoms("Al2", positions=[[1e5, 0, 0], [1e5 + 2.5, 0, 0]])]
    b64 = acepy.batch_from_atoms(atoms)
    b32 = b64.to(dtype=torch.float32)
    assert b32.positions[4].tolist() == [0.0, 0.0, 0.0] and b32.positions[5].tolist() == [2.5, 0.0, 0.0]
    assert torch.equal(b32.positions[:4], b64.positions[:4].float())  # its first atom is at the origin already


# --------------------------------------------------------------------------------------------
# Generic errors: dtype, device, meta, integer positions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.complex128, "float16", "double"])
def test_unsupported_dtypes(dtype):
    """Once: NotImplementedError '"lu_cpu" not implemented for 'Half'' at the first evaluation."""
    with pytest.raises(UnsupportedInputError, match=r"dtype.*float64.*float32"):
        acepy.load(BUNDLED, dtype=dtype)


@pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu(device):
    """Once: a bare AssertionError ('Torch not compiled with CUDA enabled')."""
    with pytest.raises(DeviceUnavailableError, match=rf"device '{device}': no CUDA device is available here.*device='cpu'"):
        acepy.load(BUNDLED, device=device)
    with pytest.raises(DeviceUnavailableError):
        acepy.batch_from_atoms(_cell(), device=device)


@pytest.mark.parametrize("device", ["meta", "mps", "nonsense"])
def test_unsupported_devices(device):
    with pytest.raises(UnsupportedInputError, match=r"acepy runs on 'cpu' and 'cuda'"):
        acepy.load(BUNDLED, device=device)


def test_batch_on_the_meta_device():
    """Once: NotImplementedError from aten::bincount deep inside the batch."""
    batch = acepy.batch_from_atoms(_cell())
    with pytest.raises(UnsupportedInputError, match="meta"):
        batch.to("meta")
    with pytest.raises(UnsupportedInputError, match="meta tensors carry no values"):
        acepy.batch.Batch(positions=batch.positions.to("meta"), numbers=batch.numbers.to("meta"),
                          cell=batch.cell.to("meta"), pbc=batch.pbc.to("meta"), system_idx=batch.system_idx.to("meta"))


def test_integer_positions_are_named_as_such():
    batch = acepy.batch_from_atoms(_cell())
    fields = dict(numbers=batch.numbers, pbc=batch.pbc, system_idx=batch.system_idx)
    for cell in (batch.cell, batch.cell.long()):
        with pytest.raises(UnsupportedInputError, match=r"positions must be float32 or float64 .* got torch.int64"):
            acepy.batch.Batch(positions=batch.positions.long(), cell=cell, **fields)
    with pytest.raises(UnsupportedInputError, match=r"positions must be float32 or float64 .* got torch.float16"):
        acepy.batch.Batch(positions=batch.positions.half(), cell=batch.cell.half(), **fields)


def test_structure_errors_are_acepy_errors():
    model = acepy.load(BUNDLED)
    atoms = _cell()
    atoms.positions[2, 0] = np.nan
    with pytest.raises(StructureError, match=r"structure 0, atom 2: position is not finite"):
        model.evaluate(atoms)
    assert issubclass(StructureError, ValueError) and issubclass(TooCloseError, StructureError)


# --------------------------------------------------------------------------------------------
# The writer refuses what its reader refuses; permissions, symlinks, fsync
# --------------------------------------------------------------------------------------------

WRITER_CASES = {
    "rcut -1": (lambda s: setattr(s.bonds[(0, 1)], "rcut", -1.0), r"bonds\[0, 1\]\.rcut: must be > 0"),
    "element Xx": (lambda s: s.elements.__setitem__(1, "Xx"), r"elements\[1\]: 'Xx' is not a chemical element"),
    "fs exponent -0.5": (lambda s: s.embeddings[1].fs_parameters.__setitem__(3, -0.5),
                         r"embeddings\[1\]\.FS_parameters\[3\]: exponent m = -0.5"),
    "negative dcut": (lambda s: setattr(s.bonds[(1, 1)], "dcut", -0.01), r"bonds\[1, 1\]\.dcut: must be >= 0"),
    "lambda 0": (lambda s: s.bonds[(0, 0)].radparameters.__setitem__(0, 0.0), r"bonds\[0, 0\]\.radparameters\[0\]"),
    "lmax 21": (lambda s: (setattr(s.bonds[(0, 0)], "lmax", 21), setattr(s.bonds[(0, 0)], "crad", np.zeros((2, 22, 5))),
                           setattr(s, "lmax", 21)), r"bonds\[0, 0\]\.lmax: 21 is above 20"),
    "huge table": (lambda s: setattr(s, "delta_spline_bins", 1e-9), r"deltaSplineBins: .*GiB"),
    "zbl symbol": (lambda s: (setattr(s, "inner_cutoff_type", "zbl"),
                              [setattr(b, "inner_cutoff_type", "zbl") for b in s.bonds.values()],
                              s.elements.__setitem__(1, "X")), r"elements\[1\]: 'X' is not a chemical"),
}


@pytest.mark.parametrize("case", list(WRITER_CASES))
def test_writer_refuses_what_the_reader_refuses(case, tmp_path):
    """Once: write_yace wrote `rcut: -1` and element `Xx`, files its own reader (or acepy.load) rejects."""
    from acepy.io import yace_writer

    spec = read_yace(BUNDLED)
    mutate, pattern = WRITER_CASES[case]
    mutate(spec)
    target = tmp_path / "pot.yace"
    target.write_text("old\n")
    with pytest.raises(PotentialFileError, match=r"pot\.yace: " + pattern):
        write_yace(spec, target)
    assert target.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["pot.yace"]
    unchecked = tmp_path / "unchecked.yace"
    unchecked_text = getattr(yace_writer, "_text", yace_writer.yace_text)  # the text without the value checks
    unchecked.write_text(unchecked_text(spec))  # the same spec, written anyway: acepy.load refuses it too
    with pytest.raises(AcepyError):
        acepy.load(unchecked)


def test_writer_keeps_permissions_writes_through_symlinks_and_syncs_the_folder(tmp_path, monkeypatch):
    spec = read_yace(BUNDLED)
    target = tmp_path / "pot.yace"
    target.write_text("old\n")
    target.chmod(0o600)
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    write_yace(spec, target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # once: always 0o644
    assert synced[-1] is True  # the folder, after the rename
    link = tmp_path / "link.yace"
    link.symlink_to(target)
    write_yace(spec, link)
    assert link.is_symlink() and os.readlink(link) == str(target)  # once: the link became a plain file
    assert read_yace(link).elements == ["Al", "Cu", "Ni"]
    assert sorted(os.listdir(tmp_path)) == ["link.yace", "pot.yace"]
    fresh = tmp_path / "fresh.yace"
    old_umask = os.umask(0o027)
    try:
        write_yace(spec, fresh)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640


# --------------------------------------------------------------------------------------------
# Threads: the table build runs torch on one thread
# --------------------------------------------------------------------------------------------


def test_load_builds_its_tables_with_torch_on_one_thread(monkeypatch):
    """Once: the radial tables were built on torch's OpenMP pool; with one busy process on the
    other core of a 2-core machine, loading Al-Ni took 1.1 s instead of 0.035 s."""
    from acepy.models.radial import pace

    seen = []
    real = pace.pace_node_values

    def spy(radial, grid):
        seen.append(torch.get_num_threads())
        return real(radial, grid)

    monkeypatch.setattr(pace, "pace_node_values", spy)
    before = torch.get_num_threads()
    acepy.load(BUNDLED)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_no_warnings_for_the_public_files():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PotentialFileWarning)
        absent = []  # the full list, never a glob: those left out of tests/data for their licence are named below
        for path in [*map(potential_path, YACE_FILES + ACE_FILES), BUNDLED]:
            if missing(path):
                absent.append(missing(path))
                continue
            acepy.io.read_potential(path)
    if absent:
        total = len(YACE_FILES + ACE_FILES)
        pytest.skip(f"read {total - len(absent)} of {total} files; " + "; ".join(absent))
