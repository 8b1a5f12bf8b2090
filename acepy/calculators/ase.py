"""A drop-in ASE calculator for acepy models."""

from __future__ import annotations

import difflib
import os

import numpy as np
import torch
from ase.calculators.calculator import (
    Calculator,
    Parameters,
    PropertyNotImplementedError,
    all_changes,
    equal,
)

from acepy.models.stack import Stack

# ASE's own Calculator.__init__ arguments that mean something for an in-process calculator.
# (`restart` reads a calculator's output files, which this one does not write;
# `ignore_bad_restart_file` is deprecated in ASE.)
ASE_KEYWORDS = ("label", "atoms", "directory")
# acepy.load's options besides path/pair_table/dtype/backend/device; they reach the model only when
# the calculator loads it (model given as a path).
LOAD_KEYWORDS = ("skin", "table_n", "table_style", "table_cutoff", "num_threads")
_NAMED = ("model", "device", "dtype", "backend", "pair_table")

_DTYPE_NAMES = {torch.float64: "float64", torch.float32: "float32"}


def _dtype_name(dtype) -> str:
    """'float64' / 'float32' from a torch dtype or its name."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES.values():
        return dtype
    raise ValueError(f"ACECalculator: dtype must be 'float64' or 'float32' (or the torch dtype), got {dtype!r}")


def _same_device(a, b) -> bool:
    """'cuda' and 'cuda:0' name the same device when one of them has no index."""
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _json_table_cutoff(table_cutoff):
    """``{("A", "B"): rc}`` as ``{"A-B": rc}`` (JSON keys are strings); a float stays a float."""
    if isinstance(table_cutoff, dict):
        return {(k if isinstance(k, str) else "-".join(k)): float(v) for k, v in table_cutoff.items()}
    return None if table_cutoff is None else float(table_cutoff)


def _load_table_cutoff(table_cutoff):
    """The inverse of :func:`_json_table_cutoff`: ``{"A-B": rc}`` back to acepy.load's ``{("A", "B"): rc}``."""
    if isinstance(table_cutoff, dict):
        return {(tuple(k.split("-")) if isinstance(k, str) else tuple(k)): v for k, v in table_cutoff.items()}
    return table_cutoff


