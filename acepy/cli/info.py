"""``acepy info POTENTIAL``: elements, cutoffs, functions per rank, radial kinds, embeddings, and
which LAMMPS pair styles read the potential (:func:`acepy.lammps.lammps_support`)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info", help="describe a potential: elements, cutoffs, basis, LAMMPS styles",
        description="Describe a potential: its elements and E0, each component's cutoff, the ACE radial basis, "
                    "C-tilde functions per element and rank, embeddings, the cutoff of every element pair, and "
                    "which LAMMPS pair styles can read it (pace, pace/kk, hybrid/overlay with the pair table).")
    parser.add_argument("potential", metavar="POTENTIAL",
                        help="a .yace / .ace / pacemaker .yaml file, or a bundled potential's name")
    parser.add_argument("--pair-table", metavar="TABLE", help="a LAMMPS pair_style table file stacked with it "
                        "(ACEpotentials.jl's *_pairpot.table)")
    parser.set_defaults(handler=run)


def _pair_cutoffs(stack) -> list[str]:
    ace = next((c for c in stack.components if getattr(getattr(c, "spec", None), "functions", None) is not None),
               None)
    lines = []
    n = len(stack.elements)
    for i in range(n):
        for j in range(i, n):
            a, b = stack.elements[i], stack.elements[j]
            parts = []
            if ace is not None:
                rc = ace.spec.cutoff(i, j)
                rc_ji = ace.spec.cutoff(j, i)
                parts.append(f"ACE {rc:g}" + (f" ({b}-{a}: {rc_ji:g})" if rc_ji != rc else ""))
            for comp in stack.components:
                if hasattr(comp, "pair_cutoff"):
                    parts.append(f"pair table {comp.pair_cutoff(a, b):g}")
            lines.append(f"  {a}-{b}: " + ", ".join(parts) + " A")
    return lines


def run(args) -> int:
    from acepy.lammps import lammps_support
    from acepy.loading import load

    stack = load(args.potential, pair_table=args.pair_table)
    print(stack.summary())
    print("cutoffs by element pair:")
    print("\n".join(_pair_cutoffs(stack)))
    print("LAMMPS:")
    for s in lammps_support(stack):
        print(f"  {s.style}: {'yes' if s.ok else 'no'} ({s.reason})")
    return 0
