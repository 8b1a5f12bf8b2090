"""Where the test data lives. Provenance and licences of every file: ``tests/data/README.md``.

Three places:

* ``tests/data/`` in the repository: the files whose licences allow redistribution with acepy
  (ACEpotentials.jl's TiAl files, MIT; aenet's reference tables, MPL-2.0; acepy's own notes and
  ``python-ace_reference_values.json``). A missing one is an error, never a skip.
* ``../shared/reference/`` beside the repository (this project's CI has it), same layout
  (``potentials/``, ``potentials/derived/``, ``pacemaker-yaml/``): the upstream files left out of
  the repository for their licences, the python-ace test files (Academic Software Licence,
  non-commercial) with the ``.yace`` files derived from them, and FitSNAP's examples (GPL-2.0).
* Where that folder is absent (a plain clone), or with ``ACEPY_TEST_DATA=generated``: stand-ins of
  the same names written by python-ace at the first use in a session (``tests/generated_data.py``:
  same hyperparameters, seeded coefficients; cached per python-ace version under the temporary
  folder). Without python-ace (an optional test dependency) a test that needs one skips saying so.

Use ``potential(name)`` / ``pacemaker_yaml(name)`` in a test body (the path, or ``pytest.skip``);
at collection time ``potential_path(name)`` with ``require(path)`` in the test, ``needs(*paths)``
as a mark, or ``params(paths)`` for a parametrize list. ``upstream(path)`` tells a test whether it
holds the upstream file (for the assertions pinned to its exact numbers) or a stand-in. Lists of
files come from the catalogue below (``tests/data/README.md``'s table), never from a glob.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import generated_data

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"  # in the repository
SHARED = TESTS.parent.parent / "shared" / "reference"  # ../shared/reference beside the repository

POTENTIALS = DATA / "potentials"  # the in-repository potential files (TiAl .yace and its pair table)
PACEMAKER_YAML = DATA / "pacemaker-yaml"  # not in the repository: every pacemaker .yaml here is python-ace's
EXPECTED = DATA / "expected"  # python-ace_reference_values.json; aenet/
AENET = EXPECTED / "aenet"  # aenet Chebyshev (AUC) descriptor reference features (see its README.md)

TIAL_STEM = "ACEpotentials.jl__gh-pages__0.2.3__literate_tutorials__TiAl_tutorial_pot"

# ---- the catalogue: every data file the tests know, by folder (relative to potentials/ etc.) ----------
YACE_FILES = (  # top-level .yace files in potentials/, in name order (as sorted(glob) gave them)
    f"{TIAL_STEM}.yace",
    "FitSNAP__examples__InP_PACE__ref19Sep2023__InP_pot.yace",
    "FitSNAP__examples__Ta_PACE_RIDGE__30Mar23_RIDGE__Ta_pot.yace",
    "python-ace__tests__Al-Ni_opt_all.yace",
)
ACE_FILES = (  # legacy .ace files in potentials/
    "python-ace__tests__Al.pbe-in.rank3-core-rep.ace",
    "python-ace__tests__Al.pbe.in-rank1.ace",
    "python-ace__tests__Al.pbe.rhocore-v2.ace",
    "python-ace__tests__Al.pbe.rhocore.ace",
)
DERIVED_FILES = tuple(f"derived/{n[:-len('.ace')]}.DERIVED.yace" for n in ACE_FILES)  # the .ace files as .yace
PAIR_TABLES = (f"{TIAL_STEM}_pairpot.table",)
PACEMAKER_YAML_FILES = tuple(f"python-ace__tests__{n}.yaml" for n in (
    "Al-Ni_opt_all", "Al-r1l0", "Al-r234", "Al.pbe.13.2", "Ni_2dens_bug_case", "ZBL_rep"))

# Left out of tests/data for their licences: name prefix -> what the skip says.
_LEFT_OUT = {
    "python-ace__": "python-ace test file (Academic Software Licence, non-commercial: not redistributable under MIT)",
    "FitSNAP__": "FitSNAP example file (GPL-2.0: not redistributable under MIT)",
}


def _licence(name: str) -> str | None:
    """Why ``name`` (a file name) is not in tests/data, or None where it belongs there."""
    for prefix, why in _LEFT_OUT.items():
        if name.startswith(prefix):
            return why
    return None


FORCE_GENERATED = os.environ.get("ACEPY_TEST_DATA", "") == "generated"  # the stand-ins even beside ../shared


def _generated_root() -> Path | None:
    try:
        return generated_data.generated_root()
    except Exception:  # python-ace not installed: no stand-ins (missing() says so)
        return None


GENERATED = _generated_root()
_NO_PYACE = Path("<python-ace not installed: no generated stand-ins>")


def _locate(folder: str, name: str) -> Path:
    """Where the file ``folder/name`` is: tests/data for the redistributable ones; for those left out,
    ../shared/reference where it has them, else the generated stand-in (made on first use)."""
    if not _licence(Path(name).name):
        return DATA / folder / name
    shared = SHARED / folder / name
    if shared.is_file() and not FORCE_GENERATED:
        return shared
    return (GENERATED or _NO_PYACE) / folder / name


def upstream(path: Path) -> bool:
    """True where ``path`` is the upstream file itself (tests/data or ../shared), False for a stand-in."""
    return Path(path).is_relative_to(DATA) or Path(path).is_relative_to(SHARED)


def potential_path(name: str) -> Path:
    """A file of potentials/ (``name`` may start with ``derived/``), without checking it is there."""
    return _locate("potentials", name)


def pacemaker_yaml_path(name: str) -> Path:
    return _locate("pacemaker-yaml", name)


def missing(path: Path) -> str | None:
    """None where ``path`` is there; the skip reason where it is a licence-excluded file that is absent.
    A file that belongs in tests/data and is absent raises: the repository is incomplete."""
    path = Path(path)
    if path.is_file():
        return None
    if path.is_relative_to(_NO_PYACE):
        return ("python-ace is not installed (pip install acepy[test]): it writes the stand-ins for "
                f"the files not redistributable under MIT, here {path.name}")
    if GENERATED is not None and path.is_relative_to(GENERATED):
        generated_data.ensure_generated()
        if path.is_file():
            return None
        raise FileNotFoundError(f"{path}: tests/generated_data.py has no stand-in for this file")
    why = _licence(path.name)
    if why is None:
        raise FileNotFoundError(f"{path}: test data file missing from the repository (tests/data/README.md lists it)")
    try:
        where = f"../shared/reference/{path.parent.relative_to(SHARED).as_posix()}"
    except ValueError:
        where = "../shared/reference"
    return f"{why}: {path.name} is not in tests/data; put {where} beside the repository or see tests/data/README.md"


def require(path: Path) -> Path:
    """``path`` if it is there, else ``pytest.skip`` with the licence reason."""
    reason = missing(path)
    if reason:
        pytest.skip(reason)
    return Path(path)


def potential(name: str) -> Path:
    return require(potential_path(name))


def pacemaker_yaml(name: str) -> Path:
    return require(pacemaker_yaml_path(name))


def needs(*paths: Path) -> pytest.MarkDecorator:
    """A skip mark for a test (or a module's ``pytestmark``) that reads ``paths``: skips with the
    licence reason of the first absent one."""
    reasons = [r for r in map(missing, paths) if r]
    return pytest.mark.skipif(bool(reasons), reason=reasons[0] if reasons else "")


def params(paths, ids=None) -> list:
    """``paths`` as parametrize values, each absent licence-excluded file marked skip with its reason
    (``ids``: a function of the path, as parametrize's ``ids``, default the file name)."""
    ids = ids or (lambda p: p.name)
    return [pytest.param(p, id=ids(p), marks=needs(p)) for p in paths]


ALNI_YACE = potential_path("python-ace__tests__Al-Ni_opt_all.yace")  # python-ace: needs require()/needs()
TIAL_YACE = potential_path(f"{TIAL_STEM}.yace")  # in the repository (MIT)
TIAL_TABLE = potential_path(f"{TIAL_STEM}_pairpot.table")  # in the repository (MIT)
