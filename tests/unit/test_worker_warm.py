"""A production move asks the runtime to keep versions warm, on the request's path: WorkerRuntime.keep_warm
starts no thread for a static version or one whose worker runs, asks what a deployment is once, and warms
the rest on its few long-lived warm-up threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from anchor_deploy.adapters.local.worker_runtime import WorkerRuntime


@dataclass
class Warming:
    asked: list[str] = field(default_factory=list)  # the deployments is_app was asked about
    warmed: list[tuple[str, str]] = field(default_factory=list)  # (deployment, warming thread's name)
    done: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    runtime: WorkerRuntime | None = None

    def is_app(self, deployment_id: str) -> bool | None:
        self.asked.append(deployment_id)
        return None if deployment_id == "gone" else deployment_id.startswith("app")

    def warm_up(self, deployment_id: str) -> None:
        self.warmed.append((deployment_id, threading.current_thread().name))
        self.done.release()


class _RunningWorker:
    healthy = True

    class proc:  # stands for a running subprocess.Popen
        @staticmethod
        def poll() -> None:
            return None


def rt(warming: Warming) -> WorkerRuntime:
    assert warming.runtime is not None
    return warming.runtime


@pytest.fixture
def warming(tmp_path: Path) -> Iterator[Warming]:
    found = Warming()
    policy: Any = None  # keep_warm never spawns here: _warm_up is replaced
    runtime = WorkerRuntime(
        tmp_path / "run", tmp_path / "logs", lambda _d: None, 60.0, policy, is_app=found.is_app
    )
    runtime._warm_up = found.warm_up  # type: ignore[method-assign]
    found.runtime = runtime
    yield found
    runtime.shutdown()


def test_static_versions_wake_nothing_and_are_asked_about_once(warming: Warming) -> None:
    before = threading.active_count()
    for _ in range(20):
        rt(warming).keep_warm("p", {"static-a", "static-b"})
    assert sorted(warming.asked) == ["static-a", "static-b"]
    assert warming.warmed == [] and threading.active_count() == before


def test_cold_apps_are_warmed_on_a_few_long_lived_threads(warming: Warming) -> None:
    for _ in range(20):
        rt(warming).keep_warm("p", {"app-a", "app-b"})
        for _ in range(2):
            assert warming.done.acquire(timeout=10)
    assert len(warming.warmed) == 40 and warming.asked.count("app-a") == 1
    threads = {name for _, name in warming.warmed}
    assert all(name.startswith("warm-up") for name in threads) and 1 <= len(threads) <= 4


def test_running_workers_and_unknown_deployments_are_left_alone(warming: Warming) -> None:
    rt(warming)._workers["app-running"] = cast(Any, _RunningWorker())
    rt(warming).keep_warm("p", {"app-running", "gone"})
    rt(warming).keep_warm("p", {"gone"})
    assert warming.warmed == [] and warming.asked == ["gone", "gone"]  # unknown: not remembered
    rt(warming)._workers.clear()  # no process to stop behind the stand-in
