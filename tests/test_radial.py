"""Radial functions of the ACE model (acepy/models/radial/) against python-ace, the C++ evaluator.

python-ace (`pyace`) is the independent reference: `ACECTildeBasisSet(path).radial_functions`
evaluates PACE's own look-up tables (`evaluate`) and its analytic basis (`radbase`). The checks:

* our tables vs PACE's tables, for every ordered pair of every PACE-radial file (reference files and
  generated ones covering every radial basis and inner-cutoff type): rounding-level agreement;
* our analytic functions vs PACE's analytic `radbase`, and vs PACE's table *at the nodes* (where a
  table value is the analytic node value), which also covers the core repulsion and ZBL;
* our analytic functions vs our tables away from kinks (the interpolation error of ACE_SPEC.md 2.6);
* SHIPs (ACE.jl) polynomials and pair potential vs pyace, ACE.jl spline bonds vs PR16's formula;
* derivatives vs finite differences and autograd; errors; backends and float32.

Tolerances are relative to a *local* scale (the largest magnitude among nearby sample points),
because the functions span many orders of magnitude (ZBL ~ 1/r near the first node).
"""

from __future__ import annotations

import functools
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from acepy.io import read_potential
from acepy.kernels import SplineGrid, SplineRangeError, available_backends
from acepy.models.radial import (
    PaceRadial,
    cutoff_func_poly,
    pace_radial_basis,
    radial_basis,
    ships_polynomials,
    zbl_atomic_number,
)

pyace = pytest.importorskip("pyace")

import data_paths as D  # noqa: E402
from data_paths import TIAL_YACE as TIAL  # noqa: E402

# python-ace's ZBL_rep.yaml (ASL, not in tests/data): from ../shared/reference, else its generated stand-in
ZBL_YAML = D.pacemaker_yaml_path("python-ace__tests__ZBL_rep.yaml")

FIELDS = ("gr", "dgr", "fr", "dfr", "cr", "dcr")  # pyace's names for gk, dgk, rnl, drnl, cr, dcr


# ---------------------------------------------------------------------------------------------
# generated potential files


def _yaml(obj, indent=0) -> str:
    """Block-style YAML for nested dicts; leaves are JSON (a YAML subset); tuple keys -> [i, j]."""
    lines = []
    for key, value in obj.items():
        k = f"[{key[0]}, {key[1]}]" if isinstance(key, tuple) else str(key)
        if isinstance(value, dict):
            lines.append("  " * indent + f"{k}:")
            lines.append(_yaml(value, indent + 1))
        else:
            lines.append("  " * indent + f"{k}: {json.dumps(value)}")
    return "\n".join(lines)


def _pace_bond(rng, radbasename, rcut, nb, nr, lmax, lam=2.0, dcut=0.1, prehc=0.0, lambdahc=1.0,
               rcut_in=0.0, dcut_in=0.0, inner=None):
    bond = dict(nradmax=nr, lmax=lmax, nradbasemax=nb, radbasename=radbasename, radparameters=[lam],
                radcoefficients=rng.normal(size=(nr, lmax + 1, nb)).tolist(), prehc=prehc,
                lambdahc=lambdahc, rcut=rcut, dcut=dcut, rcut_in=rcut_in, dcut_in=dcut_in)
    if inner is not None:  # a missing key means "density" (ACE_SPEC.md 1.4)
        bond["inner_cutoff_type"] = inner
    return bond


def _pace_file(path: Path, elements, bonds) -> Path:
    """A complete PACE-radial .yace with one rank-1 function per species (enough for pyace to load)."""
    n = len(elements)
    doc = {
        "elements": elements,
        "E0": [0.0] * n,
        "deltaSplineBins": 0.001,
        "embeddings": {mu: dict(ndensity=1, FS_parameters=[1.0, 1.0], npoti="FinnisSinclair",
                                rho_core_cutoff=100000.0, drho_core_cutoff=1.0) for mu in range(n)},
        "bonds": bonds,
    }
    functions = ["functions:"]
    for mu in range(n):
        fn = dict(mu0=mu, rank=1, ndensity=1, num_ms_combs=1, mus=[mu], ns=[1], ls=[0], ms_combs=[0],
                  ctildes=[1.0])
        functions += [f"  {mu}:", f"    - {json.dumps(fn)}"]
    path.write_text(_yaml(doc) + "\n" + "\n".join(functions) + "\n")
    return path


