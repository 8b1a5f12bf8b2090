"""The basis-rows benchmark runs end to end on tiny bases and writes its CSV and plot (a smoke test
of the script, not a timing: nothing here asserts a speed)."""

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "profiling"))

import profile_rows  # noqa: E402


def test_profile_rows_writes_the_csv_and_plot(tmp_path):
    rows = profile_rows.main(["--tiny", "--sizes", "4", "--hessian-max", "4", "--repeats", "1", "--no-memory",
                              "--out", str(tmp_path)])
    assert [r["op"] for r in rows] == profile_rows.OPS
    (csv_path,) = tmp_path.glob("rows_*.csv")
    with open(csv_path) as fh:
        table = list(csv.DictReader(fh))
    assert [row["op"] for row in table] == profile_rows.OPS
    for row in table:
        assert set(profile_rows.COLUMNS) <= set(row) and float(row["median_s"]) > 0
    assert list(tmp_path.glob("rows_*.png"))