class ACECalculator(Calculator):
    """ASE calculator: ``energy``, ``free_energy``, ``energies``, ``forces`` and ``stress`` (Voigt).

    ``model`` is either

    - a path to a ``.yace``/``.ace``/``.yaml`` potential or a bundled potential's name: the
      calculator loads it with ``acepy.load(model, pair_table=..., device=..., dtype=...,
      backend=..., skin=..., table_n=..., table_style=..., table_cutoff=..., num_threads=...)``
      (unset options take acepy.load's defaults); or
    - a model already built (a :class:`~acepy.models.stack.Stack`, e.g. from ``acepy.load``). Its
      dtype, device, backend, skin and pair table were fixed when it was built: passing a value
      that differs from the model's (or any ``pair_table``/``table_*``) raises ``ValueError``; pass
      those to ``acepy.load`` instead. ``num_threads`` is then the thread count of each call.

    ASE's ``label``, ``atoms`` and ``directory`` are accepted; any other keyword raises
    ``TypeError`` (a typo would otherwise be silently ignored).

    ``calc.parameters`` (and ``calc.todict()``, which trajectories and ``ase.db`` store) record the
    potential: ``model`` (absolute file path or bundled name), ``pair_table`` and its options,
    ``dtype``, ``backend`` (the one in use), ``device``, ``skin``, ``num_threads``; for a calculator
    whose model came from a file, ``ACECalculator(**calc.todict())`` rebuilds it. A model built by
    hand records its ``elements`` instead of a file.

    Results are float64 numpy arrays (and a float energy) whatever the model's dtype, as ASE
    expects: a ``dtype="float32"`` model computes in float32 (about 1e-5 relative to the largest
    value, see the README) and its results are converted at this boundary.

    ``get_potential_energy()`` alone computes energies only (no forces); asking for forces or stress
    runs the gradient pass, which gives both at once (stress where the cell has a volume). Stress
    of a structure without a cell volume (a cluster with a zero cell) raises ASE's
    ``PropertyNotImplementedError``. ASE's sign: positive under tension.

    :meth:`get_hessian` gives d2E/dx dx (eV/A^2, fixed cell) as a ``(3N, 3N)`` array, index
    ``3 i + a``: the layout of ASE's ``VibrationsData``, Sella and DeePMD's ``hessian.npy``.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "gamma"]

    def __init__(self, model, device: str | None = None, dtype: str | torch.dtype | None = None,
                 backend: str | None = None, pair_table: str | None = None, active_set=None, **kwargs):
        unknown = [k for k in kwargs if k not in ASE_KEYWORDS + LOAD_KEYWORDS]
        if unknown:
            accepted = _NAMED + ("active_set",) + LOAD_KEYWORDS + ASE_KEYWORDS
            hint = difflib.get_close_matches(unknown[0], accepted, n=1)
            raise TypeError(f"ACECalculator() got an unexpected keyword argument {unknown[0]!r}"
                            + (f" (did you mean {hint[0]!r}?)" if hint else "")
                            + f"; accepted: {', '.join(accepted)}")
        ase_kwargs = {k: kwargs[k] for k in ASE_KEYWORDS if k in kwargs}
        load_kwargs = {k: kwargs[k] for k in LOAD_KEYWORDS if k in kwargs and kwargs[k] is not None}
        self._call_threads = None  # per-call thread count, for a model given ready-made
        if isinstance(model, Stack):
            self._check_given_model(model, device, dtype, backend, pair_table, load_kwargs)
            self.model = model
            self._call_threads = load_kwargs.get("num_threads")
            options = getattr(model, "load_options", None)
        else:
            if not isinstance(model, (str, os.PathLike)):
                raise TypeError(f"ACECalculator: model must be an acepy model (a Stack, e.g. from acepy.load) "
                                f"or the path of a potential file, got {type(model).__name__}")
            from acepy.loading import load

            given = {"pair_table": pair_table, "device": device, "backend": backend,
                     "dtype": None if dtype is None else _dtype_name(dtype)}
            given = {k: v for k, v in given.items() if v is not None}
            if "table_cutoff" in load_kwargs:
                load_kwargs["table_cutoff"] = _load_table_cutoff(load_kwargs["table_cutoff"])
            self.model = load(model, **given, **load_kwargs)
            options = self.model.load_options  # acepy.load records the resolved file (or bundled name)
        super().__init__(**ase_kwargs)
        self.grade = self._extrapolation_grade(active_set, options)
        self.parameters = Parameters(self._describe(options))
        if isinstance(active_set, (str, os.PathLike)):
            self.parameters["active_set"] = str(active_set)

    def _extrapolation_grade(self, active_set, options):
        """The per-atom ``gamma`` result's grader: an ``.asi`` path with the model loaded from a
        pacemaker ``.yaml``, or an :class:`acepy.fit.extrapolation.ExtrapolationGrade`."""
        if active_set is None:
            return None
        from acepy.fit.extrapolation import ExtrapolationGrade, attach

        if isinstance(active_set, ExtrapolationGrade):
            grade = active_set
        else:
            path = (options or {}).get("path")
            if not path or not str(path).lower().endswith((".yaml", ".yml")):
                raise ValueError(f"ACECalculator: active_set={str(active_set)!r} needs the model loaded from its "
                                 f"pacemaker .yaml (the B-basis of the active set; model: {path or 'built by hand'}); "
                                 "or pass active_set=acepy.fit.extrapolation.ExtrapolationGrade(yaml, asi)")
            grade = ExtrapolationGrade(path, active_set)
        attach(self.model, grade)
        return grade

    @staticmethod
    def _check_given_model(model: Stack, device, dtype, backend, pair_table, load_kwargs):
        """A built model ignores load options: refuse any that would not hold for it."""
        def refuse(what: str, value, own) -> ValueError:
            return ValueError(f"ACECalculator: {what}={value!r} but the model given is already built"
                              + ("" if own is None else f" with {what}={own!r}")
                              + f"; pass {what} to acepy.load(...) instead (or pass the potential's path "
                              "to ACECalculator)")

        if dtype is not None and _dtype_name(dtype) != _dtype_name(model.dtype):
            raise refuse("dtype", dtype, _dtype_name(model.dtype))
        if device is not None and not _same_device(device, model.device):
            raise refuse("device", device, str(model.device))
        if backend is not None and backend != model.backend:
            raise refuse("backend", backend, model.backend)
        if pair_table is not None:
            raise refuse("pair_table", pair_table, None)
        for key in ("table_n", "table_style", "table_cutoff"):
            if key in load_kwargs:
                raise refuse(key, load_kwargs[key], None)
        skin = getattr(getattr(model, "graph_cache", None), "skin", None)
        if "skin" in load_kwargs and float(load_kwargs["skin"]) != skin:
            raise refuse("skin", load_kwargs["skin"], skin)

    def _describe(self, options: dict | None) -> dict:
        """The JSON-serialisable record of the potential in calc.parameters (see the class doc)."""
        m = self.model
        skin = getattr(getattr(m, "graph_cache", None), "skin", None)
        threads = self._call_threads if self._call_threads is not None else getattr(m, "num_threads", None)
        if not options or not options.get("path"):  # built by hand: what the model itself says
            params = {"elements": [str(e) for e in m.elements]}
        else:
            table = options.get("pair_table")
            params = {"model": options["path"], "pair_table": table}
            if table is not None:  # the table options only mean something with a table
                for key in ("table_n", "table_style"):
                    if options.get(key) is not None:
                        params[key] = options[key]
                if options.get("table_cutoff") is not None:
                    params["table_cutoff"] = _json_table_cutoff(options["table_cutoff"])
            if threads is None:
                threads = options.get("num_threads")
        params.update({"dtype": _dtype_name(m.dtype), "backend": m.backend, "device": str(m.device),
                       "skin": None if skin is None else float(skin),
                       "num_threads": None if threads is None else int(threads)})
        return params

    def set(self, **kwargs):
        """The parameters describe the model this calculator was built with: they cannot change
        (a changed value would not reach the model). Setting a parameter to its value is a no-op."""
        changed = [k for k, v in kwargs.items() if k not in self.parameters or not equal(v, self.parameters[k])]
        if changed:
            raise ValueError(f"ACECalculator: cannot set {', '.join(changed)}: the parameters describe the "
                             "model this calculator was built with; build a new ACECalculator instead")
        return {}

    def check_state(self, atoms, tol=1e-15):
        """ASE's ``compare_atoms`` (same properties, same order) with exact equality, which is what its
        default tolerance of 1e-15 amounts to, in a few ``array_equal`` calls instead of an
        ``allclose`` per property: ASE asks twice per MD step (forces, then stress), and its check
        costs about 0.2 ms each time, a tenth of a small cell's evaluation. A looser ``tol`` goes to
        ASE's own check."""
        if tol > 1e-15 or self.atoms is None:
            return super().check_state(atoms, tol)
        old, ignored = self.atoms, set(self.ignored_changes)
        changes = []
        for prop in ("cell", "pbc"):
            if prop not in ignored and not np.array_equal(np.asarray(getattr(old, prop)),
                                                          np.asarray(getattr(atoms, prop))):
                changes.append(prop)
        arrays1, arrays2 = old.arrays, atoms.arrays
        for prop in all_changes:
            if prop in ("cell", "pbc") or prop in ignored:
                continue
            if (prop in arrays1) != (prop in arrays2):
                changes.append(prop)
            elif prop in arrays1 and not np.array_equal(arrays1[prop], arrays2[prop]):
                changes.append(prop)
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if system_changes:
            self.results = {}
        # ASE asks for one property at a time and keeps what it has: an energy-only call skips the
        # gradient pass; forces and stress come out of the same pass, so either request gets both
        # (the stress only where the cell has a volume), and a later get_stress() costs nothing.
        has_volume = abs(float(np.linalg.det(self.atoms.cell.array))) > 0.0
        if "stress" in properties and not has_volume:
            raise PropertyNotImplementedError(
                f"ACECalculator: stress needs a cell of non-zero volume; this structure "
                f"({self.atoms.get_chemical_formula()}, pbc={self.atoms.pbc.tolist()}) has cell volume 0")
        want_grad = "forces" in properties or "stress" in properties
        extra = {} if self._call_threads is None else {"num_threads": self._call_threads}
        out = self.model.evaluate(self.atoms, compute_forces=want_grad, compute_stress=want_grad and has_volume,
                                  **extra)
        energy = float(_numpy64(out["energy"])[0])
        self.results.update({"energy": energy, "free_energy": energy, "energies": _numpy64(out["energies"])})
        if "forces" in out:
            self.results["forces"] = _numpy64(out["forces"])
        if "stress" in out:
            s = _numpy64(out["stress"][0])
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        if self.grade is not None:  # per atom, with every calculation (as python-ace's calculator)
            self.results["gamma"] = _numpy64(self.grade.gamma(self.atoms, model=self.model))


    def get_hessian(self, atoms=None, method: str = "auto") -> np.ndarray:
        """The Hessian d2E/dx dx at fixed cell in eV/A^2, ``(3N, 3N)`` (row ``3 i + a``), from the
        model's exact per-site route (``method`` as in :meth:`acepy.models.Stack.hessian`). Kept
        with the other results until the atoms change."""
        if atoms is None:
            atoms = self.atoms
        if atoms is None:
            raise ValueError("ACECalculator.get_hessian: no atoms (pass them, or attach the calculator to them)")
        key = f"hessian:{method}"
        if self.calculation_required(atoms, [key]):
            if self.check_state(atoms):
                self.results = {}
            self.atoms = atoms.copy()
            extra = {} if self._call_threads is None else {"num_threads": self._call_threads}
            h = self.model.hessian(self.atoms, method=method, **extra)
            n = len(self.atoms)
            self.results[key] = _numpy64(h).reshape(3 * n, 3 * n)
        return self.results[key].copy()


def _numpy64(t: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy (ASE expects float64; a float32 model's values are widened exactly)."""
    return t.detach().to("cpu", torch.float64).numpy()
