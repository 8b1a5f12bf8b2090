"""``acepy test -m POTENTIAL -s SYSTEM -d PREFIX``: DeePMD-kit's ``dp test`` for acepy potentials
(:func:`acepy.fit.dptest.dp_test`): the detail files ``PREFIX.e.out`` ... ``PREFIX.h.out`` and the
MAE/RMSE summary."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "test", help="dp test: errors of a potential on labelled data, DeePMD-kit's detail files",
        description="Test a potential on labelled data as DeePMD-kit's 'dp test' does: print the MAE and RMSE of "
                    "energies (eV and eV/atom), forces (eV/A), virials (eV and eV/atom) and, where the data has "
                    "them, Hessians (eV/A^2), and with -d write PREFIX.e.out, .e_peratom.out, .f.out, .v.out, "
                    ".v_peratom.out and .h.out in DeePMD-kit's column layouts.")
    parser.add_argument("-m", "--model", required=True, metavar="POTENTIAL",
                        help="a .yace / .ace / pacemaker .yaml file, or a bundled potential's name")
    parser.add_argument("-s", "--system", required=True, metavar="SYSTEM",
                        help="a DeePMD system (type.raw, set.*/), a folder of systems, or an extxyz file")
    parser.add_argument("-d", "--detail-file", metavar="PREFIX", help="write the detail files PREFIX.*.out")
    parser.add_argument("-n", "--numb-test", type=int, default=0, help="frames per system (0: all)")
    parser.add_argument("--type-map", nargs="+", metavar="EL", help="element of each type index, for systems "
                        "without type_map.raw")
    parser.add_argument("--pair-table", metavar="TABLE", help="a LAMMPS pair_style table stacked with the potential")
    parser.add_argument("--no-hessian", action="store_true", help="skip the Hessians even where the data has them")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from acepy.fit.dptest import dp_test, format_dp_test
    from acepy.loading import load

    if args.numb_test < 0:
        raise ValueError(f"--numb-test must be >= 0, got {args.numb_test}")
    model = load(args.model, pair_table=args.pair_table)
    result = dp_test(model, args.system, prefix=args.detail_file, type_map=args.type_map,
                     hessian=False if args.no_hessian else None, numb_test=args.numb_test)
    print(format_dp_test(result))
    for path in result["files"]:
        print(f"wrote {path}")
    return 0
