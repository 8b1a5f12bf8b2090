"""The MD guard (acepy/fit/md_guard.py) on ASE dynamics and the selection of extrapolative frames
(acepy/fit/selection.py): thresholds, the stop (raise and halt), the flagged structures written for
labelling, gamma from the calculator equal to an independent grade, and the selected frames equal
to a brute-force ranking of frames graded one by one."""

import numpy as np
import pytest
from ase import units
from ase.io import read
from ase.md.verlet import VelocityVerlet

from acepy.calculators import ACECalculator
from acepy.fit import (ExtrapolationError, ExtrapolationGrade, ExtrapolationGuard, select_active_set,
                       select_extrapolative)
from data_paths import pacemaker_yaml
from test_active_set import _alni_structures

ALNI = "python-ace__tests__Al-Ni_opt_all.yaml"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = str(pacemaker_yaml(ALNI))
    rng = np.random.default_rng(20)
    train = _alni_structures(rng, 12)
    asi = tmp_path_factory.mktemp("guard") / "alni.asi"
    select_active_set(path, train).write(asi)
    start = train[3].copy()
    start.set_velocities(np.random.default_rng(4).normal(0, 0.05, (len(start), 3)))  # hot: ~1000 K
    return path, asi, start


def _run(path, asi, start, steps, interval, calc_grade=True, **guard_kwargs):
    atoms = start.copy()
    atoms.calc = ACECalculator(path, active_set=asi if calc_grade else None)
    dyn = VelocityVerlet(atoms, 2 * units.fs)
    grade = None if calc_grade else ExtrapolationGrade(path, asi)
    guard = ExtrapolationGuard(atoms, grade=grade, dyn=dyn, **guard_kwargs)
    dyn.attach(guard, interval=interval)
    error = None
    try:
        dyn.run(steps)
    except ExtrapolationError as err:
        error = err
    return atoms, dyn, guard, error


def test_guard_stops_with_the_step_atom_element_and_gamma(setup):
    path, asi, start = setup
    atoms, dyn, guard, err = _run(path, asi, start, 200, 2, select=1.5, stop=3.0)
    assert err is not None, guard.summary()
    assert err.step == dyn.nsteps and err.step % 2 == 0 and err.step == guard.history[-1][0]
    assert err.gamma >= 3.0 and f"step {err.step}: atom {err.atom} ({err.element})" in str(err)
    assert err.element == atoms[err.atom].symbol
    # the event's gamma is the structure's, computed independently (a fresh grade, no calculator)
    fresh = ExtrapolationGrade(path, asi)(err.atoms)
    np.testing.assert_allclose(err.atoms.arrays["gamma"], fresh, rtol=1e-12)
    assert err.atom == int(np.argmax(fresh)) and err.gamma == pytest.approx(fresh.max(), rel=1e-12)
    np.testing.assert_allclose(err.atoms.positions, atoms.positions)
    assert all(g < 3.0 for _, g in guard.history[:-1])  # it stopped at the first check past the threshold
    assert [s for s, _ in guard.history] == list(range(0, err.step + 1, 2))
    assert guard.stopped is err.event


def test_the_calculators_gamma_and_a_separate_grade_agree(setup):
    path, asi, start = setup
    _, _, with_calc, err1 = _run(path, asi, start, 200, 2, select=1.5, stop=3.0)
    _, _, with_grade, err2 = _run(path, asi, start, 200, 2, calc_grade=False, select=1.5, stop=3.0)
    assert err1.step == err2.step
    a, b = np.array(with_calc.history), np.array(with_grade.history)
    np.testing.assert_allclose(a, b, rtol=1e-10)


def test_halt_ends_the_run_cleanly_and_flagged_structures_are_written(setup, tmp_path):
    path, asi, start = setup
    out = tmp_path / "flagged.extxyz"
    atoms, dyn, guard, err = _run(path, asi, start, 200, 1, select=1.5, stop=3.0, on_stop="halt", write=out)
    assert err is None and guard.stopped is not None
    assert dyn.nsteps == guard.stopped.step < 200  # no step after the stop
    written = read(out, index=":")
    assert len(written) == len(guard.events) >= 1
    for frame, event in zip(written, guard.events):
        assert frame.info["step"] == event.step
        assert event.max_gamma >= 1.5 and np.all(event.gammas >= 1.5)
        # extxyz stores 8 decimals
        np.testing.assert_allclose(frame.arrays["gamma"][event.atoms], event.gammas, rtol=0, atol=1e-8)
        np.testing.assert_allclose(event.structure.arrays["gamma"][event.atoms], event.gammas, rtol=0, atol=0)
        assert np.all(np.delete(frame.arrays["gamma"], event.atoms) < 1.5)
    flagged = {e.step for e in guard.events}
    assert all((g >= 1.5) == (s in flagged) for s, g in guard.history)


