"""The run's trace: one JSON object per line, in the order things happened.

Every event has ``i`` (its index), ``t_s`` (virtual seconds since the run started) and
``kind``; the other fields depend on the kind (schema in ``docs/trace.md``). The trace
holds no ciphertext and no key material, so the same scenario and seed give the same
trace, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


#: one encoder for every line (``json.dumps`` with options builds a new one per call)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


class TraceWriter:
    """Implements the actors' ``Tracer`` port; writes JSON lines (or only keeps a tail)."""

    def __init__(
        self,
        now_s: Callable[[], float],
        path: Path | None = None,
        keep_in_memory: bool = False,
    ) -> None:
        self._now_s = now_s
        self._file: IO[str] | None = path.open("w", encoding="utf-8") if path else None
        self.events: list[dict[str, Any]] | None = [] if keep_in_memory else None
        self.count = 0
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def record(self, kind: str, **fields: Any) -> None:
        event: dict[str, Any] = {"i": self.count, "t_s": round(self._now_s(), 6), "kind": kind, **fields}
        self.count += 1
        if self._file is not None:
            self._file.write(_encode(event) + "\n")
        if self.events is not None:
            self.events.append(event)
        for listener in self.listeners:
            listener(event)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
