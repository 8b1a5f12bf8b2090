"""The conformance checks every stack component runs (DESIGN.md, "The component contract").

A component is checked inside a :class:`~acepy.models.stack.Stack` (``make_stack(backend)`` builds
one): the fast path equals the exact path, ``Stack.energy`` is differentiable in positions and
cell with the forces and stress of ``evaluate``, forces and stress equal finite differences, a
batch equals its structures one by one, the energy is invariant under rotation, translation,
permutation and lattice shifts, the input is not mutated, and the Hessian (double autograd of
``Stack.energy``) is symmetric and obeys the acoustic sum rule. A new component adds one case to
``tests/test_conformance.py``; the checks are the same for all.
"""

from __future__ import annotations

import numpy as np
import torch

import acepy

# float64 rounding-level agreement, relative to the largest magnitude of the reference
ROUNDING = 1e-10


def _close(actual, expected, rtol=ROUNDING, what=""):
    actual = np.asarray(torch.as_tensor(actual).detach().cpu().double())
    expected = np.asarray(torch.as_tensor(expected).detach().cpu().double())
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.isfinite(actual).all(), f"{what}: non-finite values"
    scale = max(float(np.abs(expected).max()) if expected.size else 0.0, 1.0)
    err = float(np.abs(actual - expected).max()) if expected.size else 0.0
    assert err <= rtol * scale, f"{what}: max error {err:.3e} > {rtol * scale:.3e}"


def has_volume(atoms) -> bool:
    return bool(atoms.pbc.any()) and abs(atoms.cell.volume) > 0


def autograd_forces_stress(stack, atoms):
    """Forces (N, 3) and stress (3, 3) from autograd of ``Stack.energy``: F = -dE/dx, and
    stress = (1/V) dE/d(strain) = (x^T dE/dx + cell^T dE/dcell) / V (rows of cell are vectors)."""
    batch = acepy.batch_from_atoms(atoms, charges=True).requires_grad_()
    energy = stack.energy(batch)
    gx = gc = None
    if energy.requires_grad:  # (a stack of one-body terms alone does not depend on positions)
        gx, gc = torch.autograd.grad(energy.sum(), (batch.positions, batch.cell), allow_unused=True)
    gx = torch.zeros_like(batch.positions) if gx is None else gx
    gc = torch.zeros_like(batch.cell) if gc is None else gc
    stress = None
    if has_volume(atoms):
        stress = (batch.positions.detach().T @ gx + batch.cell.detach()[0].T @ gc[0]) / atoms.get_volume()
    return energy.detach(), -gx, stress


def check_fast_equals_exact(make_stack, atoms, fast_backend="numba"):
    exact = make_stack("torch").evaluate(atoms)
    fast = make_stack(fast_backend).evaluate(atoms)
    for key in ("energy", "energies", "forces", "stress"):
        assert (key in exact) == (key in fast), key
        if key in exact:
            _close(fast[key], exact[key], what=f"{fast_backend} vs torch: {key}")


def check_energy_is_differentiable(make_stack, atoms):
    """``Stack.energy`` (exact path) gives evaluate's energy, and its autograd forces and stress."""
    stack = make_stack("torch")
    ref = stack.evaluate(atoms)
    energy, forces, stress = autograd_forces_stress(stack, atoms)
    _close(energy, ref["energy"], what="Stack.energy")
    _close(forces, ref["forces"], what="autograd forces")
    if stress is not None:
        _close(stress, ref["stress"][0], what="autograd stress")