def test_flag_only_never_stops(setup):
    path, asi, start = setup
    _, dyn, guard, err = _run(path, asi, start, 30, 3, select=1.0, stop=None)
    assert err is None and dyn.nsteps == 30 and guard.stopped is None
    assert len(guard.history) == 11 and len(guard.events) >= 1


def test_guard_refuses_what_cannot_work(setup):
    path, asi, start = setup
    atoms = start.copy()
    atoms.calc = ACECalculator(path)  # no active set
    with pytest.raises(ValueError, match="no extrapolation grade"):
        ExtrapolationGuard(atoms)
    grade = ExtrapolationGrade(path, asi)
    with pytest.raises(ValueError, match=r"stop \(1.0\) must be >= select \(2.0\)"):
        ExtrapolationGuard(atoms, grade=grade, select=2.0, stop=1.0)
    with pytest.raises(ValueError, match="on_stop='halt' needs dyn="):
        ExtrapolationGuard(atoms, grade=grade, on_stop="halt")
    with pytest.raises(ValueError, match="on_stop must be"):
        ExtrapolationGuard(atoms, grade=grade, on_stop="stop")


def _trajectory(start, rng, count):
    frames = []
    for k in range(count):
        a = start.copy()
        a.rattle(0.02 + 0.2 * rng.random(), seed=k)  # some frames far more distorted than others
        a.set_cell(a.cell * (1 + 0.04 * rng.normal()), scale_atoms=True)
        frames.append(a)
    return frames


def test_selection_is_the_top_of_a_one_by_one_ranking(setup, tmp_path):
    path, asi, start = setup
    grade = ExtrapolationGrade(path, asi)
    frames = _trajectory(start, np.random.default_rng(9), 24)
    scores = np.array([grade(a).max() for a in frames])  # one by one
    sel = select_extrapolative(frames, grade, n=5, chunk_atoms=70)  # batches of 3 frames
    np.testing.assert_allclose(sel.max_gamma, scores, rtol=1e-12)
    np.testing.assert_array_equal(sel.indices, np.argsort(-scores)[:5])
    np.testing.assert_allclose(sel.gammas, scores[sel.indices], rtol=1e-12)
    for a, i in zip(sel.frames, sel.indices):
        np.testing.assert_allclose(a.positions, frames[i].positions)
        np.testing.assert_allclose(a.arrays["gamma"], grade(frames[i]), rtol=1e-12)
    # spacing and threshold
    sel = select_extrapolative(frames, grade, n=24, min_spacing=4, threshold=float(np.median(scores)))
    assert np.all(sel.gammas >= np.median(scores))
    gaps = np.abs(sel.indices[:, None] - sel.indices[None, :]) + 99 * np.eye(len(sel.indices), dtype=int)
    assert gaps.min() >= 4
    # greedy: every frame above the threshold that was left out is within 4 of a better chosen one
    for i in np.nonzero(scores >= np.median(scores))[0]:
        if i not in sel.indices:
            assert any(abs(i - j) < 4 and scores[j] >= scores[i] for j in sel.indices)
    # from a file, with an ACECalculator standing for its grade: the same frames
    out = tmp_path / "md.extxyz"
    from ase.io import write

    write(out, frames)
    again = select_extrapolative(out, ACECalculator(path, active_set=asi), n=5)
    np.testing.assert_array_equal(again.indices, np.argsort(-scores)[:5])
    again.write(tmp_path / "picked.extxyz")
    back = read(tmp_path / "picked.extxyz", index=":")
    assert [b.info["frame"] for b in back] == again.indices.tolist()
    with pytest.raises(ValueError, match="must be an ExtrapolationGrade"):
        select_extrapolative(frames, "pot.asi")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        select_extrapolative(tmp_path / "none.traj", grade)
