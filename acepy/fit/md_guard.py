"""An observer that guards ASE dynamics with pacemaker's extrapolation grade gamma.

Two thresholds, as python-ace's ``PyACECalculator`` (``gamma_lower_bound`` 1.1,
``gamma_upper_bound`` 5.0 by default) and LAMMPS ``pair_style pace/extrapolation`` users set them:

- ``select``: a structure whose max gamma reaches it is recorded (step, max gamma, the atoms at or
  above it) and, with ``write=``, appended to a file for labelling (extxyz keeps the per-atom gamma
  as an array; any format ``ase.io.write`` appends to works);
- ``stop``: the run stops. ASE's dynamics have no stop request: the observer either raises
  :class:`ExtrapolationError` (``on_stop="raise"``, the default: ``dyn.run`` ends with it, naming
  the step, the atom, its element and its gamma, and carrying the structure), or
  (``on_stop="halt"``) ends the run cleanly: it sets ``dyn.max_steps = dyn.nsteps``, the bound
  that ``Dynamics.irun`` checks before every next step (ASE 3.23-3.29), so ``dyn.run`` returns
  after this step; ``guard.stopped`` then holds the event.

    calc = ACECalculator("pot.yaml", active_set="pot.asi")   # gamma comes with every force call
    atoms.calc = calc
    dyn = Langevin(atoms, 1 * units.fs, temperature_K=1500, friction=0.01)
    guard = ExtrapolationGuard(atoms, select=1.5, stop=5.0, dyn=dyn, write="extrapolative.extxyz")
    dyn.attach(guard, interval=10)
    dyn.run(10000)          # raises ExtrapolationError past gamma 5; guard.events lists the rest

gamma is taken from the calculator when it computes it (an :class:`acepy.calculators.ACECalculator`
with an active set: its ``gamma`` result of the current positions, free after the force call);
otherwise from ``grade`` (an :class:`~acepy.fit.extrapolation.ExtrapolationGrade`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acepy.errors import AcepyError

__all__ = ["ExtrapolationGuard", "ExtrapolationError", "ExtrapolationEvent"]

# python-ace's PyACECalculator defaults (pyace/asecalc.py: gamma_lower_bound, gamma_upper_bound)
DEFAULT_SELECT = 1.1
DEFAULT_STOP = 5.0


class ExtrapolationError(AcepyError, RuntimeError):
    """Raised by :class:`ExtrapolationGuard` when gamma passes the stop threshold: ``step``,
    ``atom`` (index of the atom with the largest gamma), ``element``, ``gamma`` (its value),
    ``threshold``, ``event`` (:class:`ExtrapolationEvent`) and ``atoms`` (a copy of the structure,
    per-atom gamma in ``atoms.arrays["gamma"]``)."""

    def __init__(self, event: "ExtrapolationEvent", threshold: float):
        self.event = event
        self.step, self.atom, self.element, self.gamma = event.step, event.atom, event.element, event.max_gamma
        self.threshold = threshold
        self.atoms = event.structure
        above = len(event.atoms)
        super().__init__(f"extrapolation: step {event.step}: atom {event.atom} ({event.element}) has gamma "
                         f"{event.max_gamma:.4g} >= the stop threshold {threshold:g} ({above} atom"
                         f"{'' if above == 1 else 's'} at or above the select threshold); the structure is in "
                         "this error's .atoms (label it and refit, or raise the threshold)")


@dataclass
class ExtrapolationEvent:
    """One check at or above the select threshold."""

    step: int
    max_gamma: float
    atom: int  # index of the atom with the largest gamma
    element: str
    atoms: np.ndarray  # indices of the atoms at or above the select threshold
    gammas: np.ndarray  # their gamma
    structure: object = field(default=None, repr=False)  # a copy of the Atoms, arrays["gamma"] per atom


class ExtrapolationGuard:
    """Observer for ``dyn.attach(guard, interval=k)`` (module docstring).

    ``atoms``: the structure the dynamics moves. ``grade``: an ``ExtrapolationGrade`` (needed
    unless the calculator gives ``gamma``). ``dyn``: the dynamics (for the step number; without it
    the guard counts its own calls). ``write``: a file to append the selected structures to.
    ``history`` holds ``(step, max gamma)`` of every check, ``events`` the selected ones,
    ``stopped`` the stop event (or None)."""

    def __init__(self, atoms, grade=None, select: float = DEFAULT_SELECT, stop: float | None = DEFAULT_STOP,
                 dyn=None, write=None, on_stop: str = "raise"):
        if on_stop not in ("raise", "halt"):
            raise ValueError(f"ExtrapolationGuard: on_stop must be 'raise' or 'halt', got {on_stop!r}")
        select = float(select)
        if not select > 0:
            raise ValueError(f"ExtrapolationGuard: select must be > 0, got {select}")
        if stop is not None and not float(stop) >= select:
            raise ValueError(f"ExtrapolationGuard: stop ({stop}) must be >= select ({select})")
        if on_stop == "halt" and dyn is None:
            raise ValueError("ExtrapolationGuard: on_stop='halt' needs dyn= (the dynamics to halt)")
        if grade is None and not _calculator_grades(atoms):
            raise ValueError("ExtrapolationGuard: no extrapolation grade: give grade=ExtrapolationGrade('pot.yaml', "
                             "'pot.asi'), or use ACECalculator('pot.yaml', active_set='pot.asi') as the calculator")
        self.atoms, self.grade, self.dyn = atoms, grade, dyn
        self.select, self.stop = select, None if stop is None else float(stop)
        self.on_stop = on_stop
        self.write = None if write is None else Path(write)
        self.history: list[tuple[int, float]] = []
        self.events: list[ExtrapolationEvent] = []
        self.stopped: ExtrapolationEvent | None = None
        self._calls = 0

    def gamma(self) -> np.ndarray:
        """Per-atom gamma of the current structure: the calculator's (computed with its forces)
        where it has an active set, else the guard's grade."""
        atoms = self.atoms
        if _calculator_grades(atoms):
            return np.asarray(atoms.calc.get_property("gamma", atoms), dtype=np.float64)
        return np.asarray(self.grade(atoms), dtype=np.float64)

    def _step(self) -> int:
        return int(self.dyn.nsteps) if self.dyn is not None else self._calls

    def __call__(self) -> None:
        step = self._step()
        self._calls += 1
        gamma = self.gamma()
        top = int(np.argmax(gamma)) if gamma.size else 0
        max_gamma = float(gamma[top]) if gamma.size else 0.0
        self.history.append((step, max_gamma))
        if max_gamma < self.select:
            return
        over = np.nonzero(gamma >= self.select)[0]
        snapshot = self.atoms.copy()
        snapshot.calc = None
        snapshot.arrays["gamma"] = gamma.copy()
        snapshot.info.update({"step": step, "max_gamma": max_gamma})
        event = ExtrapolationEvent(step=step, max_gamma=max_gamma, atom=top, element=str(self.atoms[top].symbol),
                                   atoms=over, gammas=gamma[over], structure=snapshot)
        self.events.append(event)
        if self.write is not None:
            from ase.io import write

            write(self.write, snapshot, append=True)
        if self.stop is not None and max_gamma >= self.stop:
            self.stopped = event
            if self.on_stop == "raise":
                raise ExtrapolationError(event, self.stop)
            self.dyn.max_steps = self.dyn.nsteps  # Dynamics.irun's loop bound: no further step

    def summary(self) -> str:
        """One line: checks, selected structures, the largest gamma seen, and whether it stopped."""
        top = max((g for _, g in self.history), default=0.0)
        stop = f", stopped at step {self.stopped.step}" if self.stopped is not None else ""
        return (f"{len(self.history)} checks, {len(self.events)} at or above gamma {self.select:g}, max gamma "
                f"{top:.4g}{stop}")


def _calculator_grades(atoms) -> bool:
    calc = getattr(atoms, "calc", None)
    return calc is not None and getattr(calc, "grade", None) is not None
