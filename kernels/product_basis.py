"""The sparse product contraction of the ACE basis, and its adjoint (ACE_SPEC.md 2.10, 2.13).

Every atom ``i`` belongs to a group ``group[i]`` (its species) that owns the product terms
``plan.group_offsets[g]:plan.group_offsets[g+1]``. Term ``s`` is a product of up to ``RMAX``
factors, each a complex entry of the atom's row ``a[i, :]`` (``H`` columns), possibly negated
and/or conjugated::

    rho[i, p] = sum over terms s of the group of i of  coeff[s, p] * Re( prod_t  f(a[i], codes[s, t]) )

A factor code packs ``4*h + 2*conj + neg`` (column ``h``; ``conj``: take the complex conjugate;
``neg``: negate); ``-1`` pads a term of lower rank (factor 1). This is how the m < 0 entries of
the atomic base enter: ``A_{l,-m} = (-1)^m conj(A_{lm})``. The codes, coefficients and group
offsets together are one :class:`ProductBasisPlan`.

The adjoint takes ``w_rho = dE/drho (N, P)`` and returns ``dE/dRe a`` and ``dE/dIm a``, each
``(N, H)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from .backend import as_tensor_arg, check_offsets, check_range, check_same_device, is_integer_dtype, prepare


def encode_factor(column: int, conj: bool, neg: bool) -> int:
    """The code of one factor: column ``column`` of the row, conjugated and/or negated."""
    return 4 * int(column) + 2 * int(bool(conj)) + int(bool(neg))


@dataclass(frozen=True, eq=False)
class ProductBasisPlan:
    """The product terms of every group: what :func:`product_basis` contracts.

    ``codes (S, RMAX)`` int64 factor codes (``-1`` pads), ``coeff (S, P)`` floating,
    ``group_offsets (G+1,)`` int64 CSR offsets of each group's terms. Array-likes are accepted;
    construction checks shapes and dtypes only. :meth:`validate` checks the values (it reads them:
    a host sync on a GPU), once; the kernels then run with ``check=False``. The tensors must not
    be modified in place afterwards (derived quantities are cached).
    """

    codes: torch.Tensor
    coeff: torch.Tensor
    group_offsets: torch.Tensor

    def __post_init__(self):
        fn = "ProductBasisPlan"
        given = [x for x in (self.codes, self.coeff, self.group_offsets) if isinstance(x, torch.Tensor)]
        home = given[0].device if given else torch.device("cpu")
        codes = as_tensor_arg(fn, "codes", self.codes, home)
        coeff = as_tensor_arg(fn, "coeff", self.coeff, home)
        offsets = as_tensor_arg(fn, "group_offsets", self.group_offsets, home)
        for name, t in (("codes", codes), ("group_offsets", offsets)):
            if not is_integer_dtype(t.dtype):
                raise TypeError(f"{fn}: {name} must be an integer tensor, got dtype {t.dtype}")
        if not coeff.dtype.is_floating_point:
            raise TypeError(f"{fn}: coeff must be a floating-point tensor, got dtype {coeff.dtype}")
        if codes.ndim != 2 or coeff.ndim != 2 or codes.shape[0] != coeff.shape[0]:
            raise ValueError(f"{fn}: codes must be (S, RMAX) and coeff (S, P) with the same S, got "
                             f"{tuple(codes.shape)}, {tuple(coeff.shape)}")
        if offsets.ndim != 1 or offsets.shape[0] < 1:
            raise ValueError(f"{fn}: group_offsets must be (G+1,), got {tuple(offsets.shape)}")
        check_same_device(codes, coeff, offsets)
        # once per plan: the kernels then take these as they are, every call
        object.__setattr__(self, "codes", codes.long().contiguous())
        object.__setattr__(self, "coeff", coeff.contiguous())
        object.__setattr__(self, "group_offsets", offsets.long().contiguous())

    @property
    def n_terms(self) -> int:
        """S, the number of product terms."""
        return self.codes.shape[0]

    @property
    def rank_max(self) -> int:
        """RMAX, the most factors of a term (the width of ``codes``)."""
        return self.codes.shape[1]

    @property
    def n_densities(self) -> int:
        """P, the number of output columns of ``rho``."""
        return self.coeff.shape[1]

    @property
    def n_groups(self) -> int:
        """G, the number of groups (species)."""
        return self.group_offsets.shape[0] - 1

    @property
    def device(self) -> torch.device:
        return self.codes.device

    def validate(self, n_columns: int) -> "ProductBasisPlan":
        """Check the values for rows of ``n_columns`` complex columns: ``group_offsets`` start at 0,
        never decrease and end at S; every code is -1 or addresses a column below ``n_columns``.
        Raises ``ValueError`` / ``IndexError``; returns the plan."""
        check_offsets("ProductBasisPlan", "group_offsets", self.group_offsets, self.n_terms, what="S")
        if self.codes.numel() and (int(self.codes.min()) < -1 or int(self.codes.max()) >= 4 * n_columns):
            raise IndexError(f"ProductBasisPlan: factor codes must be -1 or 4*h + flags with h < H={n_columns}")
        self.max_group_terms  # noqa: B018  (cached now, so that no later call reads values for it)
        return self

    @cached_property
    def max_group_terms(self) -> int:
        """The most terms of one group (the Triton launcher sizes its grid by it; read once)."""
        if self.n_groups == 0:
            return 0
        return int((self.group_offsets[1:] - self.group_offsets[:-1]).max())

    @cached_property
    def term_length(self) -> torch.Tensor:
        """Per term: one past its last real factor, 0 for an all-padding term (the Numba kernels
        loop only that far, so padding to the largest rank costs nothing)."""
        if self.rank_max == 0:
            return torch.zeros(self.n_terms, dtype=torch.int64, device=self.device)
        positions = torch.arange(1, self.rank_max + 1, dtype=torch.int64, device=self.device)
        return torch.where(self.codes >= 0, positions, torch.zeros_like(positions)).amax(dim=1)

    def to(self, device=None, dtype=None) -> "ProductBasisPlan":
        """Move the plan; ``coeff`` takes ``dtype``, the codes and offsets stay int64. Returns the
        plan itself when nothing changes."""
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"ProductBasisPlan.to: dtype must be floating, got {dtype}")
        codes, offsets = self.codes.to(device=device), self.group_offsets.to(device=device)
        coeff = self.coeff.to(device=device, dtype=dtype)
        if codes is self.codes and offsets is self.group_offsets and coeff is self.coeff:
            return self
        return self._derived(codes, coeff, offsets)

    def _derived(self, codes, coeff, offsets) -> "ProductBasisPlan":
        """A plan of the same terms (moved or recast): the cached quantities carry over."""
        plan = ProductBasisPlan(codes, coeff, offsets)
        if "max_group_terms" in self.__dict__:
            plan.__dict__["max_group_terms"] = self.max_group_terms
        if "term_length" in self.__dict__:
            plan.__dict__["term_length"] = self.term_length.to(codes.device)
        return plan


def _prepare(fn, backend, a_re, a_im, group, plan, w_rho=None):
    """The shared prologue and shape checks; returns the call and the plan in the compute dtype."""
    if not isinstance(plan, ProductBasisPlan):
        raise TypeError(f"{fn}: plan must be a ProductBasisPlan, got {type(plan).__name__}")
    floats = {"a_re": a_re, "a_im": a_im} if w_rho is None else {"a_re": a_re, "a_im": a_im, "w_rho": w_rho}
    call = prepare(fn, "product_basis", backend, floats=floats, indices={"group": group},
                   fixed={"codes": plan.codes, "coeff": plan.coeff, "group_offsets": plan.group_offsets})
    a_re, a_im = call.a_re, call.a_im
    if a_re.ndim != 2 or a_im.shape != a_re.shape:
        raise ValueError(f"{fn}: a_re / a_im must both be (N, H), got {tuple(a_re.shape)}, {tuple(a_im.shape)}")
    n = a_re.shape[0]
    if call.group.shape != (n,):
        raise ValueError(f"{fn}: group must be (N,) = ({n},), got {tuple(call.group.shape)}")
    if w_rho is not None and tuple(call.w_rho.shape) != (n, plan.n_densities):
        raise ValueError(f"{fn}: w_rho must be (N, P) = {(n, plan.n_densities)}, got {tuple(call.w_rho.shape)}")
    # the coefficients as prepared (cast to the compute dtype; detached under no_grad)
    coeff = call.coeff.to(call.dtype)
    if coeff is not plan.coeff:
        plan = plan._derived(plan.codes, coeff, plan.group_offsets)
    return call, plan


def _check_values(fn, call, plan):
    plan.validate(call.a_re.shape[1])
    check_range(fn, "group", call.group, plan.n_groups)


def product_basis(a_re: torch.Tensor, a_im: torch.Tensor, group: torch.Tensor, plan: ProductBasisPlan,
                  backend: str | None = None, check: bool = True) -> torch.Tensor:
    """``rho (N, P)``: the product terms of every atom's group contracted with ``plan.coeff``.

    ``a_re / a_im (N, H)``, ``group (N,)`` in ``0..G-1``. ``check=False`` skips the value checks
    (``plan.validate(H)`` and the range of ``group``): no host sync; the caller vouches for them.
    """
    call, plan = _prepare("product_basis", backend, a_re, a_im, group, plan)
    if check:
        _check_values("product_basis", call, plan)
    n = call.a_re.shape[0]
    if n == 0 or plan.n_terms == 0 or plan.n_densities == 0:
        return call.zeros((n, plan.n_densities))
    return call.impl.product_basis(call.a_re, call.a_im, call.group, plan)


def product_basis_adjoint(a_re: torch.Tensor, a_im: torch.Tensor, group: torch.Tensor, plan: ProductBasisPlan,
                          w_rho: torch.Tensor, backend: str | None = None,
                          check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dE/dRe a, dE/dIm a)``, each ``(N, H)``, for ``E = sum w_rho * rho`` (rho of :func:`product_basis`).

    ``check=False`` skips the same value checks as in :func:`product_basis`.
    """
    call, plan = _prepare("product_basis_adjoint", backend, a_re, a_im, group, plan, w_rho)
    if check:
        _check_values("product_basis_adjoint", call, plan)
    if call.a_re.shape[0] == 0 or plan.n_terms == 0 or plan.n_densities == 0:
        return call.zeros(call.a_re.shape), call.zeros(call.a_im.shape)
    return call.impl.product_basis_adjoint(call.a_re, call.a_im, call.group, plan, call.w_rho)
