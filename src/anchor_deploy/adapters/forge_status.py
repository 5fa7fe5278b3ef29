"""ForgeStatus over HTTP: commit statuses sent to GitHub, GitLab and Gitea/Forgejo by one background thread.

``report`` only queues and returns. The queue keeps one entry per commit and context (the newest state
reported and not yet sent), so a later ``success`` replaces an earlier ``pending`` still waiting for its
retry and is never overtaken by it: there is one sender, and a state whose retry is due is dropped when a
newer one for the same commit is queued. A failed call is not slept on: it is queued again with a due
time, so one unreachable forge does not hold back the statuses of other repositories.

Connection errors, timeouts, 429 and 5xx (and GitHub's 403 rate limit) are retried with exponential
backoff and jitter (``Retry-After`` honoured when it is no longer than the longest backoff); any other
answer is final and logged as a warning. Nothing is raised to the caller, and the token is never logged.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from anchor_deploy.adapters.forge_requests import StatusRequest, status_request
from anchor_deploy.model.git import Forge, GitConnection
from anchor_deploy.ports.git import CommitStatus

log = logging.getLogger(__name__)

MAX_MESSAGE = 200  # of a forge's error message, as logged


@dataclass
class _Queued:
    request: StatusRequest
    failures: int  # attempts made so far, all failed
    due: float  # clock() time before which it is not sent


@dataclass(frozen=True)
class _Answer:
    """What one attempt came to: sent, final (not retried) or retry (after at least ``wait`` seconds)."""

    kind: str
    detail: str
    wait: float = 0.0


def backoff_delay(failures: int, first: float, longest: float, jitter: float) -> float:
    """The pause after ``failures`` failed attempts: ``first`` doubled per failure up to ``longest``, its
    upper half scaled by ``jitter`` (0-1) so retries of many statuses spread out."""
    base: float = min(longest, first * 2.0 ** max(0, failures - 1))
    return base / 2 + base / 2 * jitter


def retry_after(response: httpx.Response, wall_clock: Callable[[], float] = time.time) -> float | None:
    """Seconds the forge asks to wait (``Retry-After`` in seconds, or GitHub's rate-limit reset time)."""
    value = response.headers.get("retry-after", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    reset = response.headers.get("x-ratelimit-reset", "")
    if response.headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(0.0, int(reset) - wall_clock())
    return None


def is_rate_limited(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    limited = "retry-after" in response.headers or response.headers.get("x-ratelimit-remaining") == "0"
    return response.status_code == 403 and limited


class ForgeStatusReporter:
    """The ForgeStatus port (ports/git.py) for every forge; ``close()`` ends its thread."""

    def __init__(
        self,
        *,
        attempts: int = 6,
        first_backoff: float = 1.0,
        longest_backoff: float = 60.0,
        timeout: float = 10.0,
        max_queued: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._attempts = max(1, attempts)
        self._first = first_backoff
        self._longest = longest_backoff
        self._timeout = timeout
        self._max_queued = max(1, max_queued)
        self._clock = clock
        self._jitter = jitter
        self._queue: dict[tuple[str, ...], _Queued] = {}  # in the order reported, oldest first
        self._sending: tuple[str, ...] | None = None
        self._counts: Counter[str] = Counter()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def report(self, connection: GitConnection, token: str, status: CommitStatus) -> None:
        try:
            request = status_request(connection, token, status)
        except ValueError as exc:
            log.warning("forge status for %s not sent: %s", connection.project_id, exc)
            return
        except Exception:  # a malformed connection must not fail a deploy
            log.warning("forge status for %s not sent: could not build the request", connection.project_id)
            return
        if request is None:
            if connection.forge is not Forge.GENERIC:
                log.warning(
                    "forge status for %s not sent: its repository URL names no forge API",
                    connection.project_id,
                )
            return
        with self._cond:
            if self._closed:
                log.info("forge status %s not sent: the reporter is closed", request.label)
                return
            self._enqueue(_Queued(request, 0, self._clock()))
            self._start_worker()
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or being sent; False if that did not happen within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and self._sending is None, timeout)

    @property
    def running(self) -> bool:
        """Whether the sending thread is alive (it starts with the first report)."""
        return self._thread is not None and self._thread.is_alive()

    def counts(self) -> dict[str, int]:
        """attempts, sent, refused (final answers), gave_up, superseded and dropped (queue full) so far."""
        with self._cond:
            return dict(self._counts)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (statuses still queued are dropped) and wait up to ``timeout`` for it."""
        with self._cond:
            self._closed = True
            left, self._queue = len(self._queue), {}
            self._cond.notify_all()
            thread = self._thread
        if left:
            log.info("forge status: %d queued status(es) dropped at shutdown", left)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    stop = close

    def _enqueue(self, item: _Queued) -> None:
        """Queue ``item`` in place of any unsent state of its commit; drop the oldest if the queue is full.
        Called with the lock held."""
        if self._queue.pop(item.request.key, None) is not None:
            self._counts["superseded"] += 1
        while len(self._queue) >= self._max_queued:
            oldest = next(iter(self._queue))
            dropped = self._queue.pop(oldest)
            self._counts["dropped"] += 1
            log.warning("forge status queue full: dropped %s", dropped.request.label)
        self._queue[item.request.key] = item

    def _start_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="forge-status", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout, trust_env=False, follow_redirects=False) as client:
            while (item := self._next_due()) is not None:
                try:
                    answer = self._attempt(client, item.request)
                except Exception as exc:  # never let the thread die on a surprise
                    answer = _Answer("final", f"unexpected {type(exc).__name__}")
                self._settle(item, answer)

    def _next_due(self) -> _Queued | None:
        """The queued status due first, once it is due; None when closed."""
        with self._cond:
            while not self._closed:
                if not self._queue:
                    self._cond.wait()
                    continue
                item = min(self._queue.values(), key=lambda queued: queued.due)
                wait = item.due - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                del self._queue[item.request.key]
                self._sending = item.request.key
                return item
            return None

    def _attempt(self, client: httpx.Client, request: StatusRequest) -> _Answer:
        with self._cond:
            self._counts["attempts"] += 1
        try:
            response = client.post(request.url, headers=request.headers, json=request.body)
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:  # the request itself is wrong
            return _Answer("final", type(exc).__name__)
        except httpx.TransportError as exc:  # connection refused or reset, timeouts, DNS
            return _Answer("retry", type(exc).__name__)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # retrying will not help
            return _Answer("final", type(exc).__name__)
        code = response.status_code
        if 200 <= code < 300:
            return _Answer("sent", str(code))
        if code >= 500 or is_rate_limited(response):
            return _Answer("retry", f"HTTP {code}", retry_after(response) or 0.0)
        return _Answer("final", f"HTTP {code}{_forge_message(response, request.token)}")

    def _settle(self, item: _Queued, answer: _Answer) -> None:
        label = item.request.label
        with self._cond:
            self._sending = None
            item.failures += 1
            if answer.kind == "sent":
                self._counts["sent"] += 1
                log.debug("forge status %s sent (%s)", label, answer.detail)
            elif answer.kind == "final":
                self._counts["refused"] += 1
                log.warning("forge status %s refused: %s; not retried", label, answer.detail)
            elif item.request.key in self._queue:
                self._counts["superseded"] += 1  # a newer state of the commit is queued: it goes instead
            elif item.failures >= self._attempts or answer.wait > self._longest:
                self._counts["gave_up"] += 1
                log.warning(
                    "forge status %s not sent after %d attempt(s): %s", label, item.failures, answer.detail
                )
            elif not self._closed:
                pause = max(
                    answer.wait, backoff_delay(item.failures, self._first, self._longest, self._jitter())
                )
                log.info("forge status %s failed (%s); retrying in %.1f s", label, answer.detail, pause)
                item.due = self._clock() + pause
                self._enqueue(item)
            self._cond.notify_all()


def _forge_message(response: httpx.Response, token: str) -> str:
    """The ``message`` a forge gives with a refusal (GitHub, Gitea and GitLab all answer one), without
    the token should the forge have echoed it."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str | dict | list) or not message:
        return ""
    text = " ".join(str(message).split())
    if token:
        text = text.replace(token, "[token]")
    return f": {text[:MAX_MESSAGE]}"
