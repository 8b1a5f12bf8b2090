"""Generalized Clebsch-Gordan coefficients of rotation-invariant ACE products, in pacemaker's convention,
and the conversion of pacemaker's B functions to C-tilde form that uses them (below both `io/` and
`basis/`, which both need them).

An ACE B-function of rank r couples r spherical harmonics Y_{l_1 m_1} ... Y_{l_r m_r} (PACE's complex
Y_lm with Y00 = 1, ACE_SPEC.md 2.9; the normalisation of Y does not enter the coefficients) to total
angular momentum L = 0:

    B = sum over (m_1..m_r) with sum m = 0 of  C^{ls, LS}_{ms} * A_{l_1 m_1} ... A_{l_r m_r}

The coefficient C is a product of ordinary Clebsch-Gordan coefficients <j1 m1 j2 m2 | J M>
(Condon-Shortley phase, orthonormal: sum_{m1,m2} <j1 m1 j2 m2|J M>^2 = 1), one per node of a fixed
binary *coupling tree*. The tree is the one python-ace / pacemaker use (`generate_coupling_tree` in
ML-PACE `ace/ace_couplings.cpp`), stated here in words:

* number the leaves (factors) 0..r-1 and the intermediate couplings r..2r-3 (these carry
  LS[0..r-3], the `lint`/`LS` list of pacemaker), the root (L = 0) is last;
* first couple consecutive leaf pairs (0,1), (2,3), ... ; each pair gets the next intermediate label,
  or the root once the labels are used up;
* then, while more than one intermediate is pending (and the root is not reached), couple the two
  oldest pending intermediates into the next label (or the root);
* for odd rank the last pending intermediate is finally coupled with the last leaf into the root.

Each node (a, b) -> c contributes <l_a m_a l_b m_b | l_c m_c> with m_c = m_a + m_b, in that order
(a first). Examples (L_i = LS[i]):

* rank 2: <l1 m1 l2 m2 | 0 0>                                    (LS empty)
* rank 3: <l1 m1 l2 m2 | L1 M1> <L1 M1 l3 m3 | 0 0>                (LS = [L1], L1 = l3)
* rank 4: <l1 m1 l2 m2 | L1 M1> <l3 m3 l4 m4 | L2 M2> <L1 M1 L2 M2 | 0 0>       (L1 = L2)
* rank 5: (l1 l2)L1, (l3 l4)L2, (L1 L2)L3, <L3 M3 l5 m5 | 0 0>     (L3 = l5)
* rank 6: (l1 l2)L1, (l3 l4)L2, (l5 l6)L3, (L1 L2)L4, <L3 M3 L4 M4 | 0 0>      (L3 = L4)

The last LS entry is fixed by the root (odd rank: it equals the last l; even rank >= 4: it equals the
one before), so pacemaker files may omit it; :func:`expand_LS` restores it as python-ace does.

The coefficients are **not** pacemaker's "half basis" (`gen_cgs` of a python-ace B-function, which
keeps only m-tuples whose first non-zero m is positive and doubles those): every m-tuple appears with
its plain coefficient. For even sum(ls), C_{-ms} = C_{ms} and the product of A's at -ms is the
complex conjugate of the one at ms, so both forms give the same Re(B).

Exactness: every Clebsch-Gordan coefficient is sign * sqrt(rational); it is computed from the Racah
formula in integers, the product along the tree is kept as sign * sqrt(Fraction), and only the final
value is rounded (once) to a float.
"""

from __future__ import annotations

import decimal
import math
from fractions import Fraction
from functools import lru_cache
from typing import Sequence

import numpy as np

__all__ = [
    "clebsch_gordan",
    "clebsch_gordan_exact",
    "coupling_tree",
    "expand_LS",
    "generalized_cg",
    "generalized_cg_exact",
    "coupling_table",
    "valid_LS",
]

_DECIMAL_CONTEXT = decimal.Context(prec=60)


