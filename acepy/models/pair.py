"""The tabulated pair potential: LAMMPS ``pair_style table spline N`` on a pair table file.

ACEpotentials.jl / ACE1pack export the pair part of a model as ``<stem>_pairpot.table``, to be
used in LAMMPS as (ACE_SPEC.md section 3)::

    pair_style hybrid/overlay pace table spline <N>
    pair_coeff 1 1 table <stem>_pairpot.table El1_El1        (one line per i <= j pair)

This module reproduces what LAMMPS computes there, following ``src/pair_table.cpp`` of LAMMPS
(``PairTable::coeff``, ``spline_table``, ``compute_table``, ``compute``/``eval`` and the
Numerical Recipes ``spline``/``splint`` helpers; read at lammps/lammps and akohlmey/lammps, the
current 2023+ version). For every section (one per element pair):

1. *File splines* (``spline_table``): clamped cubic splines through the file's points ``(r, e)``,
   with end slopes ``-f[0]`` and ``-f[-1]``, and ``(r, f)``, with end slopes from ``FPRIME`` if
   the section has it, else the slopes of the first and last file intervals.
2. *Internal table* (``compute_table``, style ``spline``): ``N`` points (the ``pair_style``
   argument, the same for every section) evenly spaced **in r^2** from ``inner^2`` to ``cut^2``,
   where ``inner`` is the first file distance (or ``rlo`` with ``R``/``RSQ``) and ``cut`` the
   ``pair_coeff`` cutoff, by default the last file distance (or ``rhi``). The file splines give
   ``e`` and ``f`` there; ``e`` is splined in r^2 with end slopes ``-f/(2r)``, and ``f/r`` is
   splined in r^2 with end slopes from ``FPRIME`` where it applies, else from a secant over a
   tenth of a bin.
3. *Evaluation* (``compute``): a pair interacts if ``r^2 < cut^2``; below ``inner^2`` LAMMPS stops
   ("Pair distance < table inner cutoff"). With ``k = int((r^2 - inner^2)/delta)``,
   ``b = (r^2 - rsq[k])/delta`` and ``a = 1 - b``, the energy is the NR cubic
   ``a e[k] + b e[k+1] + ((a^3-a) e2[k] + (b^3-b) e2[k+1]) delta^2/6`` and the force factor
   ``fpair`` (force on i = ``(x_i - x_j) fpair``) the same cubic through ``f/r`` and ``f2``.

So LAMMPS's force is **not** the derivative of its energy: it comes from the separately splined
force column. We follow LAMMPS: the energy is the energy spline, and the gradient of the energy
(per edge, and through autograd on the exact path) is the force spline, ``dV/d(r^2) = -fpair/2``.
Finite differences of the energy agree with the forces only as well as the table's e and f
columns agree with each other. The second derivative (Hessians) is the derivative of the force
spline.

Per-atom energies use the full neighbour list: ``E_i = 1/2 sum_j V(r_ij)`` (LAMMPS tallies half of
each pair energy to each atom). One deliberate difference: LAMMPS also stops when rounding puts
``r^2`` just below ``cut^2`` into the nonexistent bin ``N - 1`` ("Pair distance > table outer
cutoff"); we evaluate the last bin there instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from acepy.errors import PotentialFileError, TooCloseError
from acepy.spec import PairTable, PairTableSection

from .component import BatchGraph, Component

__all__ = ["Pair", "LammpsSplineTable", "lammps_spline_table", "nr_spline", "nr_splint"]

STYLES = ("spline",)


# ---- LAMMPS's table construction (numpy, float64, at load time) -------------------------------
def nr_spline(x: np.ndarray, y: np.ndarray, yp1: float, ypn: float) -> np.ndarray:
    """Second derivatives of the clamped cubic spline through (x, y) with end slopes yp1, ypn.

    The Numerical Recipes tridiagonal sweep as in LAMMPS ``pair_table.cpp::spline`` (a slope above
    0.99e30 means a natural end), so the table matches LAMMPS's to the last bits.
    """
    n = len(x)
    x = [float(v) for v in x]
    y = [float(v) for v in y]
    y2 = [0.0] * n
    u = [0.0] * n
    if yp1 > 0.99e30:
        y2[0] = u[0] = 0.0
    else:
        y2[0] = -0.5
        u[0] = (3.0 / (x[1] - x[0])) * ((y[1] - y[0]) / (x[1] - x[0]) - yp1)
    for i in range(1, n - 1):
        sig = (x[i] - x[i - 1]) / (x[i + 1] - x[i - 1])
        p = sig * y2[i - 1] + 2.0
        y2[i] = (sig - 1.0) / p
        ui = (y[i + 1] - y[i]) / (x[i + 1] - x[i]) - (y[i] - y[i - 1]) / (x[i] - x[i - 1])
        u[i] = (6.0 * ui / (x[i + 1] - x[i - 1]) - sig * u[i - 1]) / p
    if ypn > 0.99e30:
        qn = un = 0.0
    else:
        qn = 0.5
        un = (3.0 / (x[n - 1] - x[n - 2])) * (ypn - (y[n - 1] - y[n - 2]) / (x[n - 1] - x[n - 2]))
    y2[n - 1] = (un - qn * u[n - 2]) / (qn * y2[n - 2] + 1.0)
    for k in range(n - 2, -1, -1):
        y2[k] = y2[k] * y2[k + 1] + u[k]
    return np.array(y2)


def nr_splint(xa: np.ndarray, ya: np.ndarray, y2a: np.ndarray, x) -> np.ndarray:
    """LAMMPS ``splint`` at the points ``x`` (vectorised; the bisection is a searchsorted).

    The bisection keeps ``xa[klo] <= x < xa[khi]`` (``klo = 0`` below the table, ``klo = n - 2``
    at or above its end), which is ``searchsorted(side='right') - 1`` clipped to 0..n-2.
    """
    x = np.asarray(x, dtype=np.float64)
    klo = np.clip(np.searchsorted(xa, x, side="right") - 1, 0, len(xa) - 2)
    khi = klo + 1
    h = xa[khi] - xa[klo]
    a = (xa[khi] - x) / h
    b = (x - xa[klo]) / h
    return a * ya[klo] + b * ya[khi] + ((a * a * a - a) * y2a[klo] + (b * b * b - b) * y2a[khi]) * (h * h) / 6.0


@dataclass
class LammpsSplineTable:
    """LAMMPS's internal ``spline`` table of one section (``Table`` after ``compute_table``)."""

    keyword: str
    inner: float
    cut: float
    innersq: float
    delta: float
    invdelta: float
    deltasq6: float
    rsq: np.ndarray  # (N,) = innersq + i * delta
    e: np.ndarray  # (N,) energy at rsq
    e2: np.ndarray  # (N,) its spline second derivatives (in r^2)
    f: np.ndarray  # (N,) force / r at rsq
    f2: np.ndarray  # (N,)

    def evaluate(self, r) -> tuple[np.ndarray, np.ndarray]:
        """(energy V(r), fpair) at distances r in [inner, cut), as LAMMPS ``compute`` does."""
        rsq = np.asarray(r, dtype=np.float64) ** 2
        k = np.minimum(((rsq - self.innersq) * self.invdelta).astype(np.int64), len(self.rsq) - 2)
        b = (rsq - self.rsq[k]) * self.invdelta
        a = 1.0 - b
        e = a * self.e[k] + b * self.e[k + 1] + ((a * a * a - a) * self.e2[k] + (b * b * b - b) * self.e2[k + 1]) * self.deltasq6
        f = a * self.f[k] + b * self.f[k + 1] + ((a * a * a - a) * self.f2[k] + (b * b * b - b) * self.f2[k + 1]) * self.deltasq6
        return e, f


