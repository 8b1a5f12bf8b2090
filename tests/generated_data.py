"""Stand-ins for the test files whose licences keep them out of the repository, made by python-ace.

python-ace's test potentials (Academic Software Licence: non-commercial) and FitSNAP's examples
(GPL-2.0) cannot be redistributed with acepy (MIT), and no package on the index ships them. Each is
replaced here by a file of the same kind, written by python-ace itself from the same
hyperparameters (elements, embeddings, radial basis kind and size, cut-offs, core repulsion, rho-core
cut-off, inner cut-off, ranks, densities: facts read off the upstream files) with coefficients drawn
from a fixed seed. python-ace builds the basis functions (``create_multispecies_basis_config``),
writes the pacemaker B-basis ``.yaml`` (``BBasisConfiguration.save``), the C-tilde ``.yace``
(``ACECTildeBasisSet.save_yaml``) and the legacy ``.ace`` (``ACECTildeBasisSet.save``), and the
"derived" ``.yace`` files are the ``.ace`` files read back and saved as YAML, as upstream's were.
The FitSNAP stand-ins are python-ace ``.yace`` files (FitSNAP's own style: identity radial
coefficients, distance inner cut-off, ``prehc: 0``) re-printed the way FitSNAP prints them (``%f``
header numbers, trailing blanks).

A stand-in keeps the name of the file it stands for (the tests key on names), in a folder of its own
(``generated_root()``): made once per machine, python-ace version and version of this module, and
reused by later sessions. ``tests/data/README.md`` lists them.

Run as a script to write them to a folder: ``python tests/generated_data.py OUT``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

PYACE = "python-ace__tests__"
FITSNAP = "FitSNAP__examples__"


def _emb(npot, fs, ndensity, rho_core=(100000, 250)):
    return {"npot": npot, "fs_parameters": list(fs), "ndensity": ndensity,
            "rho_core_cut": rho_core[0], "drho_core_cut": rho_core[1]}


def _bond(rcut, radbase, radparameter, core_rep=(0.0, 1.0), dcut=0.01, cutoff="cos", **inner):
    out = {"rcut": rcut, "dcut": dcut, "NameOfCutoffFunction": cutoff, "radbase": radbase,
           "radparameters": [radparameter], "core-repulsion": list(core_rep)}
    out.update(inner or {"inner_cutoff_type": "density"})
    return out


def _funcs(nradmax, lmax):
    return {"nradmax_by_orders": list(nradmax), "lmax_by_orders": list(lmax)}


FSS = "FinnisSinclairShiftedScaled"

# name -> (potential_config for create_multispecies_basis_config, radial coefficients: "random" or "delta",
#          the upstream file's hyperparameters it keeps)
RECIPES = {
    # two species, FinnisSinclair (1 density) and FinnisSinclairShiftedScaled (2 densities), ChebExpCos and
    # ChebPow bonds with their own cut-offs and core repulsion, rho-core cut-offs, ranks 1..5
    "Al-Ni_opt_all": ({
        "elements": ["Al", "Ni"],
        "embeddings": {"Al": _emb("FinnisSinclair", [1, 1], 1, (100000, 250)),
                       "Ni": _emb(FSS, [1, 1, 1, 0.5], 2, (200000, 150))},
        "bonds": {("Al", "Al"): _bond(8.7, "ChebExpCos", 3.0, (400, 7)),
                  ("Al", "Ni"): _bond(8.71, "ChebExpCos", 3.2, (550, 10)),
                  ("Ni", "Ni"): _bond(8.75, "ChebPow", 2.5, (500, 8))},
        "functions": {"UNARY": _funcs([2, 1, 1, 1], [0, 2, 0, 0]),
                      # nradmax 1 across Al-Ni: with one radial base function there, R_1l and R_2l would be
                      # proportional and functions differing only in n linearly dependent (no active set)
                      "BINARY": _funcs([1, 1], [0, 1])}}, "random"),
    # rank 1 only, l = 0
    "Al-r1l0": ({"elements": ["Al"], "embeddings": {"Al": _emb(FSS, [1, 1], 1)},
                 "bonds": {("Al", "Al"): _bond(8.7, "ChebExpCos", 3.0)},
                 "functions": {"Al": _funcs([1], [0])}}, "delta"),
    # ranks 2..4 over one radial function
    "Al-r234": ({"elements": ["Al"], "embeddings": {"Al": _emb(FSS, [1, 1], 1)},
                 "bonds": {("Al", "Al"): _bond(8.7, "ChebExpCos", 3.0)},
                 "functions": {"Al": _funcs([1, 1, 1, 1], [0, 1, 1, 1])}}, "delta"),
    # a larger one-species B-basis: two densities, 10 radial base functions, nradmax 4, lmax 4
    "Al.pbe.13.2": ({"elements": ["Al"], "embeddings": {"Al": _emb(FSS, [1, 1, 1, 0.5], 2)},
                     "bonds": {("Al", "Al"): _bond(8.7, "ChebExpCos", 3.0)},
                     "functions": {"Al": _funcs([10, 4, 3, 2], [0, 4, 3, 1])}}, "random"),
    # two densities, ChebPow, a core repulsion with prefactor 0
    "Ni_2dens_bug_case": ({"elements": ["Ni"], "embeddings": {"Ni": _emb(FSS, [1, 1, 1, 0.5], 2, (200000, 150))},
                           "bonds": {("Ni", "Ni"): _bond(8.75, "ChebPow", 2.5, (0, 8))},
                           "functions": {"Ni": _funcs([1, 1], [0, 2])}}, "random"),
    # ZBL inner cut-off, SBessel radial basis, rank 1 only, no cut-off function name, no rho-core cut-off
    "ZBL_rep": ({"elements": ["H"], "embeddings": {"H": _emb(FSS, [1, 1], 1, (0, 0))},
                 "bonds": {("H", "H"): _bond(5.0, "SBessel", 2.0, (1, 1), cutoff="", r_in=3.0, delta_in=1.0,
                                             inner_cutoff_type="zbl")},
                 "functions": {"H": _funcs([5], [0])}}, "delta"),
    # the legacy .ace files: one species, FinnisSinclairShiftedScaled with two densities
    "Al.pbe-in.rank3-core-rep": ({"elements": ["Al"], "embeddings": {"Al": _emb(FSS, [1, 1, 1, 0.5], 2)},
                                  "bonds": {("Al", "Al"): _bond(8.7, "ChebExpCos", 5.25, (100, 1))},
                                  "functions": {"Al": _funcs([12, 7, 3], [0, 4, 2])}}, "delta"),
    "Al.pbe.in-rank1": ({"elements": ["Al"], "embeddings": {"Al": _emb(FSS, [1, 1, 1, 0.5], 2)},
                         "bonds": {("Al", "Al"): _bond(8.7, "ChebExpCos", 5.25)},
                         "functions": {"Al": _funcs([12], [0])}}, "delta"),
    # a rho-core cut-off that acts on real structures (40, 20), ranks up to 5, lmax 5
    "Al.pbe.rhocore": ({"elements": ["Al"], "embeddings": {"Al": _emb(FSS, [1, 1, 1, 0.5], 2, (40, 20))},
                        "bonds": {("Al", "Al"): _bond(8.7, "ChebExpCos", 5.25,
                                                      (80.160489211977577, 0.55397168736976166))},
                        "functions": {"Al": _funcs([12, 4, 3, 1, 1], [0, 5, 2, 1, 1])}}, "random"),
    "Al.pbe.rhocore-v2": ({"elements": ["Al"], "embeddings": {"Al": _emb(FSS, [1, 1, 1, 0.5], 2, (10000, 250))},
                           "bonds": {("Al", "Al"): _bond(8.7, "ChebExpCos", 5.0,
                                                         (90.978224016403132, 0.51236990301006169))},
                           "functions": {"Al": _funcs([8, 4], [0, 4])}}, "delta"),
    # FitSNAP style: linear embedding, identity radial coefficients (nradmax = nradbase), distance inner cut-off
    "Ta_pot": ({"elements": ["Ta"], "embeddings": {"Ta": _emb("FinnisSinclair", [1, 1], 1)},
                "bonds": {("Ta", "Ta"): _bond(4.25, "ChebExpCos", 1.275, (0, 1.275), r_in=1.2, delta_in=0.01,
                                              inner_cutoff_type="distance")},
                "functions": {"Ta": _funcs([22, 6, 2, 1], [0, 5, 2, 1])}}, "identity"),
    "InP_pot": ({"elements": ["In", "P"],
                 "embeddings": {"ALL": _emb("FinnisSinclair", [1, 1], 1)},
                 "bonds": {("In", "In"): _bond(5.79, "ChebExpCos", 1.737, (0, 1.737), r_in=1.705, delta_in=0.01,
                                               inner_cutoff_type="distance"),
                           ("In", "P"): _bond(5.007, "ChebExpCos", 1.502, (0, 1.502), r_in=1.403, delta_in=0.01,
                                              inner_cutoff_type="distance"),
                           ("P", "P"): _bond(4.224, "ChebExpCos", 1.267, (0, 1.267), r_in=1.1, delta_in=0.01,
                                             inner_cutoff_type="distance")},
                 "functions": {"UNARY": _funcs([22, 4, 2, 1], [0, 2, 2, 1]),
                               "BINARY": _funcs([22, 2, 1, 1], [0, 2, 1, 1])}}, "identity"),
}
E0 = {"Ta_pot": {"Ta": -6.228984}}

PACEMAKER_YAML = ("Al-Ni_opt_all", "Al-r1l0", "Al-r234", "Al.pbe.13.2", "Ni_2dens_bug_case", "ZBL_rep")
ACE = ("Al.pbe-in.rank3-core-rep", "Al.pbe.in-rank1", "Al.pbe.rhocore-v2", "Al.pbe.rhocore")
FITSNAP_NAMES = {"Ta_pot": f"{FITSNAP}Ta_PACE_RIDGE__30Mar23_RIDGE__Ta_pot.yace",
                 "InP_pot": f"{FITSNAP}InP_PACE__ref19Sep2023__InP_pot.yace"}


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


RANK_DECAY = 0.02
RADIAL_NOISE = 0.1  # off the delta radial coefficients, over (1 + k)^2 for g_k (fitted ones look alike)


def bbasis(name: str):
    """The python-ace B-basis configuration of recipe ``name``, its coefficients drawn from a fixed seed."""
    from pyace import create_multispecies_basis_config

    config, radial = RECIPES[name]
    rng = np.random.default_rng(_seed(name))
    conf = create_multispecies_basis_config({"deltaSplineBins": 0.001, **config}, func_coefs_initializer="zero")
    blocks = conf.funcspecs_blocks
    pair_crad = {}
    for block in blocks:
        crad = np.array(block.radcoefficients, dtype=float)
        if crad.size and radial == "random":  # one draw per unordered pair: [A, B] and [B, A] must agree
            key = tuple(sorted(block.elements_vec[:2])) if len(block.elements_vec) > 1 else (block.elements_vec[0],) * 2
            if key not in pair_crad:
                decay = 1.0 / (1.0 + np.arange(crad.shape[2])) ** 2  # smooth R_nl: little weight on the high g_k
                pair_crad[key] = crad + RADIAL_NOISE * decay * rng.standard_normal(crad.shape)
            block.radcoefficients = pair_crad[key].tolist()
        elif crad.size and radial == "identity":  # R_nl = g_n, as FitSNAP writes them
            eye = np.zeros_like(crad)
            for n in range(min(crad.shape[0], crad.shape[2])):
                eye[n, :, n] = 1.0
            block.radcoefficients = eye.tolist()
        # rank-r coefficients shrink as RANK_DECAY**(r - 1): the A's sum over some hundred neighbours, and
        # plain N(0, 1) coefficients on their products give energies of 1e5 eV/atom
        specs = block.funcspecs
        for spec in specs:
            rank = len(spec.ns)
            spec.coeffs = (0.5 * RANK_DECAY ** (rank - 1) * rng.standard_normal(len(spec.coeffs))).tolist()
        block.funcspecs = specs
    conf.funcspecs_blocks = list(blocks)
    return conf


def _ctilde(conf):
    from pyace import ACEBBasisSet

    return ACEBBasisSet(conf).to_ACECTildeBasisSet()


def _fitsnap_style(text: str, e0: dict[str, float], elements: list[str]) -> str:
    """python-ace's ``.yace`` text printed the way FitSNAP prints its header: ``%f`` numbers and a
    blank at the end of the first three lines."""
    lines = text.splitlines()
    lines[0] = f"elements: [{', '.join(elements)}] "
    lines[1] = "E0: [" + ", ".join(f"{e0.get(el, 0.0):f}" for el in elements) + "] "
    lines[2] = "deltaSplineBins: 0.001000 "
    return "\n".join(lines) + "\n"


def _without_inner_keys(text: str) -> str:
    """The text without the density inner cut-off's keys (``inner_cutoff_type: density`` with ``r_in``
    / ``rcut_in`` and ``delta_in`` / ``dcut_in`` 0): the layout of python-ace before inner cut-offs, in
    which upstream's Al-Ni files are written; both readers take "density" where the keys are absent."""
    text = text.replace(", rcut_in: 0, dcut_in: 0, inner_cutoff_type: density}", "}")
    return re.sub(r"^    (r_in: 0|delta_in: 0|inner_cutoff_type: density)\n", "", text, flags=re.M)


