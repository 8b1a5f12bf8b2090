"""Fuzz test: every public potential file, corrupted in many ways, either loads and evaluates to
finite numbers or raises an acepy error (issue 11).

Each file is corrupted with a fixed seed (truncation, deleted lines and keys, numbers replaced by
NaN/inf/negative/huge/fractional values or by garbage, wrong types, garbage bytes, swapped and
repeated lines, unknown names). Every variant is loaded with ``acepy.load`` and, when it loads,
evaluated (energy, forces, stress) on a small periodic cell of its elements. A variant passes when
it raises an :class:`acepy.errors.AcepyError` (a ``ValueError`` passes only if it is one) or gives
finite numbers; anything else fails: another exception, a non-finite result, a crash of the
process, or a variant that runs past its time.

The variants run in worker processes (started once, not per variant) whose address space is
capped with ``resource.setrlimit(RLIMIT_AS)`` before the first variant, so a variant that would
allocate an absurd table meets the memory limit instead of the machine's out-of-memory killer; a
worker that dies is restarted for the variants after the one it died on.

``python tests/test_fuzz_potentials.py`` prints the tally per outcome and every failure.
"""

from __future__ import annotations

import json
import os
import random
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_paths import TIAL_TABLE, TIAL_YACE, missing, pacemaker_yaml_path, potential_path  # noqa: E402

BUNDLED = Path(__file__).resolve().parents[1] / "acepy" / "data"  # acepy's own synthetic potentials

SEED = 20240611
# (file, variants): fewer for the files whose radial tables take a second to build. The TiAl two (MIT)
# and acepy's bundled potentials are always there; the others are python-ace's (ASL) or FitSNAP's
# (GPL-2.0), not in tests/data: read from ../shared/reference, else generated stand-ins.
FILES = [
    (BUNDLED / "AlCuNi-synthetic-r4.yace", 12),
    (BUNDLED / "AlTi-synthetic-linear.yace", 6),
    (BUNDLED / "Cu-synthetic-pbe-core-rep.yace", 6),
    (potential_path("python-ace__tests__Al-Ni_opt_all.yace"), 70),
    (potential_path("python-ace__tests__Al.pbe.in-rank1.ace"), 45),
    (potential_path("python-ace__tests__Al.pbe.rhocore-v2.ace"), 12),
    (potential_path("python-ace__tests__Al.pbe.rhocore.ace"), 6),
    (potential_path("python-ace__tests__Al.pbe-in.rank3-core-rep.ace"), 6),
    (potential_path("FitSNAP__examples__Ta_PACE_RIDGE__30Mar23_RIDGE__Ta_pot.yace"), 10),
    (potential_path("FitSNAP__examples__InP_PACE__ref19Sep2023__InP_pot.yace"), 6),
    (TIAL_YACE, 40),
    (TIAL_TABLE, 20),
    (potential_path("derived/python-ace__tests__Al.pbe.in-rank1.DERIVED.yace"), 30),
    (potential_path("derived/python-ace__tests__Al.pbe.rhocore-v2.DERIVED.yace"), 8),
    (pacemaker_yaml_path("python-ace__tests__Al-Ni_opt_all.yaml"), 30),
    (pacemaker_yaml_path("python-ace__tests__ZBL_rep.yaml"), 25),
    (pacemaker_yaml_path("python-ace__tests__Al-r234.yaml"), 15),
    (pacemaker_yaml_path("python-ace__tests__Ni_2dens_bug_case.yaml"), 15),
]
MEMORY_LIMIT = 3 << 30  # bytes of address space a worker may add to what it holds after start-up
VARIANT_TIMEOUT = 60.0  # seconds (a runaway neighbour search or table build fails the variant)
WORKERS = 2

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
KEY = re.compile(r"[A-Za-z_][\w\- ]{0,40}?\s*[:=]\s*")
# numbers that parse: NaN, infinities, negative, zero, tiny, huge, fractional where an integer belongs
BAD_NUMBERS = [".nan", "nan", ".inf", "-.inf", "inf", "-inf", "1e300", "-1e300", "1e309", "1e6", "-1e6", "1e5",
               "1000000000000", "9223372036854775808", "1e-9", "0", "-1", "-0.5", "2.5", "0.1", "1000", "-0.0"]