def check_finite_differences(stack, atoms, rng, h=1e-6, atol_f=1e-6, atol_s=1e-7, n_coords=3):
    """Forces and stress against central differences of the energy. The step is small because
    the ACE radial tables are C1 cubic splines with a jump in the second derivative every
    0.001 A: a wide stencil would straddle segments; rounding stays near 1e-16 |E| / h."""
    out = stack.evaluate(atoms)

    def energy(x):
        return float(stack.evaluate(x, compute_forces=False)["energy"][0])

    # rounding of the energy differences: a few ulp of |E| over the step (large for potentials
    # whose E0 makes |E| big, e.g. ACEpotentials.jl's TiAl: ~ -420 eV/atom)
    rounding = 8 * np.finfo(np.float64).eps * abs(float(out["energy"][0])) / (2 * h)
    atol_f, atol_s = max(atol_f, rounding), max(atol_s, rounding / atoms.get_volume() if has_volume(atoms) else 0)
    n = len(atoms)
    for i, a in zip(rng.integers(0, n, n_coords), rng.integers(0, 3, n_coords)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        fd = -(energy(plus) - energy(minus)) / (2 * h)
        assert abs(float(out["forces"][i, a]) - fd) <= atol_f, (i, a, float(out["forces"][i, a]), fd)
    if not has_volume(atoms):
        return
    for a, b in [(0, 0), (1, 2), (2, 1)][:2] + [(int(rng.integers(3)), int(rng.integers(3)))]:
        unit = np.zeros((3, 3))
        unit[a, b] = unit[b, a] = 0.5 if a != b else 1.0
        strained = []
        for d in (h, -h):
            x = atoms.copy()
            x.set_cell(atoms.cell[:] @ (np.eye(3) + d * unit), scale_atoms=True)
            strained.append(energy(x))
        fd = (strained[0] - strained[1]) / (2 * h) / atoms.get_volume()
        assert abs(float(out["stress"][0, a, b]) - fd) <= atol_s, (a, b, float(out["stress"][0, a, b]), fd)


def check_batch_equals_singles(stack, structures):
    batch = stack.evaluate(structures)
    start = 0
    for k, s in enumerate(structures):
        single = stack.evaluate(s)
        _close(batch["energy"][k], single["energy"][0], what=f"structure {k} energy")
        _close(batch["forces"][start:start + len(s)], single["forces"], what=f"structure {k} forces")
        if "stress" in batch:
            _close(batch["stress"][k], single["stress"][0], what=f"structure {k} stress")
        start += len(s)


def check_invariances(stack, atoms, rng):
    """Rotation (forces and stress rotate along), translation, a lattice shift of one atom, and a
    permutation of the atoms."""
    ref = stack.evaluate(atoms)
    rot = torch.as_tensor(_random_rotation(rng))
    moved = atoms.copy()
    moved.positions = atoms.positions @ rot.numpy().T
    moved.set_cell(atoms.cell[:] @ rot.numpy().T, scale_atoms=False)
    moved.translate(rng.normal(size=3) * 3.0)
    if atoms.pbc.all():
        k = int(rng.integers(len(atoms)))
        moved.positions[k] += moved.cell[int(rng.integers(3))] * rng.choice([-1, 1])
    out = stack.evaluate(moved)
    _close(out["energy"], ref["energy"], what="rotated/translated/shifted energy")
    _close(out["forces"], ref["forces"].double() @ rot.T, rtol=1e-9, what="rotated forces")
    if "stress" in ref:
        _close(out["stress"][0], rot @ ref["stress"][0].double() @ rot.T, rtol=1e-9, what="rotated stress")
    perm = rng.permutation(len(atoms))
    out = stack.evaluate(atoms[perm])
    _close(out["energy"], ref["energy"], what="permuted energy")
    _close(out["forces"], ref["forces"][perm], what="permuted forces")


def check_input_not_mutated(stack, atoms):
    before = (atoms.positions.copy(), atoms.numbers.copy(), atoms.cell[:].copy(), atoms.pbc.copy())
    stack.evaluate(atoms)
    stack.energy(atoms)
    after = (atoms.positions, atoms.numbers, atoms.cell[:], atoms.pbc)
    for x, y in zip(before, after):
        assert np.array_equal(x, y)


def check_hessian(make_stack, atoms):
    """The Hessian from double autograd of ``Stack.energy`` is symmetric, obeys the acoustic sum
    rule (sum over j of H[i, a, j, b] = 0: a rigid translation changes no force), its rows equal
    central differences of the fast path's forces, and ``Stack.hessian`` /
    ``Stack.hessian_vector_product`` (the component's own second-derivative route) equal it."""
    stack = make_stack("torch")
    batch = acepy.batch_from_atoms(atoms, charges=True).requires_grad_(cell=False)
    energy = stack.energy(batch).sum()
    n = len(atoms)
    hess = torch.zeros((n, 3, n, 3), dtype=torch.float64)
    if energy.requires_grad:
        (grad,) = torch.autograd.grad(energy, batch.positions, create_graph=True)
        if grad.requires_grad:
            rows = [torch.autograd.grad(grad.reshape(-1)[k], batch.positions, retain_graph=True,
                                        allow_unused=True)[0] for k in range(3 * n)]
            rows = [torch.zeros(n, 3, dtype=torch.float64) if r is None else r for r in rows]
            hess = torch.stack(rows).reshape(n, 3, n, 3).double()
    scale = max(float(hess.abs().max()), 1.0)
    assert float((hess - hess.permute(2, 3, 0, 1)).abs().max()) <= 1e-9 * scale, "Hessian not symmetric"
    assert float(hess.sum(dim=2).abs().max()) <= 1e-9 * scale, "acoustic sum rule"
    fast = make_stack("numba")
    h = 1e-5
    for i, a in [(0, 0), (n - 1, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        fd = -(fast.evaluate(plus)["forces"] - fast.evaluate(minus)["forces"]) / (2 * h)
        assert float((hess[i, a] - fd).abs().max()) <= 1e-4 * scale, (i, a)
    # the component's own route of Stack.hessian (per-site blocks; structure-level: autograd) and
    # its matrix-free products equal the dense double autograd above, on both backends
    v = torch.randn(2, n, 3, dtype=torch.float64)
    for model in (stack, fast):
        _close(model.hessian(atoms), hess, rtol=1e-12, what=f"Stack.hessian ({model.backend})")
        _close(model.hessian_vector_product(atoms, v), torch.einsum("iajb,kjb->kia", hess, v), rtol=1e-12,
               what=f"Stack.hessian_vector_product ({model.backend})")


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
