"""Process output read in bounded chunks, and the capped runtime log file of a deployment.

Whatever a worker or a build step prints, the platform holds at most one chunk (64 KiB) and the first
``line_max`` bytes of the current line: a longer line keeps its start and ends with
``… [line cut: N more bytes]``.

A runtime log is two files, ``<id>.log`` and ``<id>.log.1``. When ``<id>.log`` would pass half the cap it
becomes ``<id>.log.1`` (the older ``.1`` goes) and a new ``<id>.log`` starts with the line
``… earlier output dropped (log cap ANCHOR_LOG_MAX_BYTES reached)``; that line is true once the file is the
oldest one left, so readers skip it while the ``.1`` before it is still there. The last N lines are read
backwards from the end, in blocks: their cost does not depend on the size of the files.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from anchor_deploy.model.logs import RUNTIME_DROPPED, line_cut_marker

CHUNK = 64 * 1024
LINE_MAX = 16 * 1024
BLOCK = 64 * 1024
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_PARTIAL_SECRET = 4  # a cut line ends before any 4-character start of a secret in its last bytes


# -- reading output ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Line:
    head: bytes  # at most line_max bytes, without the newline
    cut: int = 0  # bytes of the line beyond them, dropped


class LineSplitter:
    """Splits a byte stream, fed in chunks, into lines of at most ``line_max`` bytes each."""

    def __init__(self, line_max: int = LINE_MAX) -> None:
        if line_max < 1:
            raise ValueError("line_max must be positive")
        self._max = line_max
        self._head = bytearray()
        self._cut = 0

    def feed(self, data: bytes) -> list[Line]:
        lines: list[Line] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline
            room = self._max - len(self._head)
            if end - start <= room:
                self._head += data[start:end]
            else:
                self._head += data[start : start + room]
                self._cut += end - start - room
            if newline < 0:
                return lines
            lines.append(self._take())
            start = newline + 1

    def end(self) -> list[Line]:
        """The last line, if the stream ended without a newline."""
        return [self._take()] if self._head or self._cut else []

    def _take(self) -> Line:
        line = Line(bytes(self._head), self._cut)
        self._head.clear()
        self._cut = 0
        return line


def read_lines(stream: IO[bytes], line_max: int = LINE_MAX, chunk: int = CHUNK) -> Iterator[list[Line]]:
    """The lines of ``stream`` until its end, one list per chunk read (so a writer can flush once per list).
    Reads the file descriptor directly, ``chunk`` bytes at a time."""
    splitter = LineSplitter(line_max)
    fd = stream.fileno()
    while True:
        try:
            data = os.read(fd, chunk)
        except (OSError, ValueError):
            break
        if not data:
            break
        lines = splitter.feed(data)
        if lines:
            yield lines
    last = splitter.end()
    if last:
        yield last


def redact(text: str, secrets: Sequence[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "[secret]")
    return text


def line_text(line: Line, secrets: Sequence[str] = ()) -> str:
    """A line as logged: decoded, trailing whitespace stripped, secrets replaced by ``[secret]``; a cut line
    also loses a secret it may have been cut in the middle of, and says how much was cut."""
    if not line.cut:
        return redact(line.head.decode("utf-8", "replace").rstrip(), secrets)
    # Not final: a character cut in half at the end is left out instead of shown as U+FFFD.
    text = redact(codecs.getincrementaldecoder("utf-8")("replace").decode(line.head, final=False), secrets)
    for value in secrets:
        if len(value) > _PARTIAL_SECRET:
            start = text.find(value[:_PARTIAL_SECRET], max(0, len(text) - len(value) + 1))
            if start >= 0:
                text = text[:start] + "[secret]"
    return f"{text.rstrip()}{line_cut_marker(line.cut)}"


# -- the capped log file -----------------------------------------------------------------------------------
def older_file(path: Path) -> Path:
    return path.with_name(path.name + ".1")


class CappedLog:
    """Appends timestamped lines to ``path``; with ``path.1`` it holds at most about ``max_bytes``.

    Lines are written with one ``write`` per batch (not flushed line by line). Another writer of the same
    log (a restarted worker's pump, while the old one drains its pipe) is tolerated: the file is reopened
    when it was rotated or removed under this one."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.older = older_file(path)
        self._half = max(max_bytes // 2, 1)
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _size(self) -> int:
        status = os.fstat(self._fd)
        try:
            same = os.stat(self.path).st_ino == status.st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(self._fd)
            self._fd = self._open()
            status = os.fstat(self._fd)
        return status.st_size

    def write(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        size = self._size()
        pending: list[bytes] = []
        for line in lines:
            data = f"{stamp} {line}\n".encode()
            if size and size + len(data) > self._half:
                self._write(pending)
                pending = []
                size = self._rotate(stamp)
            pending.append(data)
            size += len(data)
        self._write(pending)

    def _write(self, pending: list[bytes]) -> None:
        view = memoryview(b"".join(pending))
        while view:
            view = view[os.write(self._fd, view) :]

    def _rotate(self, stamp: str) -> int:
        os.replace(self.path, self.older)
        os.close(self._fd)
        self._fd = self._open()
        marker = f"{stamp} {RUNTIME_DROPPED}\n".encode()
        self._write([marker])
        return len(marker)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> CappedLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- the last lines ----------------------------------------------------------------------------------------
def _tail(fd: int, limit: int, block: int = BLOCK) -> tuple[list[bytes], bool]:
    """The last ``limit`` lines of an open file, read backwards in blocks; and whether they are all of it."""
    if limit <= 0:
        return [], False
    position = os.fstat(fd).st_size
    blocks: list[bytes] = []
    newlines = 0
    while position > 0 and newlines <= limit:
        size = min(block, position)
        position -= size
        data = os.pread(fd, size, position)
        blocks.append(data)
        newlines += data.count(b"\n")
    lines = b"".join(reversed(blocks)).split(b"\n")
    # Every line is written with its newline: what follows the last one (if anything) is a line still being
    # written, read half-way; it is shown whole by the next read.
    lines.pop()
    if position > 0:
        lines.pop(0)  # the end of a line whose start was not read
    return lines[-limit:], position == 0 and len(lines) <= limit


def _open_pair(path: Path) -> tuple[int | None, int | None]:
    """Both files, opened so that they are consecutive (no rotation in between)."""
    for _attempt in range(3):
        current = older = None
        with contextlib.suppress(FileNotFoundError):
            current = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with contextlib.suppress(FileNotFoundError):
            older = os.open(older_file(path), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if current is None or os.stat(path).st_ino == os.fstat(current).st_ino:
                return current, older
        except FileNotFoundError:
            pass
        for fd in (current, older):
            if fd is not None:
                os.close(fd)
    return None, None


def tail_log(path: Path, limit: int) -> list[str]:
    """The last ``limit`` lines of the runtime log at ``path`` (from ``path.1`` too when needed)."""
    current, older = _open_pair(path)
    try:
        lines, whole = _tail(current, limit) if current is not None else ([], True)
        if whole and older is not None:
            if lines and lines[0].split(b" ", 1)[-1] == RUNTIME_DROPPED.encode():
                lines.pop(0)  # a rotation's own marker: nothing is missing between the two files
            lines = _tail(older, limit - len(lines))[0] + lines
    finally:
        for fd in (current, older):
            if fd is not None:
                os.close(fd)
    return [line.decode("utf-8", "replace") for line in lines]
