"""Scatter of per-edge gradients: np.add.at, and the signs of forces and stress by autograd/FD."""

import itertools

import numpy as np
import pytest
import torch

from acepy.kernels import scatter_forces_virials, stress_from_virials
from conftest import assert_close, device_for


def random_batch(rng, n_atoms, n_edges, n_systems, sort_systems=True):
    system_of_atom = np.sort(rng.integers(0, n_systems, n_atoms))
    centers = np.sort(rng.integers(0, n_atoms, n_edges))
    neighbors = rng.integers(0, n_atoms, n_edges)
    edge_system = system_of_atom[centers]
    if not sort_systems:
        edge_system = rng.integers(0, n_systems, n_edges)
    g = rng.normal(size=(n_edges, 3))
    r = rng.normal(size=(n_edges, 3)) * 3
    return [torch.as_tensor(a) for a in (g, r, centers, neighbors, edge_system)]


def numpy_scatter(g, r, centers, neighbors, edge_system, n_atoms, n_systems):
    forces = np.zeros((n_atoms, 3))
    np.add.at(forces, centers, g)
    np.add.at(forces, neighbors, -g)
    virials = np.zeros((n_systems, 3, 3))
    np.add.at(virials, edge_system, -r[:, :, None] * g[:, None, :])
    return forces, virials


@pytest.mark.parametrize("n_atoms,n_edges,n_systems", [(1, 1, 1), (9, 31, 1), (150, 1500, 7), (64, 700, 64)])
@pytest.mark.parametrize("sort_systems", [True, False])
def test_backends_agree_with_np_add_at(backend, dtype, n_atoms, n_edges, n_systems, sort_systems):
    rng = np.random.default_rng()
    g, r, c, nb, s = random_batch(rng, n_atoms, n_edges, n_systems, sort_systems)
    ef, ev = (torch.as_tensor(a) for a in numpy_scatter(g.numpy(), r.numpy(), c.numpy(), nb.numpy(), s.numpy(), n_atoms, n_systems))
    rf, rv = scatter_forces_virials(g, r, c, nb, s, n_atoms, n_systems, backend="torch")
    assert_close(rf, ef, torch.float64, what="reference forces")
    assert_close(rv, ev, torch.float64, what="reference virials")
    d = device_for(backend)
    f, v = scatter_forces_virials(g.to(d, dtype), r.to(d, dtype), c.to(d), nb.to(d), s.to(d), n_atoms, n_systems, backend=backend)
    assert f.dtype == v.dtype == dtype and f.shape == (n_atoms, 3) and v.shape == (n_systems, 3, 3)
    # sums of many terms of both signs: compare relative to the summed magnitudes
    assert_close(f, ef, dtype, scale_floor=float(np.abs(g.numpy()).max()) * 10, what=f"{backend} forces")
    assert_close(v, ev, dtype, scale_floor=float(np.abs(r.numpy()).max() * np.abs(g.numpy()).max()) * 10,
                 what=f"{backend} virials")


def test_empty_edges(backend):
    d = device_for(backend)
    z3 = torch.zeros(0, 3, dtype=torch.float64, device=d)
    zi = torch.zeros(0, dtype=torch.long, device=d)
    f, v = scatter_forces_virials(z3, z3, zi, zi, zi, 4, 2, backend=backend)
    assert f.shape == (4, 3) and v.shape == (2, 3, 3) and not f.any() and not v.any()
    f, v = scatter_forces_virials(z3, z3, zi, zi, zi, 0, 1, backend=backend)
    assert f.shape == (0, 3)


def test_out_of_range_indices_are_named(backend):
    d = device_for(backend)
    g = torch.ones(3, 3, dtype=torch.float64, device=d)
    ok = torch.tensor([0, 1, 2], device=d)
    with pytest.raises(IndexError, match=r"neighbors\[2\] = 5"):
        scatter_forces_virials(g, g, ok, torch.tensor([0, 1, 5], device=d), torch.zeros(3, dtype=torch.long, device=d), 3, 1, backend=backend)
    with pytest.raises(IndexError, match="edge_system"):
        scatter_forces_virials(g, g, ok, ok, torch.tensor([0, 0, -1], device=d), 3, 1, backend=backend)


def periodic_edges(positions, cell, cutoff):
    """Brute-force full neighbour list with periodic images (i, j, shift), sorted by i."""
    n = len(positions)
    reach = int(np.ceil(cutoff / np.min(np.abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)))) + 1
    edges = []
    for i, j in itertools.product(range(n), range(n)):
        for s in itertools.product(range(-reach, reach + 1), repeat=3):
            if i == j and s == (0, 0, 0):
                continue
            d = positions[j] - positions[i] + np.array(s) @ cell
            if np.linalg.norm(d) < cutoff:
                edges.append((i, j, *s))
    return np.array(edges)


def test_signs_against_autograd_of_a_pair_energy(backend):
    """E = 1/2 sum over edges of phi(r): forces = -dE/dx and stress = (1/V) dE/d(strain)."""
    rng = np.random.default_rng()
    cell = np.diag([3.6, 3.9, 4.2]) + rng.normal(scale=0.3, size=(3, 3))
    positions = rng.random((5, 3)) @ cell
    rc = 3.5
    edges = periodic_edges(positions, cell, rc)
    i, j, shifts = torch.as_tensor(edges[:, 0]), torch.as_tensor(edges[:, 1]), torch.as_tensor(edges[:, 2:], dtype=torch.float64)

    def energy(x, h):
        r = (x[j] - x[i] + shifts @ h).norm(dim=1)
        return 0.5 * ((rc - r) ** 3 * torch.exp(-r)).sum()

    x = torch.as_tensor(positions).requires_grad_()
    strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    h = torch.as_tensor(cell)
    deform = torch.eye(3, dtype=torch.float64) + strain
    e = energy(x @ deform, h @ deform)
    dx, dstrain = torch.autograd.grad(e, (x, strain))
    # per-edge gradients g_ij = dE/dr_ij, no autograd
    vec = (x[j] - x[i] + shifts @ h).detach()
    r = vec.norm(dim=1, keepdim=True)
    dphi = -3 * (rc - r) ** 2 * torch.exp(-r) - (rc - r) ** 3 * torch.exp(-r)
    g = 0.5 * dphi * vec / r
    dev = device_for(backend)
    f, v = scatter_forces_virials(g.to(dev), vec.to(dev), i.to(dev), j.to(dev), torch.zeros_like(i).to(dev), 5, 1, backend=backend)
    volume = torch.tensor([abs(np.linalg.det(cell))])
    stress = stress_from_virials(v.cpu(), volume)
    assert_close(f, -dx, torch.float64, what="forces = -dE/dx")
    assert_close(stress[0], dstrain / volume[0], torch.float64, what="stress = dE/de / V")
    # and one finite-difference probe of the stress sign: stretching along x
    eps = 1e-6
    ex = torch.diag(torch.tensor([eps, 0.0, 0.0], dtype=torch.float64))
    fd = (energy(x.detach() @ (torch.eye(3) + ex), h @ (torch.eye(3) + ex)) - energy(x.detach() @ (torch.eye(3) - ex), h @ (torch.eye(3) - ex))) / (2 * eps)
    assert float(stress[0, 0, 0]) == pytest.approx(float(fd) / float(volume[0]), rel=1e-6, abs=1e-9)