def _make_generated(tmp: Path) -> dict[str, Path]:
    rng = np.random.default_rng(20240611)
    files = {}

    # pacemaker B-basis -> C-tilde via pyace (pace_yaml2yace): SBessel + zbl with dcut_in != 0.
    files["zbl_rep"] = tmp / "zbl_rep.yace"
    if not D.missing(ZBL_YAML):  # only without python-ace's package
        pyace.ACEBBasisSet(str(ZBL_YAML)).to_ACECTildeBasisSet().save_yaml(str(files["zbl_rep"]))

    # pyace's basis generator: SBessel / ChebLinear, distance inner cutoff, random crad.
    from pyace import create_multispecies_basis_config

    common = dict(dcut=0.01, inner_cutoff_type="distance")
    cfg = {
        "deltaSplineBins": 0.001,
        "elements": ["Al", "H"],
        "embeddings": {"ALL": {"drho_core_cut": 250, "fs_parameters": [1, 1], "ndensity": 1,
                               "npot": "FinnisSinclair", "rho_core_cut": 200000}},
        "bonds": {"ALL": dict(radbase="SBessel", radparameters=[2.0], rcut=4.1, **common,
                              **{"core-repulsion": [5.0, 2.0], "r_in": 1.0, "delta_in": 0.5}),
                  ("Al", "H"): dict(radbase="ChebLinear", radparameters=[1.5], rcut=3.7, **common,
                                    **{"core-repulsion": [3.0, 1.0], "r_in": 1.2, "delta_in": 0.3})},
        "functions": {"ALL": {"nradmax_by_orders": [6, 3, 2], "lmax_by_orders": [0, 2, 1]}},
    }
    conf = create_multispecies_basis_config(cfg)
    c = rng.normal(size=len(conf.get_radial_coeffs()))
    block = c.size // 4  # blocks Al, H, Al-H, H-Al; the two mixed ones must agree
    c[3 * block:] = c[2 * block: 3 * block]
    conf.set_radial_coeffs(list(c))
    files["ms_distance"] = tmp / "ms_distance.yace"
    pyace.ACEBBasisSet(conf).to_ACECTildeBasisSet().save_yaml(str(files["ms_distance"]))

    # Hand-written: every basis, asymmetric pairs, per-bond sizes below the global ones, and the
    # global inner_cutoff_type taken from bond [n-1, n-1] (the other bonds' values are ignored).
    b = functools.partial(_pace_bond, rng)
    files["zbl_mixed"] = _pace_file(tmp / "zbl_mixed.yace", ["W", "H"], {
        # dcut_in = 0 everywhere: PACE's quirk sets r_in = 1.0 (the file's rcut_in is ignored)
        (0, 0): b("ChebExpCos", 5.2, 8, 3, 2, lam=3.0, dcut=0.3, prehc=1.0, rcut_in=2.0),
        (0, 1): b("ChebPow", 4.6, 5, 2, 1, lam=2.5, dcut=0.5, prehc=0.8),
        (1, 0): b("SBessel", 4.3, 6, 4, 3, dcut=0.2, prehc=1.2),
        (1, 1): b("ChebLinear", 3.9, 4, 1, 0, dcut=0.25, prehc=1.0, inner="zbl"),
    })
    files["density_mixed"] = _pace_file(tmp / "density_mixed.yace", ["Al", "Cu"], {
        # |lambdahc| r^2 = 50 at r = 4.08 < rcut: the core repulsion is cut off abruptly there
        (0, 0): b("ChebLinear", 5.0, 6, 3, 2, prehc=3.0, lambdahc=3.0, inner="distance"),
        (0, 1): b("TEST_zero", 4.5, 4, 2, 1, prehc=2.0, lambdahc=0.5),
        (1, 0): b("ChebPow", 4.8, 7, 3, 1, lam=1.7, prehc=-1.5, lambdahc=-2.0),  # |.| is used
        (1, 1): b("TEST_SBessel", 5.5, 9, 2, 2),  # no inner_cutoff_type: density
    })
    files["distance_mixed"] = _pace_file(tmp / "distance_mixed.yace", ["Ni", "Al"], {
        (0, 0): b("ChebExpCos", 5.0, 7, 3, 2, lam=3.0, dcut=0.4, rcut_in=1.4, dcut_in=0.3, prehc=10.0,
                  lambdahc=1.5, inner="zbl"),
        (0, 1): b("SBessel", 4.7, 6, 2, 1, rcut_in=1.2, dcut_in=0.4, prehc=5.0, lambdahc=2.0),
        (1, 0): b("ChebLinear", 4.4, 5, 2, 2, rcut_in=1.0, dcut_in=0.2, prehc=5.0, lambdahc=0.4),
        (1, 1): b("ChebPow", 5.3, 8, 3, 1, lam=2.0, rcut_in=1.6, dcut_in=0.5, prehc=7.0, lambdahc=1.0,
                  inner="distance"),
    })
    return files


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> dict[str, Path]:
    return _make_generated(tmp_path_factory.mktemp("radial_yace"))


# the full list, never a glob: the python-ace and FitSNAP files (not redistributable under MIT) come from
# ../shared/reference, else generated stand-ins
REFERENCE_PACE = sorted(Path(n).name for n in D.YACE_FILES + D.DERIVED_FILES if not n.startswith("ACEpotentials"))
GENERATED = ["zbl_rep", "ms_distance", "zbl_mixed", "density_mixed", "distance_mixed"]
PACE_CASES = REFERENCE_PACE + GENERATED


def _path(name: str, generated) -> Path:
    if name in generated:
        if name == "zbl_rep":
            D.require(ZBL_YAML)
        return generated[name]
    return D.potential(name if name in D.YACE_FILES else f"derived/{name}")


@functools.lru_cache(maxsize=None)
def _load(path: str):
    spec = read_potential(path)
    return spec, radial_basis(spec), pyace.ACECTildeBasisSet(path)


# ---------------------------------------------------------------------------------------------
# helpers


def _edges(r, i, j):
    r = torch.as_tensor(np.asarray(r, dtype=np.float64))
    return r, torch.full(r.shape, i, dtype=torch.long), torch.full(r.shape, j, dtype=torch.long)


def _pyace_eval(basis, rs, i, j, lmax1):
    """pyace's table values at each r (scalar calls), shaped like ours."""
    rf = basis.radial_functions
    out = {k: [] for k in FIELDS}
    for x in rs:
        rf.evaluate(float(x), basis.nradbase, basis.nradmax, i, j, False)
        for k in FIELDS:
            out[k].append(getattr(rf, k))
    e = len(rs)
    res = {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
    for k in ("fr", "dfr"):
        res[k] = res[k].reshape(e, basis.nradmax, lmax1)
    return res


def _local(a: np.ndarray, width: int = 4) -> np.ndarray:
    """Largest |a| among the 2*width+1 neighbouring samples (rows sorted by r), per column."""
    a = np.abs(a.reshape(a.shape[0], -1))
    out = a.copy()
    for s in range(1, width + 1):
        out[s:] = np.maximum(out[s:], a[:-s])
        out[:-s] = np.maximum(out[:-s], a[s:])
    return out


def _check(ours, ref, scale, rtol, what):
    ours = np.asarray(ours, dtype=np.float64).reshape(scale.shape)
    ref = np.asarray(ref, dtype=np.float64).reshape(scale.shape)
    assert np.isfinite(ours).all(), f"{what}: non-finite values"
    diff = np.abs(ours - ref)
    bad = diff > rtol * scale
    if bad.any():
        e, k = np.argwhere(bad)[0]
        worst = float(np.max(diff / np.where(scale > 0, scale, np.inf)))
        raise AssertionError(f"{what}: {int(bad.sum())} mismatches, e.g. row {e} col {k}: ours {ours[e, k]!r} "
                             f"ref {ref[e, k]!r} (scale {scale[e, k]:.3e}); worst relative {worst:.2e}")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / scale, 0.0)
    return float(rel.max()) if rel.size else 0.0


