"""The product terms of every basis function, compiled for row evaluation (ACE_SPEC.md 2.10).

A term t of function f reads ``r`` columns of the m >= 0 half of the atomic base A (a factor with
m < 0 is ``(-1)^m conj(A_{l|m|})``, as in :class:`acepy.models.ace.ACE`) and adds
``coupling * Re prod_t z_t`` to B_f. The terms are grouped by (central species, rank) so that one
gather and one product serve every term of a group at once.

The derivative variables ``z`` of a site are the atomic-base entries that some term reads
(``Re A``, ``Im A`` without m = 0, which is identically zero) and the rank-1 entries of A1 that a
rank-1 function reads: the gradient of B_f in them, contracted with the edge Jacobian dz/dr_ij,
gives the per-edge rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .rows_columns import FunctionTable

__all__ = ["RowPlan"]


@dataclass
class _Part:
    mu0: int
    rank: int
    col: torch.Tensor  # (T, r) half column of each factor
    conj: torch.Tensor  # (T, r) bool
    sign: torch.Tensor  # (T, r) +-1
    sigma: torch.Tensor  # (T, r) dz/dIm A = i sigma (sigma = -1 for a conjugated factor)
    zx: torch.Tensor  # (T, r) variable of Re A_col
    zy: torch.Tensor  # (T, r) variable of Im A_col, or -1 (m = 0)
    ent_t: torch.Tensor  # (nnz,) term
    ent_f: torch.Tensor  # (nnz,) function
    ent_c: torch.Tensor  # (nnz,) coupling coefficient


class RowPlan:
    """Terms and derivative variables of a :class:`FunctionTable` for an ACE component's sizes."""

    def __init__(self, table: FunctionTable, ace):
        self.nel, self.nrad, self.nh, self.nb = ace.nelements, ace.nradmax, ace.n_half, ace.nradbase
        self.lmax = ace.lmax
        self.width = self.nel * self.nrad * self.nh
        self.nfunctions = table.nfunctions
        dev, dt = ace.device, ace.dtype
        self.device, self.dtype = dev, dt
        r1 = []  # (function, mu0, A1 column, coefficient)
        raw: dict[tuple[int, int], dict] = {}
        for g in table.groups:
            if g.rank == 1:
                col = int(g.mus[0]) * self.nb + int(g.ns[0]) - 1
                for row, f in enumerate(g.functions):
                    c = float(g.coupling[row].sum())  # one m-tuple (0,)
                    if c != 0.0:
                        r1.append((int(f), g.mu0, col, c))
                continue
            part = raw.setdefault((g.mu0, g.rank), {"cols": [], "ms": [], "t": [], "f": [], "c": []})
            for s in range(g.ms_combs.shape[0]):
                t = len(part["cols"])
                ms = [int(m) for m in g.ms_combs[s]]
                part["cols"].append([self._half_column(int(g.mus[k]), int(g.ns[k]) - 1, int(g.ls[k]), ms[k])
                                     for k in range(g.rank)])
                part["ms"].append(ms)
                for row, f in enumerate(g.functions):
                    c = float(g.coupling[row, s])
                    if c != 0.0:
                        part["t"].append(t)
                        part["f"].append(int(f))
                        part["c"].append(c)
        # derivative variables: columns read (Re always, Im where m != 0), A1 columns read by rank 1
        read_x, read_y = set(), set()
        for part in raw.values():
            for cols, ms in zip(part["cols"], part["ms"]):
                for col, m in zip(cols, ms):
                    read_x.add(col)
                    if m != 0:
                        read_y.add(col)
        read_a1 = sorted({col for _, _, col, _ in r1})
        self.x_cols = np.array(sorted(read_x), dtype=np.int64)
        self.y_cols = np.array(sorted(read_y), dtype=np.int64)
        self.a1_cols = np.array(read_a1, dtype=np.int64)
        nx, ny = len(self.x_cols), len(self.y_cols)
        self.n_z = nx + ny + len(self.a1_cols)
        zx_of = np.full(max(self.width, 1), -1, dtype=np.int64)
        zx_of[self.x_cols] = np.arange(nx)
        zy_of = np.full(max(self.width, 1), -1, dtype=np.int64)
        zy_of[self.y_cols] = nx + np.arange(ny)
        za1_of = np.full(self.nel * self.nb, -1, dtype=np.int64)
        za1_of[self.a1_cols] = nx + ny + np.arange(len(self.a1_cols))
        self.parts: list[_Part] = []
        for (mu0, rank), part in sorted(raw.items()):
            cols = np.array(part["cols"], dtype=np.int64).reshape(-1, rank)
            ms = np.array(part["ms"], dtype=np.int64).reshape(-1, rank)
            self.parts.append(_Part(
                mu0, rank, torch.as_tensor(cols, device=dev), torch.as_tensor(ms < 0, device=dev),
                torch.as_tensor(np.where((ms < 0) & (ms % 2 == 1), -1.0, 1.0), dtype=dt, device=dev),
                torch.as_tensor(np.where(ms < 0, -1.0, 1.0), dtype=dt, device=dev),
                torch.as_tensor(zx_of[cols], device=dev), torch.as_tensor(zy_of[cols], device=dev),
                torch.as_tensor(np.array(part["t"], dtype=np.int64), device=dev),
                torch.as_tensor(np.array(part["f"], dtype=np.int64), device=dev),
                torch.as_tensor(np.array(part["c"]), dtype=dt, device=dev)))
        self.r1 = [(mu0, torch.as_tensor(np.array([x[0] for x in r1 if x[1] == mu0], dtype=np.int64), device=dev),
                    torch.as_tensor(np.array([x[2] for x in r1 if x[1] == mu0], dtype=np.int64), device=dev),
                    torch.as_tensor(np.array([x[3] for x in r1 if x[1] == mu0]), dtype=dt, device=dev))
                   for mu0 in range(self.nel)]
        self.za1_of = torch.as_tensor(za1_of, device=dev)
        # per variable: species block, radial index, harmonic index (A part) / radial base index (A1)
        l_of = np.array([l for l in range(self.lmax + 1) for _ in range(l + 1)], dtype=np.int64)
        a_cols = np.concatenate([self.x_cols, self.y_cols])
        per = self.nrad * self.nh
        self.a_mu = torch.as_tensor(a_cols // per if per else a_cols, device=dev)
        self.a_n = torch.as_tensor((a_cols // self.nh) % self.nrad if per else a_cols, device=dev)
        self.a_h = torch.as_tensor(a_cols % self.nh if per else a_cols, device=dev)
        self.a_l = torch.as_tensor(l_of[a_cols % self.nh] if per else a_cols, device=dev)
        self.n_x = nx
        self.a1_mu = torch.as_tensor(self.a1_cols // self.nb, device=dev)
        self.a1_k = torch.as_tensor(self.a1_cols % self.nb, device=dev)

    def _half_column(self, mu: int, n: int, l: int, m: int) -> int:
        return (mu * self.nrad + n) * self.nh + l * (l + 1) // 2 + abs(m)

    # ---- per-site values and gradients -------------------------------------------------------------
    def values_and_gradients(self, a: torch.Tensor | None, a1: torch.Tensor, species: torch.Tensor,
                             gradients: bool = True):
        """``B (n, Kf)`` and ``G = dB/dz (n, Kf, Z)`` (None without ``gradients``) of the sites whose
        atomic base is ``a (n, W)`` (complex) and rank-1 base ``a1 (n, nel * nradbase)``."""
        n, kf, nz = species.shape[0], self.nfunctions, self.n_z
        b = a1.new_zeros((n, kf))
        g = a1.new_zeros((n, kf, nz)) if gradients else None
        for mu0, fs, cols, cs in self.r1:
            atoms = torch.nonzero(species == mu0).squeeze(1)
            if atoms.numel() == 0 or fs.numel() == 0:
                continue
            b.index_put_((atoms[:, None], fs[None, :]), a1[atoms][:, cols] * cs, accumulate=True)
            if gradients:
                flat = (atoms[:, None] * (kf * nz) + (fs * nz + self.za1_of[cols])[None, :]).reshape(-1)
                g.view(-1).index_add_(0, flat, cs.expand(atoms.numel(), -1).reshape(-1))
        for part in self.parts:
            atoms = torch.nonzero(species == part.mu0).squeeze(1)
            if atoms.numel() == 0 or part.ent_t.numel() == 0:
                continue
            zs = a[atoms][:, part.col]  # (ng, T, r)
            zs = torch.where(part.conj, zs.conj(), zs) * part.sign
            prod = _prod(zs, range(part.rank))
            vals = prod.real[:, part.ent_t] * part.ent_c
            b.view(-1).index_add_(0, (atoms[:, None] * kf + part.ent_f[None, :]).reshape(-1), vals.reshape(-1))
            if not gradients:
                continue
            base = atoms[:, None] * (kf * nz)
            for u in range(part.rank):
                q = _prod(zs, [k for k in range(part.rank) if k != u], like=prod) * part.sign[:, u]
                dx = q.real[:, part.ent_t] * part.ent_c
                dy = (-part.sigma[:, u] * q.imag)[:, part.ent_t] * part.ent_c
                ix = part.ent_f * nz + part.zx[part.ent_t, u]
                g.view(-1).index_add_(0, (base + ix[None, :]).reshape(-1), dx.reshape(-1))
                has_y = part.zy[part.ent_t, u] >= 0
                iy = (part.ent_f * nz + part.zy[part.ent_t, u])[has_y]
                g.view(-1).index_add_(0, (base + iy[None, :]).reshape(-1), dy[:, has_y].reshape(-1))
        return b, g

    # ---- per-edge Jacobian of the variables ----------------------------------------------------------
    def edge_jacobian(self, vec: torch.Tensor, mu_j: torch.Tensor, rad, y_re, y_im, dy_re, dy_im) -> torch.Tensor:
        """``dz/dr (E, Z, 3)`` of each edge's contribution to its centre's variables (plain torch:
        differentiable in ``vec`` where the inputs are)."""
        r = torch.linalg.vector_norm(vec, dim=1)
        rhat = vec / r[:, None]
        parts = []
        if self.n_x + len(self.y_cols):
            rnl = rad.rnl[:, self.a_n, self.a_l]  # (E, Za)
            drnl = rad.drnl[:, self.a_n, self.a_l]
            if self.nel > 1:  # an edge feeds only the block of its neighbour's species
                same = (mu_j[:, None] == self.a_mu[None, :]).to(vec.dtype)  # (E, Za)
                rnl, drnl = rnl * same, drnl * same
            nx = self.n_x
            y = torch.cat([y_re[:, self.a_h[:nx]], y_im[:, self.a_h[nx:]]], dim=1)
            dy = torch.cat([dy_re[:, self.a_h[:nx]], dy_im[:, self.a_h[nx:]]], dim=1)
            parts.append((drnl * y)[..., None] * rhat[:, None, :] + rnl[..., None] * dy)
        if len(self.a1_cols):
            dgk = rad.dgk[:, self.a1_k]
            if self.nel > 1:
                dgk = dgk * (mu_j[:, None] == self.a1_mu[None, :]).to(vec.dtype)
            parts.append(dgk[..., None] * rhat[:, None, :])
        if not parts:
            return vec.new_zeros((vec.shape[0], 0, 3))
        return torch.cat(parts, dim=1)


def _prod(zs: torch.Tensor, factors, like: torch.Tensor | None = None) -> torch.Tensor:
    out = None
    for k in factors:
        out = zs[:, :, k] if out is None else out * zs[:, :, k]
    if out is None:  # no factor: the empty product
        return torch.ones_like(like)
    return out
