"""``mpay vectors OUTDIR``: write interoperability vectors (see mpay/keys/vectors.py)."""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from mpay.protocol.suites import SUITES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "vectors",
        help="write certificates, keys and one sealed COSE envelope per message type and suite",
        description=(
            "Write OUTDIR/index.json, the authority's certificate, each party's certificate and "
            "private key (PEM), and for every message type and suite one sealed envelope "
            "(tagged COSE_Encrypt, .cose) that other COSE implementations can open."
        ),
        epilog="Example: mpay vectors out/vectors --suite compact",
    )
    parser.add_argument("outdir", metavar="OUTDIR", help="directory to write (created if missing)")
    parser.add_argument(
        "--suite",
        action="append",
        choices=sorted(SUITES),
        help="only this suite (repeatable; default: all suites)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mpay.cli.main import UsageError
    from mpay.keys.vectors import write_vectors

    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise UsageError(f"{outdir}: exists and is not a directory; choose another OUTDIR")
    suites = tuple(dict.fromkeys(args.suite)) if args.suite else tuple(SUITES)
    try:
        index = write_vectors(outdir, suites=suites)
    except OSError as exc:
        raise UsageError(f"{outdir}: cannot write ({exc.strerror or exc}); choose a writable OUTDIR") from exc
    sizes: dict[str, list[int]] = defaultdict(list)
    for env in index["envelopes"]:
        sizes[env["suite"]].append(env["bytes"])
    print(f"wrote {len(index['parties'])} parties and {len(index['envelopes'])} envelopes to {outdir}")
    for suite, values in sizes.items():
        print(f"  {suite}: envelopes {min(values)}..{max(values)} bytes (median {sorted(values)[len(values) // 2]})")
    return 0