def lammps_spline_table(section: PairTableSection, tablength: int, cut: float | None = None,
                        path: str = "") -> LammpsSplineTable:
    """Build LAMMPS's ``pair_style table spline <tablength>`` table for one file section.

    ``cut`` is the optional fifth ``pair_coeff`` argument; by default ``rhi`` (``R``/``RSQ``) or
    the last file distance. Follows ``PairTable::coeff``, ``spline_table`` and ``compute_table``.
    """
    where = f"section {section.keyword!r} (line {section.line})"
    tablength = int(tablength)
    if tablength < 2:
        raise ValueError(f"pair_style table: the table length N must be at least 2, got {tablength}")
    rfile = np.asarray(section.r, dtype=np.float64)  # LAMMPS's rfile: recomputed with R/RSQ
    efile = np.asarray(section.energy, dtype=np.float64)
    ffile = np.asarray(section.force, dtype=np.float64)
    rflag = "R" in section.params or "RSQ" in section.params
    rlo, rhi = section.params.get("R") or section.params.get("RSQ") or (rfile[0], rfile[-1])
    if cut is None:
        cut = rhi
    cut = float(cut)
    if not (rlo < cut <= rhi):
        raise PotentialFileError(path, where, f"pair table cutoff {cut} outside of the table ({rlo}, {rhi}]")
    if rlo <= 0.0:
        raise PotentialFileError(path, where, f"pair table lower boundary {rlo} must be > 0")
    fprime = section.params.get("FPRIME")

    # spline_table: splines through the file's points
    e2file = nr_spline(rfile, efile, -ffile[0], -ffile[-1])
    if fprime is None:
        fplo = (ffile[1] - ffile[0]) / (rfile[1] - rfile[0])
        fphi = (ffile[-1] - ffile[-2]) / (rfile[-1] - rfile[-2])
    else:
        fplo, fphi = fprime
    f2file = nr_spline(rfile, ffile, fplo, fphi)

    # compute_table, tabstyle SPLINE
    tlm1 = tablength - 1
    inner = float(rlo) if rflag else float(rfile[0])
    innersq = inner * inner
    delta = (cut * cut - innersq) / tlm1
    invdelta = 1.0 / delta
    deltasq6 = delta * delta / 6.0
    rsq = innersq + np.arange(tablength) * delta
    r = np.sqrt(rsq)
    e = nr_splint(rfile, efile, e2file, r)
    f = nr_splint(rfile, ffile, f2file, r)
    ep0 = -f[0] / (2.0 * np.sqrt(innersq))
    epn = -f[tlm1] / (2.0 * cut)
    e2 = nr_spline(rsq, e, ep0, epn)
    secant_factor = 0.1
    if fprime is not None:
        fp0 = (fplo / np.sqrt(innersq) - f[0] / innersq) / (2.0 * np.sqrt(innersq))
    else:
        rsq1 = innersq
        rsq2 = rsq1 + secant_factor * delta
        fp0 = (nr_splint(rfile, ffile, f2file, np.sqrt(rsq2)) / np.sqrt(rsq2) - f[0] / np.sqrt(rsq1)) / (secant_factor * delta)
    if fprime is not None and cut == rfile[-1]:
        fpn = (fphi / cut - f[tlm1] / (cut * cut)) / (2.0 * cut)
    else:
        rsq2 = cut * cut
        rsq1 = rsq2 - secant_factor * delta
        fpn = (f[tlm1] / np.sqrt(rsq2) - nr_splint(rfile, ffile, f2file, np.sqrt(rsq1)) / np.sqrt(rsq1)) / (secant_factor * delta)
    f = f / np.sqrt(rsq)
    f2 = nr_spline(rsq, f, fp0, fpn)
    return LammpsSplineTable(keyword=section.keyword, inner=inner, cut=cut, innersq=innersq, delta=delta,
                             invdelta=invdelta, deltasq6=deltasq6, rsq=rsq, e=e, e2=e2, f=f, f2=f2)


