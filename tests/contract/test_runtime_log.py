"""Process output read in bounded chunks (lines cut at a limit, secrets redacted across chunk boundaries) and
the capped runtime log file (rotation to ``.1`` with a marker; the last N lines read from the end)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor_deploy.adapters.local import runtime_log
from anchor_deploy.adapters.local.runtime_log import (
    CappedLog,
    Line,
    LineSplitter,
    line_text,
    older_file,
    read_lines,
    tail_log,
)
from anchor_deploy.model.logs import RUNTIME_DROPPED

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d "


def feed_all(splitter: LineSplitter, chunks: list[bytes]) -> list[Line]:
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    return lines + splitter.end()


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- splitting and cutting ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_lines_are_the_same_whatever_the_chunk_boundaries(size: int) -> None:
    data = b"first\n\nthird line\r\n" + b"x" * 40 + b"\nlast without newline"
    lines = feed_all(LineSplitter(line_max=30), pieces(data, size))
    assert lines == [
        Line(b"first"),
        Line(b""),
        Line(b"third line\r"),
        Line(b"x" * 30, cut=10),
        Line(b"last without newline"),
    ]
    assert [line_text(line) for line in lines[2:4]] == [
        "third line",
        "x" * 30 + "… [line cut: 10 more bytes]",
    ]


def test_a_long_line_keeps_only_its_start_in_memory() -> None:
    splitter = LineSplitter(line_max=16 * 1024)
    chunk = b"y" * 65536
    for _ in range(2000):  # 128 MiB without a newline
        assert splitter.feed(chunk) == []
        assert len(splitter._head) <= 16 * 1024
    (line,) = splitter.feed(b"\n")
    assert line == Line(b"y" * 16384, cut=2000 * 65536 - 16384)
    assert line_text(line).endswith(f"… [line cut: {2000 * 65536 - 16384} more bytes]")


def test_a_cut_line_does_not_end_in_half_a_character() -> None:
    (line,) = LineSplitter(line_max=4).feed("ab€cd\n".encode())  # € is 3 bytes: the cut falls inside it
    assert line == Line(b"ab\xe2\x82", cut=3)
    assert line_text(line) == "ab… [line cut: 3 more bytes]"


# -- reading a real pipe -----------------------------------------------------------------------------------
def run_and_read(code: str, chunk: int = 65536, line_max: int = 16 * 1024) -> Iterator[list[Line]]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        yield from read_lines(proc.stdout, line_max=line_max, chunk=chunk)
    finally:
        proc.stdout.close()
        proc.wait(timeout=30)


def test_a_process_printing_without_newlines_costs_no_memory() -> None:
    code = "import sys\nfor _ in range(1600): sys.stdout.write('z' * 65536)\nsys.stdout.write('\\nafter\\n')"
    tracemalloc.start()
    try:
        lines = [line_text(line) for batch in run_and_read(code) for line in batch]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == ["z" * 16384 + f"… [line cut: {1600 * 65536 - 16384} more bytes]", "after"]
    assert peak < 1024 * 1024, f"peak {peak} bytes while reading 100 MiB"


def test_batches_follow_the_reads_so_a_writer_flushes_once_per_chunk() -> None:
    code = "import sys\nsys.stdout.write(''.join(f'line {i}\\n' for i in range(100000)))"
    batches = list(run_and_read(code))
    lines = [line.head for batch in batches for line in batch]
    assert lines == [f"line {i}".encode() for i in range(100000)]
    assert len(batches) < 100_000 // 50, "many lines per batch, not one"


SECRET = "tok-8f2b6c1e-SECRET-VALUE-d41d8cd98f00b204e980"


@pytest.mark.parametrize("chunk", [1, 5, 13, 4096])
def test_a_secret_split_across_reads_is_redacted(chunk: int) -> None:
    code = f"print('TOKEN={SECRET} and again {SECRET}.')\nprint('{SECRET}')"
    lines = [line_text(line, (SECRET,)) for batch in run_and_read(code, chunk=chunk) for line in batch]
    assert lines == ["TOKEN=[secret] and again [secret].", "[secret]"]


@pytest.mark.parametrize("position", range(0, 60, 3))
def test_a_line_cut_inside_a_secret_shows_no_part_of_it_beyond_four_characters(position: int) -> None:
    line_max = 64
    raw = ("p" * (line_max - position) + SECRET + "q" * 100).encode()
    (line,) = LineSplitter(line_max).feed(raw + b"\n")
    text = line_text(line, (SECRET,))
    assert "… [line cut:" in text
    for size in range(5, len(SECRET) + 1):
        assert SECRET[:size] not in text, (position, text)


def test_a_secret_longer_than_the_line_limit_is_not_shown() -> None:
    secret = "S" + os.urandom(20000).hex()  # 40 KB, longer than the 16 KiB limit
    for prefix in ("", "KEY=", "x" * 16000):
        (line,) = LineSplitter().feed(f"{prefix}{secret} end\n".encode())
        text = line_text(line, (secret,))
        assert secret[:5] not in text and text.startswith(prefix[:100]), text[:200]


# -- the capped file ---------------------------------------------------------------------------------------
def numbered(first: int, count: int) -> list[str]:
    return [f"line {i:06d} " + "." * 40 for i in range(first, first + count)]


def numbers(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.search(r"line (\d{6})", line))]


def test_log_rotates_at_half_the_cap_and_stays_under_it(tmp_path: Path) -> None:
    path = tmp_path / "dpl.log"
    cap = 64 * 1024
    written = 0
    with CappedLog(path, cap) as log:
        for _ in range(200):
            log.write(numbered(written, 50))
            written += 50
            assert path.stat().st_size <= cap // 2
            assert (
                path.stat().st_size + (older_file(path).stat().st_size if older_file(path).exists() else 0)
                <= cap
            )
    lines = path.read_text().splitlines()
    assert re.fullmatch(STAMP + re.escape(RUNTIME_DROPPED), lines[0])
    assert all(re.fullmatch(STAMP + r"line \d{6} \.{40}", line) for line in lines[1:])
    older = older_file(path).read_text().splitlines()
    assert older[0].endswith(RUNTIME_DROPPED)
    # What is kept is the newest output, without a gap between the two files.
    kept = numbers(older + lines)
    assert kept == list(range(written - len(kept), written))
    shown = tail_log(path, 100_000)
    assert shown[0].endswith(RUNTIME_DROPPED), "the oldest file left starts with the marker"
    assert numbers(shown) == kept
    assert sum(RUNTIME_DROPPED in line for line in shown) == 1, "the junction's marker is not shown"


def test_first_rotation_drops_nothing_so_no_marker_is_shown(tmp_path: Path) -> None:
    path = tmp_path / "dpl.log"
    with CappedLog(path, 8192) as log:
        log.write(numbered(0, 100))  # about 6.5 KB: one rotation at 4 KB
    assert older_file(path).exists()
    shown = tail_log(path, 1000)
    assert numbers(shown) == list(range(100))
    assert not any(RUNTIME_DROPPED in line for line in shown)


def test_a_reopened_log_continues_and_keeps_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "dpl.log"
    for start in range(0, 1000, 100):  # a worker restarted ten times
        with CappedLog(path, 16384) as log:
            log.write(numbered(start, 100))
    assert path.stat().st_size + older_file(path).stat().st_size <= 16384
    assert numbers(tail_log(path, 5)) == [995, 996, 997, 998, 999]


def test_two_writers_of_one_log_follow_each_others_rotation(tmp_path: Path) -> None:
    path = tmp_path / "dpl.log"
    with CappedLog(path, 8192) as old, CappedLog(path, 8192) as new:
        old.write(numbered(0, 10))
        new.write(numbered(10, 100))  # rotates: old's file is now dpl.log.1
        old.write(numbered(110, 1))
    assert numbers(path.read_text().splitlines())[-1] == 110


# -- the last lines ----------------------------------------------------------------------------------------
def test_tail_of_a_big_file_reads_only_its_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.log"
    line = "2026-01-01T00:00:00 " + "a" * 80
    with open(path, "w") as out:
        for block in range(50):
            out.write("".join(f"{line} {block * 10000 + i}\n" for i in range(10000)))
    assert path.stat().st_size > 50_000_000
    read = 0
    real_pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        nonlocal read
        data = real_pread(fd, size, offset)
        read += len(data)
        return data

    monkeypatch.setattr(runtime_log.os, "pread", counting_pread)
    started = time.perf_counter()
    tail = tail_log(path, 5)
    took = time.perf_counter() - started
    assert tail == [f"{line} {n}" for n in range(499995, 500000)]
    assert read <= 64 * 1024, f"{read} bytes read for 5 lines"
    read = 0
    assert len(tail_log(path, 2000)) == 2000
    assert read <= 4 * 64 * 1024
    assert took < 0.05


def test_tail_continues_into_the_older_file(tmp_path: Path) -> None:
    path = tmp_path / "dpl.log"
    older_file(path).write_text("".join(f"old {i}\n" for i in range(10)))
    path.write_text(f"2026-01-01T00:00:00 {RUNTIME_DROPPED}\nnew 0\nnew 1\n")
    assert tail_log(path, 2) == ["new 0", "new 1"]
    assert tail_log(path, 3) == ["old 9", "new 0", "new 1"]
    assert tail_log(path, 100) == [f"old {i}" for i in range(10)] + ["new 0", "new 1"]


def test_tail_of_missing_empty_and_unterminated_files(tmp_path: Path) -> None:
    path = tmp_path / "dpl.log"
    assert tail_log(path, 10) == []
    path.write_bytes(b"")
    assert tail_log(path, 10) == []
    path.write_bytes(b"one\ntwo")  # "two" is still being written
    assert tail_log(path, 10) == ["one"]
    assert tail_log(path, 1) == ["one"]
    path.write_bytes(b"\n\nthree\n")
    assert tail_log(path, 10) == ["", "", "three"]


def test_tail_while_a_writer_rotates_returns_consecutive_lines(tmp_path: Path) -> None:
    path = tmp_path / "dpl.log"
    stop = threading.Event()

    def write() -> None:
        n = 0
        with CappedLog(path, 65536) as log:
            while not stop.is_set():
                log.write(numbered(n, 20))
                n += 20

    writer = threading.Thread(target=write)
    writer.start()
    try:
        deadline = time.monotonic() + 1.5
        checked = 0
        while time.monotonic() < deadline:
            got = numbers(tail_log(path, 300))
            if got:
                assert got == list(range(got[0], got[0] + len(got))), "a gap or a repeat"
                checked += 1
    finally:
        stop.set()
        writer.join()
    assert checked > 10


def test_a_line_still_being_written_is_not_shown_half(tmp_path: Path) -> None:
    path = tmp_path / "dpl.log"
    path.write_bytes(b"2026-01-01T00:00:00 first\n2026-01-01T00:00:01 second\n2026-01-0")
    assert tail_log(path, 5) == ["2026-01-01T00:00:00 first", "2026-01-01T00:00:01 second"]
    with open(path, "ab") as out:
        out.write(b"1T00:00:02 third\n")
    assert tail_log(path, 1) == ["2026-01-01T00:00:02 third"]
