"""The fit configuration of ``acepy fit CONFIG`` (YAML, read with a safe loader).

Example (paths relative to the file's folder)::

    elements: [Cu]
    E0: {Cu: 3.51}                    # one-body energies (eV); default 0
    basis:                            # acepy.basis.generate_basis, linear embedding
      nradmax_by_orders: [12, 8, 4, 2]
      lmax_by_orders: [0, 4, 3, 1]
      max_degree: 12                  # optional: sum(n + l_weight l) <= max_degree
      l_weight: 1.5
      bond: {radbasename: ChebExpCos, radparameters: [3.0], rcut: 5.4, prehc: 50.0, lambdahc: 3.0}
    # or: basis: {file: start.yaml}   (a pacemaker B-basis .yaml or a linear .yace)
    data:
      train: [train_data/, more.xyz]  # DeePMD systems (folders) and extxyz files
      validation: [test_data/]        # optional; or validation_fraction: 0.1
      type_map: [Cu]                  # for DeePMD systems without type_map.raw
    weights: {energy: 30, forces: 1, virial: 1, hessian: 0.1}
    config_weights: {surface: 2.0}
    energy_normalization: per_atom    # or sqrt, none
    solver: lstsq                     # ridge (alpha), bayesian_ridge, ard
    prior: {kind: algebraic, p: 4, wL: 1.5}
    output: {yace: fitted.yace, plot: parity.png, report: fit.json}

Unknown keys raise ``ValueError`` naming the key and the file.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_config", "run_config"]

_TOP = {"elements", "E0", "basis", "data", "weights", "config_weights", "energy_normalization", "solver", "alpha",
        "prior", "solver_options", "seed", "output"}
_BASIS = {"file", "nradmax_by_orders", "lmax_by_orders", "max_degree", "l_weight", "bond", "nradbase"}
_BOND = {"radbasename", "radparameters", "rcut", "dcut", "prehc", "lambdahc", "rcut_in", "dcut_in", "inner_cutoff_type"}
_DATA = {"train", "validation", "validation_fraction", "type_map", "energy_key", "forces_key", "stress_key",
         "virial_key", "hessian_key", "config_type_key"}
_OUTPUT = {"yace", "plot", "report"}


def _check_keys(mapping, allowed, where: str, path) -> dict:
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: {where} must be a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ValueError(f"{path}: {where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return mapping


def load_config(path) -> dict:
    """The checked configuration (a dict) with paths made absolute."""
    import yaml

    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    _check_keys(cfg, _TOP, "the top level", path)
    for key in ("basis", "data"):
        if key not in cfg:
            raise ValueError(f"{path}: missing '{key}'")
    base = path.resolve().parent
    basis = _check_keys(cfg["basis"], _BASIS, "basis", path)
    if "file" in basis:
        basis["file"] = str(base / basis["file"])
    else:
        for key in ("nradmax_by_orders", "lmax_by_orders", "bond"):
            if key not in basis:
                raise ValueError(f"{path}: basis: missing '{key}' (or give basis: {{file: ...}})")
        if "elements" not in cfg:
            raise ValueError(f"{path}: missing 'elements' (needed to generate a basis)")
        _check_keys(basis["bond"], _BOND, "basis.bond", path)
    data = _check_keys(cfg["data"], _DATA, "data", path)
    for key in ("train", "validation"):
        if key in data:
            items = data[key] if isinstance(data[key], list) else [data[key]]
            data[key] = [str(base / p) for p in items]
    if not data.get("train"):
        raise ValueError(f"{path}: data.train: no data given")
    out = _check_keys(cfg.get("output", {}) or {}, _OUTPUT, "output", path)
    cfg["output"] = {k: str(base / v) for k, v in out.items() if v}
    cfg.setdefault("output", {})
    cfg["output"].setdefault("yace", str(base / (path.stem + ".yace")))
    return cfg


def _read_data(paths, data: dict) -> list:
    from acepy.io.deepmd import read_deepmd
    from acepy.io.extxyz import read_extxyz

    keys = {k: data[k] for k in ("energy_key", "forces_key", "stress_key", "virial_key", "hessian_key",
                                 "config_type_key") if k in data}
    frames = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            frames.extend(read_extxyz(p, **keys))
        else:
            frames.extend(read_deepmd(p, type_map=data.get("type_map")))
    return frames


def _basis(cfg: dict):
    from acepy.basis.generator import BondSpec, default_embedding, generate_basis

    from .rows import LinearBasis

    b = cfg["basis"]
    E0 = cfg.get("E0")
    if "file" in b:
        return LinearBasis.from_file(b["file"]) if E0 is None else LinearBasis.from_file(b["file"], E0=E0)
    gb = generate_basis(cfg["elements"], b["nradmax_by_orders"], b["lmax_by_orders"], bonds=BondSpec(**b["bond"]),
                        embeddings=default_embedding(1), max_degree=b.get("max_degree"),
                        l_weight=b.get("l_weight", 1.0), nradbase=b.get("nradbase"))
    return LinearBasis.from_generated(gb, E0=E0)


def run_config(cfg: dict, progress: bool = True):
    """Read the data, fit, write the outputs; returns the LinearFit."""
    import json

    from .linear import linear_fit

    data = cfg["data"]
    train = _read_data(data["train"], data)
    validation = _read_data(data["validation"], data) if data.get("validation") else None
    fit = linear_fit(_basis(cfg), train, weights=cfg.get("weights"), config_weights=cfg.get("config_weights"),
                     energy_normalization=cfg.get("energy_normalization", "per_atom"),
                     solver=cfg.get("solver", "lstsq"), alpha=float(cfg.get("alpha", 1e-8)), prior=cfg.get("prior"),
                     solver_options=cfg.get("solver_options"), validation=validation,
                     validation_fraction=float(data.get("validation_fraction", 0.0)), seed=int(cfg.get("seed", 0)),
                     progress=progress and "design rows")
    out = cfg["output"]
    fit.write_yace(out["yace"])
    if out.get("plot"):
        fit.parity_plot(out["plot"])
    if out.get("report"):
        Path(out["report"]).write_text(json.dumps(fit.summary(), indent=1, default=float) + "\n")
    return fit