# ------------------------------------------------------------------------------------------------
# Ordinary Clebsch-Gordan coefficients (integer angular momenta), exact
# ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def clebsch_gordan_exact(j1: int, m1: int, j2: int, m2: int, J: int, M: int) -> tuple[int, Fraction]:
    """<j1 m1 j2 m2 | J M> as (sign, square) with value = sign * sqrt(square), exactly.

    Racah's closed form (e.g. Varshalovich et al., Quantum Theory of Angular Momentum, 8.2.1 eq. 3),
    Condon-Shortley phase. Returns (0, 0) for a vanishing coefficient (selection rules included).
    """
    if m1 + m2 != M or abs(m1) > j1 or abs(m2) > j2 or abs(M) > J:
        return 0, Fraction(0)
    if J < abs(j1 - j2) or J > j1 + j2:
        return 0, Fraction(0)
    f = math.factorial
    pre = Fraction((2 * J + 1) * f(J + j1 - j2) * f(J - j1 + j2) * f(j1 + j2 - J), f(j1 + j2 + J + 1))
    pre *= f(J + M) * f(J - M) * f(j1 - m1) * f(j1 + m1) * f(j2 - m2) * f(j2 + m2)
    total = Fraction(0)
    kmin = max(0, j2 - J - m1, j1 - J + m2)
    kmax = min(j1 + j2 - J, j1 - m1, j2 + m2)
    for k in range(kmin, kmax + 1):
        den = (f(k) * f(j1 + j2 - J - k) * f(j1 - m1 - k) * f(j2 + m2 - k)
               * f(J - j2 + m1 + k) * f(J - j1 - m2 + k))
        total += Fraction((-1) ** k, den)
    if total == 0:
        return 0, Fraction(0)
    sign = 1 if total > 0 else -1
    return sign, pre * total * total


def _to_float(sign: int, square: Fraction) -> float:
    """sign * sqrt(square) rounded once to double (60 significant digits before the rounding)."""
    if sign == 0 or square == 0:
        return 0.0
    root = (decimal.Decimal(square.numerator, _DECIMAL_CONTEXT)
            / decimal.Decimal(square.denominator, _DECIMAL_CONTEXT)).sqrt(_DECIMAL_CONTEXT)
    return float(sign * root)


def clebsch_gordan(j1: int, m1: int, j2: int, m2: int, J: int, M: int) -> float:
    """<j1 m1 j2 m2 | J M> (Condon-Shortley), as a float."""
    return _to_float(*clebsch_gordan_exact(j1, m1, j2, m2, J, M))


