"""The Coulomb benchmark runs end to end on a tiny case and writes its CSV and plot (a smoke test
of the script, not a timing: nothing here asserts a speed)."""

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "profiling"))

import profile_coulomb  # noqa: E402


def test_profile_coulomb_writes_the_csv_and_plot(tmp_path):
    pytest.importorskip("torchpme")
    rows = profile_coulomb.main(["--methods", "dsf", "ewald", "--sizes", "64", "--repeats", "1", "--no-memory",
                                 "--hessian-max", "dsf=64", "ewald=0", "--out", str(tmp_path)])
    assert [(r["method"], r["op"]) for r in rows] == [("dsf", "energy+forces"), ("dsf", "hessian"),
                                                      ("ewald", "energy+forces"), ("ewald", "hessian")]
    (csv_path,) = tmp_path.glob("coulomb_*.csv")
    with open(csv_path) as fh:
        table = list(csv.DictReader(fh))
    assert set(profile_coulomb.COLUMNS) <= set(table[0])
    assert float(table[0]["median_s"]) > 0 and table[3]["note"].startswith("not run")
    assert list(tmp_path.glob("coulomb_*.png"))