def _scale(ref: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Local magnitude, floored at 1e-2 of the function's largest magnitude for r >= 1 A: values
    such as 1/2 - T_k(x)/2 near T_k = 1, or ZBL's E + S near its cutoff, are differences of O(1)
    terms and carry that absolute rounding error however small they are."""
    a = np.abs(ref.reshape(ref.shape[0], -1))
    far = r >= min(1.0, 0.5 * float(r.max()))
    floor = 1e-2 * (a[far].max(axis=0) if far.any() else a.max(axis=0, initial=0.0))
    return _local(a) + floor[None, :]


def _compare(ours, ref, r, rscale, rtol, what, drtol=None):
    """Values and derivatives. A table derivative is (c1 + 2 c2 t + 3 c3 t^2) * rscale, so rounding
    in the node values shows up multiplied by rscale: the derivative scale includes rscale*|f|."""
    worst = {}
    for name, f, df, rf_, rdf in (("gk", ours.gk, ours.dgk, ref["gr"], ref["dgr"]),
                                  ("rnl", ours.rnl, ours.drnl, ref["fr"], ref["dfr"]),
                                  ("cr", ours.cr, ours.dcr, ref["cr"], ref["dcr"])):
        sf, sd = _scale(rf_, r), _scale(rdf, r)
        worst[name] = _check(f.detach().numpy(), rf_, sf, rtol, f"{what} {name}")
        worst["d" + name] = _check(df.detach().numpy(), rdf, sd + rscale * sf, drtol or rtol, f"{what} d{name}")
    return worst


def _sample(rng, first, rcut, n=300):
    """Random r in (first node, rcut), more of them near the first node, plus the edges of the range."""
    r = np.concatenate([
        rng.uniform(first, rcut, n),
        np.exp(rng.uniform(np.log(first), np.log(min(1.0, rcut)), n // 6)),
        [first * (1 + 1e-12), rcut - 1e-3, rcut - 2e-4, rcut - 1e-9, rcut, rcut + 1e-9, rcut + 0.05, rcut + 1.0],
    ])
    return np.sort(r)


def _kinks(rt: PaceRadial, i, j):
    """Distances where a PACE radial function is not smooth (C2 or worse)."""
    bond = rt.bond_radials[(i, j)].bond
    out = [bond.rcut]
    r_in, d_in = bond.rcut_in, bond.dcut_in
    if rt.inner_cutoff_type == "zbl":
        r_in = 1.0 if d_in == 0 else 0.0  # ACE_SPEC.md 2.2 quirk
        out.append(bond.rcut - bond.dcut)  # start of the ZBL switch S(r)
    if rt.inner_cutoff_type in ("distance", "zbl"):
        out += [r_in - d_in, r_in]
    if bond.radbasename == "ChebExpCos":
        out.append(bond.rcut - bond.dcut)
    if rt.inner_cutoff_type != "zbl" and bond.lambdahc != 0:
        out.append(math.sqrt(50.0 / abs(bond.lambdahc)))  # radcore's b r^2 < 50 gate
    return np.array(out)


def _jumps(rt: PaceRadial, i, j):
    """Distances where a PACE radial function jumps: rcut (ChebLinear is not zero there, and every
    table ends with a zero node), radcore's b r^2 < 50 gate, zbl's r_in = 1 gate when dcut_in = 0."""
    bond = rt.bond_radials[(i, j)].bond
    out = [bond.rcut]
    if rt.inner_cutoff_type != "zbl" and bond.lambdahc != 0:
        out.append(math.sqrt(50.0 / abs(bond.lambdahc)))
    if rt.inner_cutoff_type == "zbl" and bond.dcut_in == 0:
        out.append(1.0)
    return np.array(out)


def _steep_bands(rt: PaceRadial, i, j):
    """Switching intervals [r_in - delta_in, r_in] of the inner cutoff: with a narrow delta_in (the
    FitSNAP files use 0.01 = 10 table bins) the quintic is too steep for a 4th-order-accurate
    comparison with the formula."""
    bond = rt.bond_radials[(i, j)].bond
    if rt.inner_cutoff_type == "distance":
        return [(bond.rcut_in - bond.dcut_in, bond.rcut_in)]
    return []


def _smooth(r, kinks, width):
    return r[np.all(np.abs(r[:, None] - kinks[None, :]) > width, axis=1)]


# ---------------------------------------------------------------------------------------------
# PACE radial bases


@pytest.mark.parametrize("name", PACE_CASES)
def test_tables_match_pyace(name, generated):
    """Our tables and PACE's are built the same way: they agree to rounding at any r, every pair."""
    spec, rt, basis = _load(str(_path(name, generated)))
    assert spec.radial_kind == "pace" and rt.kind == "pace"
    assert (rt.nradbase, rt.nradmax, rt.lmax) == (basis.nradbase, basis.nradmax, basis.lmax)
    assert rt.inner_cutoff_type == basis.radial_functions.inner_cutoff_type
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for i in range(rt.nelements):
        for j in range(rt.nelements):
            rcut = rt.cutoff(i, j)
            assert rcut == basis.radial_functions.cut[i][j] == spec.bonds[(i, j)].rcut
            grid = SplineGrid.from_spacing(rcut, spec.delta_spline_bins)
            first = 1.0 / grid.rscale
            r = _sample(rng, first, rcut)
            ours = rt.evaluate(*_edges(r, i, j), backend="torch")
            ref = _pyace_eval(basis, r, i, j, rt.lmax + 1)
            # measured worst: 2.2e-13 (values), 5.6e-13 (derivatives; ChebPow, whose transform the
            # kernel rounds as (1 - r/rc)^lam while PACE does (1 - r/rc)^(lam-1) * (1 - r/rc))
            _compare(ours, ref, r, grid.rscale, 5e-13, f"{name} pair {(i, j)}", drtol=1.5e-12)
            beyond = r >= rcut
            for f in ours:
                assert torch.all(f[torch.as_tensor(beyond)] == 0), "tables are zero from rcut on"
            # below the first node both stop (PACE: "Encountered very small distance")
            with pytest.raises(SplineRangeError):
                rt.evaluate(*_edges([2.0, first * (1 - 1e-9)], i, j), backend="torch")
            with pytest.raises(Exception, match="small distance"):
                basis.radial_functions.evaluate(first * (1 - 1e-9), basis.nradbase, basis.nradmax, i, j, False)


@pytest.mark.parametrize("name", PACE_CASES)
def test_analytic_basis_matches_pyace_radbase(name, generated):
    """g_k(r) and g_k'(r) from the formulas vs PACE's own `radbase` (its analytic code), anywhere in
    [0, 1.05 rcut], gates and inner cutoffs included."""
    spec, rt, basis = _load(str(_path(name, generated)))
    rf = basis.radial_functions
    rng = np.random.default_rng(1)
    for (i, j), radial in rt.bond_radials.items():
        bond = radial.bond
        r = np.sort(np.concatenate([rng.uniform(0.0, 1.05 * bond.rcut, 150), _kinks(rt, i, j)]))
        g, dg = radial.gk(torch.as_tensor(r))
        ref_g, ref_dg = [], []
        for x in r:
            rf.radbase(float(bond.radparameters[0]), bond.rcut, bond.dcut, bond.radbasename, float(x),
                       bond.rcut_in, bond.dcut_in)
            ref_g.append(list(rf.gr))
            ref_dg.append(list(rf.dgr))
        ref_g, ref_dg = np.array(ref_g), np.array(ref_dg)
        # relative to each function's largest magnitude (high-order Chebyshev sums cancel)
        _check(g.numpy(), ref_g, np.broadcast_to(np.abs(ref_g).max(0), ref_g.shape), 2e-14,
               f"{name} {(i, j)} g")
        _check(dg.numpy(), ref_dg, np.broadcast_to(np.abs(ref_dg).max(0), ref_dg.shape), 2e-14,
               f"{name} {(i, j)} dg")


@pytest.mark.parametrize("name", PACE_CASES)
def test_analytic_matches_pyace_at_nodes(name, generated):
    """At a node the table returns the analytic node value: this compares our analytic g_k, R_nl and
    core repulsion (radcore incl. its gates, or ZBL) with PACE's analytic code, every pair."""
    spec, rt, basis = _load(str(_path(name, generated)))
    rng = np.random.default_rng(2)
    for (i, j), radial in rt.bond_radials.items():
        grid = SplineGrid.from_spacing(radial.bond.rcut, spec.delta_spline_bins)
        nodes = grid.nodes()
        near = np.searchsorted(nodes, _kinks(rt, i, j))
        idx = np.unique(np.clip(np.concatenate([rng.integers(0, grid.nlut, 120), near - 1, near, near + 1,
                                                [1, 2, grid.nlut - 2]]), 1, grid.nlut - 2))
        # Not node 0: r * rscale may round to just below 1 there, and PACE stops. Not next to a
        # jump either: r * rscale rounds to n +- 1e-13, and a segment spanning a jump has O(f)
        # cubic coefficients, so PACE's table is then off its node value by ~ f * 1e-13 * rscale.
        r = _smooth(nodes[idx], _jumps(rt, i, j), 2.5 / grid.rscale)
        ours = radial(torch.as_tensor(r))
        ref = _pyace_eval(basis, r, i, j, rt.lmax + 1)
        _compare(ours, ref, r, 0.0, 5e-13, f"{name} nodes {(i, j)}")  # measured worst 2.4e-13


@pytest.mark.parametrize("name", PACE_CASES)
def test_analytic_vs_tables(name, generated):
    """Away from kinks, tables and formulas differ only by the cubic Hermite interpolation error."""
    spec, rt, basis = _load(str(_path(name, generated)))
    rng = np.random.default_rng(3)
    for i in range(rt.nelements):
        for j in range(rt.nelements):
            rcut = rt.cutoff(i, j)
            h = 1.0 / SplineGrid.from_spacing(rcut, spec.delta_spline_bins).rscale
            r = _smooth(np.sort(rng.uniform(0.5, rcut, 400)), _kinks(rt, i, j), 3 * h)
            for lo, hi in _steep_bands(rt, i, j):
                r = r[(r < lo - 3 * h) | (r > hi + 3 * h)]
            edges = _edges(r, i, j)
            tab = rt.evaluate(*edges, backend="torch")
            ana = rt.evaluate_analytic(*edges)
            for name_, a, t in zip(tab._fields, ana, tab):
                # Hermite error ~ h^4 f/384 (values), ~ h^3 f/... (derivatives). Measured
                # worst: 1.3e-8 / 7e-6, for ChebPow with lambda = 1.7 ((1 - r/rc)^1.7 has an
                # unbounded second derivative at rc) and the 22-function, lambda-steep InP basis.
                rtol = 5e-8 if name_ in ("gk", "rnl", "cr") else 5e-5
                _check(a.numpy(), t.numpy(), _scale(t.numpy(), r), rtol, f"{name} {(i, j)} {name_}")


def test_spec_interpolation_claim():
    """ACE_SPEC.md 2.6: on Al.pbe.rhocore's R_nl, r in [1.5, 8.6]: |df| <= 1.4e-14, |df'| <= 4.1e-11."""
    spec, rt, _ = _load(str(D.potential("derived/python-ace__tests__Al.pbe.rhocore.DERIVED.yace")))
    r = np.random.default_rng(4).uniform(1.5, 8.6, 2000)
    tab = rt.evaluate(*_edges(r, 0, 0), backend="torch")
    ana = rt.evaluate_analytic(*_edges(r, 0, 0))
    assert float((tab.rnl - ana.rnl).abs().max()) < 3e-14
    assert float((tab.drnl - ana.drnl).abs().max()) < 1e-10


@pytest.mark.parametrize("name", GENERATED + ["python-ace__tests__Al-Ni_opt_all.yace"])
def test_analytic_derivatives(name, generated):
    """Analytic d/dr vs central finite differences, and vs autograd of the values."""
    spec, rt, _ = _load(str(_path(name, generated)))
    rng = np.random.default_rng(5)
    step = 1e-6
    for (i, j), radial in rt.bond_radials.items():
        r = _smooth(np.sort(rng.uniform(0.3, radial.bond.rcut, 200)), _kinks(rt, i, j), 1e-4)
        rt_ = torch.as_tensor(r)
        v = radial(rt_)
        plus, minus = radial(rt_ + step), radial(rt_ - step)
        for f, df, fp, fm, what in ((v.gk, v.dgk, plus.gk, minus.gk, "g"), (v.rnl, v.drnl, plus.rnl, minus.rnl, "R"),
                                    (v.cr, v.dcr, plus.cr, minus.cr, "cr")):
            fd = ((fp - fm) / (2 * step)).numpy()
            scale = _local(df.numpy()) + _local(f.numpy())
            _check(df.numpy(), fd, scale, 1e-6, f"{name} {(i, j)} {what} vs FD")
        # autograd: every edge depends on its own r only, so d(sum_e f_ek)/dr_e = f'_ek
        x = rt_.clone().requires_grad_(True)
        w = radial(x)
        for f, df, what in ((w.gk, w.dgk, "g"), (w.rnl.flatten(1), w.drnl.flatten(1), "R"),
                            (w.cr[:, None], w.dcr[:, None], "cr")):
            if not f.requires_grad:  # a constant zero (TEST_* basis, no core repulsion)
                assert torch.all(f == 0) and torch.all(df == 0)
                continue
            for k in range(f.shape[1]):
                (grad,) = torch.autograd.grad(f[:, k].sum(), x, retain_graph=True)
                _check(grad.numpy(), df[:, k].detach().numpy(), _local(df[:, k].detach().numpy()) + 1e-300,
                       1e-12, f"{name} {(i, j)} {what}{k} autograd")


def test_table_derivatives_and_autograd(generated):
    """The torch table path: derivative = d/dr of the cubic (autograd and finite differences)."""
    spec, rt, _ = _load(str(generated["distance_mixed"]))
    rng = np.random.default_rng(6)
    r = torch.as_tensor(rng.uniform(0.2, 4.3, 300), dtype=torch.float64)
    mi = torch.as_tensor(rng.integers(0, 2, 300))
    mj = torch.as_tensor(rng.integers(0, 2, 300))
    x = r.clone().requires_grad_(True)
    v = rt.evaluate(x, mi, mj, backend="torch")
    for f, df in ((v.gk, v.dgk), (v.rnl.flatten(1), v.drnl.flatten(1)), (v.cr[:, None], v.dcr[:, None])):
        for k in range(f.shape[1]):
            (grad,) = torch.autograd.grad(f[:, k].sum(), x, retain_graph=True)
            dk = df[:, k].detach()
            assert torch.allclose(grad, dk, rtol=1e-12, atol=1e-12 * float(dk.abs().max()))
    step = 1e-7
    p, m = rt.evaluate(r + step, mi, mj, backend="torch"), rt.evaluate(r - step, mi, mj, backend="torch")
    for f, df, fp, fm in ((v.gk, v.dgk, p.gk, m.gk), (v.cr, v.dcr, p.cr, m.cr)):
        fd = ((fp - fm) / (2 * step)).numpy()
        _check(df.detach().numpy(), fd, _local(df.detach().numpy()) + _local(f.detach().numpy()), 1e-5, "table FD")


@D.needs(ZBL_YAML)  # it reads the zbl_rep case
def test_quirks_explicitly(generated):
    """The C++ behaviours the formulas alone would not suggest (ACE_SPEC.md 2.2-2.5, 6.7)."""
    # zbl with dcut_in == 0: r_in becomes 1.0 whatever the file says, g = 0 up to r = 1.
    spec, rt, _ = _load(str(generated["zbl_mixed"]))
    assert spec.bonds[(0, 0)].rcut_in == 2.0
    g, _ = rt.bond_radials[(0, 0)].gk(torch.tensor([0.999, 1.0, 1.001, 1.5], dtype=torch.float64))
    assert torch.all(g[:2] == 0) and torch.all(g[2:, 0] != 0)
    # ... and the global nradbase: bond [1, 1] declares 4 functions but PACE computes all 8.
    g, _ = rt.bond_radials[(1, 1)].gk(torch.tensor([2.0], dtype=torch.float64))
    assert rt.nradbase == 8 and torch.all(g[0, 4:] != 0)
    # zbl with dcut_in != 0: r_in becomes 0, so the inner cutoff factor is 1 (file r_in = 3 ignored).
    spec, rt, _ = _load(str(generated["zbl_rep"]))
    assert spec.inner_cutoff_type == "zbl" and spec.bonds[(0, 0)].rcut_in == 3.0
    bond = spec.bonds[(0, 0)]
    r = torch.tensor([0.5, 1.0, 2.5], dtype=torch.float64)
    g, _ = rt.bond_radials[(0, 0)].gk(r)
    g_plain, _ = pace_radial_basis(r, "SBessel", 2.0, bond.rcut, bond.dcut, 0.0, 0.0, rt.nradbase, "density")
    assert torch.equal(g, g_plain)
    # the global inner cutoff type is bond [n-1, n-1]'s: density_mixed's [0, 0] says distance.
    spec, rt, _ = _load(str(generated["density_mixed"]))
    assert rt.inner_cutoff_type == "density"
    # radcore: |prehc|, |lambdahc|, and cr = 0 as soon as |lambdahc| r^2 >= 50
    rc0 = math.sqrt(50 / 3.0)
    cr, _ = rt.bond_radials[(0, 0)].core(torch.tensor([rc0 - 1e-9, rc0 + 1e-9], dtype=torch.float64))
    assert cr[0] > 0 and cr[1] == 0
    cr, _ = rt.bond_radials[(1, 0)].core(torch.tensor([1.0], dtype=torch.float64))
    assert float(cr[0]) == pytest.approx(1.5 * math.exp(-2.0) * 0.5 * (1 + math.cos(math.pi / 4.8)), rel=1e-14)
    # ChebLinear has no envelope: g_k(rc^-) = (1 - cos((k+1) pi/2))/2
    g, _ = rt.bond_radials[(0, 0)].gk(torch.tensor([5.0 * (1 - 1e-12)], dtype=torch.float64))
    k = np.arange(rt.nradbase)
    assert np.allclose(g[0].numpy(), 0.5 * (1 - np.cos((k + 1) * np.pi / 2)), atol=1e-9)
    # the polynomial switch (ACE_SPEC.md 2.3)
    f, df = cutoff_func_poly(torch.tensor([0.5, 0.75, 1.0, 0.9], dtype=torch.float64), 1.0, 0.5)
    assert f[0] == 1 and f[2] == 0 and float(f[1]) == pytest.approx(0.5) and df[3] < 0


# ---------------------------------------------------------------------------------------------
# ACE.jl SHIPs polynomial bonds and pair potential


def _ships_with_pair(tmp: Path) -> Path:
    """TiAl with one bond's transform changed and a SHIPs pair potential with repulsive cores."""
    from acepy.io.yaml_doc import load_yaml_document

    doc = load_yaml_document(TIAL)
    bond = dict(doc["bonds"][(0, 1)])
    bond.update(r0=2.5, p=3, xl=((1 + 2.5) / (1 + 5.5)) ** 3)
    doc["bonds"][(0, 1)] = bond
    pair = {k: v for k, v in doc["bonds"][(0, 0)].items() if k != "radbasename"}
    pair.update(rcut=6.0, xl=((1 + 2.88) / (1 + 6.0)) ** 2)
    rng = np.random.default_rng(7)
    # list every ordered pair: for an unlisted one, pyace reads uninitialised memory
    pair["coefficients"] = {(i, j): rng.normal(size=pair["maxn"]).tolist() for i in range(2) for j in range(2)}
    doc["polypairpot"] = pair
    doc["reppot"] = {"coefficients": {(0, 0): dict(ri=1.8, e0=2.0, A=3.0, B=5.0),
                                      (0, 1): dict(ri=2.0, e0=1.0, A=2.5, B=4.0),
                                      (1, 0): dict(ri=2.0, e0=1.0, A=2.5, B=4.0)}}  # (1, 1): no core
    path = tmp / "ships_pair.yace"
    path.write_text(_yaml(doc) + "\n")
    return path


@pytest.fixture(scope="module")
def ships_pair_file(tmp_path_factory):
    return _ships_with_pair(tmp_path_factory.mktemp("ships"))


@pytest.mark.parametrize("which", ["tial", "pair"])
def test_ships_match_pyace(which, ships_pair_file):
    path = TIAL if which == "tial" else ships_pair_file
    spec, rt, basis = _load(str(path))
    assert rt.kind == "ships" and (rt.pair is None) == (which == "tial")
    assert (rt.nradbase, rt.nradmax) == (basis.nradbase, basis.nradmax)
    # one cutoff for every pair: the largest of the bonds and the pair potential (ACE_SPEC.md 1.5)
    assert np.all(rt.cutoffs == basis.cutoffmax) and rt.cutoffmax == (5.5 if which == "tial" else 6.0)
    rng = np.random.default_rng(8)
    for i in range(2):
        for j in range(2):
            r = np.sort(np.concatenate([rng.uniform(0.05, rt.cutoff(i, j), 250), [1.8, 2.0, 5.5, 5.9999]]))
            ours = rt.evaluate(*_edges(r, i, j))
            ref = _pyace_eval(basis, r, i, j, rt.lmax + 1)
            worst = _compare(ours, ref, r, 0.0, 1e-13, f"SHIPs {which} {(i, j)}")
            assert max(worst.values()) < 1e-13
            if which == "pair" and (i, j) != (1, 1):
                assert np.any(ref["cr"][r <= 1.8] != 0)


def test_ships_derivatives(ships_pair_file):
    spec, rt, _ = _load(str(ships_pair_file))
    rng = np.random.default_rng(9)
    r = torch.as_tensor(rng.uniform(0.3, 6.0, 400))
    r = r[((r - 1.8).abs() > 1e-4) & ((r - 2.0).abs() > 1e-4)]  # the pair potential jumps at ri
    mi = torch.as_tensor(rng.integers(0, 2, r.shape[0]))
    mj = torch.as_tensor(rng.integers(0, 2, r.shape[0]))
    step = 1e-6
    x = r.clone().requires_grad_(True)
    v = rt.evaluate(x, mi, mj)
    p, m = rt.evaluate(r + step, mi, mj), rt.evaluate(r - step, mi, mj)
    for f, df, fp, fm in ((v.gk, v.dgk, p.gk, m.gk), (v.cr, v.dcr, p.cr, m.cr)):
        fd = ((fp - fm) / (2 * step)).numpy()
        d = df.detach().numpy()
        _check(d, fd, _local(d) + _local(f.detach().numpy()), 1e-6, "SHIPs FD")
        f2 = f.reshape(f.shape[0], -1)
        for k in range(f2.shape[1]):
            (grad,) = torch.autograd.grad(f2[:, k].sum(), x, retain_graph=True)
            dk = df.reshape(f.shape[0], -1)[:, k].detach()
            assert torch.allclose(grad, dk, rtol=1e-12, atol=1e-12 * float(dk.abs().max()))


def test_ships_polynomials_literal():
    """ships_polynomials vs a literal scalar transcription of ACE_SPEC.md 2.7, envelope edges included."""
    A, B, C = np.array([1.3, 2.0, 1.7, 0.9]), np.array([0.0, -0.5, 0.3, -1.1]), np.array([0.0, 0.0, -0.8, 0.4])
    r0, p, xl, xr, pl, pr = 2.5, 2, 0.4, 1.9, 2, 1
    r = np.array([0.2, 0.9, 1.5, 3.0, 5.0, 7.0])
    P, dP = ships_polynomials(torch.as_tensor(r), r0, p, xl, xr, pl, pr, A, B, C)
    for e, x_r in enumerate(r):
        x = ((1 + r0) / (1 + x_r)) ** p
        dx = -p * ((1 + x_r) / (1 + r0)) ** (-p - 1) / (1 + r0)
        if (x < xl and pl > 0) or (x > xr and pr > 0):
            f = df = 0.0
        else:
            f = (x - xl) ** pl * (x - xr) ** pr
            df = pl * (x - xl) ** (pl - 1) * (x - xr) ** pr + (x - xl) ** pl * pr * (x - xr) ** (pr - 1)
        q = [A[0] * f, (A[1] * x + B[1]) * A[0] * f]
        dq = [A[0] * df * dx, A[1] * dx * q[0] + (A[1] * x + B[1]) * A[0] * df * dx]
        for n in range(2, 4):
            q.append((A[n] * x + B[n]) * q[n - 1] + C[n] * q[n - 2])
            dq.append(A[n] * dx * q[n - 1] + (A[n] * x + B[n]) * dq[n - 1] + C[n] * dq[n - 2])
        assert np.allclose(P[e].numpy(), q, rtol=1e-14, atol=1e-15)
        assert np.allclose(dP[e].numpy(), dq, rtol=1e-14, atol=1e-15)
    assert torch.all(P[0] == 0) and torch.all(P[-1] == 0)  # both envelope gates


# ---------------------------------------------------------------------------------------------
# ACEpotentials v0.6 spline bonds (pyace cannot read them: only the PR16 fork of PACE can)


def _spline_file(tmp: Path):
    from acepy.io.yaml_doc import load_yaml_document

    doc = load_yaml_document(TIAL)
    funcs = {}
    for (i, j) in list(doc["bonds"]):
        nb, rc, nrad = (40, 5.0, 3) if (i, j) != (0, 1) else (57, 4.3, 2)  # fewer functions: zero-padded
        nodes = np.linspace(0.0, rc, nb + 1)
        k = np.arange(1, nrad + 1)[:, None] * (1 + i + 2 * j)
        funcs[(i, j)] = (rc, nb, k)
        doc["bonds"][(i, j)] = {
            "radbasename": "ACE.jl", "rcut": rc, "nradial": nrad, "nbins": nb,
            "splinenodalvals": {n: np.sin(k[n, 0] * nodes).tolist() for n in range(nrad)},
            "splinenodalderivs": {n: (k[n, 0] * np.cos(k[n, 0] * nodes)).tolist() for n in range(nrad)},
        }
    # one rank-1 function per species (TiAl's own functions index up to n = 6)
    doc["functions"] = {mu: [dict(mu0=mu, rank=1, ndensity=1, num_ms_combs=1, mus=[mu], ns=[1], ls=[0],
                                  ms_combs=[0], ctildes=[1.0])] for mu in range(2)}
    path = tmp / "spline.yace"
    path.write_text(_yaml(doc) + "\n")
    return path, funcs


def test_spline_bonds(tmp_path):
    path, funcs = _spline_file(tmp_path)
    spec = read_potential(path)
    rt = radial_basis(spec)
    assert rt.kind == "spline" and rt.nradbase == rt.nradmax == 3 and getattr(rt, "pace_table", None) is None
    rng = np.random.default_rng(10)
    for (i, j), (rc, nb, k) in funcs.items():
        assert rt.cutoff(i, j) == rc
        h = rc / nb
        r = np.sort(np.concatenate([rng.uniform(h, rc, 200), [h, 2 * h, rc - 1e-9, rc, rc + 0.1]]))
        v = rt.evaluate(*_edges(r, i, j))
        # PR16 (`acejl_radial.cpp::read_yaml` + `calcSplines`), literally, per function
        for n in range(3):
            if n >= k.shape[0]:
                assert torch.all(v.gk[:, n] == 0) and torch.all(v.dgk[:, n] == 0)
                continue
            val = lambda q: math.sin(k[n, 0] * q * h)  # noqa: E731
            der = lambda q: k[n, 0] * math.cos(k[n, 0] * q * h)  # noqa: E731
            for e, x_r in enumerate(r):
                x = x_r * (nb / rc)
                q = int(math.floor(x))
                if q >= nb:
                    f = df = 0.0
                else:
                    f0, f1, d0, d1 = val(q), val(q + 1), der(q) * h, der(q + 1) * h
                    c = (f0, d0, 3 * (f1 - f0) - d1 - 2 * d0, -2 * (f1 - f0) + d1 + d0)
                    t = x - q
                    f = c[0] + c[1] * t + c[2] * t * t + c[3] * t**3
                    df = (c[1] + 2 * c[2] * t + 3 * c[3] * t * t) * (nb / rc)
                assert abs(float(v.gk[e, n]) - f) <= 1e-13 * (1 + abs(f)), (i, j, n, x_r)
                assert abs(float(v.dgk[e, n]) - df) <= 1e-12 * (1 + abs(df)) * nb / rc, (i, j, n, x_r)
        # R_nl = g_n for every l, no core repulsion
        assert torch.equal(v.rnl, v.gk[:, :, None].expand_as(v.rnl)) and torch.all(v.cr == 0)
        with pytest.raises(SplineRangeError):
            rt.evaluate(*_edges([h * (1 - 1e-9)], i, j))


# ---------------------------------------------------------------------------------------------
# errors, empty input, backends, float32


def test_zbl_unknown_element(generated):
    spec = read_potential(generated["zbl_mixed"])
    spec.elements = ["Xx", "H"]
    with pytest.raises(ValueError, match="Element `Xx` is not recognized"):
        radial_basis(spec)
    assert zbl_atomic_number("W") == 74 and zbl_atomic_number("Lr") == 103
    for bad in ("X", "Rf", "w", ""):
        with pytest.raises(ValueError, match="not recognized"):
            zbl_atomic_number(bad)
    with pytest.raises(ValueError, match="Unknown radial basis"):
        pace_radial_basis(torch.tensor([1.0]), "Gaussian", 1.0, 5.0, 0.1, 0.0, 0.0, 3, "density")


def test_empty_and_shapes(generated):
    spec, rt, _ = _load(str(D.potential("derived/python-ace__tests__Al.pbe.in-rank1.DERIVED.yace")))
    # rank-1-only: no R_nl columns at all (g_k and the core repulsion only)
    assert rt.nradmax == 0 and rt.pace_table.n_functions == rt.nradbase + 1
    v = rt.evaluate(*_edges([2.0, 3.0], 0, 0))
    assert v.rnl.shape == (2, 0, rt.lmax + 1) and v.gk.shape == (2, rt.nradbase)
    for path in (generated["zbl_mixed"], TIAL):
        _, rt, _ = _load(str(path))
        v = rt.evaluate(*_edges([], 0, 0))
        assert v.gk.shape == (0, rt.nradbase) and v.rnl.shape == (0, rt.nradmax, rt.lmax + 1) and v.cr.shape == (0,)
        assert torch.as_tensor(rt.cutoffs).shape == (rt.nelements, rt.nelements)


def test_backends_and_float32(generated):
    spec, rt, _ = _load(str(generated["zbl_mixed"]))
    rng = np.random.default_rng(11)
    r = torch.as_tensor(rng.uniform(0.05, 3.8, 500))
    mi = torch.as_tensor(rng.integers(0, 2, 500))
    mj = torch.as_tensor(rng.integers(0, 2, 500))
    ref = rt.evaluate(r, mi, mj, backend="torch")
    if "numba" in available_backends("cpu"):
        for a, b in zip(rt.evaluate(r, mi, mj, backend="numba"), ref):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max()))
    rt32 = radial_basis(spec, dtype=torch.float32)
    for a, b in zip(rt32.evaluate(r.float(), mi, mj, backend="torch"), ref):
        assert a.dtype == torch.float32
        _check(a.double().numpy(), b.numpy(), _local(b.numpy()) + 1e-3 * float(b.abs().max()), 1e-4, "float32")


