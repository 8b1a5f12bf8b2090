"""The main benchmark runs end to end on a tiny case and writes what the README promises
(a smoke test of the script, not a timing: nothing here asserts a speed)."""

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "profiling"))

import profile_forces  # noqa: E402

REQUIRED = ["potential", "structure", "atoms", "backend", "device", "dtype", "threads", "us_per_atom",
            "ratio_vs_pyace", "peak_mem_mb", "commit", "date"]


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_profile_forces_writes_the_csv(tmp_path, backend):
    out = tmp_path / "forces.csv"
    rows = profile_forces.main(["--sizes", "32", "--structures", "fcc,batch", "--repeats", "1", "--warmup", "0",
                                "--threads", "1", "--backends", backend, "--no-pyace", "--out", str(out)])
    assert len(rows) == 2
    with open(out) as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 2
    for row in table:
        for key in REQUIRED:
            assert key in row, f"column {key} missing"
        assert row["backend"] == backend and int(row["atoms"]) == 32 and float(row["us_per_atom"]) > 0
        assert row["ace_ms"] and row["neighbours_ms"]  # the breakdown, per component
        assert float(row["n_searches"]) == 1.0  # one neighbour search per call


def test_supercells_have_the_requested_size():
    import numpy as np

    rng = np.random.default_rng(0)
    for kind, n in (("fcc", 256), ("bcc", 54 * 2), ("diamond", 64)):
        atoms = profile_forces.supercell(kind, n, ["Cu"], rng)
        assert len(atoms) == n
    assert sum(len(s) for s in profile_forces.structures_for("batch", 128, ["Cu"], rng)) == 128
