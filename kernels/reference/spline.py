"""Reference evaluation of vector-valued cubic Hermite spline tables (see ``kernels/spline.py``)."""

from __future__ import annotations

import torch


def spline_eval(coeffs, rscale, nlut, r, table_index, order: int):
    """Values and derivatives of the splines of table ``table_index[e]`` at ``r[e]``.

    ``coeffs (T, S, 4, K)``: segment ``n`` of table ``t`` covers ``[n/rscale[t], (n+1)/rscale[t]]``
    as ``c0 + c1 t + c2 t^2 + c3 t^3`` in the local coordinate ``t = r*rscale - n``. Segments
    ``n >= nlut[t]`` evaluate to zero. The caller guarantees ``r*rscale >= 1`` (``n >= 1``).
    Differentiable in ``r`` (``floor`` has zero gradient, so autograd sees the local cubic).
    """
    scale = rscale[table_index].to(r.dtype)
    x = r * scale
    n = torch.floor(x)
    t = (x - n).unsqueeze(-1)
    n = n.long()
    inside = (n < nlut[table_index]).unsqueeze(-1)
    n = n.clamp(0, coeffs.shape[1] - 1)
    c = coeffs[table_index, n]  # (E, 4, K)
    c0, c1, c2, c3 = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    zero = torch.zeros((), dtype=r.dtype, device=r.device)
    f = torch.where(inside, c0 + t * (c1 + t * (c2 + t * c3)), zero)
    if order == 0:
        return f, None, None
    s = scale.unsqueeze(-1)
    df = torch.where(inside, (c1 + t * (2.0 * c2 + 3.0 * c3 * t)) * s, zero)
    if order == 1:
        return f, df, None
    d2f = torch.where(inside, (2.0 * c2 + 6.0 * c3 * t) * (s * s), zero)
    return f, df, d2f