# values of the wrong type
GARBAGE = ["abc", "[1, 2]", "{}", "null", "", "True", "No", "[]", "'7'"]
NAMES = ["Xx", "Al", "No", "Ål", "ChebPow", "ChebLinear", "SBessel", "TEST_x", "ACE.jl.base", "Unknown",
         "FinnisSinclair", "FinnisSinclairShiftedScaled", "zbl", "distance", "density", "[Al]", "{}", "42", ""]


# --------------------------------------------------------------------------------------------
# corruption
# --------------------------------------------------------------------------------------------


def _replace_number(text: str, rng: random.Random, near_key: bool) -> tuple[str, str]:
    spans = [m.span() for m in NUMBER.finditer(text)]
    if not spans:
        return text + "\n1e300", "appended a number"
    if near_key:  # the first number after a random key: hits the scalar parameters more often
        keys = [m.end() for m in KEY.finditer(text)]
        start = rng.choice(keys) if keys else 0
        following = [s for s in spans if s[0] >= start]
        a, b = following[0] if following else rng.choice(spans)
    else:
        a, b = rng.choice(spans)
    new = rng.choice(BAD_NUMBERS) if rng.random() < 0.8 else rng.choice(GARBAGE)
    return text[:a] + new + text[b:], f"number {text[a:b]!r} at {a} -> {new!r}"


def _replace_word(text: str, rng: random.Random) -> tuple[str, str]:
    words = [m.span() for m in re.finditer(r"(?<![\w.])[A-Za-z][A-Za-z.]*[A-Za-z](?![\w.])", text)]
    a, b = rng.choice(words)
    new = rng.choice(NAMES)
    return text[:a] + new + text[b:], f"word {text[a:b]!r} at {a} -> {new!r}"


def _delete_pair(text: str, rng: random.Random) -> tuple[str, str]:
    """Remove one `key: value` of a YAML flow or block mapping (value: scalar or flow list)."""
    pairs = [m.span() for m in re.finditer(r"\b[A-Za-z_][\w\-]*: (?:\[[^\[\]]*\]|[^,{}\[\]\n]+),? ?", text)]
    if not pairs:
        return _delete_line(text, rng)
    a, b = rng.choice(pairs)
    return text[:a] + text[b:], f"deleted {text[a:b].strip()!r}"


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True) or [""]


def _delete_line(text: str, rng: random.Random) -> tuple[str, str]:
    lines = _lines(text)
    k = rng.randrange(len(lines))
    return "".join(lines[:k] + lines[k + 1:]), f"deleted line {k + 1}"


def _duplicate_line(text: str, rng: random.Random) -> tuple[str, str]:
    lines = _lines(text)
    k = rng.randrange(len(lines))
    return "".join(lines[:k + 1] + lines[k:]), f"repeated line {k + 1}"


def _swap_lines(text: str, rng: random.Random) -> tuple[str, str]:
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines), f"swapped lines {i + 1} and {j + 1}"


def _truncate(text: str, rng: random.Random) -> tuple[str, str]:
    k = rng.randrange(len(text))
    return text[:k], f"truncated at {k} of {len(text)}"


