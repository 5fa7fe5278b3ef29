"""A daemon thread that sleeps until woken or stopped: the shape of the reconciler and the domain worker."""

from __future__ import annotations

import threading


class BackgroundLoop:
    thread_name = "background"

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        """Start the loop; again after a stop too (the lease runner stops a loop whose lease was lost and
        starts it when the lease is back)."""
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)  # the previous run's last pass
        self._stop.clear()  # (a wake asked for meanwhile stays: the loop's first round comes at once)
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        raise NotImplementedError
