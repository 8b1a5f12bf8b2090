"""``acepy fit CONFIG`` and ``acepy test``: a known linear potential is recovered from DeePMD data
written to disk, the outputs (.yace, parity PNG, JSON report) are written, and ``acepy test`` on
the fitted file reports errors at rounding level; a config with an unknown key fails clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk

import acepy
from acepy.basis import BondSpec, generate_basis
from acepy.basis.generator import default_embedding
from acepy.cli import main
from acepy.fit import LinearBasis
from acepy.io import make_frame, write_deepmd

BASIS = {"nradmax_by_orders": [4, 2], "lmax_by_orders": [0, 2],
         "bond": {"radbasename": "ChebExpCos", "radparameters": [4.0], "rcut": 4.5, "prehc": 5.0, "lambdahc": 3.0}}


def _data(tmp_path):
    b = BASIS["bond"]
    gb = generate_basis(["Cu"], BASIS["nradmax_by_orders"], BASIS["lmax_by_orders"], bonds=BondSpec(**b),
                        embeddings=default_embedding(1))
    lb = LinearBasis.from_generated(gb, E0=[-0.5])
    c = np.random.default_rng(4).standard_normal(lb.ncoefficients) * np.exp(-0.5 * lb.degrees)
    model = lb.model(c)
    frames = []
    rng = np.random.default_rng(0)
    for k in range(8):
        a = bulk("Cu", "fcc", a=rng.uniform(3.5, 3.7), cubic=True).repeat((1, 1, 2))
        a.rattle(0.1, seed=k)
        out = model.evaluate(a)
        frames.append(make_frame(a.get_chemical_symbols(), a.positions, a.cell[:], True,
                                 energy=float(out["energy"][0]), forces=out["forces"].numpy(),
                                 virial=out["virials"][0].numpy()))
    write_deepmd(frames[:6], tmp_path / "train")
    write_deepmd(frames[6:], tmp_path / "val")
    return model, frames


def test_fit_and_test_commands(tmp_path, capsys):
    model, frames = _data(tmp_path)
    cfg = {"elements": ["Cu"], "E0": {"Cu": -0.5}, "basis": BASIS,
           "data": {"train": ["train"], "validation": ["val"]}, "weights": {"energy": 10.0, "forces": 1.0},
           "solver": "lstsq", "output": {"yace": "out/fit.yace", "plot": "out/parity.png", "report": "out/fit.json"}}
    (tmp_path / "out").mkdir()
    (tmp_path / "fit.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    assert main(["fit", str(tmp_path / "fit.yaml"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "train: RMSE (MAE)" in text and "validation: RMSE (MAE)" in text and "wrote " in text
    assert (tmp_path / "out" / "parity.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert report["errors"]["validation"]["all"]["forces"]["rmse"] < 1e-8
    fitted = acepy.load(tmp_path / "out" / "fit.yace")
    held_out = bulk("Cu", "fcc", a=3.58, cubic=True).repeat((2, 1, 1))
    held_out.rattle(0.08, seed=50)
    a, b = fitted.evaluate(held_out), model.evaluate(held_out)
    assert float((a["forces"] - b["forces"]).abs().max() / b["forces"].abs().max()) < 1e-8
    assert abs(float(a["energy"][0] - b["energy"][0])) / abs(float(b["energy"][0])) < 1e-8

    assert main(["test", "-m", str(tmp_path / "out" / "fit.yace"), "-s", str(tmp_path / "val"),
                 "-d", str(tmp_path / "dp" / "res")]) == 0
    text = capsys.readouterr().out
    assert "# number of test data : 2" in text and "Force  RMSE        : " in text
    rmse_f = float(text.split("Force  RMSE        : ")[1].split()[0])
    assert rmse_f < 1e-8
    assert sorted(p.name for p in (tmp_path / "dp").iterdir()) == [
        "res.e.out", "res.e_peratom.out", "res.f.out", "res.v.out", "res.v_peratom.out"]


def test_fit_config_errors(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("basis: {file: x.yaml}\ndata: {train: [d]}\nweigths: {energy: 1}\n")
    assert main(["fit", str(tmp_path / "bad.yaml")]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml: the top level: unknown key(s) ['weigths']" in err
    with pytest.raises(SystemExit):
        main(["test", "-m", "Cu-EMT-fit"])  # -s is required: argparse exits with status 2
