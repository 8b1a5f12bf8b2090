"""ACE basis construction: coupling coefficients, basis generation, bundled synthetic potentials.

    from acepy.basis import generate_basis, BondSpec
    basis = generate_basis(["Al", "Ni"], nradmax_by_orders=[6, 3, 2, 1], lmax_by_orders=[0, 3, 2, 1],
                           bonds=BondSpec("ChebExpCos", [5.25], rcut=5.0))
    spec = basis.to_spec(coefficients)          # an ACEPotentialSpec (C-tilde form)
    acepy.io.write_yace(spec, "pot.yace")       # readable by acepy and python-ace / LAMMPS

`coupling` (generalized Clebsch-Gordan coefficients in pacemaker's convention), `generator`
(enumeration and C-tilde emission), `evaluate` (numpy evaluation of products on explicit
environments) and `bundled` (the shipped synthetic potentials; ``python -m acepy.basis.bundled``).
"""

from acepy.coupling import clebsch_gordan, coupling_table, coupling_tree, expand_LS, generalized_cg
from .generator import BondSpec, GeneratedBasis, TupleBlock, default_embedding, generate_basis

__all__ = [
    "clebsch_gordan",
    "coupling_table",
    "coupling_tree",
    "expand_LS",
    "generalized_cg",
    "BondSpec",
    "GeneratedBasis",
    "TupleBlock",
    "default_embedding",
    "generate_basis",
]
