"""On-disk cache of the simulator's private keys, because RSA key generation is slow.

An RSA-2048 key takes tens to hundreds of milliseconds to generate; a world of 1,000
parties would spend minutes on keys every run. The cache keeps a numbered *pool* of keys
per suite; party ``i`` of a world takes pool key ``i``, so later runs load instead of
generate.

Where: ``$MPAY_KEY_CACHE`` if set, otherwise ``~/.cache/mpay/keys``; one directory per
suite. Files: ``<suite>/<index:06d>.pem`` (the signing key, which in RSA suites is the only
key), ``<suite>/<index:06d>.x25519.pem`` (compact suite: the key-agreement key) and
``<suite>/authority.pem``. Keys are PKCS#8 PEM, **unencrypted**: these are simulator test
keys, never real ones. Clear with ``mpay keys --clear`` (or delete the directory).

Writers create a temporary file and hard-link it into place, so when two processes race
for the same index the first key written wins and both end up using it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa, x25519

from mpay.protocol.suites import PartyKeys, PrivateKey, Suite, get_suite

ENV_VAR = "MPAY_KEY_CACHE"
#: largest pool index (a world has at most this many parties per suite)
MAX_POOL_INDEX = 999_999


class KeyCacheError(Exception):
    """The cache holds something unreadable; the message says how to clear it."""


def default_cache_dir() -> Path:
    """``$MPAY_KEY_CACHE`` or ``~/.cache/mpay/keys``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mpay" / "keys"


@dataclass(frozen=True)
class CacheInfo:
    """What ``mpay keys --info`` prints."""

    location: Path
    keys_per_suite: dict[str, int]
    total_bytes: int

    @property
    def total_keys(self) -> int:
        return sum(self.keys_per_suite.values())


class KeyCache:
    """A pool of private keys per suite, generated on first use and stored as PEM."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path).expanduser() if path is not None else default_cache_dir()
        self._memo: dict[tuple[str, str], PrivateKey] = {}
        self._lock = threading.Lock()

    # --- public API -------------------------------------------------------------------

    def keys(self, suite: Suite | str, index: int) -> PartyKeys:
        """The private keys of pool entry ``index`` of ``suite`` (generated on first use)."""
        suite = get_suite(suite) if isinstance(suite, str) else suite
        self._check_index(index)
        if suite.rsa_bits is not None:
            key = self._get(suite, f"{index:06d}", "rsa")
            return PartyKeys(signing=key, agreement=key)
        return PartyKeys(
            signing=self._get(suite, f"{index:06d}", "ed25519"),
            agreement=self._get(suite, f"{index:06d}.x25519", "x25519"),
        )

    def key(self, suite: Suite | str, index: int) -> PrivateKey:
        """The signing key of pool entry ``index`` (the only key in RSA suites)."""
        return self.keys(suite, index).signing

    def authority_key(self, suite: Suite | str) -> PrivateKey:
        """The key of an authority serving ``suite`` (RSA for RSA suites, Ed25519 for compact)."""
        suite = get_suite(suite) if isinstance(suite, str) else suite
        return self._get(suite, "authority", "rsa" if suite.rsa_bits is not None else "ed25519")

    def info(self) -> CacheInfo:
        """Location, key count per suite and bytes on disk."""
        per_suite: dict[str, int] = {}
        total = 0
        if self.path.is_dir():
            for sub in sorted(p for p in self.path.iterdir() if p.is_dir()):
                files = [f for f in sub.iterdir() if f.suffix == ".pem"]
                per_suite[sub.name] = len(files)
                total += sum(f.stat().st_size for f in files)
        return CacheInfo(location=self.path, keys_per_suite=per_suite, total_bytes=total)

    def clear(self) -> int:
        """Delete every cached key; returns how many key files were removed."""
        removed = self.info().total_keys
        with self._lock:
            self._memo.clear()
            if self.path.is_dir():
                for sub in self.path.iterdir():
                    if sub.is_dir():
                        shutil.rmtree(sub)
        return removed

    # --- internals --------------------------------------------------------------------

    @staticmethod
    def _check_index(index: int) -> None:
        if not isinstance(index, int) or not 0 <= index <= MAX_POOL_INDEX:
            raise ValueError(f"pool index must be an int in 0..{MAX_POOL_INDEX}, got {index!r}")

    def _get(self, suite: Suite, stem: str, kind: str) -> PrivateKey:
        memo_key = (suite.name, stem)
        with self._lock:
            cached = self._memo.get(memo_key)
        if cached is not None:
            return cached
        file = self.path / suite.name / f"{stem}.pem"
        key = self._load(file, kind) if file.exists() else None
        if key is None:
            key = self._store(file, self._generate(suite, kind), kind)
        with self._lock:
            self._memo.setdefault(memo_key, key)
            return self._memo[memo_key]

    @staticmethod
    def _generate(suite: Suite, kind: str) -> PrivateKey:
        if kind == "rsa":
            assert suite.rsa_bits is not None
            return rsa.generate_private_key(public_exponent=65537, key_size=suite.rsa_bits)
        if kind == "ed25519":
            return ed25519.Ed25519PrivateKey.generate()
        return x25519.X25519PrivateKey.generate()

    @staticmethod
    def _load(file: Path, kind: str) -> PrivateKey:
        try:
            # Our own files: skip the (slow) RSA consistency checks on every load.
            key = serialization.load_pem_private_key(
                file.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
            )
        except (ValueError, TypeError, OSError) as exc:
            raise KeyCacheError(f"{file}: unreadable cached key ({exc}); run `mpay keys --clear`") from exc
        expected = {"rsa": rsa.RSAPrivateKey, "ed25519": ed25519.Ed25519PrivateKey, "x25519": x25519.X25519PrivateKey}
        if not isinstance(key, expected[kind]):
            raise KeyCacheError(f"{file}: holds a {type(key).__name__}, expected {kind}; run `mpay keys --clear`")
        return key  # type: ignore[return-value]

    def _store(self, file: Path, key: PrivateKey, kind: str) -> PrivateKey:
        """Write ``key`` unless another writer got there first; return the key now on disk."""
        file.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            try:
                os.link(tmp, file)  # fails if a concurrent writer already placed a key
            except FileExistsError:
                return self._load(file, kind)
            except OSError:  # file systems without hard links: last writer wins
                os.replace(tmp, file)
                tmp = ""
        finally:
            if tmp:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
        return key


__all__ = ["CacheInfo", "ENV_VAR", "KeyCache", "KeyCacheError", "default_cache_dir"]
