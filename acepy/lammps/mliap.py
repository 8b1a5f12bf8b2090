"""An acepy stack inside LAMMPS's domain decomposition: ``pair_style mliap unified``.

LAMMPS's ML-IAP package, built with its Python coupling (``-D MLIAP_ENABLE_PYTHON=on``, which needs
the PYTHON package and Cython), calls a Python object's ``compute_forces(data)`` on every MPI rank
with that rank's pair list (``src/ML-IAP/mliap_data.cpp``, ``mliap_unified.cpp``,
``mliap_unified_couple.pyx``):

- ``data.pair_i``, ``data.pair_j`` (= ``jatoms``): per pair, the index of atom i (a local atom of
  this rank) and of atom j (local or ghost, ``< data.ntotal``); ``data.rij = x_j - x_i`` (P, 3),
  only pairs with ``|r_ij| <`` the cutoff ``2 * rcutfac``; full list (both ij and ji between locals).
- ``data.elems`` (ntotal,): the element index of every atom, in ``element_types`` order.
- ``data.iatoms`` (nlistatoms,): the local atoms of the list; ``data.eatoms`` (write-only) their
  energies, ``data.energy`` (write-only) the rank's total.
- ``data.update_pair_forces(fij)``: ``f[i] += fij``, ``f[j] -= fij`` per pair, and the virial
  ``-rij (x) fij`` (``PairMLIAP::v_tally``). LAMMPS then sends the ghosts' forces back to their
  owners (reverse communication, ``newton on``).

That is acepy's fast path exactly: a site energy depends only on the edge vectors of its centre,
and ``g_ij = dE/dr_ij`` from ``energies_and_edge_grads`` is ``fij``. :class:`ACEMLIAPUnified`
builds an acepy graph from the pair list (edges sorted by centre, each component's own cutoff
applied), evaluates every graph component, and returns local site energies and per-pair
gradients. Structure-level components (Ewald/PPPM reciprocal parts) and components that read
per-atom charges do not fit this interface: use :func:`acepy.lammps.write_input` (``coul/long`` +
``kspace_style``) for those.

In LAMMPS::

    # from Python: lammps.mliap.activate_mliappy(lmp); lammps.mliap.load_unified(ACEMLIAPUnified(model))
    pair_style mliap unified EXISTS 0
    # or from a file: ACEMLIAPUnified(model).pickle("acepy.pkl")  (the pickle holds the potential's
    # path and load options, not tensors: the file must be readable where LAMMPS runs)
    pair_style mliap unified acepy.pkl 0
    pair_coeff * * Al Ti
"""

from __future__ import annotations

import pickle

import numpy as np
import torch

__all__ = ["ACEMLIAPUnified", "evaluate_pairs"]


def _graph_parts(stack, species, centers, neighbors, vectors):
    """One acepy BatchGraph per distinct cutoff of the stack's graph components, from a pair list
    already sorted by centre; returns {cutoff: (BatchGraph, kept edge indices)} and the batch."""
    from ase.data import atomic_numbers

    from acepy.batch import Batch
    from acepy.graph import Graph, csr_offsets
    from acepy.models.component import BatchGraph

    n = species.shape[0]
    dtype, device = stack.dtype, stack.device
    z = torch.tensor([atomic_numbers[el] for el in stack.elements], dtype=torch.int64, device=device)
    batch = Batch(positions=torch.zeros((n, 3), dtype=dtype, device=device), numbers=z[species],
                  cell=torch.zeros((1, 3, 3), dtype=dtype, device=device),
                  pbc=torch.zeros((1, 3), dtype=torch.bool, device=device),
                  system_idx=torch.zeros(n, dtype=torch.int64, device=device))
    distances = vectors.norm(dim=1)
    parts = {}
    for comp in stack.components:
        cut = comp.cutoff
        if cut is None or cut in parts:
            continue
        keep = torch.nonzero(distances < cut).squeeze(1)
        c = centers.index_select(0, keep)
        graph = Graph(centers=c, neighbors=neighbors.index_select(0, keep),
                      shifts=torch.zeros((keep.shape[0], 3), dtype=torch.int64, device=device),
                      edge_system=torch.zeros(keep.shape[0], dtype=torch.int64, device=device),
                      offsets=csr_offsets(c, n), cutoff=float(cut), n_atoms=n, n_systems=1)
        parts[cut] = (BatchGraph(batch, species, graph, vectors.index_select(0, keep)), keep)
    return parts, batch


def _edge_grads(stack, comp, inputs):
    if stack.backend != "torch":
        return comp.energies_and_edge_grads(inputs, backend=stack.backend)
    from acepy.models.component import BatchGraph

    vectors = inputs.vectors.detach().requires_grad_(True)
    with torch.enable_grad():
        e = comp.site_energies(BatchGraph(inputs.batch, inputs.species, inputs.graph, vectors), backend="torch")
        g = torch.autograd.grad(e.sum(), vectors)[0] if vectors.shape[0] and e.requires_grad \
            else torch.zeros_like(vectors)
    return e.detach(), g


