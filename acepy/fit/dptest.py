"""``dp test`` for acepy potentials: DeePMD-kit's detail files and error summary.

Files (DeePMD-kit ``deepmd/entrypoints/test.py``; numpy ``savetxt``, ``%.18e``, one header line per
system ``# <system>: <columns>``, systems appended one after another):

- ``PREFIX.e.out``: ``data_e pred_e``, one line per frame (eV);
- ``PREFIX.e_peratom.out``: the same divided by the frame's number of atoms;
- ``PREFIX.f.out``: ``data_fx data_fy data_fz pred_fx pred_fy pred_fz``, one line per atom;
- ``PREFIX.v.out``: ``data_vxx data_vxy ... data_vzz pred_vxx ... pred_vzz``, one line per frame
  (virial = -stress * volume, eV; periodic systems with virial labels only);
- ``PREFIX.v_peratom.out``: the same divided by the number of atoms;
- ``PREFIX.h.out`` (frames with Hessian labels): ``data_h pred_h``, one line per Hessian entry, each
  frame's (3N, 3N) matrix flattened row-major, header ``data_h pred_h (3Na*3Na matrix in row-major
  order)`` (DeePMD-kit docs, "Fit energy Hessian").

Errors as DeePMD prints them: MAE and RMSE of energy (eV, and /Natoms), forces (eV/A, per
component), virial (eV, and /Natoms), Hessian (eV/A^2, per entry).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from acepy.io.deepmd import find_deepmd_systems, read_deepmd
from acepy.io.frames import frame_labels

__all__ = ["dp_test", "format_dp_test", "load_test_systems"]

_V_COLUMNS = " ".join(f"{p}_v{a}{b}" for p in ("data", "pred") for a in "xyz" for b in "xyz")
HEADERS = {
    "e": "data_e pred_e",
    "e_peratom": "data_e pred_e",
    "f": "data_fx data_fy data_fz pred_fx pred_fy pred_fz",
    "v": _V_COLUMNS,
    "v_peratom": _V_COLUMNS,
    "h": "data_h pred_h (3Na*3Na matrix in row-major order)",
}


def load_test_systems(system, type_map=None) -> list[tuple[str, list]]:
    """``[(name, frames)]``: each DeePMD system at or below ``system``, an extxyz file, or a list of frames."""
    if isinstance(system, (list, tuple)):
        return [("frames", list(system))]
    path = Path(system)
    if path.is_file():
        from acepy.io.extxyz import read_extxyz

        return [(str(path), read_extxyz(path))]
    return [(str(s), read_deepmd(s, type_map=type_map)) for s in find_deepmd_systems(path)]


def _stats(diff: list[np.ndarray]) -> tuple[float, float] | None:
    if not diff:
        return None
    d = np.concatenate([np.ravel(x) for x in diff])
    return float(np.mean(np.abs(d))), float(np.sqrt(np.mean(d * d)))


def _write(path: Path, blocks: list[tuple[str, np.ndarray]]) -> None:
    """All systems' blocks into ``path`` at once (temporary file, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fp:
            for header, data in blocks:
                np.savetxt(fp, data, header=header)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dp_test(model, system, prefix=None, type_map=None, hessian: bool | None = None, numb_test: int = 0) -> dict:
    """Test ``model`` (a stack, a potential file or a bundled name) on ``system`` (a DeePMD system
    or a folder of them, an extxyz file, or a list of labelled frames), as ``dp test -m -s -d``.

    Writes ``PREFIX.e.out`` ... ``PREFIX.h.out`` (see the module docstring) when ``prefix`` is
    given. ``hessian``: compare Hessians (None: wherever the frames carry them). ``numb_test``:
    frames per system (0: all). Returns ``{"systems": [...], "n_frames", "mae_e", "rmse_e",
    "mae_ea", "rmse_ea", "mae_f", "rmse_f", "mae_v", "rmse_v", "mae_va", "rmse_va", "mae_h",
    "rmse_h", "files": [...]}`` (absent observables omitted).
    """
    if isinstance(model, (str, os.PathLike)):
        from acepy.loading import load

        model = load(model)
    systems = load_test_systems(system, type_map)
    blocks = {k: [] for k in HEADERS}
    diffs = {k: [] for k in ("e", "ea", "f", "v", "va", "h")}
    n_frames = 0
    for name, frames in systems:
        if numb_test:
            frames = frames[:numb_test]
        if not frames:
            continue
        labels = [frame_labels(a, where=f"{name}, frame {k}") for k, a in enumerate(frames)]
        out = model.evaluate(frames)
        energy = out["energy"].detach().cpu().numpy().astype(np.float64)
        forces = out["forces"].detach().cpu().numpy().astype(np.float64)
        virials = out["virials"].detach().cpu().numpy().astype(np.float64)
        sysidx = out["system_idx"].cpu().numpy()
        natoms = np.array([len(a) for a in frames], dtype=np.float64)
        n_frames += len(frames)
        have_e = [k for k, lab in enumerate(labels) if lab["energy"] is not None]
        if have_e:
            pe = np.array([[labels[k]["energy"], energy[k]] for k in have_e])
            blocks["e"].append((f"{name}: {HEADERS['e']}", pe))
            blocks["e_peratom"].append((f"{name}: {HEADERS['e_peratom']}", pe / natoms[have_e, None]))
            diffs["e"].append(pe[:, 1] - pe[:, 0])
            diffs["ea"].append((pe[:, 1] - pe[:, 0]) / natoms[have_e])
        have_f = [k for k, lab in enumerate(labels) if lab["forces"] is not None]
        if have_f:
            pf = np.concatenate([np.hstack([labels[k]["forces"], forces[sysidx == k]]) for k in have_f])
            blocks["f"].append((f"{name}: {HEADERS['f']}", pf))
            diffs["f"].append(pf[:, 3:] - pf[:, :3])
        have_v = [k for k, lab in enumerate(labels) if lab["virial"] is not None]
        if have_v:
            pv = np.array([np.concatenate([labels[k]["virial"].ravel(), virials[k].ravel()]) for k in have_v])
            blocks["v"].append((f"{name}: {HEADERS['v']}", pv))
            blocks["v_peratom"].append((f"{name}: {HEADERS['v_peratom']}", pv / natoms[have_v, None]))
            diffs["v"].append(pv[:, 9:] - pv[:, :9])
            diffs["va"].append((pv[:, 9:] - pv[:, :9]) / natoms[have_v, None])
        have_h = [k for k, lab in enumerate(labels) if lab["hessian"] is not None] if hessian is not False else []
        if hessian and not have_h:
            raise ValueError(f"{name}: hessian=True, but no frame carries a Hessian label")
        if have_h:
            hs = model.hessian([frames[k] for k in have_h])
            ph = []
            for k, h in zip(have_h, hs):
                n3 = 3 * len(frames[k])
                pred = h.detach().cpu().numpy().astype(np.float64).reshape(n3, n3)
                ph.append(np.stack([labels[k]["hessian"].ravel(), pred.ravel()], axis=1))
            ph = np.concatenate(ph)
            blocks["h"].append((f"{name}: {HEADERS['h']}", ph))
            diffs["h"].append(ph[:, 1] - ph[:, 0])
    result = {"systems": [name for name, _ in systems], "n_frames": n_frames}
    for key, diff in diffs.items():
        s = _stats(diff)
        if s is not None:
            result[f"mae_{key}"], result[f"rmse_{key}"] = s
    files = []
    if prefix is not None:
        prefix = Path(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        for key, bl in blocks.items():
            if bl:
                path = prefix.parent / f"{prefix.name}.{key}.out"
                _write(path, bl)
                files.append(str(path))
    result["files"] = files
    return result


def format_dp_test(result: dict) -> str:
    """The summary as ``dp test`` logs it."""
    lines = [f"# number of systems : {len(result['systems'])}", f"# number of test data : {result['n_frames']:d}"]
    rows = [("e", "Energy MAE         ", "eV"), ("e", "Energy RMSE        ", "eV"),
            ("ea", "Energy MAE/Natoms  ", "eV"), ("ea", "Energy RMSE/Natoms ", "eV"),
            ("f", "Force  MAE         ", "eV/A"), ("f", "Force  RMSE        ", "eV/A"),
            ("v", "Virial MAE         ", "eV"), ("v", "Virial RMSE        ", "eV"),
            ("va", "Virial MAE/Natoms  ", "eV"), ("va", "Virial RMSE/Natoms ", "eV"),
            ("h", "Hessian MAE        ", "eV/A^2"), ("h", "Hessian RMSE       ", "eV/A^2")]
    for key, text, unit in rows:
        stat = ("mae_" if "MAE" in text else "rmse_") + key
        if stat in result:
            lines.append(f"{text}: {result[stat]:e} {unit}")
    return "\n".join(lines)