def generate(out: Path) -> Path:
    """Write every stand-in under ``out`` (``potentials/``, ``potentials/derived/``, ``pacemaker-yaml/``)."""
    from pyace import ACECTildeBasisSet

    out = Path(out)
    (out / "potentials" / "derived").mkdir(parents=True, exist_ok=True)
    (out / "pacemaker-yaml").mkdir(parents=True, exist_ok=True)
    for name in PACEMAKER_YAML:
        bbasis(name).save(str(out / "pacemaker-yaml" / f"{PYACE}{name}.yaml"))
    alni = out / "potentials" / f"{PYACE}Al-Ni_opt_all.yace"
    _ctilde(bbasis("Al-Ni_opt_all")).save_yaml(str(alni))
    for path in (alni, out / "pacemaker-yaml" / f"{PYACE}Al-Ni_opt_all.yaml"):
        path.write_text(_without_inner_keys(path.read_text()))
    for name in ACE:
        ace = out / "potentials" / f"{PYACE}{name}.ace"
        _ctilde(bbasis(name)).save(str(ace))
        ACECTildeBasisSet(str(ace)).save_yaml(str(out / "potentials" / "derived" / f"{PYACE}{name}.DERIVED.yace"))
    for name, target in FITSNAP_NAMES.items():
        tmp = out / "potentials" / f"{name}.tmp.yace"
        conf = bbasis(name)
        _ctilde(conf).save_yaml(str(tmp))
        elements = RECIPES[name][0]["elements"]
        text = _fitsnap_style(tmp.read_text(), E0.get(name, {}), elements)
        (out / "potentials" / target).write_text(text)
        tmp.unlink()
    return out


def _key() -> str:
    """Changes with this module and python-ace's version: a new key makes a new folder."""
    from importlib.metadata import version

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(version("python-ace").encode())
    return digest.hexdigest()[:16]


def generated_root() -> Path:
    """Where the stand-ins are (or will be): a folder per key under the system's temporary folder."""
    default = Path(tempfile.gettempdir()) / f"acepy-test-data-{os.getuid()}"
    base = Path(os.environ.get("ACEPY_TEST_DATA_CACHE") or default)
    return base / f"generated-{_key()}"


def ensure_generated() -> Path:
    """The stand-ins' folder, written first if it is not there (atomically: concurrent sessions are safe)."""
    root = generated_root()
    if (root / "COMPLETE").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=root.parent))
    try:
        generate(tmp)
        (tmp / "COMPLETE").write_text("written by tests/generated_data.py\n")
        try:
            tmp.rename(root)
        except OSError:  # another session finished first
            if not (root / "COMPLETE").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1] if len(sys.argv) > 1 else "generated")))