def _garbage(text: str, rng: random.Random) -> tuple[bytes, str]:
    k = rng.randrange(len(text) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
    return text[:k].encode() + junk + text[k:].encode(), f"{len(junk)} garbage bytes at {k}"


def _brackets(text: str, rng: random.Random) -> tuple[str, str]:
    spans = [m.start() for m in re.finditer(r"[\[\]{},:]", text)]
    if not spans:
        return _garbage(text, rng)
    k = rng.choice(spans)
    new = rng.choice(["", "[", "]", "{", "}", ",", ": ", " - "])
    return text[:k] + new + text[k + 1:], f"{text[k]!r} at {k} -> {new!r}"


MUTATIONS = [
    (_replace_number, 6, {"near_key": True}),
    (_replace_number, 3, {"near_key": False}),
    (_replace_word, 2, {}),
    (_delete_pair, 2, {}),
    (_delete_line, 2, {}),
    (_duplicate_line, 1, {}),
    (_swap_lines, 1, {}),
    (_truncate, 2, {}),
    (_garbage, 1, {}),
    (_brackets, 1, {}),
]


def variants(path: Path, count: int):
    """``count`` corrupted versions of ``path``: ``(content, description)``, the same every run."""
    text = path.read_text()
    rng = random.Random(f"{SEED}:{path.name}")
    fns = [(fn, kw) for fn, weight, kw in MUTATIONS for _ in range(weight)]
    out = [("", "empty file"), ("\n  \n", "blank lines")] if count > 20 else []
    while len(out) < count:
        fn, kw = rng.choice(fns)
        content, what = fn(text, rng, **kw)
        if rng.random() < 0.15:  # now and then a second corruption on top
            fn2, kw2 = rng.choice(fns)
            if isinstance(content, str):
                content, what2 = fn2(content, rng, **kw2)
                what = f"{what}; {what2}"
        out.append((content, what))
    return out


# --------------------------------------------------------------------------------------------
# the worker: load + evaluate, one JSON line per variant
# --------------------------------------------------------------------------------------------

WORKER = r"""
import json, math, resource, sys, time, warnings
warnings.simplefilter("ignore")
import torch
import acepy
from acepy.errors import AcepyError
from ase.build import bulk

def cell_for(elements):
    atoms = bulk("Al", "fcc", a=4.0, cubic=True)
    atoms.symbols = [elements[i % len(elements)] for i in range(len(atoms))]
    atoms.rattle(0.05, seed=1)
    return atoms

def run(job):
    kw = {"pair_table": job["pair_table"]} if job.get("pair_table") else {}
    model = acepy.load(job["potential"], **kw)
    out = model.evaluate(cell_for(model.elements))
    for key in ("energy", "forces", "stress"):
        if not bool(torch.isfinite(out[key]).all()):
            return "nonfinite", f"{key} has non-finite values: {out[key].flatten()[:6].tolist()}"
    return "ok", ""

run({"potential": sys.argv[1], **({"pair_table": sys.argv[2]} if len(sys.argv) > 2 else {})})  # warm up
with open("/proc/self/status") as fh:
    size = int(next(l for l in fh if l.startswith("VmSize:")).split()[1]) * 1024
limit = size + int(sys.argv[-1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    start = time.perf_counter()
    try:
        outcome, detail = run(job)
    except AcepyError as exc:
        outcome, detail = "acepy-error", f"{type(exc).__name__}: {exc}"
    except BaseException as exc:  # noqa: BLE001 - the point is to see every kind
        outcome, detail = "other-error", f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    print(json.dumps({"id": job["id"], "outcome": outcome, "detail": detail[:400],
                      "seconds": time.perf_counter() - start}), flush=True)
"""


class _Worker:
    def __init__(self, warmup: list[str]):
        args = [sys.executable, "-c", WORKER, *warmup, str(MEMORY_LIMIT)]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = self.readline(300.0)
        if ready is None:
            raise RuntimeError("fuzz worker did not start")

    def readline(self, timeout: float):
        if not self.sel.select(timeout):
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def run_variants(jobs: list[dict], warmup: list[str]) -> dict[int, tuple[str, str, float]]:
    """Outcome of every job; a worker that dies or hangs is replaced, and the job it was on fails."""
    results: dict[int, tuple[str, str]] = {}
    pending = list(jobs)
    worker = _Worker(warmup)
    try:
        while pending:
            job = pending.pop(0)
            worker.proc.stdin.write(json.dumps(job) + "\n")
            worker.proc.stdin.flush()
            reply = worker.readline(VARIANT_TIMEOUT)
            if reply is None:
                code = worker.proc.poll()
                results[job["id"]] = ("crash" if code is not None else "timeout",
                                      f"worker exit code {code}" if code is not None else f"> {VARIANT_TIMEOUT} s",
                                      VARIANT_TIMEOUT)
                worker.close()
                worker = _Worker(warmup)
                continue
            results[job["id"]] = (reply["outcome"], reply["detail"], reply["seconds"])
    finally:
        worker.close()
    return results


def available_files() -> tuple[list, list[str]]:
    """The files of FILES that are here, and why each of the others is not."""
    here = [(p, n) for p, n in FILES if not missing(p)]
    return here, [missing(p) for p, _ in FILES if missing(p)]


def fuzz(folder: Path, workers: int = WORKERS) -> list[dict]:
    """Write every variant of every available file under ``folder``, run them all, return one
    record per variant."""
    from concurrent.futures import ThreadPoolExecutor

    records = []
    for path, count in available_files()[0]:
        for k, (content, what) in enumerate(variants(path, count)):
            suffix = path.suffix
            target = folder / f"{path.stem[:40]}.v{k}{suffix}"
            target.write_bytes(content if isinstance(content, bytes) else content.encode())
            job = {"id": len(records), "potential": str(target)}
            if suffix == ".table":  # the pair table is corrupted, the potential is the one it belongs to
                job = {"id": len(records), "potential": str(TIAL_YACE), "pair_table": str(target)}
            records.append({**job, "file": path.name, "what": what})
    warmup = [str(TIAL_YACE), str(TIAL_TABLE)]
    shards = [records[w::workers] for w in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda shard: run_variants(
            [{k: r[k] for k in ("id", "potential", "pair_table") if k in r} for r in shard], warmup), shards))
    for part in parts:
        for i, (outcome, detail, seconds) in part.items():
            records[i].update(outcome=outcome, detail=detail, seconds=seconds)
    return records


