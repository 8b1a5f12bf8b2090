"""Shared test set-up.

Without CUDA the Triton kernels run through the Triton interpreter, which must be switched on
before any ``@triton.jit`` decorator runs, hence before acepy's Triton modules are imported.
"""

import os
import sys
from pathlib import Path

import torch

# the test modules import their siblings (conformance, data_paths: tests/data/) in every import mode
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from acepy.kernels import available_backends  # noqa: E402

CUDA = torch.cuda.is_available()


def _reuse_parsed_potential_files():
    """Parse each potential file's YAML once per session, not once per ``acepy.load``.

    Parsing is most of a load (0.4-2 s for a bundled potential, PyYAML's constructor and resolver run
    in Python) and the suite loads the same few files hundreds of times. The parse is a pure function
    of the file's bytes, so the memo is keyed by their SHA-256: the first load of every distinct
    content still runs the real parser (corrupted, edited and freshly written files included: their
    bytes differ), a failing parse is never stored, and each hit returns a fresh copy (pickle), so a
    caller that changes the document changes no other. Subprocesses (fuzz workers, the CLI) parse as
    usual. ``ACEPY_TEST_PARSE_ONCE=0`` switches it off."""
    import hashlib
    import pickle

    import acepy.io.yaml_doc as yaml_doc

    parse = yaml_doc.load_yaml_document
    parsed: dict[bytes, bytes] = {}

    def load_yaml_document(path):
        try:
            key = hashlib.sha256(Path(path).read_bytes()).digest()
        except OSError:  # the real parser raises what it raises for a missing or unreadable file
            return parse(path)
        if key in parsed:
            return pickle.loads(parsed[key])
        doc = parse(path)
        try:
            parsed[key] = pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - a document pickle cannot copy is simply parsed each time
            pass
        return doc

    load_yaml_document.__doc__ = parse.__doc__
    load_yaml_document.__wrapped__ = parse
    yaml_doc.load_yaml_document = load_yaml_document


if os.environ.get("ACEPY_TEST_PARSE_ONCE", "1") != "0":
    _reuse_parsed_potential_files()

# Per-dtype tolerances, relative to the largest magnitude of the reference.
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


def device_for(backend: str) -> torch.device:
    """Where a backend runs in this session: Triton on the GPU when there is one."""
    return torch.device("cuda") if (backend == "triton" and CUDA) else torch.device("cpu")


def fast_backends() -> list[str]:
    """The compiled backends that can run here (the torch reference is what they are checked against)."""
    out = [b for b in ("numba",) if b in available_backends("cpu")]
    triton_dev = "cuda" if CUDA else "cpu"
    if "triton" in available_backends(triton_dev):
        out.append("triton")
    return out


def assert_close(actual, expected, dtype, scale_floor=1.0, what=""):
    """max |actual - expected| <= tol(dtype) * max(|expected|, scale_floor), with NaN never passing."""
    actual = actual.detach().cpu().double()
    expected = expected.detach().cpu().double()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    if expected.numel() == 0:
        return
    scale = max(float(expected.abs().max()), scale_floor)
    err = float((actual - expected).abs().max())
    tol = TOLERANCE[dtype] * scale
    assert err <= tol, f"{what}: max error {err:.3e} > {tol:.3e} (scale {scale:.3e})"


# The start of a compile-check script: the Triton interpreter off, and compile_sm90(fn, sig, consts)
COMPILE_PRELUDE = """
import os
os.environ.pop("TRITON_INTERPRET", None)
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

def compile_sm90(fn, sig, consts):
    sig = {**sig, **{k: "constexpr" for k in consts}}
    triton.compile(ASTSource(fn, signature=sig, constexprs=consts), target=GPUTarget("cuda", 90, 32))
"""


def compile_check_sm90(body: str):
    """Compile Triton kernels for sm_90 for real, in a subprocess without the interpreter (the
    interpreter runs numpy and accepts code that would not compile); no GPU is needed, ptxas
    ships with Triton. ``body`` imports the kernels and calls ``compile_sm90``."""
    import subprocess
    import sys
    import textwrap

    compiler = pytest.importorskip("triton.compiler")
    backends = pytest.importorskip("triton.backends.compiler")
    if not (hasattr(compiler, "ASTSource") and hasattr(backends, "GPUTarget")):
        pytest.skip("this Triton has no ASTSource / GPUTarget")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = COMPILE_PRELUDE + textwrap.dedent(body) + "\nprint('compiled')\n"
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and "compiled" in res.stdout, res.stderr[-3000:]


@pytest.fixture(params=fast_backends())
def backend(request):
    return request.param


@pytest.fixture(params=[torch.float64, torch.float32], ids=["f64", "f32"])
def dtype(request):
    return request.param


def pytest_collection_modifyitems(config, items):
    if CUDA:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    """Where the licence-excluded test files come from in this session (tests/data/README.md)."""
    import data_paths

    if data_paths.SHARED.is_dir() and not data_paths.FORCE_GENERATED:
        return f"test data: tests/data and the upstream files in {data_paths.SHARED}"
    where = data_paths.GENERATED or "nowhere (python-ace not installed)"
    return f"test data: tests/data and python-ace-generated stand-ins for the files left out ({where})"


@pytest.fixture(scope="session")
def generated_data():
    """The folder of the generated stand-ins (tests/generated_data.py), written on first use."""
    import data_paths

    if data_paths.GENERATED is None:
        pytest.skip("python-ace is not installed: it writes the stand-ins")
    import generated_data as gen

    return gen.ensure_generated()
