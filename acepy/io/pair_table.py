"""Reader of LAMMPS `pair_style table` files (spec `ACE_SPEC.md` section 3, "Pair table").

ACE1pack / ACEpotentials.jl export their pair potential as such a file (`<stem>_pairpot.table`),
one section per unordered species pair named `<El_i>_<El_j>`. A section is

    KEYWORD                                  (first word is the keyword; the rest is ignored)
    N n [R rlo rhi | RSQ rlo rhi] [FPRIME fplo fphi]
    <blank line>
    index r e f                              (n lines; f = -dE/dr)

`#` starts a comment anywhere and blank lines are skipped, as in LAMMPS. With R or RSQ, LAMMPS
ignores the file's r column and recomputes the distances; `PairTableSection.r` holds the distances
LAMMPS uses and `r_file` the column as written.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from acepy.errors import PotentialFileError
from acepy.spec import PairTable, PairTableSection

__all__ = ["PairTable", "PairTableSection", "read_pair_table"]


def read_pair_table(path) -> PairTable:
    """Read every section of a LAMMPS pair table file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "pair table file not found", str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PotentialFileError(path, None, f"not a UTF-8 text file ({exc})") from None

    # (line number, tokens) of every line that has content once comments are removed
    lines = [(no, toks) for no, raw in enumerate(text.splitlines(), start=1)
             if (toks := raw.split("#", 1)[0].split())]
    sections: dict[str, PairTableSection] = {}
    i = 0
    while i < len(lines):
        no, toks = lines[i]
        if _is_data_line(toks):
            raise PotentialFileError(path, f"line {no}", "data line where a section keyword was expected "
                                     "(more data lines than the previous section's N?)")
        keyword = toks[0]
        if keyword in sections:
            raise PotentialFileError(path, f"line {no}", f"section {keyword!r} appears twice")
        if i + 1 >= len(lines):
            raise PotentialFileError(path, f"line {no}", f"section {keyword!r} has no parameter line")
        params = _parse_params(path, *lines[i + 1])
        n = params["N"]
        data = lines[i + 2:i + 2 + n]
        if len(data) < n:
            raise PotentialFileError(path, f"line {lines[-1][0]}",
                                     f"section {keyword!r}: file ends after {len(data)} of N = {n} data lines")
        sections[keyword] = _parse_section(path, keyword, no, params, data)
        i += 2 + n
        if i < len(lines) and _is_data_line(lines[i][1]):
            raise PotentialFileError(path, f"line {lines[i][0]}",
                                     f"section {keyword!r}: more data lines than N = {n}")
    if not sections:
        raise PotentialFileError(path, None, "no table sections found")
    return PairTable(path=str(path), sections=sections)


def _is_data_line(toks: list[str]) -> bool:
    if len(toks) != 4:
        return False
    try:
        int(toks[0])
        [float(t) for t in toks[1:]]
    except ValueError:
        return False
    return True


def _parse_params(path: Path, no: int, toks: list[str]) -> dict:
    """`N n [R|RSQ lo hi] [FPRIME lo hi]` (LAMMPS `PairTable::param_extract`)."""
    def err(problem):
        return PotentialFileError(path, f"line {no}", f"parameter line {' '.join(toks)!r}: {problem}")

    params: dict = {}
    k = 0
    while k < len(toks):
        word = toks[k]
        want = 1 if word == "N" else 2
        if word not in ("N", "R", "RSQ", "FPRIME"):
            if word == "BITMAP":
                raise err("BITMAP tables are not supported")
            raise err(f"unknown keyword {word!r}")
        if len(toks) - k - 1 < want:
            raise err(f"{word} needs {want} value(s)")
        vals = toks[k + 1:k + 1 + want]
        try:
            if word == "N":
                params["N"] = int(vals[0])
            else:
                lo, hi = float(vals[0]), float(vals[1])
                if not (math.isfinite(lo) and math.isfinite(hi)):
                    raise ValueError
                params[word] = (lo, hi)
        except ValueError:
            raise err(f"bad value(s) for {word}: {vals}") from None
        k += 1 + want
    if "R" in params and "RSQ" in params:
        raise err("R and RSQ are exclusive")
    if params.get("N", 0) < 2:
        raise err("N (the number of table points, at least 2) is required")
    return params


def _parse_section(path: Path, keyword: str, kw_line: int, params: dict, data) -> PairTableSection:
    n = params["N"]
    table = np.empty((n, 3))
    for row, (no, toks) in enumerate(data):
        if len(toks) != 4:
            raise PotentialFileError(path, f"line {no}", f"section {keyword!r}: expected 'index r e f', got "
                                     f"{' '.join(toks)!r} (data line {row + 1} of N = {n})")
        try:
            int(toks[0])
            table[row] = [float(t) for t in toks[1:]]
        except ValueError:
            raise PotentialFileError(path, f"line {no}", f"section {keyword!r}: bad number in "
                                     f"{' '.join(toks)!r} (data line {row + 1} of N = {n})") from None
        if not np.all(np.isfinite(table[row])):
            raise PotentialFileError(path, f"line {no}", f"section {keyword!r}: non-finite value")
    r_file = table[:, 0].copy()
    r = r_file
    # LAMMPS recomputes r when R or RSQ is given; same operation order as `PairTable::read_table`.
    if "R" in params:
        lo, hi = params["R"]
        r = np.array([lo + (hi - lo) * i / (n - 1) for i in range(n)])
    elif "RSQ" in params:
        lo, hi = params["RSQ"]
        r = np.sqrt(np.array([lo * lo + (hi * hi - lo * lo) * i / (n - 1) for i in range(n)]))
    if r[0] <= 0:
        raise PotentialFileError(path, f"line {data[0][0]}", f"section {keyword!r}: r must be > 0, got {r[0]}")
    bad = np.flatnonzero(np.diff(r) <= 0)
    if bad.size:
        no = data[bad[0] + 1][0]
        raise PotentialFileError(path, f"line {no}", f"section {keyword!r}: r is not strictly increasing "
                                 f"({r[bad[0]]} then {r[bad[0] + 1]})")
    return PairTableSection(keyword=keyword, r=r, energy=table[:, 1].copy(), force=table[:, 2].copy(),
                            params=params, r_file=r_file, line=kw_line)