# ------------------------------------------------------------------------------------------------
# The coupling tree and the LS list
# ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def coupling_tree(rank: int) -> tuple[tuple[int, int, int], ...]:
    """Nodes (a, b, c) of pacemaker's coupling tree, bottom-up: c couples a and b (a first).

    Indices 0..rank-1 are the leaves, rank..2*rank-3 the intermediates LS[0..rank-3], and
    2*rank-2 is the root (L = 0). Rank 1 has no nodes.
    """
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if rank == 1:
        return ()
    root = 2 * rank - 2
    leaves = list(range(rank))
    labels = list(range(rank, 2 * rank - 2))
    nodes: list[tuple[int, int, int]] = []
    pending: list[int] = []
    last = None

    def next_label() -> int:
        return labels.pop(0) if labels else root

    for _ in range(rank // 2):
        a, b = leaves.pop(0), leaves.pop(0)
        last = next_label()
        nodes.append((a, b, last))
        pending.append(last)
    while len(pending) > 1 and last != root:
        a, b = pending.pop(0), pending.pop(0)
        last = next_label()
        nodes.append((a, b, last))
        pending.append(last)
    if last != root:  # odd rank: the leftover leaf closes the tree
        nodes.append((pending.pop(0), leaves.pop(0), root))
    assert len(nodes) == rank - 1 and not leaves and not labels
    return tuple(nodes)


def _check_ls(ls) -> tuple[int, ...]:
    try:
        out = tuple(int(l) for l in ls)
    except (TypeError, ValueError):
        raise ValueError(f"ls must be a sequence of integers, got {ls!r}") from None
    if not out:
        raise ValueError("ls must not be empty (rank >= 1)")
    if any(l < 0 for l in out) or any(int(l) != l for l in ls):
        raise ValueError(f"ls must be non-negative integers, got {list(ls)}")
    return out


def expand_LS(ls: Sequence[int], LS: Sequence[int] = ()) -> tuple[int, ...]:
    """The full list of rank-2 intermediate couplings of a B-function.

    Accepts the full list (length rank-2) or, as python-ace does, the list without its last entry
    (which the root fixes: the last l for odd rank, the previous LS for even rank >= 4). Ranks 1
    and 2 take an empty list. Raises ValueError for any other length or a negative value.
    """
    ls = _check_ls(ls)
    LS = tuple(int(L) for L in LS)
    rank = len(ls)
    if any(L < 0 for L in LS):
        raise ValueError(f"LS must be non-negative integers, got {list(LS)} (ls = {list(ls)})")
    full = max(rank - 2, 0)
    if len(LS) == full:
        return LS
    if rank >= 3 and len(LS) == full - 1:
        if rank % 2 == 1:
            return LS + (ls[-1],)
        return LS + (LS[-1],)
    raise ValueError(f"LS = {list(LS)} has {len(LS)} entries; rank {rank} (ls = {list(ls)}) needs {full}"
                     + (f" (or {full - 1})" if rank >= 3 else ""))


def valid_LS(ls: Sequence[int], LS: Sequence[int]) -> bool:
    """True if every node of the tree satisfies the triangle rule (the coupling can be non-zero)."""
    ls = _check_ls(ls)
    LS = expand_LS(ls, LS)
    labels = ls + LS + (0,)
    for a, b, c in coupling_tree(len(ls)):
        if not abs(labels[a] - labels[b]) <= labels[c] <= labels[a] + labels[b]:
            return False
    return True


# ------------------------------------------------------------------------------------------------
# Generalized coefficients
# ------------------------------------------------------------------------------------------------


def generalized_cg_exact(ls: Sequence[int], LS: Sequence[int], ms: Sequence[int]) -> tuple[int, Fraction]:
    """The generalized Clebsch-Gordan coefficient as (sign, square), value = sign * sqrt(square).

    See the module docstring for the convention. Zero (0, 0) where sum(ms) != 0 or a node's
    triangle or |M| <= L rule fails.
    """
    ls = _check_ls(ls)
    LS = expand_LS(ls, LS)
    ms = tuple(int(m) for m in ms)
    rank = len(ls)
    if len(ms) != rank:
        raise ValueError(f"ms = {list(ms)} has {len(ms)} entries, ls = {list(ls)} has {rank}")
    bad = [t for t in range(rank) if abs(ms[t]) > ls[t]]
    if bad:
        raise ValueError(f"|m| > l at factor {bad[0]}: ms = {list(ms)}, ls = {list(ls)}")
    if sum(ms) != 0:
        return 0, Fraction(0)
    if rank == 1:
        return (1, Fraction(1)) if ls[0] == 0 else (0, Fraction(0))
    labels = list(ls) + list(LS) + [0]
    mvals = list(ms) + [0] * (rank - 1)
    sign, square = 1, Fraction(1)
    for a, b, c in coupling_tree(rank):
        mvals[c] = mvals[a] + mvals[b]
        s, q = clebsch_gordan_exact(labels[a], mvals[a], labels[b], mvals[b], labels[c], mvals[c])
        if s == 0:
            return 0, Fraction(0)
        sign *= s
        square *= q
    return sign, square


def generalized_cg(ls: Sequence[int], LS: Sequence[int], ms: Sequence[int]) -> float:
    """Coefficient of A_{l1 m1} ... A_{lr mr} in pacemaker's B-function (ls, LS), as a float.

    ``LS`` is pacemaker's `lint` list (full length rank-2, or without its redundant last entry;
    empty for ranks 1 and 2). The value is the product of Condon-Shortley Clebsch-Gordan
    coefficients along python-ace's coupling tree (module docstring), with no half-basis doubling.
    """
    return _to_float(*generalized_cg_exact(ls, LS, ms))


@lru_cache(maxsize=4096)
def _table(ls: tuple[int, ...], LS: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], ...], tuple[float, ...]]:
    rank = len(ls)
    if rank == 1:
        return (((0,),), (1.0,)) if ls[0] == 0 else ((), ())
    labels = list(ls) + list(LS) + [0]
    nodes = coupling_tree(rank)
    out_ms: list[tuple[int, ...]] = []
    out_c: list[float] = []
    mvals = [0] * (2 * rank - 1)

    # Top-down: fix the root's M = 0, then split each node's M between its two children. Only
    # |m| <= l is ever generated, so the work is the number of non-zero terms, not (2l+1)^rank.
    def descend(k: int, sign: int, square: Fraction) -> None:
        if k < 0:
            out_ms.append(tuple(mvals[:rank]))
            out_c.append(_to_float(sign, square))
            return
        a, b, c = nodes[k]
        la, lb, M = labels[a], labels[b], mvals[c]
        for ma in range(max(-la, M - lb), min(la, M + lb) + 1):
            s, q = clebsch_gordan_exact(la, ma, lb, M - ma, labels[c], M)
            if s == 0:
                continue
            mvals[a], mvals[b] = ma, M - ma
            descend(k - 1, sign * s, square * q)

    descend(len(nodes) - 1, 1, Fraction(1))
    order = sorted(range(len(out_ms)), key=lambda i: out_ms[i])
    return tuple(out_ms[i] for i in order), tuple(out_c[i] for i in order)


