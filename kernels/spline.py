"""Vector-valued cubic Hermite spline tables, one table per pair type (ACE_SPEC.md 2.6).

The grid is PACE's: for a table with cutoff ``rcut`` and bin width ``delta``,
``nlut = int(rcut/delta)`` (C truncation, so 8.7/0.001 gives 8699), ``rscale = nlut/rcut`` and the
nodes are ``r_n = n/rscale`` for ``n = 1..nlut``. Segment ``n`` is the cubic Hermite interpolant on
``[r_n, r_{n+1}]`` built from node values ``F_n`` and slopes ``D_n = f'(r_n)/rscale``, with a zero
value and slope at the virtual node ``nlut+1``. Evaluation at ``x = r*rscale``, ``n = floor(x)``:
``n <= 0`` (below the first node) is an error, ``n >= nlut`` gives zero for every value and
derivative. ACEpotentials.jl's spline bonds (ACE_SPEC.md 2.7) are the same object with
``nlut = nbins``.

A :class:`SplineTable` stacks ``T`` tables of ``K`` functions each, padded to the longest grid:
``coeffs (T, S, 4, K)`` holds ``(c0, c1, c2, c3)`` of segment ``n`` of table ``t`` at
``coeffs[t, n, :, k]`` (row 0 is unused), ``rscale (T,)`` and ``nlut (T,)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .backend import prepare


class SplineRangeError(ValueError):
    """A distance lies below the first node of its spline table (PACE stops there too).

    ``edge`` is the index of the first offending edge, so that callers can name the atoms.
    """

    def __init__(self, edge: int, message: str):
        super().__init__(message)
        self.edge = edge


@dataclass(frozen=True)
class SplineGrid:
    """PACE's uniform spline grid for one table: ``nlut`` nodes ``n/rscale``, ``n = 1..nlut``."""

    rcut: float
    nlut: int

    @classmethod
    def from_spacing(cls, rcut: float, delta: float) -> "SplineGrid":
        """``nlut = int(rcut/delta)``, truncated exactly as PACE's C++ does."""
        if not (rcut > 0 and delta > 0 and math.isfinite(rcut) and math.isfinite(delta)):
            raise ValueError(f"spline grid needs positive finite rcut and delta, got {rcut}, {delta}")
        nlut = int(rcut / delta)
        if nlut < 2:
            raise ValueError(f"spline grid with rcut={rcut} and delta={delta} has fewer than 2 nodes")
        return cls(float(rcut), nlut)

    @property
    def rscale(self) -> float:
        return self.nlut / self.rcut

    def nodes(self) -> np.ndarray:
        """The node distances ``r_n = (1/rscale)*n``, ``n = 1..nlut`` (PACE's rounding)."""
        return (1.0 / self.rscale) * np.arange(1, self.nlut + 1, dtype=np.float64)


@dataclass(frozen=True)
class SplineTable:
    coeffs: torch.Tensor  # (T, S, 4, K)
    rscale: torch.Tensor  # (T,) float64
    nlut: torch.Tensor  # (T,) int64

    @property
    def n_tables(self) -> int:
        return self.coeffs.shape[0]

    @property
    def n_functions(self) -> int:
        return self.coeffs.shape[3]

    def to(self, device=None, dtype=None) -> "SplineTable":
        """Move the table; the coefficients take ``dtype``, rscale stays float64."""
        return SplineTable(
            self.coeffs.to(device=device, dtype=dtype),
            self.rscale.to(device=device),
            self.nlut.to(device=device),
        )


