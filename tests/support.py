"""Small helpers shared by the unit and contract suites."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Callable, Iterable


class TickingClock:
    """A deterministic clock: every call returns a time strictly later than the one before."""

    def __init__(self, start: float = 1_700_000_000.0, step: float = 1.0) -> None:
        self.last = start
        self._step = step

    def __call__(self) -> float:
        self.last += self._step
        return self.last


def run_concurrently(
    work: Callable[[str], None], items: Iterable[str], timeout: float = 60
) -> list[BaseException]:
    """Run ``work(item)`` for every item, each on its own thread at once; return what they raised."""
    errors: list[BaseException] = []

    def guarded(item: str) -> None:
        try:
            work(item)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return errors


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; nothing if it is gone already."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)