def evaluate_pairs(stack, elems, pair_i, pair_j, rij, iatoms):
    """Site energies of the list atoms ``iatoms`` and per-pair gradients ``dE/dr_ij`` from a
    LAMMPS-style pair list (see the module doc). Returns ``(energy, eatoms (L,), fij (P, 3))`` as
    float64 numpy arrays, ``fij`` in the pairs' given order."""
    from acepy.kernels.threads import num_threads

    device, dtype = stack.device, stack.dtype
    species = torch.as_tensor(np.asarray(elems), dtype=torch.int64, device=device)
    pi = torch.as_tensor(np.asarray(pair_i), dtype=torch.int64, device=device)
    pj = torch.as_tensor(np.asarray(pair_j), dtype=torch.int64, device=device)
    r = torch.as_tensor(np.asarray(rij, dtype=np.float64).reshape(-1, 3), device=device).to(dtype)
    local = torch.as_tensor(np.asarray(iatoms), dtype=torch.int64, device=device)
    if species.numel() and (int(species.min()) < 0 or int(species.max()) >= len(stack.elements)):
        raise ValueError(f"mliap: element indices must lie in [0, {len(stack.elements)}) (element_types "
                         f"{stack.elements}); got [{int(species.min())}, {int(species.max())}]")
    order = torch.argsort(pi, stable=True)  # acepy's edges are sorted by centre (CSR offsets)
    centers, neighbors, vectors = pi[order], pj[order], r[order]
    with num_threads(stack.num_threads):
        parts, batch = _graph_parts(stack, species, centers, neighbors, vectors)
        from acepy.models.component import BatchGraph

        energies = torch.zeros(species.shape[0], dtype=dtype, device=device)
        grads = torch.zeros_like(vectors)
        for comp in stack.components:
            if comp.cutoff is None:
                with torch.no_grad():
                    energies = energies + comp.site_energies(BatchGraph(batch, species), backend=stack.backend)
                continue
            inputs, keep = parts[comp.cutoff]
            e, g = _edge_grads(stack, comp, inputs)
            energies = energies + e.detach()
            grads.index_add_(0, keep, g.detach())
    fij = torch.empty_like(grads)
    fij[order] = grads
    eatoms = energies.index_select(0, local)
    to_np = lambda t: t.detach().to("cpu", torch.float64).numpy()  # noqa: E731
    return float(eatoms.sum()), to_np(eatoms), np.ascontiguousarray(to_np(fij))


class ACEMLIAPUnified:
    """LAMMPS ML-IAP ``unified`` model of an acepy stack (the interface of LAMMPS's
    ``lammps.mliap.mliap_unified_abc.MLIAPUnified``, which LAMMPS reads by attribute).

    ``model``: a stack (from ``acepy.load``) or a potential path given to ``acepy.load`` with
    ``load_kwargs``. ``element_types`` are the stack's elements (``pair_coeff * *`` maps LAMMPS
    types to them); ``rcutfac`` is half the stack's largest cutoff (LAMMPS's pair cutoff is
    ``2 * rcutfac``).
    """

    def __init__(self, model, **load_kwargs):
        from acepy.models.stack import Stack

        if not isinstance(model, Stack):
            from acepy.loading import load

            model = load(model, **load_kwargs)
        for comp in model.components:
            name = type(comp).__name__
            if getattr(comp, "is_structure_level", False):
                raise ValueError(f"mliap: {name} needs the whole structure (a reciprocal-space sum); LAMMPS's "
                                 "mliap gives a pair list. Use acepy.lammps.write_input (kspace_style) instead")
            if getattr(comp, "per_atom_data", ()):
                raise ValueError(f"mliap: {name} reads per-atom {list(comp.per_atom_data)}, which ML-IAP does not "
                                 "pass; use acepy.lammps.write_input (coul/dsf or coul/long) instead")
        self.model = model
        self.interface = None
        self.element_types = list(model.elements)
        self.ndescriptors = 1
        self.nparams = 1
        self.rcutfac = 0.5 * float(model.cutoff)

    # LAMMPS calls these three; only compute_forces has work to do for a force field
    def compute_descriptors(self, data):
        pass

    def compute_gradients(self, data):
        pass

    def compute_forces(self, data):
        energy, eatoms, fij = evaluate_pairs(self.model, data.elems, data.pair_i, data.pair_j, data.rij, data.iatoms)
        data.eatoms = eatoms
        data.energy = energy
        data.update_pair_forces(fij)

    # ---- pickling: the potential's path and load options, never tensors ----------------------------
    def __getstate__(self):
        options = getattr(self.model, "load_options", None)
        if not options or not options.get("path"):
            raise pickle.PicklingError("ACEMLIAPUnified: only a model loaded from a file (acepy.load) can be "
                                       "pickled (the pickle records its path and options); pass this object to "
                                       "lammps.mliap.load_unified and use 'pair_style mliap unified EXISTS 0'")
        return {"load_options": dict(options)}

    def __setstate__(self, state):
        from acepy.loading import load

        opts = dict(state["load_options"])
        keys = ("pair_table", "dtype", "backend", "device", "skin", "table_n", "table_style", "table_cutoff",
                "num_threads")
        self.__init__(load(opts["path"], **{k: opts[k] for k in keys if k in opts}))

    def pickle(self, fname):
        with open(fname, "wb") as fp:
            pickle.dump(self, fp)
