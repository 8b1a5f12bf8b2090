"""The layering of DESIGN.md ("Layers") holds: imports only go down, siblings on one line do not
import each other, and no module grows past about 500 lines.

Every import statement of every module (including imports inside functions) is read with ``ast``;
relative imports are resolved against the module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (layer, group): a module may import from a lower layer, or from its own group; never from a
# higher layer or from another group of the same layer. Checked in order: the first prefix wins.
LAYERS = [
    ("acepy.kernels", 1, "kernels"),
    ("acepy.errors", 2, "errors"),
    ("acepy.spec", 2, "spec"),
    ("acepy.coupling", 2, "coupling"),
    ("acepy.batch", 3, "batch"),
    ("acepy.graph_cuda", 3, "graph"),
    ("acepy.graph_checks", 3, "graph"),
    ("acepy.graph", 3, "graph"),
    ("acepy.models", 4, "models"),
    ("acepy.io", 4, "io"),
    ("acepy.descriptors", 4, "descriptors"),
    ("acepy.basis", 5, "basis"),
    ("acepy.loading", 5, "loading"),
    ("acepy.fit", 6, "fit"),
    ("acepy.calculators", 7, "calculators"),
    ("acepy.lammps", 7, "lammps"),
    ("acepy.cli", 8, "cli"),  # the command line stands on everything (info reports the LAMMPS styles)
]
# same-layer imports that the design allows: the graph is built on the batch
ALLOWED = {("graph", "batch")}
MAX_LINES = 520


def _modules():
    for path in sorted((ROOT / "acepy").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(p for p in parts if p != "__init__"), path, path.name == "__init__.py"
    for path in sorted((ROOT / "kernels").rglob("*.py")):
        parts = ("acepy",) + path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(p for p in parts if p != "__init__"), path, path.name == "__init__.py"


def _layer(module: str):
    for prefix, layer, group in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer, group
    return None


def _imports(name: str, path: Path, is_package: bool):
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:  # `from acepy import x`: x may be a module
                yield f"{target}.{alias.name}", node.lineno


def test_imports_only_go_down():
    problems = []
    for name, path, is_package in _modules():
        own = _layer(name)
        if own is None:  # the package root (re-exports) and acepy.data
            continue
        for target, line in _imports(name, path, is_package):
            if not target.startswith("acepy"):
                continue
            other = _layer(target)
            if other is None:
                if target in ("acepy",) or target.startswith("acepy.__"):
                    problems.append(f"{path.relative_to(ROOT)}:{line} imports the package root ({target})")
                continue
            if other[0] > own[0]:
                problems.append(f"{path.relative_to(ROOT)}:{line}: layer {own[0]} ({own[1]}) imports {target} "
                                f"(layer {other[0]})")
            elif other[0] == own[0] and other[1] != own[1] and (own[1], other[1]) not in ALLOWED:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {own[1]} imports its sibling {target}")
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_violation(tmp_path):
    """The import reader resolves relative imports (a check that could never fail proves nothing)."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    mod = pkg / "m.py"
    mod.write_text("from ..loading import load\nfrom . import x\n\ndef f():\n    import acepy.calculators\n")
    found = {t for t, _ in _imports("acepy.models.m", mod, False)}
    assert {"acepy.loading", "acepy.models.x", "acepy.calculators"} <= found
    assert _layer("acepy.loading")[0] > _layer("acepy.models.m")[0]


def test_modules_stay_small():
    big = [f"{p.relative_to(ROOT)}: {n} lines" for _, p, _ in _modules()
           if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not big, "\n".join(big)
