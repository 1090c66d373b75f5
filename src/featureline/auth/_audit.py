"""The audit log: who did what, when, and the result — append-only JSONL segments.

Every apply and write is recorded, and reads with probability `auth.audit.read_sample_rate`
(denials always). Each process appends whole lines (one `write` on an O_APPEND descriptor) to
its own segment `data/audit/audit-<UTC start>-<pid>-<n>.jsonl`, rotated at `max_segment_bytes`;
beyond `max_segments` the oldest segments are deleted. Nothing is ever rewritten in place.
`query` merges the segments in time order (`featureline audit`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from featureline.config import AuditSettings

__all__ = ["AuditLog"]


class AuditLog:
    def __init__(self, folder: Path, settings: AuditSettings) -> None:
        self.folder = folder
        self.settings = settings
        self.read_rate = settings.read_sample_rate
        self._skip = self._gap()  # reads left before the next sampled one
        self._fd: int | None = None
        self._size = 0
        self._n = 0
        self._lock = threading.Lock()
        self._pid = 0

    def sample_read(self) -> bool:
        """Whether to record this read: each one with probability `read_rate`, independently.
        (The gaps between sampled reads are drawn instead, geometric: a decrement per read.)"""
        self._skip -= 1
        if self._skip > 0:
            return False
        self._skip = self._gap()
        return self.read_rate > 0.0

    def _gap(self) -> int:
        """Reads up to and including the next sampled one: geometric with p = read_rate."""
        rate = self.read_rate
        if rate >= 1.0:
            return 1
        if rate <= 0.0:
            return 2**62
        return 1 + int(math.log(1.0 - random.random()) / math.log1p(-rate))

    def record(
        self,
        principal: Any,
        action: str,
        resource: str,
        result: str,
        reason: str = "",
        **detail: Any,
    ) -> None:
        """Append one event: `result` is `allowed`, `denied`, `ok` or `error`."""
        event: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
            "principal": principal.name,
            "via": principal.via,
            "roles": list(principal.roles),
            "action": action,
            "resource": resource,
            "result": result,
        }
        if reason:
            event["reason"] = reason
        if detail:
            event["detail"] = detail
        line = (json.dumps(event, default=str, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = self._segment(len(line))
            os.write(fd, line)
            self._size += len(line)

    def _segment(self, incoming: int) -> int:
        pid = os.getpid()
        if self._fd is not None and pid == self._pid:
            if self._size + incoming <= self.settings.max_segment_bytes or self._size == 0:
                return self._fd
            os.close(self._fd)
        self._pid = pid
        self._n += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.folder / f"audit-{stamp}-{pid}-{self._n:04d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = 0
        self._prune()
        return self._fd

    def _prune(self) -> None:
        keep = self.settings.max_segments
        if keep is None:
            return
        segments = self.segments()
        for old in segments[: max(0, len(segments) - keep)]:
            with contextlib.suppress(OSError):  # another process pruned it first
                old.unlink()

    def segments(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("audit-*.jsonl"))

    def query(
        self,
        since: datetime | None = None,
        principal: str | None = None,
        action: str | None = None,
        result: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Events (oldest first) at or after `since`, of `principal`, `action` and `result`."""
        cutoff = since.astimezone(UTC).isoformat(timespec="microseconds") if since else None
        out = [
            e
            for e in self._events()
            if (cutoff is None or e["ts"] >= cutoff)
            and (principal is None or e.get("principal") == principal)
            and (action is None or e.get("action") == action)
            and (result is None or e.get("result") == result)
        ]
        out.sort(key=lambda e: e["ts"])
        return out[-limit:] if limit else out

    def _events(self) -> Iterator[dict[str, Any]]:
        for seg in self.segments():
            try:
                text = seg.read_text(encoding="utf-8")
            except OSError:
                continue
            for line in text.splitlines():
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:  # a line being written by another process
                        continue

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None