# ---- evaluation (torch) -----------------------------------------------------------------------
class _Tables:
    """The tables of all sections stacked into (S, N) tensors, plus per-section scalars."""

    def __init__(self, tables: Sequence[LammpsSplineTable], dtype, device):
        def t(x):
            return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)

        self.n = len(tables[0].rsq)
        self.rsq = t([tb.rsq for tb in tables]).reshape(-1)
        self.e = t([tb.e for tb in tables]).reshape(-1)
        self.e2 = t([tb.e2 for tb in tables]).reshape(-1)
        self.f = t([tb.f for tb in tables]).reshape(-1)
        self.f2 = t([tb.f2 for tb in tables]).reshape(-1)
        self.innersq = t([tb.innersq for tb in tables])
        self.invdelta = t([tb.invdelta for tb in tables])
        self.deltasq6 = t([tb.deltasq6 for tb in tables])
        self.cutsq = t([tb.cut * tb.cut for tb in tables])

    def bins(self, rsq: torch.Tensor, sec: torch.Tensor):
        """Flat index of the lower table point, and the spline weights a, b (differentiable)."""
        innersq, invdelta = self.innersq[sec], self.invdelta[sec]
        k = ((rsq.detach() - innersq) * invdelta).to(torch.long).clamp(0, self.n - 2)
        flat = sec * self.n + k
        b = (rsq - self.rsq[flat]) * invdelta
        a = 1.0 - b
        return flat, a, b

    def cubic(self, y, y2, flat, a, b, sec):
        return a * y[flat] + b * y[flat + 1] + ((a * a * a - a) * y2[flat] + (b * b * b - b) * y2[flat + 1]) * self.deltasq6[sec]

    def energy(self, rsq, sec):
        flat, a, b = self.bins(rsq, sec)
        return self.cubic(self.e, self.e2, flat, a, b, sec)

    def fpair(self, rsq, sec):
        flat, a, b = self.bins(rsq, sec)
        return self.cubic(self.f, self.f2, flat, a, b, sec)


