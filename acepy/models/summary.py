"""Human-readable descriptions of a model stack: ``stack_repr`` (one line) and ``stack_summary``.

``Stack.__repr__`` and ``Stack.summary()`` return these. They only read attributes (``elements``,
``components``, ``cutoff``, ``backend``, ``dtype``, ``device``, ``graph_cache.skin``,
``num_threads``, ``load_options``; for the ACE component ``spec``, ``radial.kind``, ``lmax``,
``nradmax``, ``nradbase``; for the pair term ``path``, ``tablength``, ``style``), and read them
defensively (``getattr``): a summary must never be the thing that raises, also for a stack built
by hand or from components this module does not know (those get their class name and cutoff).

Whether a potential is one of acepy's bundled synthetic ones is decided from where its file lies
(``acepy/data/``), not through ``acepy.loading.bundled()``: ``loading`` builds stacks, so it sits a
layer above the models and this module does not import it (DESIGN.md "Layers").
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

__all__ = ["stack_repr", "stack_summary"]

# The folder of the bundled potentials (acepy/data/*.yace; acepy.loading.bundled() lists the same),
# resolved itself rather than through this module's file, which may be a link into another tree.
_DATA = (Path(__file__).parent.parent / "data").resolve()


# ---- reading the stack ------------------------------------------------------------------------
def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _fmt(x) -> str:
    """A number as written by a person: 7.4, 0, 1e-05 (no float noise, no trailing zeros)."""
    if x is None:
        return "None"
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return f"{x:.10g}" if isinstance(x, float) else str(x)


def _is_ace(comp) -> bool:
    return getattr(getattr(comp, "spec", None), "functions", None) is not None


def _is_pair(comp) -> bool:
    return hasattr(comp, "tablength") and hasattr(comp, "path")


def _ranks(comp) -> list[Counter]:
    """Number of C-tilde functions per rank, one Counter per species (file order, duplicates kept)."""
    return [Counter(int(f.rank) for f in fs) for fs in comp.spec.functions]


def _potential_file(stack) -> str | None:
    """The potential file as acepy.load was given it (resolved path or bundled name), else the
    file the ACE component's spec was read from; None for a potential built in memory."""
    options = getattr(stack, "load_options", None)
    if isinstance(options, dict) and options.get("path"):
        return str(options["path"])
    for comp in getattr(stack, "components", ()):
        if _is_ace(comp):
            source = getattr(comp.spec, "source", "")
            return str(source) if source else None
    return None


def _bundled_name(potential: str | None) -> str | None:
    """The bundled potential's name when ``potential`` is one (a bare name or its file in acepy/data)."""
    if not potential:
        return None
    p = Path(potential)
    if p.parent == Path(".") and not p.exists():  # a bare name, as acepy.load records a bundled one
        stem = p.name[:-5] if p.name.endswith(".yace") else p.name
        return stem if (_DATA / f"{stem}.yace").is_file() else None
    try:
        return p.stem if p.resolve().parent == _DATA and p.suffix == ".yace" else None
    except OSError:
        return None


def _num_threads(stack) -> str:
    n = getattr(stack, "num_threads", None)
    return "default" if n is None else str(n)


def _skin(stack):
    return getattr(getattr(stack, "graph_cache", None), "skin", None)


# ---- one line ---------------------------------------------------------------------------------
def _component_repr(comp) -> str:
    name = type(comp).__name__
    if _is_ace(comp):
        ranks = _ranks(comp)
        total = sum(sum(c.values()) for c in ranks)
        rankmax = max((r for c in ranks for r in c), default=0)
        return f"{name}(rank<={rankmax}, {total} functions)"
    return name


def stack_repr(stack) -> str:
    """One line: ``Stack(elements=['Al', 'Ni'], components=[OneBody, ACE(rank<=4, 13 functions)],
    cutoff=8.75, backend='numba', dtype=float64)``."""
    comps = ", ".join(_component_repr(c) for c in getattr(stack, "components", ()))
    return (f"{type(stack).__name__}(elements={list(getattr(stack, 'elements', []))}, components=[{comps}], "
            f"cutoff={round(float(getattr(stack, 'cutoff', 0.0)), 6)!r}, backend={getattr(stack, 'backend', None)!r}, "
            f"dtype={_dtype_name(getattr(stack, 'dtype', None))})")


