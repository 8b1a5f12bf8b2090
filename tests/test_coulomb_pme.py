"""PME (torch-pme's mesh Ewald) as a stack component: its accuracy against Ewald follows the
requested accuracy, forces and stress are derivatives of its energy, and its Hessian is symmetric
and equals differences of its forces, but misses the acoustic sum rule by about the requested
accuracy: the mesh is fixed in space, so a rigid translation moves the atoms relative to it and
changes the interpolated energy (by the interpolation error), and no exact translation invariance
is left for the second derivatives to inherit. For the same reason PME's forces jump (by about the
accuracy) where an atom crosses a switch of the interpolation stencil, so a finite difference
across one differs from the Hessian by that much.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acepy.models import Coulomb, Stack

import conformance as C
from coulomb_cases import rattled_salt as _salt

pytest.importorskip("torchpme")


def _pme(accuracy, backend=None):
    return Stack([Coulomb("initial_charges", method="pme", cutoff=6.0, accuracy=accuracy)], ["Na", "Cl"],
                 backend=backend)


@pytest.mark.parametrize("accuracy", [1e-4, 1e-7])
def test_pme_error_follows_the_requested_accuracy(accuracy):
    """Measured: relative energy error ~0.2-0.3 x accuracy, force error ~1-2 x accuracy."""
    rng = np.random.default_rng()
    atoms = _salt(rng, (2, 1, 1))
    ref = Stack([Coulomb("initial_charges", method="ewald", cutoff=6.0, accuracy=1e-12)], ["Na", "Cl"]).evaluate(atoms)
    out = _pme(accuracy).evaluate(atoms)
    e_err = abs(float(out["energy"][0] - ref["energy"][0])) / abs(float(ref["energy"][0]))
    f_err = float((out["forces"] - ref["forces"]).abs().max() / ref["forces"].abs().max())
    assert e_err < accuracy and f_err < 5 * accuracy, (e_err, f_err)
    assert f_err > 1e-3 * accuracy  # the mesh error is there (this test measures something)


def test_pme_forces_stress_and_batches():
    rng = np.random.default_rng()
    atoms = _salt(rng)
    make = lambda backend: _pme(1e-6, backend)  # noqa: E731
    C.check_fast_equals_exact(make, atoms)
    C.check_energy_is_differentiable(make, atoms)
    C.check_finite_differences(make("numba"), atoms, rng, h=1e-5, atol_f=1e-7, atol_s=1e-8)
    C.check_batch_equals_singles(make("numba"), [atoms, _salt(rng)])


@pytest.mark.parametrize("nodes, accuracy, repeat", [(7, 1e-6, (1, 1, 1)), (4, 1e-5, (1, 1, 1)),
                                                     (3, 1e-3, (2, 1, 1))])
def test_pme_hessian_equals_double_autograd_of_torch_pme(nodes, accuracy, repeat):
    """The mesh-stencil contraction (Numba) is the exact Hessian of torch-pme's PME energy: equal to
    double autograd through torch-pme to 1e-10 relative, for odd and even stencils, on meshes where
    stencils wrap around the cell (the coarse ones: 16 points)."""
    rng = np.random.default_rng()
    atoms = _salt(rng, repeat)
    stack = Stack([Coulomb("initial_charges", method="pme", cutoff=5.0, accuracy=accuracy,
                           interpolation_nodes=nodes)], ["Na", "Cl"])
    hess, info = stack.hessian(atoms, return_info=True)
    assert info["routes"]["CoulombReciprocal"].startswith("mesh stencil")
    ref = stack.hessian(atoms, method="autograd")
    scale = float(ref.abs().max())
    assert float((hess - ref).abs().max()) <= 1e-10 * scale, float((hess - ref).abs().max()) / scale
    assert float((hess - hess.permute(2, 3, 0, 1)).abs().max()) <= 1e-13 * scale


def test_pme_hessian_symmetric_equals_force_differences_and_its_sum_rule_departure():
    rng = np.random.default_rng()
    atoms = _salt(rng)
    for accuracy in (1e-4, 1e-6):
        stack = _pme(accuracy)
        hess = stack.hessian(atoms)
        scale = float(hess.abs().max())
        assert float((hess - hess.permute(2, 3, 0, 1)).abs().max()) <= 1e-11 * scale
        # torch-pme's Lagrange interpolation switches its stencil at mesh mid-points, where the
        # forces jump by about the mesh error: a difference step across one is off by that much.
        # Every other column of the Hessian equals the force differences to 1e-7.
        fd = stack.hessian(atoms, method="fd", step=1e-4)
        column_error = (hess - fd).abs().amax(dim=(0, 1)).reshape(-1) / scale  # per displaced coordinate
        assert int((column_error > 1e-7).sum()) <= 3, column_error
        # a jump dF ~ accuracy |F| shows up as dF / (2 step) in a crossing column
        assert float(column_error.max()) <= accuracy / 1e-4, column_error
        # the acoustic sum rule holds only to the mesh's accuracy (measured ~0.3 x accuracy)
        departure = float(hess.sum(dim=2).abs().max()) / scale
        assert 1e-4 * accuracy < departure < 3 * accuracy, (accuracy, departure)
        v = torch.as_tensor(rng.normal(size=(1, len(atoms), 3)))
        hv = stack.hessian_vector_product(atoms, v)
        assert torch.allclose(hv, torch.einsum("iajb,kjb->kia", hess, v), rtol=0, atol=1e-11 * scale)
