"""The basis functions behind design-matrix rows: one table for generated bases, pacemaker B-basis
`.yaml` files and C-tilde `.yace` files.

A basis function f of central species mu0 is ``B_if = Re sum_s coupling[f, s] prod_t A_i[mus_t, ns_t,
ls_t, m_st]`` (rank >= 2; ACE_SPEC.md 1.7 and 2.10), or ``coupling[f, 0] A1_i[mus_0, ns_0]`` at rank 1.
Functions that share their factors (mu0, mus, ns, ls) form one :class:`TupleGroup` with the union
of their m-tuples: the Hessian rows work group by group on the few atomic-base columns it reads.

Functions are numbered species-blocked: every function of species 0, then species 1, ...
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from acepy.coupling import b_function_to_ctilde_terms

__all__ = ["TupleGroup", "FunctionTable", "from_generated", "from_bbasis_yaml", "from_ctilde_spec"]


@dataclass
class TupleGroup:
    """Functions ``functions (F,)`` (indices into the table) with the factors (mu0, mus, ns, ls),
    ``ns`` 1-based; ``coupling[f, s]`` multiplies Re prod_t A[mus_t, ns_t, ls_t, ms_combs[s, t]]."""

    mu0: int
    mus: np.ndarray
    ns: np.ndarray
    ls: np.ndarray
    ms_combs: np.ndarray  # (S, rank)
    coupling: np.ndarray  # (F, S)
    functions: np.ndarray  # (F,)

    @property
    def rank(self) -> int:
        return int(self.ls.shape[0])


@dataclass
class FunctionTable:
    """All basis functions: their groups, one label per function, the species of each function."""

    elements: list[str]
    groups: list[TupleGroup]
    labels: list[dict]
    species: np.ndarray  # (Kf,) central species of each function
    densities: np.ndarray | None = None  # (Kf,) the one density a function feeds, -1: every density

    @property
    def nfunctions(self) -> int:
        return int(self.species.shape[0])


def _label(elements, mu0, mus, ns, ls, LS, source: str) -> dict:
    return {"species": elements[mu0], "rank": int(len(ls)), "mus": [elements[int(m)] for m in mus],
            "ns": [int(n) for n in ns], "ls": [int(l) for l in ls], "LS": [int(x) for x in LS], "source": source}


def from_generated(basis) -> FunctionTable:
    """The functions of a :class:`~acepy.basis.GeneratedBasis` in :meth:`GeneratedBasis.to_spec` order."""
    groups, labels, species = [], [], []
    for mu0 in range(len(basis.elements)):
        for i, block in enumerate(basis.blocks[mu0]):
            start = len(labels)
            for f in range(block.nfunctions):
                labels.append(_label(basis.elements, mu0, block.mus, block.ns, block.ls, block.LS[f],
                                     f"blocks[{mu0}][{i}], row {f}"))
                species.append(mu0)
            groups.append(TupleGroup(mu0, np.asarray(block.mus), np.asarray(block.ns), np.asarray(block.ls),
                                     np.asarray(block.ms_combs, dtype=np.int64),
                                     np.asarray(block.coupling, dtype=np.float64),
                                     np.arange(start, len(labels))))
    return FunctionTable(list(basis.elements), groups, labels, np.asarray(species, dtype=np.int64))


class _Merger:
    """Collects functions as {ms: coefficient} term maps and merges those with the same factors."""

    def __init__(self, elements):
        self.elements = elements
        self.by_key: dict = {}
        self.labels: list[dict] = []
        self.species: list[int] = []
        self.densities: list[int] = []

    def add(self, mu0, mus, ns, ls, terms: dict, label: dict, density: int = -1) -> int:
        f = len(self.labels)
        self.labels.append(label)
        self.species.append(mu0)
        self.densities.append(density)
        key = (mu0, tuple(int(x) for x in mus), tuple(int(x) for x in ns), tuple(int(x) for x in ls))
        self.by_key.setdefault(key, []).append((f, terms))
        return f

    def table(self) -> FunctionTable:
        # species-blocked numbering: reorder functions by species, keeping the order within each
        order = sorted(range(len(self.labels)), key=lambda f: (self.species[f], f))
        new_of = np.empty(len(order), dtype=np.int64)
        new_of[order] = np.arange(len(order))
        groups = []
        for (mu0, mus, ns, ls), members in self.by_key.items():
            ms_all = sorted({ms for _, terms in members for ms in terms})
            col = {ms: s for s, ms in enumerate(ms_all)}
            coupling = np.zeros((len(members), len(ms_all)))
            for row, (_, terms) in enumerate(members):
                for ms, value in terms.items():
                    coupling[row, col[ms]] += value
            groups.append(TupleGroup(mu0, np.array(mus), np.array(ns), np.array(ls),
                                     np.array(ms_all, dtype=np.int64).reshape(len(ms_all), len(mus)), coupling,
                                     new_of[[f for f, _ in members]]))
        groups.sort(key=lambda g: int(g.functions.min()))
        labels = [self.labels[f] for f in order]
        species = np.asarray([self.species[f] for f in order], dtype=np.int64)
        densities = np.asarray([self.densities[f] for f in order], dtype=np.int64)
        return FunctionTable(list(self.elements), groups, labels, species, densities), new_of


def from_bbasis_yaml(path):
    """``(spec, table, coefficients)`` of a pacemaker B-basis `.yaml`: every B function (``skip``
    ones left out) is one basis function; ``coefficients[f]`` its ``c`` (one value per density)."""
    from acepy.io.pacemaker_yaml import (  # the reader's own block parsing, so that both read the same
        _check_block_functions, _ndensities, _read_block_body, _read_block_head, _share_dual_blocks)
    from acepy.io.pacemaker_yaml import read_pacemaker_yaml
    from acepy.io.yaml_doc import key_path, open_yaml_mapping

    spec = read_pacemaker_yaml(path)  # validates the whole file first
    doc, top = open_yaml_mapping(path)
    raw = doc.seq(doc.get(top, "species", ""), "species")
    blocks = [_read_block_head(doc, b, key_path("species", i)) for i, b in enumerate(raw)]
    nd = _ndensities(doc, raw, blocks, spec.elements)
    for r, b in zip(raw, blocks):
        _read_block_body(doc, r, b, nd)
    _share_dual_blocks(doc, blocks)
    for b in blocks:
        _check_block_functions(doc, b)
    index = {e: i for i, e in enumerate(spec.elements)}
    merger = _Merger(spec.elements)
    coeffs = []
    # rank 1 first, then the rest, each in file order: python-ace's order (basis_rank1, then basis)
    funcs = [f for b in blocks for f in b.functions if not f.skip]
    for f in [f for f in funcs if f.rank == 1] + [f for f in funcs if f.rank > 1]:
        mu0 = index[f.elements[0]]
        mus = [index[e] for e in f.elements[1:]]
        fmus, fns, fls, terms = b_function_to_ctilde_terms(mus, f.ns, f.ls, f.LS)
        label = _label(spec.elements, mu0, mus, f.ns, f.ls, f.LS, f.where)
        merger.add(mu0, fmus, fns, fls, terms, label)
        coeffs.append(np.asarray(f.coeffs, dtype=np.float64).reshape(-1))
    table, new_of = merger.table()
    ordered = [None] * len(coeffs)
    for old, c in enumerate(coeffs):
        ordered[new_of[old]] = c
    return spec, table, ordered


def from_ctilde_spec(spec):
    """``(table, coefficients)`` of a C-tilde spec (a `.yace`): every C-tilde function is a basis
    function with its m-tuple coefficients scaled to unit norm, ``coefficients[f]`` the norms (one
    per density), so that the file's potential is coefficients times functions. A function whose
    densities have different m-tuple patterns (a merge of B functions with different per-density
    coefficients) gives one basis function per density instead, each feeding its own density."""
    merger = _Merger(spec.elements)
    coeffs = []
    for mu0, fns in enumerate(spec.functions):
        for i, fn in enumerate(fns):
            c = np.asarray(fn.ctildes, dtype=np.float64).reshape(fn.num_ms_combs, -1)
            norms = np.linalg.norm(c, axis=0)
            label = _label(spec.elements, mu0, fn.mus, fn.ns, fn.ls, (), f"functions[{mu0}][{i}]")
            p = int(np.argmax(norms > 0)) if np.any(norms > 0) else 0
            base = c[:, p] / norms[p] if norms[p] > 0 else c[:, p]
            if np.allclose(np.outer(base, base @ c), c, rtol=1e-12, atol=1e-14 * max(1.0, float(norms.max()))):
                merger.add(mu0, fn.mus, fn.ns, fn.ls, _terms(fn.ms_combs, base), label)
                coeffs.append(base @ c)
                continue
            for p in np.nonzero(norms > 0)[0]:
                merger.add(mu0, fn.mus, fn.ns, fn.ls, _terms(fn.ms_combs, c[:, p] / norms[p]),
                           dict(label, source=f"{label['source']}, density {p}"), density=int(p))
                one = np.zeros(c.shape[1])
                one[p] = norms[p]
                coeffs.append(one)
    table, new_of = merger.table()
    ordered = [None] * len(coeffs)
    for old, c in enumerate(coeffs):
        ordered[new_of[old]] = c
    return table, ordered


def _terms(ms_combs, values) -> dict:
    return {tuple(int(m) for m in ms): float(v) for ms, v in zip(ms_combs, values) if v != 0.0}
