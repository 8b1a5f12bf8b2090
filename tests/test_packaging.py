"""The wheel ships the kernels as acepy.kernels and no top-level `kernels` package."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_layout(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("acepy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("kernels/")], "top-level kernels package in the wheel"
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n], "tests (tests/data) in the wheel"
    for module in ("backend", "spline", "chebyshev", "sph_harm", "segment", "scatter"):
        assert f"acepy/kernels/{module}.py" in names
        if module != "backend":
            for sub in ("reference", "numba_cpu", "triton_gpu"):
                assert f"acepy/kernels/{sub}/{module}.py" in names
    # the basis generator and the bundled synthetic potentials (acepy.bundled(), acepy.load(name))
    for module in ("__init__", "generator", "bundled", "evaluate"):
        assert f"acepy/basis/{module}.py" in names
    # every layer's modules, including the subpackages (a missing `packages` entry drops them)
    for module in ("errors", "spec", "coupling", "batch", "graph", "loading", "models/component",
                   "models/stack", "models/radial/__init__", "models/radial/pace", "io/yaml_doc"):
        assert f"acepy/{module}.py" in names, module
    import acepy

    for name in acepy.bundled():
        assert f"acepy/data/{name}.yace" in names, f"bundled potential {name} missing from the wheel"
    assert acepy.bundled(), "no bundled potentials found in the source tree"


def test_installed_kernels_are_the_repository_folder():
    import acepy.kernels

    assert Path(acepy.kernels.__file__).resolve().parent == ROOT / "kernels"
