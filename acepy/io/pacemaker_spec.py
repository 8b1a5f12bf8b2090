"""pacemaker blocks to the spec: bonds, embeddings and C-tilde functions (the conversion steps of
:mod:`acepy.io.pacemaker_yaml`'s docstring; the generalized Clebsch-Gordan part is
:func:`acepy.coupling.b_function_to_ctilde_terms`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from acepy.coupling import b_function_to_ctilde_terms
from acepy.spec import (
    ACEPotentialSpec,
    CTildeFunction,
    Embedding,
    PaceBond,
    embedding_problems,
    function_problem,
    pace_bond_problems,
    radial_table_problem,
)

from .yaml_doc import YamlDoc, check_problems, key_path

if TYPE_CHECKING:
    from .pacemaker_yaml import _Block as Block

__all__ = ["bonds_from_blocks", "check_radial_tables", "ctilde_functions_from_blocks", "embedding_from_block"]

# the spec's field names as pacemaker's keys (for the value checks of acepy.spec)
_KEYS = {"FS_parameters": "parameters", "rho_core_cutoff": "rho_core_cut", "drho_core_cutoff": "drho_core_cut",
         "lmax": "lmaxi", "rcut": "rcutij", "dcut": "dcutij", "rcut_in": "r_in", "dcut_in": "delta_in",
         "prehc": "core-repulsion[0]", "lambdahc": "core-repulsion[1]", "nradbasemax": "nradbaseij",
         "nradmax": "nradmaxi", "deltaSplineBins": "global.DeltaSplineBins"}


def _key(where: str, field: str) -> str:
    base, bracket, rest = field.partition("[")
    return key_path(where, _KEYS.get(base, base) + (bracket + rest if bracket else ""))

# python-ace's default radial tables for an element pair no block describes
_MISSING_BOND = dict(radbasename="ChebExpCos", radparameters=(1.0,), rcut=1.0, dcut=1.0, prehc=0.0, lambdahc=1.0)


def bonds_from_blocks(doc: YamlDoc, blocks: list[Block], index: dict[str, int], inner: str) -> dict[tuple[int, int], PaceBond]:
    bonds: dict[tuple[int, int], PaceBond] = {}
    origin: dict[tuple[int, int], Block] = {}
    for block in blocks:
        if block.nspecies > 2:
            continue
        pair = (index[block.elements_vec[0]], index[block.elements_vec[1]])
        rad = block.radial
        prehc, lambdahc = block.core_parameters
        bond = PaceBond(
            radbasename=rad.radbase, radparameters=rad.radparameters.copy(), nradmax=rad.nradmax, lmax=rad.lmax,
            nradbasemax=rad.nradbase, crad=rad.crad.copy(), prehc=prehc, lambdahc=lambdahc, rcut=rad.rcut,
            dcut=rad.dcut, rcut_in=block.r_in, dcut_in=block.delta_in, inner_cutoff_type=block.inner_cutoff_type)
        for other_pair in (pair, pair[::-1]):
            if other_pair in bonds and not _same_bond(bonds[other_pair], bond):
                other = origin[other_pair]
                raise doc.error(block.where, f"bond of block {block.name!r} is inconsistent with that of block "
                                f"{other.name!r} ({other.where})")
        check_problems(doc.path, pace_bond_problems(bond, inner), lambda f, w=block.where: _key(w, f))
        bonds[pair] = bond
        origin[pair] = block
    n = len(index)
    for i in range(n):
        for j in range(n):
            if (i, j) not in bonds:
                # No block for this pair: python-ace keeps its default radial tables (no functions,
                # no core repulsion). Functions that need the bond are rejected later.
                m = _MISSING_BOND
                bonds[(i, j)] = PaceBond(
                    radbasename=m["radbasename"], radparameters=np.array(m["radparameters"]), nradmax=0, lmax=0,
                    nradbasemax=0, crad=np.zeros((0, 1, 0)), prehc=m["prehc"], lambdahc=m["lambdahc"],
                    rcut=m["rcut"], dcut=m["dcut"], rcut_in=0.0, dcut_in=0.0,
                    inner_cutoff_type=inner)
    return dict(sorted(bonds.items()))


def _same_bond(a: PaceBond, b: PaceBond) -> bool:
    return (a.radbasename == b.radbasename and np.array_equal(a.radparameters, b.radparameters)
            and (a.nradmax, a.lmax, a.nradbasemax) == (b.nradmax, b.lmax, b.nradbasemax)
            and np.array_equal(a.crad, b.crad)
            and (a.prehc, a.lambdahc, a.rcut, a.dcut, a.rcut_in, a.dcut_in, a.inner_cutoff_type)
            == (b.prehc, b.lambdahc, b.rcut, b.dcut, b.rcut_in, b.dcut_in, b.inner_cutoff_type))


def embedding_from_block(doc: YamlDoc, block: Block) -> Embedding:
    e = Embedding(ndensity=block.ndensity, fs_parameters=block.fs_parameters, npoti=block.npoti,
                  rho_core_cutoff=block.rho_cut, drho_core_cutoff=block.drho_cut)
    check_problems(doc.path, embedding_problems(e), lambda f: _key(block.where, f))
    return e


def check_radial_tables(doc: YamlDoc, blocks: list[Block], spec: ACEPotentialSpec, max_table_bytes) -> None:
    """Refuse tables larger than ``max_table_bytes`` (acepy.spec.radial_table_problem), naming the
    key of the block that defines the bond at fault."""
    problem = radial_table_problem(spec, max_table_bytes)
    if problem is None:
        return
    where = "species"
    if problem.pair is None:
        where = _KEYS["deltaSplineBins"]
    else:
        pair = [spec.elements[k] for k in problem.pair]
        block = next((b for b in blocks if b.nspecies <= 2 and b.elements_vec in (pair, pair[::-1])), None)
        if block is not None:
            where = _key(block.where, problem.field)
    raise doc.error(where, problem.message)


def ctilde_functions_from_blocks(doc: YamlDoc, blocks: list[Block], index: dict[str, int],
                      bonds: dict[tuple[int, int], PaceBond], spec: ACEPotentialSpec) -> list[list[CTildeFunction]]:
    n = len(index)
    described = {(index[b.elements_vec[0]], index[b.elements_vec[1]]) for b in blocks if b.nspecies <= 2}
    # (mu0, mus, ns, ls) -> {ms: coefficient per density}, in first-seen order
    groups: list[dict] = [dict() for _ in range(n)]
    for block in blocks:
        for f in block.functions:
            if f.skip:
                continue
            mu0 = index[f.elements[0]]
            mus = [index[e] for e in f.elements[1:]]
            for t, mu in enumerate(mus):
                if (mu0, mu) not in described:
                    raise doc.error(key_path(f.where, "type"), f"needs the bond ({f.elements[0]}, {f.elements[t + 1]}), "
                                    f"which no block '{f.elements[0]} {f.elements[t + 1]}' defines")
                bond = bonds[(mu0, mu)]
                limit, what = (bond.nradbasemax, "nradbaseij") if f.rank == 1 else (bond.nradmax, "nradmaxi")
                if f.ns[t] > limit:
                    raise doc.error(key_path(f.where, "nr"), f"nr = {f.ns} exceeds {what} = {limit} of the bond "
                                    f"({f.elements[0]}, {f.elements[t + 1]})")
                if f.ls[t] > bond.lmax:
                    raise doc.error(key_path(f.where, "nl"), f"nl = {f.ls} exceeds lmaxi = {bond.lmax} of the bond "
                                    f"({f.elements[0]}, {f.elements[t + 1]})")
            fmus, fns, fls, terms = b_function_to_ctilde_terms(mus, f.ns, f.ls, f.LS)
            acc = groups[mu0].setdefault((fmus, fns, fls), {})
            for ms, value in terms.items():
                if ms not in acc:
                    acc[ms] = np.zeros(f.coeffs.size)
                acc[ms] += f.coeffs * value
    sizes = (n, spec.nradbase, spec.nradmax, spec.lmax)
    out: list[list[CTildeFunction]] = []
    for mu0 in range(n):
        fns_out = []
        for (mus, ns, ls), acc in sorted(groups[mu0].items(), key=lambda kv: (len(kv[0][0]), kv[0])):
            if not acc:
                continue  # every m-tuple of these B functions vanished
            ms_sorted = sorted(acc)
            fn = CTildeFunction(
                mu0=mu0, rank=len(mus), ndensity=spec.embeddings[mu0].ndensity,
                mus=np.array(mus, dtype=np.int64), ns=np.array(ns, dtype=np.int64), ls=np.array(ls, dtype=np.int64),
                ms_combs=np.array(ms_sorted, dtype=np.int64).reshape(len(ms_sorted), len(mus)),
                ctildes=np.array([acc[ms] for ms in ms_sorted], dtype=np.float64))
            problem = function_problem(fn, *sizes)
            if problem:  # cannot happen after the checks above; kept as a guard
                raise doc.error("species", f"C-tilde function {mus}/{ns}/{ls}: {problem}")
            fns_out.append(fn)
        out.append(fns_out)
    return out