def coupling_table(ls: Sequence[int], LS: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """All m-tuples with a non-zero generalized coefficient, and the coefficients.

    Returns ``(ms_combs, coeffs)``: int64 ``(S, rank)`` in lexicographic order, float64 ``(S,)``.
    Every returned row has sum(ms) == 0 and |m_t| <= l_t; ``coeffs[s] == generalized_cg(ls, LS,
    ms_combs[s])``. An (ls, LS) whose tree breaks a triangle rule gives S = 0.
    """
    ls = _check_ls(ls)
    LS = expand_LS(ls, LS)
    ms, coeffs = _table(ls, LS)
    rank = len(ls)
    return (np.array(ms, dtype=np.int64).reshape(len(ms), rank), np.array(coeffs, dtype=np.float64))


# ---- pacemaker B functions to C-tilde form (read by acepy.io.read_pacemaker_yaml) ----------------
# python-ace's compression drops merged coefficients below this magnitude.
COMPRESS_DROP = 1e-15


def b_function_to_ctilde_terms(mus, ns, ls, LS):
    """One B function's C-tilde terms before the merge over functions (steps 1 and 2 of the conversion described in
    :mod:`acepy.io.pacemaker_yaml`).

    Returns ``(mus, ns, ls, terms)`` where the first three are tuples, possibly reordered by the
    compression, and ``terms`` maps each m-tuple to its coefficient (the B coefficient c_p is
    still to be multiplied in). Uses the generalized Clebsch-Gordan coefficients of
    :func:`coupling_table`.
    """
    rank = len(ls)
    ms_combs, coeffs = coupling_table(list(ls), list(LS))
    terms: list[tuple[tuple[int, ...], float]] = []
    for row, value in zip(ms_combs.tolist(), coeffs.tolist()):
        first = next((m for m in row if m != 0), 0)
        if first < 0:  # half basis: -ms carries the same real part as ms ...
            continue
        terms.append((tuple(row), 2.0 * value if first > 0 else value))  # ... so ms counts twice
    factors = [(int(mus[t]), int(ns[t]), int(ls[t])) for t in range(rank)]
    merged: dict[tuple[int, ...], float] = {}
    order = None
    for ms, value in terms:
        tup = sorted(factors[t] + (ms[t], t) for t in range(rank))
        order = [x[:3] for x in tup]  # the same for every tuple: a sort of the factors
        new_ms = tuple(x[3] for x in tup)
        merged[new_ms] = merged.get(new_ms, 0.0) + value
    merged = {k: v for k, v in merged.items() if abs(v) >= COMPRESS_DROP}
    if len(merged) < len(terms):
        mus, ns, ls = (tuple(f[i] for f in order) for i in range(3))
        return mus, ns, ls, merged
    return tuple(f[0] for f in factors), tuple(f[1] for f in factors), tuple(f[2] for f in factors), dict(terms)
