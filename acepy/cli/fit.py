"""``acepy fit CONFIG``: a linear ACE fit from a YAML configuration (:mod:`acepy.fit.config`):
a progress bar over the row assembly, the error table, the ``.yace``, a parity plot (PNG)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fit", help="fit a linear ACE potential to energies, forces, virials and Hessians",
        description="Fit a linear ACE potential by weighted least squares to the labelled data named in CONFIG "
                    "(YAML: elements, basis, data (DeePMD systems, extxyz files), weights, solver, prior, "
                    "output; see acepy.fit.config). Writes the .yace (python-ace and LAMMPS pair_style pace read "
                    "it), a parity plot of E, F, V and H, and a JSON report of the errors.")
    parser.add_argument("config", metavar="CONFIG", help="the YAML configuration file")
    parser.add_argument("-o", "--output", metavar="YACE", help="the .yace to write (overrides output.yace)")
    parser.add_argument("--plot", metavar="PNG", help="the parity plot to write (overrides output.plot)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from acepy.fit.config import load_config, run_config

    cfg = load_config(args.config)
    if args.output:
        cfg["output"]["yace"] = args.output
    if args.plot:
        cfg["output"]["plot"] = args.plot
    fit = run_config(cfg, progress=not args.no_progress)
    print(fit.error_table())
    print(f"{fit.coefficients.shape[0]} coefficients, solver {fit.solver.solver}; rows "
          f"{fit.timings.get('rows_train', 0):.1f} s, solve {fit.timings.get('solve', 0):.1f} s")
    for key in ("yace", "plot", "report"):
        if cfg["output"].get(key):
            print(f"wrote {cfg['output'][key]}")
    return 0
