"""The GPU check's plan: its constants and steps (gpu_check.py runs them; see its docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILING = ROOT / "profiling"
RESULTS = PROFILING / "results"
POTENTIAL = "Cu-synthetic-pbe-core-rep"
DRY_POTENTIAL = "AlCuNi-synthetic-r4"
DEFAULT_BUDGET_S = 450.0  # the steps' total; the check's own work (merging, plots) is seconds
MIN_STEP_S = 10.0  # a step with less time left than this is skipped, not started
ENV_MARK = "GPU_CHECK_ENV "
VESIN_MARK = "GPU_CHECK_VESIN "
# what comes back from the device tool: at most 8 files, named in letters, digits, '.', '_', '-'
MAX_FILES = 8
TARGET_US_PER_ATOM_F64 = 2.0  # issue 21: float64 forces + stress at 32k atoms in at most 2 us/atom



# ---- the plan -------------------------------------------------------------------------------
@dataclass
class Step:
    name: str
    kind: str  # env, pytest, forces, hessian
    args: list  # the worker's arguments (forces, hessian) or pytest's
    cap_s: float  # the most this step may take
    what: str = ""
    # filled in by the run
    status: str = "not run"  # ok, failed, timeout, skipped, error
    seconds: float = 0.0
    detail: str = ""
    counts: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def gpu_test_files() -> list[str]:
    """The test files that hold ``gpu``-marked tests (collecting only these keeps it fast)."""
    out = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text(errors="replace")
        if "mark.gpu" in text:
            out.append(str(path.relative_to(ROOT)))
    return out


def model_test_files() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").glob("test_model_*.py"))] + \
        [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").glob("test_descriptor_*.py"))]


def build_plan(dry: bool, cores: int, potential: str) -> list[Step]:
    """The steps, in the order they run (most important first: a late step gets what is left)."""
    pytest_common = ["-v", "-rfEs", "--tb=short", "--continue-on-collection-errors"]
    gpu_files = gpu_test_files()
    models = model_test_files()
    rest = ["tests", "-k", "triton", *[x for f in models for x in ("--ignore", f)]]
    if dry:
        # the Triton interpreter runs one program after the other: a few atoms of the smallest bundled
        # potential (about a second per call), not the Cu one (15 s per call for 4 atoms)
        dev = ["--device", "cpu", "--threads", "1", "--no-pyace", "--potential", DRY_POTENTIAL]
        tiny = ["--repeats", "1", "--warmup", "0"]
        return [
            Step("env", "env", [], 60, "versions, device, ceilings (tiny on the CPU)"),
            Step("gpu-tests", "pytest", ["-m", "gpu", *gpu_files, *pytest_common], 90,
                 "pytest -m gpu (all skip without CUDA)"),
            Step("model-tests", "pytest", ["tests/test_spline.py", "-k", "triton and empty", *pytest_common], 90,
                 "a tiny stand-in for the model-level Triton tests"),
            Step("vesin", "vesin", [], 90, "vesin on torch tensors vs on numpy"),
            Step("floor", "floor", ["--device", "cpu", "--potential", DRY_POTENTIAL, "--atoms", "32", "--repeats", "1"],
                 60, "floor.py: each stage's time against its FLOP/byte floor, tiny"),
            Step("forces-f64", "forces", [*dev, "--dtype", "float64", "--sizes", "4", "--structures", "fcc",
                                          "--backends", "triton,torch", *tiny], 90, "profile_forces, tiny"),
            Step("forces-f32", "forces", [*dev, "--dtype", "float32", "--sizes", "8", "--structures", "batch",
                                          "--batch-atoms", "4", "--backends", "triton,torch", *tiny], 90,
                 "profile_forces, tiny"),
            Step("hessian", "hessian", ["--device", "cpu", "--potentials", "AlTi-synthetic-linear", "--sizes", "32",
                                        "--fd-max", "0", "--repeats", "1", "--threads", "1"], 90,
                 "profile_hessian, tiny"),
            Step("target-batch", "forces", [*dev, "--dtype", "float64", "--sizes", "16", "--structures", "batch",
                                            "--batch-atoms", "8", "--backends", "torch", *tiny], 90,
                 "batch of small structures (member size option)"),
            Step("kernel-tests", "pytest", ["tests/test_segment.py", "-k", "triton and empty", *pytest_common], 90,
                 "a tiny stand-in for the kernel-level Triton tests"),
        ]
    dev = ["--device", "cuda", "--threads", str(cores), "--no-pyace", "--potential", potential]
    full = ["--repeats", "5", "--warmup", "2"]
    few = ["--repeats", "3", "--warmup", "1"]
    both = ["--backends", "triton,torch", "--max-torch-atoms", "8192"]
    return [
        Step("env", "env", [], 60, "versions, device, copy and matmul ceilings"),
        Step("gpu-tests", "pytest", ["-m", "gpu", *gpu_files, *pytest_common], 150,
             "every gpu-marked test, compiled Triton"),
        Step("model-tests", "pytest", [*models, "-k", "triton", *pytest_common], 75,
             "the model-level Triton tests on CUDA"),
        Step("vesin", "vesin", ["--large"], 40, "vesin on CUDA tensors vs on numpy (issue 21)"),
        Step("forces-f64", "forces", [*dev, "--dtype", "float64", "--sizes", "256,2048,8192",
                                      "--structures", "fcc,batch", *both, *full], 70,
             "Triton vs torch, float64"),
        Step("forces-f64-32k", "forces", [*dev, "--dtype", "float64", "--sizes", "32000", "--structures", "fcc,batch",
                                          "--backends", "triton", *full], 45, "Triton, float64, 32000 atoms"),
        Step("floor", "floor", ["--device", "cuda", "--potential", potential, "--atoms", "32000", "--repeats", "5"],
             40, "floor.py: each stage's time against its FLOP/byte floor at the GPU's datasheet peak"),
        Step("forces-f32", "forces", [*dev, "--dtype", "float32", "--sizes", "256,2048,8192",
                                      "--structures", "fcc,batch", *both, *full], 60,
             "Triton vs torch, float32"),
        Step("forces-f32-32k", "forces", [*dev, "--dtype", "float32", "--sizes", "32000", "--structures", "fcc,batch",
                                          "--backends", "triton", *full], 40, "Triton, float32, 32000 atoms"),
        Step("target-batch", "forces", [*dev, "--dtype", "float64", "--sizes", "64000", "--structures", "batch",
                                        "--batch-atoms", "64", "--backends", "triton", *few], 45,
             "1000 structures of 64 atoms in one call"),
        Step("hessian", "hessian", ["--device", "cuda", "--potentials", potential, "--sizes", "32,108",
                                    "--fd-max", "108", "--repeats", "2", "--threads", str(cores)], 60,
             "profile_hessian on CUDA"),
        Step("target-large", "forces", [*dev, "--dtype", "float64", "--sizes", "108000", "--structures", "fcc",
                                        "--backends", "triton", *few], 75, "one structure of 108000 atoms"),
        Step("kernel-tests", "pytest", [*rest, *pytest_common], 150, "the other Triton tests (kernel level)"),
    ]


