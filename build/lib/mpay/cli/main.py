"""The ``mpay`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds the
subparser and sets ``func`` (taking the parsed namespace, returning an exit status).
Exit status: 0 success, 1 a run whose invariants or expectations failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys


#: modules under mpay/cli/ that contribute a subcommand, in help order
SUBCOMMAND_MODULES = (
    "mpay.cli.cmd_demo",
    "mpay.cli.cmd_run",
    "mpay.cli.cmd_scenarios",
    "mpay.cli.cmd_validate",
    "mpay.cli.cmd_vectors",
    "mpay.cli.cmd_keys",
)

#: entry-point group through which tools outside the runtime package add subcommands
#: (``mpay bench`` comes from the ``mpay_bench`` package this way)
PLUGIN_GROUP = "mpay.commands"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpay",
        description=(
            "Simulator of the escrow SMS mobile-payment protocol: customer handsets, merchants, "
            "a payment center and a bank exchanging signed, encrypted SMS."
        ),
        epilog="Example: mpay run scenarios/happy_path.toml --out runs/happy",
    )
    parser.add_argument("--version", action="version", version=f"mpay {importlib.metadata.version('mpay')}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for plugin in sorted(importlib.metadata.entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        plugin.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `mpay`: say what it can do
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"mpay {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (``mpay run … | head``): stop quietly, like other Unix tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
