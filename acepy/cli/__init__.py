"""The ``acepy`` command: one entry point, one subcommand per module.

    acepy info POTENTIAL                      what a potential is, and which LAMMPS styles read it
    acepy eval POTENTIAL STRUCTURES -o OUT    energies, forces, stresses of any ASE-readable structures

``main(argv=None)`` builds one ``argparse`` parser and asks each module named in
:data:`SUBCOMMANDS` (``acepy.cli.<name>``) to add its subcommand. **The interface of a subcommand
module** is one function::

    def register(subparsers) -> None:
        parser = subparsers.add_parser("name", help="one line for 'acepy --help'",
                                       description="a paragraph for 'acepy name --help'")
        parser.add_argument(...)
        parser.set_defaults(handler=run)     # run(args) -> int exit status (0: success)

The module imports what it needs (torch, the model) inside ``run``, so that ``acepy --help``
stays fast. An acepy error, a missing file or a bad value raised from ``run`` is printed as
``acepy NAME: error: ...`` with exit status 1 (``--traceback`` shows the traceback instead);
argparse's own usage errors exit with status 2. Adding a subcommand is one new module and its name
in :data:`SUBCOMMANDS`. ``python -m acepy.cli`` runs the same as ``acepy``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

# the subcommand modules, in the order 'acepy --help' lists them
SUBCOMMANDS = ("info", "eval", "test", "fit")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("acepy")
    except Exception:  # noqa: BLE001 - running from a source tree that is not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acepy",
        description="Atomic cluster expansion (ACE) potentials from the command line: inspect a potential, "
                    "evaluate structures. Potentials are .yace / .ace / pacemaker .yaml files or the name "
                    "of a bundled one.",
        epilog="'acepy COMMAND --help' describes each command.")
    parser.add_argument("--version", action="version", version=f"acepy {_version()}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"acepy {args.command}: interrupted", file=sys.stderr)
        return 130
    except (Exception,) as err:  # noqa: BLE001 - the command line reports, it does not crash
        if args.traceback:
            raise
        print(f"acepy {args.command}: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
