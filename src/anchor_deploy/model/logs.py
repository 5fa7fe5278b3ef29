"""Caps on a deployment's logs and the marker lines that say output was cut or dropped.

A build log (stored per deployment, one row per line with an increasing ``seq``) keeps its first
``head_lines`` lines and its newest lines. When it passes ``max_lines`` or ``max_bytes``, the oldest lines
after the head go (down to 90 % of the cap, so trimming is rare) and one marker row takes the ``seq`` of the
last line dropped. Sequence numbers are never reused for other lines, so a follower reading ``seq > after``
sees the marker when lines it had not read yet were dropped, and never sees a line twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BUILD_DONE_LINE = "ready"  # a build log's last line before READY (the CLI's result line says it instead)
RUNTIME_DROPPED = "… earlier output dropped (log cap ANCHOR_LOG_MAX_BYTES reached)"
_MARKER_ROOM = 160  # bytes kept free for the marker row


def line_cut_marker(more_bytes: int) -> str:
    """Appended to a line that was longer than the line limit, in place of its rest."""
    return f"… [line cut: {more_bytes} more bytes]"


@dataclass(frozen=True)
class BuildLogCap:
    max_lines: int = 20_000
    max_bytes: int = 5 * 1024 * 1024
    head_lines: int = 20  # the first lines (what the build was doing) always stay

    def marker(self, dropped: int) -> str:
        return (
            f"… {dropped} lines dropped (build log cap reached: ANCHOR_BUILD_LOG_MAX_LINES={self.max_lines}, "
            f"ANCHOR_BUILD_LOG_MAX_BYTES={self.max_bytes})"
        )

    def cut(self, rows: Sequence[tuple[int, int]]) -> int | None:
        """Where to trim a build log over its cap. ``rows`` is the whole log, oldest first, as (seq, size
        in bytes). Returns the seq of the first line after the head to keep: the lines between the head and
        it go, and a marker row takes the seq just before it (``marker(returned - 1 - head_lines)``). None
        when the log is within its cap or nothing can go (the newest line always stays)."""
        head = [size for seq, size in rows if seq <= self.head_lines]
        tail = rows[len(head) :]
        if len(rows) <= self.max_lines and sum(size for _seq, size in rows) <= self.max_bytes:
            return None
        room_lines = self.max_lines * 9 // 10 - len(head) - 1
        room_bytes = self.max_bytes * 9 // 10 - sum(head) - _MARKER_ROOM
        keep = 0
        kept_bytes = 0
        for _seq, size in reversed(tail):
            if keep and (keep + 1 > room_lines or kept_bytes + size > room_bytes):
                break
            keep += 1
            kept_bytes += size
        if keep == len(tail):
            return None
        return tail[len(tail) - keep][0]


ERROR_MAX_BYTES = 2048  # a deployment's stored `error`: the cause and the end of the output, at most this
_ERROR_HEAD_CHARS = 500
_ERROR_LINE_CHARS = 300
_ERROR_TAIL_LINES = 12  # a traceback's last frames and its exception


def error_summary(reason: str, max_bytes: int = ERROR_MAX_BYTES) -> str:
    """What a failed deployment's ``error`` keeps of its failure: the cause (the first line), then the last
    non-blank output lines (at most 12, each cut at 300 characters, all within ``max_bytes`` as UTF-8),
    oldest first, with "…" where earlier lines were left out. The whole output stays in the build log."""
    lines = reason.splitlines() or [""]
    head = _cut(lines[0].rstrip(), _ERROR_HEAD_CHARS)
    rest = [_cut(line.rstrip(), _ERROR_LINE_CHARS) for line in lines[1:] if line.strip()]
    budget = max_bytes - len(head.encode()) - len("\n…".encode())
    kept: list[str] = []
    for line in reversed(rest):
        size = len(line.encode()) + 1
        if size > budget or len(kept) == _ERROR_TAIL_LINES:
            break
        kept.append(line)
        budget -= size
    kept.reverse()
    if len(kept) < len(rest):
        kept.insert(0, "…")
    return "\n".join([head, *kept])


def _cut(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"
