"""The Hessian benchmark runs end to end on a tiny case and writes its CSV and plot (a smoke test
of the script, not a timing: nothing here asserts a speed)."""

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "profiling"))

import profile_hessian  # noqa: E402


def test_profile_hessian_writes_the_csv_and_plot(tmp_path):
    rows = profile_hessian.main(["--potentials", "AlTi-synthetic-linear", "--sizes", "32", "--fd-max", "0",
                                 "--repeats", "1", "--no-memory", "--out", str(tmp_path)])
    assert [r["op"] for r in rows] == profile_hessian.OPS
    (csv_path,) = tmp_path.glob("hessian_*.csv")
    with open(csv_path) as fh:
        table = list(csv.DictReader(fh))
    assert [row["op"] for row in table] == profile_hessian.OPS
    for row in table:
        assert set(profile_hessian.COLUMNS) <= set(row) and float(row["median_s"]) > 0
    fd = next(r for r in table if r["op"] == "hessian (fd)")
    assert fd["estimate"] == "True"  # above --fd-max: 6 N force calls, labelled as an estimate
    assert float(fd["force_calls"]) == 6 * 32
    assert list(tmp_path.glob("hessian_*.png"))