def hermite_segments(values: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """Segment coefficients ``(nlut+1, 4, K)`` from node values and slopes ``(nlut, K)``.

    ``slopes`` are already scaled to the unit segment (``f'(r_n)/rscale``). Row ``n`` holds
    segment ``n`` for ``n = 1..nlut``; the node after the last has value and slope zero, as in
    PACE's ``setupSplines``.
    """
    nlut, k = values.shape
    f = np.zeros((nlut + 2, k))
    d = np.zeros((nlut + 2, k))
    f[1 : nlut + 1] = values
    d[1 : nlut + 1] = slopes
    df = f[2:] - f[1:-1]
    out = np.zeros((nlut + 1, 4, k))
    out[1:, 0] = f[1:-1]
    out[1:, 1] = d[1:-1]
    out[1:, 2] = 3.0 * df - d[2:] - 2.0 * d[1:-1]
    out[1:, 3] = -2.0 * df + d[2:] + d[1:-1]
    return out


def build_spline_table(
    grids: Sequence[SplineGrid],
    values: Sequence[np.ndarray],
    derivatives: Sequence[np.ndarray],
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> SplineTable:
    """Stack one table per pair type from node values and d/dr at ``grid.nodes()``.

    ``values[t]`` and ``derivatives[t]`` have shape ``(grids[t].nlut, K)`` (or ``(nlut,)`` for
    ``K = 1``), in float64. The coefficients are built in float64 and then cast to ``dtype``.
    """
    if not (len(grids) == len(values) == len(derivatives)) or len(grids) == 0:
        raise ValueError("build_spline_table needs one grid, values and derivatives per table")
    vals, ders = [], []
    k = None
    for t, (grid, v, d) in enumerate(zip(grids, values, derivatives)):
        v = np.asarray(v, dtype=np.float64)
        d = np.asarray(d, dtype=np.float64)
        v = v[:, None] if v.ndim == 1 else v
        d = d[:, None] if d.ndim == 1 else d
        if v.shape != d.shape or v.ndim != 2 or v.shape[0] != grid.nlut:
            raise ValueError(
                f"table {t}: values {v.shape} and derivatives {d.shape} must both be (nlut={grid.nlut}, K)"
            )
        if k is None:
            k = v.shape[1]
        elif v.shape[1] != k:
            raise ValueError(f"table {t} has {v.shape[1]} functions, table 0 has {k}")
        if not (np.isfinite(v).all() and np.isfinite(d).all()):
            raise ValueError(f"table {t}: node values or derivatives are not finite")
        vals.append(v)
        ders.append(d / grid.rscale)
    smax = max(g.nlut for g in grids) + 1
    coeffs = np.zeros((len(grids), smax, 4, k))
    for t, (v, d) in enumerate(zip(vals, ders)):
        coeffs[t, : v.shape[0] + 1] = hermite_segments(v, d)
    return SplineTable(
        torch.as_tensor(coeffs, dtype=dtype, device=device),
        torch.tensor([g.rscale for g in grids], dtype=torch.float64, device=device),
        torch.tensor([g.nlut for g in grids], dtype=torch.int64, device=device),
    )


def spline_range_flag(table: SplineTable, r: torch.Tensor, table_index: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor, true when some distance is below the first node of its table or not
    finite: the test of :func:`check_spline_range` without the host read (the caller reads it
    once with its other checks, then calls :func:`check_spline_range` for the message).
    ``table_index`` must lie in ``[0, T)``."""
    x = r.detach().double() * table.rscale[table_index]
    return ~((x >= 1.0) & torch.isfinite(x)).all()


def check_spline_range(table: SplineTable, r: torch.Tensor, table_index: torch.Tensor) -> None:
    """The value checks of :func:`spline_eval` (they read values: a host sync on a GPU): every
    table index lies in ``[0, T)`` (``IndexError``) and every distance is finite and at or above
    the first node of its table (:class:`SplineRangeError` naming the first offending edge).
    ``table_index`` must be int64 (``spline_eval`` converts it)."""
    bad_index = (table_index < 0) | (table_index >= table.n_tables)
    if bool(bad_index.any()):
        i = int(torch.nonzero(bad_index)[0])
        raise IndexError(f"spline_eval: edge {i}: table index {int(table_index[i])} outside [0, {table.n_tables})")
    x = r.detach().double() * table.rscale[table_index]
    bad = ~((x >= 1.0) & torch.isfinite(x))
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        t = int(table_index[i])
        first = 1.0 / float(table.rscale[t])
        raise SplineRangeError(
            i,
            f"edge {i}: distance {float(r[i].detach())!r} is below the first node {first:.6g} of spline "
            f"table {t} or not finite; {int(bad.sum())} edge(s) affected"
        )


def spline_eval(
    table: SplineTable,
    r: torch.Tensor,
    table_index: torch.Tensor,
    order: int = 1,
    backend: str | None = None,
    check: bool = True,
):
    """Evaluate table ``table_index[e]`` at distance ``r[e]`` for every edge ``e``.

    Returns ``(f, df, d2f)``, each ``(E, K)`` in the dtype of ``r``: the values and their first and
    second derivatives with respect to ``r`` (``None`` above ``order``). ``r`` and ``table_index``
    are ``(E,)`` (scalars count as one edge). With ``check`` (default) a table index out of range
    raises ``IndexError`` and a distance below the first node of its table, or not finite, raises
    :class:`SplineRangeError` naming the edge (:func:`check_spline_range`); ``check=False`` skips
    both (no host sync; the caller vouches for them).
    """
    if order not in (0, 1, 2):
        raise ValueError(f"spline_eval: order must be 0, 1 or 2, got {order}")
    if not isinstance(table, SplineTable):
        raise TypeError(f"spline_eval: table must be a SplineTable, got {type(table).__name__}")
    # the coefficients take r's dtype; rscale stays float64 (the segment comes from r * rscale)
    call = prepare("spline_eval", "spline", backend, floats={"r": r, "coeffs": table.coeffs},
                   indices={"table_index": table_index}, fixed={"rscale": table.rscale, "nlut": table.nlut},
                   one_d=("r", "table_index"))
    r, table_index = call.r, call.table_index
    if r.ndim != 1 or table_index.shape != r.shape:
        raise ValueError(f"spline_eval: r and table_index must both be (E,), got {tuple(r.shape)} and "
                         f"{tuple(table_index.shape)}")
    e, k = r.shape[0], table.n_functions
    if e == 0:
        empty = call.zeros((0, k))
        return empty, (empty.clone() if order >= 1 else None), (empty.clone() if order >= 2 else None)
    if check:
        check_spline_range(table, r, table_index)
    return call.impl.spline_eval(call.coeffs, call.rscale, call.nlut, r, table_index, order)
