"""``acepy test`` / ``dp_test``: DeePMD-kit's detail files, their layout, and the error summary.

Layouts (deepmd-kit deepmd/entrypoints/test.py; the Hessian seed: "For *.h.out.*, it contains matrix
with shape of (2, n_hess) ... # frame - 0: data_h pred_h (3Na*3Na matrix in row-major order)",
n_hess = sum_i 3N_i * 3N_i). Predictions are checked against an independent evaluation (ASE
calculator of the same potential for E/F/stress, the model's Hessian by finite differences).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

import acepy
from acepy.fit.dptest import dp_test, format_dp_test
from acepy.io import make_frame, write_deepmd

POT = "AlCuNi-synthetic-r4"


def _frames(n_atoms_cells=((1, 1, 1), (1, 1, 2))):
    frames = []
    for k, rep in enumerate(n_atoms_cells):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(rep)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        n = len(atoms)
        h = np.random.default_rng(k).standard_normal((3 * n, 3 * n))
        frames.append(make_frame(atoms.get_chemical_symbols(), atoms.positions, atoms.cell[:], True,
                                 energy=atoms.get_potential_energy(), forces=atoms.get_forces(),
                                 stress=atoms.get_stress(voigt=False), hessian=h + h.T))
    return frames


def _read(path):
    lines = path.read_text().splitlines()
    headers = [(i, line) for i, line in enumerate(lines) if line.startswith("#")]
    return headers, np.loadtxt(path, ndmin=2)


def test_dp_test_files_and_layout(tmp_path):
    frames = _frames()
    write_deepmd(frames, tmp_path / "data")  # two systems (4 and 8 atoms)
    model = acepy.load(POT)
    res = dp_test(model, tmp_path / "data", prefix=tmp_path / "out" / "detail")
    assert res["n_frames"] == 2 and len(res["systems"]) == 2
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"detail.{k}.out" for k in ("e", "e_peratom", "f", "h", "v", "v_peratom")]

    ref = []
    for f in frames:
        a = f.copy()
        a.calc = acepy.ACECalculator(POT)
        ref.append((a.get_potential_energy(), a.get_forces(), -a.get_stress(voigt=False) * a.get_volume()))
    systems = res["systems"]
    order = [next(k for k, f in enumerate(frames) if len(f) == n) for n in (4, 8)]
    assert [s.rsplit("/", 1)[1] for s in systems] == ["Cu4-000", "Cu8-001"]

    headers, e = _read(tmp_path / "out" / "detail.e.out")
    assert [h for _, h in headers] == [f"# {s}: data_e pred_e" for s in systems]
    assert e.shape == (2, 2)
    for row, k in zip(e, order):
        assert row[0] == frames[k].get_potential_energy()
        assert row[1] == pytest.approx(ref[k][0], rel=1e-12)
    _, ea = _read(tmp_path / "out" / "detail.e_peratom.out")
    np.testing.assert_allclose(ea, e / np.array([[4], [8]]), rtol=1e-15)

    headers, f = _read(tmp_path / "out" / "detail.f.out")
    assert headers[0][1].endswith(": data_fx data_fy data_fz pred_fx pred_fy pred_fz")
    assert f.shape == (12, 6) and headers[1][0] == 5  # 4 lines of the first system after its header
    np.testing.assert_allclose(f[:4, 3:], ref[order[0]][1], atol=1e-12)
    np.testing.assert_array_equal(f[4:, :3], frames[order[1]].get_forces())

    headers, v = _read(tmp_path / "out" / "detail.v.out")
    cols = headers[0][1].split(": ")[1].split()
    assert cols[:3] == ["data_vxx", "data_vxy", "data_vxz"] and cols[9:12] == ["pred_vxx", "pred_vxy", "pred_vxz"]
    assert len(cols) == 18 and v.shape == (2, 18)
    np.testing.assert_allclose(v[0, 9:].reshape(3, 3), ref[order[0]][2], atol=1e-11)
    _, va = _read(tmp_path / "out" / "detail.v_peratom.out")
    np.testing.assert_allclose(va, v / np.array([[4], [8]]), rtol=1e-15)

    headers, h = _read(tmp_path / "out" / "detail.h.out")
    assert [hd.split(": ", 1)[1] for _, hd in headers] == ["data_h pred_h (3Na*3Na matrix in row-major order)"] * 2
    assert h.shape == (12 * 12 + 24 * 24, 2)  # n_hess = sum (3N)^2, 2 columns
    k = order[1]
    H = model.hessian(frames[k], method="fd", step=1e-4).numpy()  # independent route: FD of the forces
    second = h[144:]
    i, a, j, b = 5, 2, 1, 0  # row-major: line (3 i + a) * 3N + 3 j + b
    line = (3 * i + a) * 24 + 3 * j + b
    assert second[line, 1] == pytest.approx(H[i, a, j, b], abs=1e-5 * np.abs(H).max())
    assert second[line, 0] == frames[k].info["hessian"][3 * i + a, 3 * j + b]

    # the summary: the same numbers recomputed from the files
    assert res["rmse_f"] == pytest.approx(np.sqrt(np.mean((f[:, 3:] - f[:, :3]) ** 2)), rel=1e-12)
    assert res["mae_ea"] == pytest.approx(np.mean(np.abs(ea[:, 1] - ea[:, 0])), rel=1e-12)
    assert res["rmse_h"] == pytest.approx(np.sqrt(np.mean((h[:, 1] - h[:, 0]) ** 2)), rel=1e-12)
    text = format_dp_test(res)
    assert "Energy RMSE/Natoms : " in text and "Hessian MAE        : " in text


def test_dp_test_without_hessians_and_bad_data(tmp_path):
    frames = _frames(((1, 1, 1),))
    for f in frames:
        del f.info["hessian"]
    res = dp_test(POT, frames, prefix=tmp_path / "d")
    assert "rmse_h" not in res and not (tmp_path / "d.h.out").exists()
    with pytest.raises(ValueError, match="no frame carries a Hessian"):
        dp_test(POT, frames, hessian=True)
    frames[0].calc.results["energy"] = np.nan
    with pytest.raises(ValueError, match=r"frames, frame 0: the energy label is not finite"):
        dp_test(POT, frames)
