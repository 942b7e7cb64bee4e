"""``mpay keys``: show, fill or clear the on-disk key cache (see mpay/keys/keycache.py)."""

from __future__ import annotations

import argparse

from mpay.protocol.suites import SUITES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="show, pre-generate or clear the cached private keys",
        description=(
            "The simulator caches generated private keys (RSA generation is slow) in "
            "$MPAY_KEY_CACHE or ~/.cache/mpay/keys. Keys are unencrypted test keys."
        ),
        epilog="Examples: mpay keys --info | mpay keys --generate 100 --suite rsa2048 | mpay keys --clear",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--info", action="store_true", help="print location and key counts (default)")
    action.add_argument("--clear", action="store_true", help="delete every cached key")
    action.add_argument("--generate", type=int, metavar="N", help="make sure pool keys 0..N-1 exist")
    parser.add_argument("--suite", default="rsa2048", help=f"suite for --generate: {', '.join(SUITES)}")
    parser.add_argument("--path", default=None, help="cache directory (default: $MPAY_KEY_CACHE or ~/.cache/mpay/keys)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mpay.cli.main import UsageError
    from mpay.keys.keycache import MAX_POOL_INDEX, KeyCache

    cache = KeyCache(args.path)
    if args.clear:
        removed = cache.clear()
        print(f"removed {removed} cached keys from {cache.path}")
        return 0
    if args.generate is not None:
        if args.suite not in SUITES:
            raise UsageError(f"--suite: unknown suite {args.suite!r}; choose one of {', '.join(SUITES)}")
        if not 0 < args.generate <= MAX_POOL_INDEX + 1:
            raise UsageError(f"--generate: N must be 1..{MAX_POOL_INDEX + 1}, got {args.generate}")
        for index in range(args.generate):
            cache.keys(args.suite, index)
        print(f"pool keys 0..{args.generate - 1} of {args.suite} ready in {cache.path / args.suite}")
        return 0
    info = cache.info()
    print(f"location: {info.location}")
    if not info.keys_per_suite:
        print("keys: 0 (empty)")
    for suite, count in info.keys_per_suite.items():
        print(f"  {suite}: {count} key files")
    print(f"total: {info.total_keys} key files, {info.total_bytes} bytes")
    return 0