def test_factory_and_value_checks(generated, ships_pair_file, tmp_path):
    """radial_basis picks the class by radial_kind (unknown: ValueError naming the source);
    check_distances does the value checks that evaluate(check=False) skips."""
    from acepy.models.radial import RadialBasis, ShipsRadial, SplineRadial

    spec, rt, _ = _load(str(generated["zbl_mixed"]))
    assert isinstance(rt, PaceRadial) and isinstance(rt, RadialBasis)
    assert isinstance(_load(str(ships_pair_file))[1], ShipsRadial)
    assert isinstance(radial_basis(read_potential(_spline_file(tmp_path)[0])), SplineRadial)
    bad = read_potential(generated["zbl_mixed"])
    bad.radial_kind = "gaussian"
    with pytest.raises(ValueError, match=r"zbl_mixed\.yace.*unknown radial kind 'gaussian'"):
        radial_basis(bad)
    first = 1.0 / SplineGrid.from_spacing(rt.cutoff(1, 0), spec.delta_spline_bins).rscale
    r, mi, mj = _edges([2.0, first * (1 - 1e-9), 3.0], 1, 0)
    with pytest.raises(SplineRangeError) as err:
        rt.check_distances(r, mi, mj)
    assert err.value.edge == 1
    rt.check_distances(*_edges([2.0, first, 3.0], 1, 0))
    with pytest.raises(IndexError):
        rt.check_distances(r[:1], mi[:1], torch.tensor([2]))
    # check=False: no value checks, same numbers where the checks pass
    r, mi, mj = _edges([first, 1.5, 3.9], 1, 0)
    for a, b in zip(rt.evaluate(r, mi, mj, check=False), rt.evaluate(r, mi, mj)):
        assert torch.equal(a, b)
    _, ships, _ = _load(str(ships_pair_file))
    ships.check_distances(*_edges([0.01, 2.0], 0, 1))  # analytic: no first node
    with pytest.raises(IndexError):
        ships.check_distances(*_edges([2.0], 0, 2))
