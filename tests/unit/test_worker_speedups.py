"""The worker runs uvicorn on httptools and uvloop where they load, else on h11 and asyncio, saying so."""

from __future__ import annotations

import sys

import pytest

from anchor_deploy.runtime.boot import server_options

_SPEED_UP_MODULES = ("httptools", "uvloop", "uvicorn.protocols.http.httptools_impl")


def test_httptools_and_uvloop_are_used_where_they_load(capsys: pytest.CaptureFixture[str]) -> None:
    assert server_options() == {"http": "httptools", "loop": "uvloop"}
    assert capsys.readouterr().err == ""


def test_without_them_the_worker_falls_back_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in _SPEED_UP_MODULES:  # None in sys.modules: `import name` raises ImportError
        monkeypatch.setitem(sys.modules, name, None)
    assert server_options() == {"http": "h11", "loop": "asyncio"}
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "h11 and asyncio" in lines[0]
    assert "httptools (ModuleNotFoundError" in lines[0] and "uvloop (ModuleNotFoundError" in lines[0]


def test_a_broken_uvloop_alone_falls_back_to_asyncio(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken:
        @staticmethod
        def new_event_loop() -> None:
            raise RuntimeError("built for another Python")

    monkeypatch.setitem(sys.modules, "uvloop", Broken)
    assert server_options() == {"http": "httptools", "loop": "asyncio"}
    assert "uvloop (RuntimeError: built for another Python)" in capsys.readouterr().err