class _TableEnergy(torch.autograd.Function):
    """V(r^2) from the energy spline, with dV/d(r^2) = -fpair/2 from the force spline (LAMMPS's
    force). The backward is plain torch on the saved r^2, so it is differentiable again."""

    @staticmethod
    def forward(ctx, rsq, tables, sec):
        ctx.tables, ctx.sec = tables, sec
        ctx.save_for_backward(rsq)
        return tables.energy(rsq.detach(), sec)

    @staticmethod
    def backward(ctx, grad):
        (rsq,) = ctx.saved_tensors
        return grad * (-0.5) * ctx.tables.fpair(rsq, ctx.sec), None, None


class Pair(Component):
    """LAMMPS ``pair_style table spline N`` from a pair table file, one section per element pair.

    ``elements`` is the species order of the stack (index = species). Each unordered pair gets
    its section by ``PairTable.section_for`` (``A_B`` or ``B_A``); a missing one raises at
    construction. ``tablength`` is LAMMPS's ``N`` (default: the largest section's point count);
    ``cutoff`` the optional ``pair_coeff`` cutoff, one float for every pair or a dict
    ``{("A", "B"): rc}``.
    """

    def __init__(self, table, elements: Sequence[str], tablength: int | None = None, style: str = "spline",
                 cutoff: float | dict | None = None, dtype: torch.dtype = torch.float64, device="cpu"):
        if style not in STYLES:
            raise ValueError(f"pair_style table {style!r} is not supported; supported: {STYLES}")
        if not isinstance(table, PairTable):
            raise TypeError(f"Pair takes a parsed PairTable (acepy.io.read_pair_table), got {type(table).__name__}")
        self.table = table
        self.path = table.path
        self.elements = list(elements)
        self.style = style
        self.dtype = dtype
        self.device = torch.device(device)
        if tablength is None:
            tablength = max(s.params["N"] for s in table.sections.values())
        self.tablength = int(tablength)
        nel = len(self.elements)
        # one table per unordered element pair (each pair has its own section, A_B or B_A)
        lammps_tables: list[LammpsSplineTable] = []
        index = np.zeros((nel, nel), dtype=np.int64)
        for i in range(nel):
            for j in range(i, nel):
                a, b = self.elements[i], self.elements[j]
                try:
                    section = table.section_for(a, b)
                except KeyError:
                    raise PotentialFileError(
                        self.path, None,
                        f"no table section for the element pair {a}-{b} (looked for {a}_{b} and {b}_{a}); "
                        f"sections are {list(table.sections)}") from None
                rc = cutoff.get((a, b), cutoff.get((b, a))) if isinstance(cutoff, dict) else cutoff
                index[i, j] = index[j, i] = len(lammps_tables)
                lammps_tables.append(lammps_spline_table(section, self.tablength, rc, self.path))
        self.lammps_tables = lammps_tables
        self.section_index = torch.as_tensor(index, device=self.device)
        self._tables = _Tables(lammps_tables, dtype, self.device)
        self.cutoff = max(tb.cut for tb in lammps_tables)
        self._min_cut = min(tb.cut for tb in lammps_tables)

    # E_i = 1/2 sum_j V(r_ij): each edge's term depends on that edge alone (Hessian: 3 x 3 per edge)
    edge_local = True

    def pair_cutoff(self, a: str, b: str) -> float:
        i, j = self.elements.index(a), self.elements.index(b)
        return self.lammps_tables[int(self.section_index[i, j])].cut

    # ---- evaluation -----------------------------------------------------------------------------
    def _edges(self, inputs: BatchGraph, species, centers, neighbors, vectors):
        """The edges inside their pair's cutoff (LAMMPS: r^2 < cut^2): ``keep`` (their indices, or
        None for all), ``inside`` (None, or the mask of those kept when ``keep`` is None), their
        sections and r^2; raises below the inner distance.

        The indices (a ``nonzero``: a host sync on CUDA) are taken only when the graph's cutoff is
        above the smallest table cutoff (as ACE._prepare does); otherwise every edge stays and
        ``inside`` masks the rare one that r^2's rounding puts at the cutoff. The range check is
        one flag read."""
        sec = self.section_index[species[centers], species[neighbors]]
        rsq = (vectors * vectors).sum(dim=1)
        inside = rsq.detach() < self._tables.cutsq[sec]
        keep = None
        graph_cutoff = getattr(inputs.graph, "cutoff", None)
        if graph_cutoff is None or graph_cutoff > self._min_cut:
            keep = torch.nonzero(inside).squeeze(1)
            sec, rsq, inside = sec[keep], rsq[keep], None
        low = rsq.detach() < self._tables.innersq[sec]
        if inside is not None:
            low = low & inside
        if bool(low.any()):
            e = int(torch.nonzero(low)[0])
            edge = e if keep is None else int(keep[e])
            i, j = int(centers[edge]), int(neighbors[edge])
            tb = self.lammps_tables[int(sec[e])]
            raise TooCloseError(
                f"{inputs.describe_edge(edge)} ({self.elements[int(species[i])]}-"
                f"{self.elements[int(species[j])]}) are "
                f"{float(rsq[e].detach()) ** 0.5:.6g} A apart: closer than the pair table's inner distance "
                f"{tb.inner:.6g} A (section {tb.keyword} of {self.path}; LAMMPS stops here too: "
                "'Pair distance < table inner cutoff')")
        return keep, inside, sec, rsq

    def site_energies(self, inputs: BatchGraph, backend: str | None = "torch") -> torch.Tensor:
        """E_i = 1/2 sum_j V(r_ij) (N,): plain torch, differentiable twice w.r.t. ``inputs.vectors``.

        The first derivative is LAMMPS's force spline, the second its derivative (see module doc).
        """
        species, centers = inputs.species, inputs.centers
        keep, inside, sec, rsq = self._edges(inputs, species, centers, inputs.neighbors, inputs.vectors)
        v = _TableEnergy.apply(rsq, self._tables, sec)
        if inside is not None:
            v = torch.where(inside, v, 0.0)
        energies = torch.zeros(species.shape[0], dtype=v.dtype, device=v.device)
        return energies.index_add(0, centers if keep is None else centers[keep], 0.5 * v)

    @torch.no_grad()
    def energies_and_edge_grads(self, inputs: BatchGraph, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-atom energies (N,) and per-edge gradients g_ij = dE/dr_ij = -fpair/2 r_ij (E, 3).

        Vectorised torch without autograd, O(E), on whatever device the tensors live (the
        ``backend`` choice does not change this component's arithmetic).
        """
        species, centers, vectors = inputs.species, inputs.centers, inputs.vectors.detach()
        keep, inside, sec, rsq = self._edges(inputs, species, centers, inputs.neighbors, vectors)
        flat, a, b = self._tables.bins(rsq, sec)
        v = self._tables.cubic(self._tables.e, self._tables.e2, flat, a, b, sec)
        fpair = self._tables.cubic(self._tables.f, self._tables.f2, flat, a, b, sec)
        energies = torch.zeros(species.shape[0], dtype=vectors.dtype, device=vectors.device)
        if keep is None:
            v, fpair = torch.where(inside, v, 0.0), torch.where(inside, fpair, 0.0)
            return energies.index_add(0, centers, 0.5 * v), (-0.5 * fpair)[:, None] * vectors
        energies = energies.index_add(0, centers[keep], 0.5 * v)
        grads = torch.zeros_like(vectors)
        grads[keep] = (-0.5 * fpair)[:, None] * vectors[keep]
        return energies, grads
