"""Which LAMMPS pair styles can read a potential, and why not (the restrictions users trip on).

Facts, with where they come from (LAMMPS ``src/ML-PACE/pair_pace.cpp``, ``src/KOKKOS/pair_pace_kokkos.cpp``,
``doc/src/pair_pace.rst``; ICAMS/lammps-user-pace; ACE_SPEC.md 1.4-1.6 and 2.14):

- ``pair_style pace`` (ML-PACE) reads ``.yace`` and ``.ace`` files with PACE radial bases
  (ChebExpCos, ChebPow, ChebLinear, SBessel) and ACE1pack's ``ACE.jl.base`` polynomial (SHIPs)
  bases, not pacemaker's B-basis ``.yaml`` (convert it: ``pace_yaml2yace``, or acepy's
  ``write_yace``). ACEpotentials v0.6 spline tables (``radbasename: ACE.jl`` with
  ``splinenodalvals``) only load in the unmerged PR16 / ``wcwitt/lammps-user-pace`` fork.
- ``pair_style pace/kk`` (KOKKOS) copies PACE's spline tables to the device; any other radial
  basis stops with "Chosen radial basis style not supported by pair style pace/kk"
  (``copy_splines``). On the host it runs on one thread only.
- Both need ``units metal``, ``newton on`` (pair) and atom IDs (``PairPACE::init_style``); a
  KOKKOS run must ask for ``package kokkos newton on`` (its default on GPUs is newton off).
- ACEpotentials.jl's pair table goes through ``pair_style hybrid/overlay pace table <style> N``
  with one ``pair_coeff I J table FILE SECTION`` per pair of types (``I <= J``), the section named
  ``A_B`` or ``B_A``; LAMMPS stops on a distance below a section's inner radius.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StyleSupport", "lammps_support", "potential_kind"]


@dataclass(frozen=True)
class StyleSupport:
    style: str
    ok: bool
    reason: str  # why not, or what to know


def _ace(stack):
    for comp in getattr(stack, "components", ()):
        if getattr(getattr(comp, "spec", None), "functions", None) is not None:
            return comp
    return None


def potential_kind(stack) -> tuple[str, str]:
    """(radial kind, file format) of the stack's ACE component: kind 'pace' | 'ships' | 'spline',
    format the potential file's suffix ('.yace', '.ace', '.yaml', or '' when built in memory)."""
    ace = _ace(stack)
    if ace is None:
        return "", ""
    spec = ace.spec
    source = str(getattr(spec, "source", "") or "")
    options = getattr(stack, "load_options", None) or {}
    path = str(options.get("path") or source)
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ".yace"
    return spec.radial_kind, suffix


def lammps_support(stack) -> list[StyleSupport]:
    """For each LAMMPS pair style acepy writes decks for, whether it reads this potential."""
    kind, suffix = potential_kind(stack)
    if not kind:
        return [StyleSupport("pace", False, "the model has no ACE component")]
    out = []
    convert = " (acepy.lammps.write_input converts it to .yace)" if suffix in (".yaml", ".yml") else ""
    if kind == "spline":
        why = ("ACEpotentials v0.6 spline radial tables load only in the unmerged PR16 / wcwitt/lammps-user-pace "
               "fork of ML-PACE, not in LAMMPS's pair_style pace")
        out.append(StyleSupport("pace", False, why))
        out.append(StyleSupport("pace/kk", False, why))
    else:
        out.append(StyleSupport("pace", True, ("reads PACE radial bases" if kind == "pace" else
                                               "reads ACE1pack's ACE.jl.base (SHIPs) radial basis") + convert))
        if kind == "pace":
            out.append(StyleSupport("pace/kk", True, "PACE radial splines on the device; needs package kokkos newton "
                                    "on; one thread on a CPU host" + convert))
        else:
            out.append(StyleSupport("pace/kk", False, "pair_style pace/kk stops with 'Chosen radial basis style not "
                                    "supported by pair style pace/kk': it takes PACE radial bases only, not "
                                    "ACEpotentials.jl's (ACE.jl.base); use pair_style pace"))
    if any(hasattr(c, "tablength") and hasattr(c, "lammps_tables") for c in stack.components):
        out.append(StyleSupport("hybrid/overlay pace table", kind != "spline",
                                "the pair table as pair_style table, one pair_coeff per pair of types"))
    return out
