"""What an app prints cannot grow the platform: one app prints 300 MiB without a newline, another 2 million
lines, at the same time. The `anchor up` process's memory (VmRSS) stays flat, each runtime log stays under
ANCHOR_LOG_MAX_BYTES (<id>.log + <id>.log.1), the long line is cut with a marker, and the last lines are
served quickly (they are read from the end of the file, not through it)."""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.apps_support import (
    app_files,
    app_platform,
    as_bytes,
    edge_get,
    flask_source,
    host_of,
    wait_until,
)
from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy

LOG_CAP = 4 * 1024 * 1024
FLOOD_MIB = 300
LINES = 2_000_000
ROUTES = f"""

def _flood():
    chunk = "x" * (1 << 20)
    for _ in range({FLOOD_MIB}):
        sys.stdout.write(chunk)
    sys.stdout.write("\\nflood done\\n")
    sys.stdout.flush()


def _lines():
    for start in range(0, {LINES}, 10000):
        sys.stdout.write("".join(f"line {{i:07d}}\\n" for i in range(start, start + 10000)))
    sys.stdout.write("lines done\\n")
    sys.stdout.flush()


@app.get("/print/<what>")
def print_(what):
    import threading

    threading.Thread(target=_flood if what == "flood" else _lines, daemon=True).start()
    return jsonify(started=what)
"""


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


def log_bytes(anchor: AnchorProcess, deployment_id: str) -> int:
    folder = anchor.data_dir / "logs" / "runtime"
    return sum(
        p.stat().st_size
        for p in (folder / f"{deployment_id}.log", folder / f"{deployment_id}.log.1")
        if p.exists()
    )


def runtime_lines(api: httpx.Client, deployment_id: str, limit: int) -> tuple[list[str], float]:
    started = time.perf_counter()
    response = api.get(f"/v1/deployments/{deployment_id}/logs", params={"source": "runtime", "limit": limit})
    took = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return [line.split(" ", 1)[1] for line in response.json()["lines"]], took


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    anchor = app_platform(tmp_path_factory.mktemp("logs") / "data", ANCHOR_LOG_MAX_BYTES=str(LOG_CAP)).start()
    try:
        yield anchor
    finally:
        anchor.stop()


def test_floods_of_output_keep_memory_flat_logs_capped_and_tails_fast(platform: AnchorProcess) -> None:
    assert platform.proc is not None
    deployments = {}
    with platform.api() as api:
        for project in ("flood", "chatty"):
            ensure_project(api, project)
            files = as_bytes(app_files("v1", source=flask_source("v1", routes=ROUTES)))
            deployment = upload_and_deploy(api, project, files, wait=True)
            assert deployment["status"] == "READY", deployment
            deployments[project] = deployment
            assert edge_get(platform, host_of(deployment["url"])).status_code == 200
    flood, chatty = deployments["flood"]["id"], deployments["chatty"]["id"]

    time.sleep(1)
    baseline = rss_kib(platform.proc.pid)
    peak = baseline
    biggest_log = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, biggest_log
        while not done.is_set():
            peak = max(peak, rss_kib(platform.proc.pid))  # type: ignore[union-attr]
            biggest_log = max(biggest_log, log_bytes(platform, flood), log_bytes(platform, chatty))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        for project, what in (("flood", "flood"), ("chatty", "lines")):
            answer = edge_get(platform, host_of(deployments[project]["url"]), f"/print/{what}")
            assert answer.status_code == 200 and answer.json() == {"started": what}, answer.text
        with platform.api() as api:
            # Asked while both floods are being written: the tail is still quick.
            during = [runtime_lines(api, chatty, 5)[1] for _ in range(5)]
            wait_until(
                lambda: runtime_lines(api, flood, 5)[0][-1:] == ["flood done"], 120, "the 300 MiB line"
            )
            wait_until(
                lambda: runtime_lines(api, chatty, 5)[0][-1:] == ["lines done"], 120, "2 million lines"
            )
    finally:
        done.set()
        sampler.join()
    took = time.monotonic() - started
    growth_mib = (peak - baseline) / 1024
    print(
        f"\n[measure] both floods written in {took:.1f}s; "
        f"VmRSS {baseline / 1024:.1f} MiB -> peak {peak / 1024:.1f} MiB"
    )
    assert growth_mib < 50, f"anchor up grew by {growth_mib:.0f} MiB"

    # Each log stayed under its cap all along; the chatty one was rotated and kept its newest lines.
    print(f"[measure] largest runtime log seen: {biggest_log} bytes (cap {LOG_CAP})")
    assert 0 < biggest_log <= LOG_CAP
    assert log_bytes(platform, chatty) > LOG_CAP // 2, "the cap is used, not emptied"
    with platform.api() as api:
        lines, _took = runtime_lines(api, chatty, 5)
        assert lines == [f"line {i:07d}" for i in range(LINES - 4, LINES)] + ["lines done"]
        lines, _took = runtime_lines(api, flood, 3)
        assert lines[-1] == "flood done"
        cut = [line for line in lines if "… [line cut:" in line]
        assert cut == ["x" * 16384 + f"… [line cut: {FLOOD_MIB * 1024 * 1024 - 16384} more bytes]"], [
            line[-80:] for line in lines
        ]

        # The last lines, from the API: quick whatever the size of what was printed.
        timings = {
            limit: statistics.median(runtime_lines(api, chatty, limit)[1] for _ in range(9))
            for limit in (5, 200)
        }
    print(
        "[measure] runtime log tail: median "
        + ", ".join(f"{limit} lines {took * 1000:.1f} ms" for limit, took in timings.items())
        + f"; during the floods: median {statistics.median(during) * 1000:.1f} ms"
    )
    assert all(took < 0.1 for took in timings.values()), timings
    assert statistics.median(during) < 0.1, during

    # The CLI shows the same lines.
    shown = platform.cli("logs", chatty, "--runtime", "-n", "3").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in shown] == ["line 1999998", "line 1999999", "lines done"]