FAILURES = ("other-error", "nonfinite", "crash", "timeout")


def summary(records: list[dict]) -> str:
    from collections import Counter

    tally = Counter(r["outcome"] for r in records)
    lines = [f"{len(records)} variants: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items()))]
    seconds = Counter()
    for r in records:
        seconds[r["file"]] += r["seconds"]
    lines.append("seconds per file: " + ", ".join(f"{k[:30]} {v:.1f}" for k, v in seconds.most_common()))
    for r in records:
        if r["outcome"] in FAILURES:
            lines.append(f"  {r['outcome']}: {r['file']} [{r['what']}]: {r['detail'][:300]}")
    return "\n".join(lines)


def test_variants_are_deterministic():
    path, count = FILES[0]
    assert variants(path, count) == variants(path, count)
    assert len({c for c, _ in variants(path, count)}) > count * 0.8  # mostly distinct


def test_every_corrupted_potential_loads_or_raises_an_acepy_error(tmp_path):
    here, absent = available_files()
    start = time.perf_counter()
    records = fuzz(tmp_path)
    report = summary(records)
    print(report, f"\n{time.perf_counter() - start:.1f} s; files left out: {absent or 'none'}")
    assert not [r for r in records if r["outcome"] in FAILURES], report
    # the corruptions reach past the parser: some variants load, some are refused by value checks
    assert sum(r["outcome"] == "ok" for r in records) >= 0.05 * len(records)
    assert sum(r["outcome"] == "acepy-error" for r in records) >= 0.5 * len(records)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        recs = fuzz(Path(tmp))
        print(summary(recs))
        print(f"{time.perf_counter() - t0:.1f} s")