# ---- several lines ----------------------------------------------------------------------------
def _embedding(emb) -> str:
    """``FinnisSinclairShiftedScaled, 2 densities (m = 1, 0.5)``; ``(linear)`` for one density
    with exponent 1 (ACEpotentials.jl's linear models: F(rho) = rho)."""
    nd = int(getattr(emb, "ndensity", 0))
    params = [float(x) for x in getattr(emb, "fs_parameters", [])]
    exponents = params[1::2][:nd]
    text = f"{getattr(emb, 'npoti', '?')}, {nd} densit{'y' if nd == 1 else 'ies'}"
    if exponents:
        text += f" (m = {', '.join(_fmt(m) for m in exponents)})"
    if nd == 1 and exponents == [1.0]:
        text += ": linear"
    return text


def _ace_lines(comp, elements, stack) -> list[str]:
    spec = comp.spec
    potential = _potential_file(stack) or getattr(spec, "source", "") or "(built in memory)"
    radial = getattr(getattr(comp, "radial", None), "kind", None) or getattr(spec, "radial_kind", "?")
    lines = [f"potential file: {potential}",
             f"radial basis: {radial}; lmax {comp.lmax}, nradmax {comp.nradmax}, nradbase {comp.nradbase}"]
    ranks = _ranks(comp)
    total = sum(sum(c.values()) for c in ranks)
    lines.append(f"C-tilde functions: {total}")
    for el, counts in zip(elements, ranks):
        per_rank = ", ".join(f"rank {r}: {counts[r]}" for r in sorted(counts))
        lines.append(f"  {el}: {sum(counts.values())} ({per_rank})")
    embeddings = getattr(spec, "embeddings", [])
    lines.append("embedding:")
    for el, emb in zip(elements, embeddings):
        lines.append(f"  {el}: {_embedding(emb)}")
    return lines


def _pair_lines(comp) -> list[str]:
    return [f"table file: {comp.path}",
            f"table length N = {comp.tablength} (style {getattr(comp, 'style', '?')})"]


def _onebody_lines(comp, elements) -> list[str]:
    e0 = getattr(comp, "e0", None)
    if e0 is None:
        return []
    # numpy scalars print their shortest repr in their own dtype (float32 E0 -105.5954, not -105.595397)
    values = e0.detach().cpu().reshape(-1).numpy()
    return ["E0: " + ", ".join(f"{el} {str(v)}" for el, v in zip(elements, values)) + " eV"]


def stack_summary(stack) -> str:
    """A multi-line description of a stack: elements, each component (ACE: potential file, radial
    basis, lmax/nradmax/nradbase, functions per rank and species, embedding per species; pair
    table: file, length, cutoff), the largest cutoff, backend, dtype, device, skin, num_threads,
    and a warning when the potential is one of acepy's bundled synthetic ones."""
    elements = list(getattr(stack, "elements", []))
    comps = list(getattr(stack, "components", ()))
    lines = [f"acepy {type(stack).__name__}: {len(elements)} element{'s' if len(elements) != 1 else ''} "
             f"({', '.join(elements)}), {len(comps)} component{'s' if len(comps) != 1 else ''}"]
    bundled = _bundled_name(_potential_file(stack))
    if bundled is not None and "synthetic" in bundled:
        lines.append(f"bundled potential {bundled!r}: SYNTHETIC (pseudo-random coefficients, for benchmarks "
                     "and tests), not physically fitted")
    elif bundled is not None:  # Cu-EMT-fit (acepy/fit/cu_emt.py)
        lines.append(f"bundled potential {bundled!r}: fitted to ASE's EMT (a classical potential), not to "
                     "first-principles data")
    for k, comp in enumerate(comps, 1):
        cut = getattr(comp, "cutoff", None)
        lines.append(f"{k}. {type(comp).__name__}: cutoff "
                     + ("none (no neighbour graph)" if cut is None else f"{_fmt(float(cut))} A"))
        if _is_ace(comp):
            body = _ace_lines(comp, elements, stack)
        elif _is_pair(comp):
            body = _pair_lines(comp)
        else:
            body = _onebody_lines(comp, elements)
        lines.extend("   " + line for line in body)
    lines.append(f"largest cutoff: {_fmt(float(getattr(stack, 'cutoff', 0.0)))} A")
    lines.append(f"backend: {getattr(stack, 'backend', None)}, dtype: {_dtype_name(getattr(stack, 'dtype', None))}, "
                 f"device: {getattr(stack, 'device', None)}")
    lines.append(f"skin: {_fmt(_skin(stack))} A, num_threads: {_num_threads(stack)}")
    return "\n".join(lines)
