"""The floor estimate (profiling/floor.py) counts what the potential really has: the product-basis
terms of the compiled plan equal those of the potential's functions, the edges per atom equal
ASE's neighbour count, and the script writes its table (no timing is asserted)."""

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "profiling"))

import acepy  # noqa: E402
import floor  # noqa: E402
from profile_forces import supercell  # noqa: E402


@pytest.mark.parametrize("name", acepy.bundled())
def test_plan_counts_equal_the_functions_of_the_file(name):
    model = acepy.load(name)
    ace = floor.ace_component(model)
    assert floor.plan_counts(ace) == floor.spec_counts(ace.spec)
    assert sum(c["terms"] for c in floor.plan_counts(ace).values()) == ace.plan.codes.shape[0]


def test_edges_per_atom_equal_ase_neighbour_count():
    model = acepy.load("AlTi-synthetic-linear")
    atoms = supercell("fcc", 108, model.elements, np.random.default_rng(3))
    i = neighbor_list("i", atoms, model.cutoff)
    assert floor.edges_per_atom(model, atoms) == pytest.approx(len(i) / len(atoms), rel=0, abs=1e-12)


def test_floor_script_writes_its_table(tmp_path):
    rows = floor.main(["--potential", "AlTi-synthetic-linear", "--atoms", "32", "--no-measure",
                       "--out", str(tmp_path)])
    assert [r["stage"] for r in rows] == floor.STAGES + ["total"]
    total = rows[-1]
    assert total["flops_per_atom"] == pytest.approx(sum(r["flops_per_atom"] for r in rows[:-1]))
    for r in rows[:-1]:
        # the floor of a stage is the slower of its compute and its memory time at the peak
        f, b = floor.GPU_PEAKS["H100 SXM"]
        assert r["H100 SXM floor_ns_per_atom"] == pytest.approx(1e9 * max(r["flops_per_atom"] / f,
                                                                          r["bytes_per_atom"] / b))
    (path,) = tmp_path.glob("floor_*.csv")
    with open(path) as fh:
        next(fh)  # the comment line: potential, machine, commit, peaks
        table = list(csv.DictReader(fh))
    assert [r["stage"] for r in table] == floor.STAGES + ["total"]
