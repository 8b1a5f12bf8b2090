"""The GPU check's results: the merged forces CSV and plot, the Hessian and floor tables, the
combined JUnit file and summary.md (see gpu_check.py)."""

from __future__ import annotations

import csv
import datetime
import shutil
import sys
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

from gpu_check_plan import PROFILING, TARGET_US_PER_ATOM_F64, Step


# ---- results --------------------------------------------------------------------------------
def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_csv(path: Path, rows: list[dict], first: list[str] | None = None) -> None:
    first = first or []
    keys = first + sorted({k for r in rows for k in r} - set(first))
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, restval="")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _f(x, default=float("nan")) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return default


def merge_forces(steps: list[Step], out: Path, stem: str, commit: str) -> list[dict]:
    rows = []
    for step in steps:
        if step.kind != "forces":
            continue
        for path in step.outputs:
            if path.suffix == ".csv":
                for row in read_csv(path):
                    row["step"] = step.name
                    row["commit"] = commit
                    rows.append(row)
    if not rows:
        return rows
    sys.path.insert(0, str(PROFILING))
    from profile_forces import COLUMNS

    write_csv(out / f"{stem}.csv", rows, ["step"] + COLUMNS)
    return rows


def plot_forces(rows: list[dict], path: Path, title: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8))
    series: dict = {}
    for r in rows:
        key = f"{r['backend']} {r['dtype']} {r['structure']}"
        if r["structure"] == "batch":
            key += f" ({int(_f(r['atoms']) // max(1, _f(r['structures'], 1)))}-atom members)"
        series.setdefault(key, {})[int(_f(r["atoms"]))] = _f(r["us_per_atom"])
    for key, pts in sorted(series.items()):
        xs, ys = zip(*sorted(pts.items()))
        ax.plot(xs, ys, ("o-" if "triton" in key else "s--"), label=key, ms=4)
    ax.axhline(TARGET_US_PER_ATOM_F64, color="k", lw=0.8, ls=":", label="target float64 (issue 21)")
    ax.set(xscale="log", yscale="log", xlabel="atoms", ylabel="µs per atom (energy + forces + stress)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6)
    # the stage breakdown of the fast path (Triton; on the dry run whatever ran), in % of the call;
    # "other": the call's median minus the stages' medians (Python, allocations, launches between)
    fast = [r for r in rows if r["backend"] != "torch"] or rows
    fast = sorted(fast, key=lambda r: (r["dtype"], r["structure"], _f(r["atoms"], 0)))
    stages = ["neighbours_ms", "onebody_ms", "ace_ms", "pair_ms", "scatter_ms"]
    stages = [s for s in stages if any(_f(r.get(s), 0.0) > 0 for r in fast)]
    labels = [f"{r['dtype'][-2:]} {r['structure']} {r['atoms']} {r['backend']} "
              f"({_f(r['us_per_atom']):.3g} µs/atom)" for r in fast]
    bottom = [0.0] * len(fast)
    for s in stages + ["other"]:
        vals = []
        for r in fast:
            total = _f(r["median_ms"], 0.0) or 1.0
            part = (total - sum(_f(r.get(k), 0.0) for k in stages)) if s == "other" else _f(r.get(s), 0.0)
            vals.append(100.0 * max(0.0, part) / total)
        bx.bar(range(len(fast)), vals, bottom=bottom, label=s.replace("_ms", ""))
        bottom = [b + v for b, v in zip(bottom, vals)]
    bx.set_xticks(range(len(fast)))
    bx.set_xticklabels(labels, rotation=60, ha="right", fontsize=6)
    bx.set_ylabel("% of the call by stage (synchronised around each)")
    bx.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def combine_junit(steps: list[Step], path: Path) -> None:
    root = ET.Element("testsuites")
    for step in steps:
        for out in step.outputs:
            if out.suffix == ".xml":
                try:
                    suites = list(ET.parse(out).getroot().iter("testsuite"))
                except (ET.ParseError, OSError):
                    continue
                for suite in suites:
                    suite.set("name", step.name)
                    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _no_search_us(r: dict) -> float:
    """µs per atom of the call less its neighbour phase (the search runs on the host today)."""
    return 1e3 * (_f(r["median_ms"]) - _f(r.get("neighbours_ms"), 0.0)) / max(1.0, _f(r["atoms"], 1.0))


def headline(rows: list[dict]) -> list[str]:
    """The timing table and the issue's targets, as markdown lines."""
    if not rows:
        return ["No forces timings (see the step table)."]
    lines = ["| structure | atoms | structures | backend | dtype | median ms | µs/atom | µs/atom w/o neighbours "
             "| neighbours % | ace % | scatter % | peak MB |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    order = sorted(rows, key=lambda r: (r["dtype"], r["structure"], int(_f(r["atoms"], 0)), r["backend"]))
    for r in order:
        total = _f(r["median_ms"])
        pct = lambda k: 100 * _f(r.get(k), 0.0) / total if total else float("nan")  # noqa: E731
        lines.append(f"| {r['structure']} | {r['atoms']} | {r['structures']} | {r['backend']} | {r['dtype']} | "
                     f"{total:.2f} | {_f(r['us_per_atom']):.3f} | {_no_search_us(r):.3f} | "
                     f"{pct('neighbours_ms'):.0f} | {pct('ace_ms'):.0f} | {pct('scatter_ms'):.0f} | "
                     f"{_f(r.get('peak_mem_mb')):.0f} |")
    lines += ["", "Targets (issue 21):", ""]

    def pick(structure, dtype, backend, atoms_min=0, members=None):
        found = [r for r in rows if r["structure"] == structure and r["dtype"] == dtype and r["backend"] == backend
                 and _f(r["atoms"], 0) >= atoms_min
                 and (members is None or round(_f(r["atoms"]) / max(1, _f(r["structures"], 1))) == members)]
        return max(found, key=lambda r: _f(r["atoms"], 0)) if found else None

    fast = "triton" if any(r["backend"] == "triton" for r in rows) else rows[0]["backend"]
    f64 = pick("fcc", "float64", fast, 0)
    big = [r for r in rows if r["structure"] == "fcc" and r["dtype"] == "float64" and r["backend"] == fast]
    at32 = min(big, key=lambda r: abs(_f(r["atoms"]) - 32000)) if big else None
    if at32:
        us = _f(at32["us_per_atom"])
        verdict = "met" if us <= TARGET_US_PER_ATOM_F64 else "missed"
        lines.append(f"- float64 forces + stress, fcc {at32['atoms']} atoms, {fast}: {us:.3f} µs/atom "
                     f"(target at 32k: <= {TARGET_US_PER_ATOM_F64}: {verdict}); without the neighbour search "
                     f"(on the host today, every call here): {_no_search_us(at32):.3f} µs/atom")
        same = [r for r in rows if r["structure"] == "fcc" and r["dtype"] == "float32" and r["backend"] == fast
                and r["atoms"] == at32["atoms"]]
        if same:
            lines.append(f"- float32 at the same size: {_f(same[0]['us_per_atom']):.3f} µs/atom "
                         f"(float64 / float32 time: {us / _f(same[0]['us_per_atom']):.3g})")
    large = pick("fcc", "float64", fast, 100_000)
    lines.append("- one structure of >= 1e5 atoms: " + (f"{large['atoms']} atoms, {_f(large['us_per_atom']):.3f} "
                                                         f"µs/atom, {_f(large.get('peak_mem_mb')):.0f} MB peak"
                                                         if large else "not measured (see the step table)"))
    batch = pick("batch", "float64", fast, 0, members=64)
    lines.append("- a batch of 1000 structures of 64 atoms in one call: " + (
        f"{batch['structures']} x 64 atoms, {_f(batch['median_ms']):.1f} ms, {_f(batch['us_per_atom']):.3f} µs/atom"
        if batch and int(_f(batch["structures"], 0)) >= 1000 else
        (f"only {batch['structures']} x 64 measured" if batch else "not measured")))
    for dtype in ("float64", "float32"):
        pairs = [(r, t) for r in rows for t in rows if r["backend"] == fast and t["backend"] == "torch"
                 and r["dtype"] == t["dtype"] == dtype and r["structure"] == t["structure"] == "fcc"
                 and r["atoms"] == t["atoms"]]
        if pairs and fast != "torch":
            r, t = max(pairs, key=lambda p: _f(p[0]["atoms"], 0))
            lines.append(f"- {fast} vs the torch reference, {dtype}, fcc {r['atoms']} atoms: speed-up "
                         f"{_f(t['median_ms']) / _f(r['median_ms']):.3g}")
    if f64 is None:
        lines.append("- no float64 fcc timing")
    return lines


def hessian_lines(steps: list[Step], out: Path, tag: str, commit: str) -> list[str]:
    step = next((s for s in steps if s.kind == "hessian"), None)
    csvs = [p for p in (step.outputs if step else []) if p.suffix == ".csv"]
    if not csvs:
        return ["No Hessian timings (see the step table)."]
    rows = read_csv(csvs[0])
    for row in rows:
        row["commit"] = commit
    sys.path.insert(0, str(PROFILING))
    from profile_hessian import COLUMNS

    write_csv(out / f"hessian_{tag}_{commit}.csv", rows, COLUMNS)
    pngs = [p for p in step.outputs if p.suffix == ".png"]
    if pngs:
        shutil.copyfile(pngs[0], out / f"hessian_{tag}_{commit}.png")
    lines = ["| potential | atoms | op | median s | ms/atom | force calls |", "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        est = " (estimate)" if r.get("estimate") == "True" else ""
        lines.append(f"| {r['potential']} | {r['atoms']} | {r['op']} | {_f(r['median_s']):.4f}{est} | "
                     f"{_f(r['ms_per_atom']):.3f} | {_f(r['force_calls']):.1f} |")
    return lines


def floor_lines(steps: list[Step]) -> list[str]:
    """The floor step's CSV as a markdown table (it goes into summary.md: no extra file)."""
    step = next((s for s in steps if s.kind == "floor"), None)
    csvs = [p for p in (step.outputs if step else []) if p.suffix == ".csv"]
    if not csvs:
        return ["No floor estimate (see the step table)."]
    with open(csvs[0]) as fh:
        comment = fh.readline().lstrip("# ").strip()
        rows = list(csv.DictReader(fh))
    peaks = [k[: -len(" floor_ns_per_atom")] for k in rows[0] if k.endswith(" floor_ns_per_atom")]
    lines = [comment, "", "| stage | kFLOP/atom | kB/atom | " + " | ".join(f"{p} floor ns/atom" for p in peaks) +
             " | measured ns/atom |", "|---|---:|---:|" + "---:|" * (len(peaks) + 1)]
    for r in rows:
        lines.append(f"| {r['stage']} | {_f(r['flops_per_atom']) / 1e3:.1f} | {_f(r['bytes_per_atom']) / 1e3:.2f} | " +
                     " | ".join(f"{_f(r[f'{p} floor_ns_per_atom']):.2f}" for p in peaks) +
                     f" | {_f(r.get('measured_ns_per_atom') or 'nan'):.1f} |")
    return lines


def write_summary(path: Path, steps: list[Step], info: dict, commit: str, dry: bool, rows, hess, total_s) -> str:
    gpu = info.get("gpu", {})
    d = info.get("dists", {})
    lines = [f"# GPU check, commit {commit}{' (DRY RUN on the CPU: Triton interpreter, tiny sizes)' if dry else ''}",
             "",
             f"{datetime.datetime.now().isoformat(timespec='seconds')} on {info.get('node', '?')}: "
             f"{gpu.get('name', 'no GPU')} (capability {gpu.get('capability', '-')}, {gpu.get('memory_gib', '-')} GiB, "
             f"{gpu.get('sms', '-')} SMs), driver {info.get('driver', '-')} (CUDA {info.get('driver_cuda', '-')}); "
             f"python {info.get('python', '?')}, torch {d.get('torch')} (CUDA {info.get('torch_cuda')}), "
             f"triton {d.get('triton')}, numba {d.get('numba')}, vesin {d.get('vesin')}, ase {d.get('ase')}, "
             f"numpy {d.get('numpy')}; {info.get('cpus', '?')} CPUs; numba import: {info.get('numba_import')}.",
             "",
             f"Measured ceilings: {info.get('ceilings', {})}",
             "",
             f"Total {total_s:.0f} s.",
             "",
             "| step | status | seconds | passed | failed | errors | skipped | detail |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for s in steps:
        c = s.counts.get("counts", {})
        cell = (lambda k: str(c.get(k, 0))) if c else (lambda k: "")
        lines.append(f"| {s.name} | {s.status} | {s.seconds:.1f} | {cell('passed')} | {cell('failed')} | "
                     f"{cell('error')} | {cell('skipped')} | {s.detail.replace('|', '/')} |")
    failed = [(s.name, t) for s in steps for t in s.counts.get("failed_tests", [])]
    if failed:
        lines += ["", "Failed tests:", ""] + [f"- {name}: {t}" for name, t in failed[:40]]
        if len(failed) > 40:
            lines.append(f"- ... and {len(failed) - 40} more (junit.xml, gpu_check.log)")
    vesin = next((s.extra for s in steps if s.kind == "vesin" and s.extra), None)
    if vesin:
        lines += ["", f"## vesin on {vesin['device']} torch tensors against vesin on numpy (acepy's search today)",
                  "", "| case | atoms | pairs | same pairs | numpy ms | torch ms | note |",
                  "|---|---:|---:|---|---:|---:|---|"]
        for c in vesin["cases"]:
            note = c.get("error") or (f"missing {c.get('missing')}, extra {c.get('extra')}" if "missing" in c else
                                      c.get("out_dtypes", "")) + (f"; int64 cast {c['device_cast']}"
                                                                  if "device_cast" in c else "")
            lines.append(f"| {c['case']} | {c['atoms']} | {c.get('pairs', '')} | {c.get('same_pairs', '')} | "
                         f"{_f(c.get('numpy_ms')):.2f} | {_f(c.get('torch_ms')):.2f} | {str(note).replace('|', '/')} |")
    lines += ["", "## Forces (energy + forces + stress per call, synchronised)", ""] + rows
    lines += ["", "## Hessian", ""] + hess
    try:
        lines += ["", "## Floor per stage (profiling/floor.py)", ""] + floor_lines(steps)
    except Exception:  # noqa: BLE001
        lines += ["", "The floor table failed:", "", "```", traceback.format_exc(), "```"]
    lines += ["", "Rerun steps: `python profiling/gpu_check.py --only NAME[,NAME]` (names above); the full output "
                  "is in gpu_check.log."]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


