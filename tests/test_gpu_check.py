"""The GPU check (profiling/gpu_check.py) runs every step on the CPU (--dry-run: tiny sizes, the
Triton interpreter) and writes its one folder: a smoke test of the script that the GPU machine
runs, so that its few minutes there are not spent on a broken script. Nothing here times anything."""

import csv
import json
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "profiling"))

import gpu_check  # noqa: E402
import gpu_check_run  # noqa: E402


def test_dry_run_writes_one_folder(tmp_path):
    # --overlay: acepy imported through the symlink overlay, as on the device machine
    rc = gpu_check.main(["--dry-run", "--overlay", "--out", tmp_path, "--commit", "test"])
    names = {p.name for p in tmp_path.iterdir()}
    log = (tmp_path / "gpu_check.log").read_text()
    assert rc == 0, log[-4000:]
    assert len(names) <= gpu_check.MAX_FILES  # what the device tool brings back
    expected = {"gpu_check.log", "summary.md", "junit.xml", "env.json",
                f"forces_{gpu_check.DRY_POTENTIAL}_cpu-dryrun_test.csv", "hessian_cpu-dryrun_test.csv"}
    assert expected <= names, names
    assert "overlay" in log and "/overlay/acepy/__init__.py" in log  # the working tree, through the overlay

    info = json.loads((tmp_path / "env.json").read_text())
    plan = [s.name for s in gpu_check.build_plan(True, 1, gpu_check.POTENTIAL)]
    assert [s["name"] for s in info["steps"]] == plan
    for step in info["steps"]:
        assert step["status"] == "ok", step
        if "counts" in step:
            assert step["counts"]["failed"] == 0 and step["counts"]["error"] == 0, step
    gpu = next(s for s in info["steps"] if s["name"] == "gpu-tests")
    assert gpu["counts"]["skipped"] >= 1  # the gpu-marked tests were collected (and skip without CUDA)
    assert info["dists"]["torch"] and info["ceilings"]["copy_TBps"] > 0
    vesin = next(s for s in info["steps"] if s["name"] == "vesin")["result"]
    assert vesin["cases"] and all(c.get("same_pairs") for c in vesin["cases"]), vesin  # torch tensors = numpy

    with open(tmp_path / f"forces_{gpu_check.DRY_POTENTIAL}_cpu-dryrun_test.csv") as fh:
        rows = list(csv.DictReader(fh))
    forces_steps = {s.name for s in gpu_check.build_plan(True, 1, gpu_check.POTENTIAL) if s.kind == "forces"}
    assert {r["step"] for r in rows} == forces_steps
    assert {r["backend"] for r in rows} == {"triton", "torch"} and {r["dtype"] for r in rows} == {"float64", "float32"}
    assert all(float(r["us_per_atom"]) > 0 and r["commit"] == "test" for r in rows)
    assert any(r["structure"] == "batch" and r["structures"] == "2" for r in rows)  # --batch-atoms
    summary = (tmp_path / "summary.md").read_text()
    assert "DRY RUN" in summary and "| gpu-tests | ok |" in summary and "Targets (issue 21)" in summary
    assert "## vesin on cpu torch tensors" in summary and "## Hessian" in summary
    # the floor table: every stage, the datasheet floors and the stage times measured in the step
    floor_part = summary.split("## Floor per stage")[1]
    assert "| atomic base |" in floor_part and "H100 SXM floor ns/atom" in floor_part
    measured = [line.split("|")[-2] for line in floor_part.splitlines() if line.startswith("| edge gradients |")]
    assert measured and float(measured[0]) > 0
    if _have("matplotlib"):
        assert {f"forces_{gpu_check.DRY_POTENTIAL}_cpu-dryrun_test.png", "hessian_cpu-dryrun_test.png"} <= names


def _have(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_without_cuda_it_stops_with_a_message(tmp_path, capsys):
    assert gpu_check.main(["--out", tmp_path, "--commit", "test"]) == 2
    assert "no CUDA device here" in capsys.readouterr().out
    assert gpu_check.main(["--list"]) == 0
    assert "gpu-tests" in capsys.readouterr().out


def test_pytest_outcomes_from_verbose_lines():
    plain = "tests/a.py::t[x] PASSED  [ 50%]\ntests/a.py::u FAILED [100%]\n"
    xdist = "[gw0] [ 50%] PASSED tests/a.py::t[x] \n[gw1] [100%] SKIPPED tests/b.py::v \n"
    counts, bad = gpu_check_run.verbose_counts(plain)
    assert counts["passed"] == 1 and counts["failed"] == 1 and bad == ["tests/a.py::u"]
    counts, bad = gpu_check_run.verbose_counts(xdist)
    assert counts["passed"] == 1 and counts["skipped"] == 1 and bad == []


def test_step_selection_and_budget(tmp_path):
    steps = gpu_check.build_plan(False, 16, gpu_check.POTENTIAL)
    assert steps[0].name == "env" and sum(s.cap_s for s in steps) >= gpu_check.DEFAULT_BUDGET_S
    chosen = gpu_check._select(steps, "gpu-tests,forces-f64", None)
    assert [s.name for s in chosen] == ["env", "gpu-tests", "forces-f64", "forces-f64-32k"]
    assert all("cuda" in s.args for s in steps if s.kind in ("forces", "hessian"))
    # a step with less than MIN_STEP_S left is skipped, not started
    step = gpu_check.Step("late", "forces", [], 60)
    log = gpu_check_run.Log(tmp_path / "log")
    gpu_check_run.run_step(step, {}, {}, tmp_path, log, deadline=0.0, opts=None)
    log.close()
    assert step.status == "skipped"


def test_a_step_over_its_cap_is_ended_with_its_children(tmp_path):
    log = gpu_check_run.Log(tmp_path / "log")
    # a shell that starts a child: both belong to the process group that the timeout ends
    rc, seconds, output = gpu_check_run.run_process(["sh", "-c", "echo started; sleep 60 & wait"], dict(os.environ),
                                                1.0, log)
    log.close()
    assert rc is None and seconds < 30 and "started" in output


def test_pytest_flags_follow_the_plugins_there(tmp_path):
    step = gpu_check.Step("gpu-tests", "pytest", [], 60)
    info = {"cpus": 16, "dists": {"pytest-timeout": "2.4.0", "pytest-xdist": "3.8.0"}}
    flags, extra = gpu_check_run.pytest_flags(step, info, tmp_path, 100, 4)
    assert "--timeout=100" in flags and flags[-2:] == ["-n", "4"] and extra == {"OMP_NUM_THREADS": "4"}
    flags, extra = gpu_check_run.pytest_flags(step, {"dists": {}}, tmp_path, 100, 4)
    assert len(flags) == 1 and flags[0].startswith("--junitxml=") and extra == {}
