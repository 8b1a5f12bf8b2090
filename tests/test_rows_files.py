"""Basis rows of potential files and of nonlinear embeddings (acepy.fit.rows).

* python-ace's B-basis projections (``ACEBEvaluator`` with ``compute_projections=True``: the
  value of every B function at every atom, before the embedding and the inner cutoff) on the
  pacemaker ``.yaml`` files agree with acepy's per-atom rows divided by the embedding weight and
  the site scale, to 1e-12 relative to the largest projection (measured: 2e-10 of 5e4 for
  Al.pbe.13.2, 4e-14 of 1 for Al-r234);
* rows @ the file's coefficients + reference equal ``acepy.load(file)`` (which converts the file
  on its own path) for the ``.yaml`` files, the bundled linear ``.yace`` and ACEpotentials.jl's
  TiAl ``.yace`` with its pair table;
* for a nonlinear embedding the rows are the Jacobian over the coefficients: equal to float64
  torch autograd of the model's energy (and forces) through its C-tilde coefficients, to 1e-10.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch
from ase.build import bulk

import acepy
from acepy.fit.rows import LinearBasis

from data_paths import PACEMAKER_YAML_FILES, POTENTIALS, TIAL_STEM, pacemaker_yaml


def _structure(elements, seed):
    a = 3.6 if elements[0] == "Ni" else 4.0
    at = bulk(elements[0], "fcc", a=a).repeat(2)
    if len(elements) > 1:
        at.symbols[::3] = elements[1]
    at.rattle(0.1, seed=seed)
    return at


def _close(a, b, rel=1e-12):
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(np.asarray(a) - np.asarray(b)).max() <= rel * scale


def _match_pyace(bbasis, basis):
    """For each species: my density-0 column of every python-ace B function, in python-ace's order
    (rank 1 then the rest). python-ace may sort a function's factors and reorder its rank-1
    functions, so functions are matched by (species, sorted factors) and order of appearance."""
    els = bbasis.elements_name
    mine = defaultdict(list)
    for k, c in enumerate(basis.columns):
        if c["density"] == 0:
            key = (c["species"], tuple(sorted(zip(c["mus"], c["ns"], c["ls"]))))
            mine[key].append(k)
    taken = defaultdict(int)
    out = []
    for st in range(len(els)):
        cols = []
        for fn in list(bbasis.basis_rank1[st]) + list(bbasis.basis[st]):
            key = (els[fn.mu0], tuple(sorted(zip([els[m] for m in fn.mus], fn.ns, fn.ls))))
            cols.append(mine[key][taken[key]])
            taken[key] += 1
        out.append(cols)
    return out


@pytest.mark.parametrize("name", PACEMAKER_YAML_FILES)
def test_pyace_b_basis_projections(name):
    path = pacemaker_yaml(name)
    pyace = pytest.importorskip("pyace")
    from pyace.atomicenvironment import aseatoms_to_atomicenvironment
    from pyace.calculator import ACECalculator
    from pyace.evaluator import ACEBEvaluator

    bbasis = pyace.ACEBBasisSet(str(path))
    basis = LinearBasis.from_file(path)
    assert basis.elements == list(bbasis.elements_name)
    atoms = _structure(basis.elements, seed=len(name))
    evaluator = ACEBEvaluator(bbasis)
    calc = ACECalculator(evaluator)
    env = aseatoms_to_atomicenvironment(atoms, cutoff=bbasis.cutoffmax,
                                        elements_mapper_dict=bbasis.elements_to_index_map)
    calc.compute(env, compute_projections=True)
    rows = basis.rows(atoms, per_atom=True)
    cols = _match_pyace(bbasis, basis)
    w = np.array([e.fs_parameters[0] for e in basis.embeddings])
    theirs = [np.asarray(calc.projections[i]).reshape(-1) for i in range(len(atoms))]
    scale = max(np.abs(t).max() for t in theirs)
    for i, t in enumerate(theirs):
        mu = basis.elements.index(atoms[i].symbol)
        mine = rows.per_atom[i, cols[mu]] / (w[mu] * rows.site_scale[i])
        assert np.abs(mine - t).max() <= 1e-12 * max(1.0, scale), (i, np.abs(mine - t).max())
    # the file's potential: rows at its coefficients (linear) or the reference (the linearisation point)
    model = acepy.load(path)
    out = model.evaluate(atoms)
    assert rows.kind == ("linear" if basis.is_linear else "jacobian")
    if basis.is_linear:
        c = basis.coefficients
        _close(rows.energy @ c + rows.reference["energy"], out["energy"].numpy())
        _close(rows.forces @ c + rows.reference["forces"], out["forces"].numpy())
        _close(rows.virial @ c + rows.reference["virial"], out["virials"].numpy())
    else:
        _close(rows.reference["energy"], out["energy"].numpy())
        _close(rows.reference["forces"], out["forces"].numpy())


@pytest.mark.parametrize("which", ["bundled-linear", "tial-with-pair-table"])
def test_linear_yace_files(which):
    if which == "bundled-linear":
        path, pair = acepy.loading._resolve("AlTi-synthetic-linear"), None
        atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
        atoms.symbols[::3] = "Ti"
    else:
        path = POTENTIALS / f"{TIAL_STEM}.yace"
        pair = POTENTIALS / f"{TIAL_STEM}_pairpot.table"
        atoms = bulk("Ti", "bcc", a=3.25).repeat(2)
        atoms.symbols[::2] = "Al"
    atoms.rattle(0.05, seed=5)
    basis = LinearBasis.from_file(path, pair_table=pair)
    assert basis.is_linear
    hessian = which != "bundled-linear"  # 1148 columns: the Hessian rows are tested on the smaller TiAl
    rows = basis.rows(atoms, hessian=hessian)
    model = acepy.load(path, pair_table=pair)
    out = model.evaluate(atoms)
    c = basis.coefficients
    _close(rows.energy @ c + rows.reference["energy"], out["energy"].numpy())
    _close(rows.forces @ c + rows.reference["forces"], out["forces"].numpy())
    _close(rows.virial @ c + rows.reference["virial"], out["virials"].numpy())
    if hessian:
        _close(rows.hessian[0] @ c + rows.reference["hessian"][0], model.hessian(atoms).numpy())
    # and basis.model(c) is that potential again
    _close(basis.model(c).evaluate(atoms)["energy"].numpy(), out["energy"].numpy())


# ---- the Jacobian of a nonlinear embedding against autograd ---------------------------------------


def _differentiable_energy(basis, model, c: torch.Tensor):
    """Install C-tilde coefficients that are torch functions of ``c`` into ``model``'s ACE (same
    term order as ACE._compile_functions: per species, functions in spec order, then a stable sort
    by rank), so that ``model.energy`` is differentiable in c."""
    import dataclasses

    ace = model.components[1]
    pmax = ace.max_ndensity
    cf = c.new_zeros((basis._table.nfunctions, pmax)).index_put(
        (torch.as_tensor(basis._col_function), torch.as_tensor(basis._col_density)), c)
    rows, rank1 = [], torch.zeros_like(ace._rank1)
    r1_index, r1_values = [], []
    for mu0 in range(len(basis.elements)):
        terms = []
        for g in basis._table.groups:
            if g.mu0 != mu0:
                continue
            coupling = torch.as_tensor(g.coupling)
            ctildes = coupling.T @ cf[torch.as_tensor(g.functions)]  # (S, P)
            if g.rank == 1:
                r1_index.append((mu0, int(g.mus[0]) * ace.nradbase + int(g.ns[0]) - 1))
                r1_values.append(ctildes[0])
                continue
            terms.extend((g.rank, ctildes[s]) for s in range(ctildes.shape[0]))
        rows.extend(v for _, v in sorted(terms, key=lambda t: t[0]))
    for (mu0, col), v in zip(r1_index, r1_values):
        rank1 = rank1.index_put((torch.tensor(mu0), torch.tensor(col)), v, accumulate=True)
    ace.plan = dataclasses.replace(ace.plan, coeff=torch.stack(rows))
    ace._rank1 = rank1


@pytest.mark.parametrize("which", ["generated", "AlCuNi-synthetic-r4"])
def test_jacobian_rows_equal_autograd_over_coefficients(which):
    from acepy.basis import default_embedding, generate_basis
    from acepy.basis.generator import BondSpec

    rng = np.random.default_rng(17)
    if which == "generated":
        b = generate_basis(["Al", "Ni"], [2, 2, 1], [0, 2, 1], bonds=BondSpec(rcut=4.5, radparameters=(3.0,)),
                           embeddings=default_embedding(2))
        probe = LinearBasis.from_generated(b)
        c0 = rng.normal(size=probe.ncoefficients) * 0.3
        basis = LinearBasis.from_generated(b, coefficients=c0)
        atoms = _structure(["Al", "Ni"], seed=17)[:8]
    else:  # a .yace with two densities and three elements, at the file's coefficients
        basis = LinearBasis.from_file(acepy.loading._resolve(which))
        c0 = basis.coefficients
        atoms = bulk("Al", "fcc", a=4.05, cubic=True).repeat((2, 1, 1))
        atoms.symbols[[1, 4]] = "Cu"
        atoms.symbols[[2, 7]] = "Ni"
        atoms.rattle(0.1, seed=18)
    rows = basis.rows(atoms, per_atom=True)
    assert rows.kind == "jacobian" and not basis.is_linear
    model = basis.model(c0, backend="torch")
    c = torch.tensor(c0, requires_grad=True)
    _differentiable_energy(basis, model, c)
    batch = acepy.batch_from_atoms(atoms).requires_grad_()
    energy = model.energy(batch)[0]
    _close(energy.detach().numpy(), rows.reference["energy"][0])  # the coefficients went in right
    (grad_x,) = torch.autograd.grad(energy, batch.positions, create_graph=True)
    (de_dc,) = torch.autograd.grad(energy, c, retain_graph=True)
    _close(rows.energy[0], de_dc.numpy(), rel=1e-10)
    for i, a in [(0, 0), (2, 1), (5, 2)]:
        (row,) = torch.autograd.grad(-grad_x[i, a], c, retain_graph=True)
        _close(rows.forces[i, a], row.numpy(), rel=1e-10)
    # and the reference is the file's (or the coefficients') own model
    if which != "generated":
        _close(rows.reference["energy"], acepy.load(which).evaluate(atoms)["energy"].numpy())
