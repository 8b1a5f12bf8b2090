"""One ``ase.Atoms`` on the CPU in one lean pass: what an ASE calculator call runs (issue 18).

:meth:`Stack.evaluate` on a single structure spends, on a cell of 8-64 atoms, about as long in its
general machinery (a :class:`~acepy.batch.Batch`, :class:`~acepy.graph.Graph` and
:class:`~acepy.models.component.BatchGraph` with some forty small torch operations, the component
loop, the dispatch layers of the kernels) as in the ACE kernel itself. For the models ``acepy.load``
builds (one-body energies and ACE on its fused Numba kernel, float64, CPU) this pass does the same
work on NumPy arrays: the value checks, the neighbour search kept per thread by the graph cache
(:meth:`~acepy.graph.GraphCache.single`: same reuse rules, same search, same edges), one fused
kernel launch per ACE term, one scatter. The arithmetic is the general path's, operation for
operation (the same kernels, the same sums in the same order): the results are equal bit for bit
(``tests/test_single_structure.py``).

Anything unusual goes to the general path instead, which raises the named error or computes what
this pass does not: non-finite positions or cells, an element the model lacks, stress asked of a
cell without volume, an energy-only call, a distance outside a radial table or a non-finite result
(the kernel's flags). A model with other components (a pair table, Coulomb) or another dtype,
device or backend never takes this pass.
"""

from __future__ import annotations

import numpy as np
import torch

from acepy.batch import cell_volumes, check_periodic_cells
from acepy.kernels.numba_cpu import scatter as numba_scatter

from .ace import ACE
from .onebody import OneBody


class SingleStructurePass:
    """Built once per eligible model by :meth:`for_stack`; :meth:`evaluate` per call."""

    def __init__(self, stack, parts: list):
        self.stack = stack
        self.parts = parts  # ("onebody", e0 (S,) numpy) or ("ace", the ACE component), in the stack's order
        self.table = stack._species_table_host.numpy()  # atomic number -> species (-1: not in the model)

    @classmethod
    def for_stack(cls, stack) -> "SingleStructurePass | None":
        """The pass for ``stack``, or None where it does not apply (see the module docstring)."""
        if not (stack.device.type == "cpu" and stack.backend == "numba" and stack.dtype == torch.float64
                and len(stack.graph_cache.cutoffs) == 1):
            return None
        parts = []
        for comp in stack.components:
            if type(comp) is OneBody:
                parts.append(("onebody", comp.e0.numpy()))
            elif type(comp) is ACE and comp._fused is not None:
                parts.append(("ace", comp))
            else:
                return None
        if not any(kind == "ace" for kind, _ in parts):
            return None
        return cls(stack, parts)

    def evaluate(self, atoms, compute_forces: bool, compute_stress: bool | None) -> dict | None:
        """:meth:`Stack.evaluate`'s result for one ``ase.Atoms`` with forces and/or stress, or None
        where the general path must run (it then raises the named error, if there is one)."""
        if not (compute_forces or compute_stress):  # energies alone: the general path's forward pass
            return None
        positions = np.ascontiguousarray(atoms.positions, dtype=np.float64)
        numbers = np.ascontiguousarray(atoms.numbers, dtype=np.int64)
        n = positions.shape[0]
        if not n or positions.shape != (n, 3) or numbers.shape != (n,) or not np.isfinite(positions).all():
            return None
        cell = np.ascontiguousarray(atoms.cell.array, dtype=np.float64).reshape(1, 3, 3)
        pbc = np.ascontiguousarray(atoms.pbc, dtype=bool).reshape(1, 3)
        if not np.isfinite(cell).all() or int(numbers.min()) < 0 or int(numbers.max()) > 118:
            return None
        species = self.table[numbers]
        if int(species.min()) < 0:
            return None
        check_periodic_cells(cell, pbc)  # (a singular periodic cell raises here as in Batch.validate)
        volumes = cell_volumes(cell, pbc)
        has_volume = bool(volumes[0] > 0)
        if compute_stress is None:
            compute_stress = bool(compute_forces and has_volume)
        elif compute_stress and not has_volume:
            return None

        edges = self.stack.graph_cache.single(positions, cell, pbc, numbers)
        species_t = torch.from_numpy(species)
        offsets = torch.from_numpy(edges.offsets)
        neighbors = torch.from_numpy(edges.neighbors)
        energies = np.zeros(n)
        grads = None
        for kind, part in self.parts:  # the stack's component order: the same sums as Stack._evaluate
            if kind == "onebody":
                energies = energies + part[species]
                continue
            if part._fused is None:  # switched off after the model was built (the staged kernels' tests)
                return None
            e_i, g, flags = part.fused_terms(edges.vectors, edges.distances, offsets, neighbors, species_t)
            if flags.any():
                return None
            energies = energies + e_i.numpy()
            grads = g if grads is None else grads + g
        system_idx = torch.zeros(n, dtype=torch.int64)
        forces, virials = numba_scatter.scatter_forces_virials(
            grads, edges.vectors, torch.from_numpy(edges.centers), neighbors, torch.from_numpy(edges.edge_system), n, 1)
        energies_t = torch.from_numpy(energies)
        out = {"energy": torch.zeros(1, dtype=torch.float64).index_add(0, system_idx, energies_t),
               "energies": energies_t, "system_idx": system_idx}
        if compute_forces:
            out["forces"] = forces
        if compute_stress:
            out["virials"] = virials
            # NumPy's IEEE negation and division: the general path's torch expression to the bit
            out["stress"] = torch.from_numpy(-virials.numpy() / volumes[0])
        return out
