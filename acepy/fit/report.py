"""Error tables and parity plots of a fit.

Units (the rows' report units, :mod:`acepy.fit.assemble`): energy eV/atom, forces eV/A per
component, virial eV/atom per component (DeePMD's ``v_peratom``), Hessian eV/A^2 per entry.
"""

from __future__ import annotations

import numpy as np

from .weights import OBSERVABLES

__all__ = ["UNITS", "error_table", "format_errors", "parity_plot"]

UNITS = {"energy": "eV/atom", "forces": "eV/A", "virial": "eV/atom", "hessian": "eV/A^2"}


def error_table(design, predictions: np.ndarray) -> dict:
    """``{config_type or "all": {observable: {"rmse", "mae", "n"}}}`` from a design and its predictions."""
    diff = predictions - design.label
    cfg = np.array(design.config_types, dtype=object)[design.frame] if len(design.frame) else np.array([], dtype=object)
    out: dict = {}
    names = ["all"] + sorted(set(design.config_types))
    for name in names:
        sel_cfg = np.ones(len(diff), bool) if name == "all" else (cfg == name)
        row = {}
        for k, obs in enumerate(OBSERVABLES):
            sel = sel_cfg & (design.kind == k)
            if sel.any():
                d = diff[sel]
                row[obs] = {"rmse": float(np.sqrt(np.mean(d * d))), "mae": float(np.mean(np.abs(d))),
                            "n": int(sel.sum())}
        if row:
            out[name] = row
    return out


def format_errors(errors: dict, title: str = "") -> str:
    """A plain-text table: one line per config type, RMSE (MAE) per observable."""
    present = [o for o in OBSERVABLES if any(o in row for row in errors.values())]
    head = f"{'config_type':<18}" + "".join(f"{o + ' [' + UNITS[o] + ']':>30}" for o in present)
    lines = ([title] if title else []) + [head, f"{'':<18}" + "".join(f"{'RMSE (MAE)':>30}" for _ in present)]
    for name, row in errors.items():
        cells = []
        for o in present:
            cells.append(f"{row[o]['rmse']:.3e} ({row[o]['mae']:.3e})" if o in row else "-")
        lines.append(f"{name:<18}" + "".join(f"{c:>30}" for c in cells))
    return "\n".join(lines)


def parity_plot(sets: dict, path, title: str = "") -> str:
    """A PNG of predicted against reference values, one panel per observable present.

    ``sets``: ``{"train": (design, predictions), "validation": (design, predictions) or None}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [k for k, o in enumerate(OBSERVABLES)
               if any(s is not None and np.any(s[0].kind == k) for s in sets.values())]
    if not present:
        raise ValueError("parity_plot: no labels to plot")
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 4.2), squeeze=False)
    colors = {"train": "tab:blue", "validation": "tab:orange"}
    for ax, k in zip(axes[0], present):
        obs = OBSERVABLES[k]
        lo, hi = np.inf, -np.inf
        for name, s in sets.items():
            if s is None:
                continue
            design, pred = s
            sel = design.kind == k
            if not sel.any():
                continue
            x, y = design.label[sel], pred[sel]
            rmse = float(np.sqrt(np.mean((y - x) ** 2)))
            ax.scatter(x, y, s=4, alpha=0.5, color=colors.get(name), label=f"{name}: RMSE {rmse:.2e}", rasterized=True)
            lo, hi = min(lo, x.min(), y.min()), max(hi, x.max(), y.max())
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        ax.set_xlabel(f"reference {obs} [{UNITS[obs]}]")
        ax.set_ylabel(f"predicted {obs} [{UNITS[obs]}]")
        ax.legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
