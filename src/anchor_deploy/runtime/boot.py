"""Worker bootstrap, run by an app environment's own Python (it imports nothing from anchor_deploy).

    python boot.py --entry app:app --uds /run/x.sock --activity /run/x.active --app-dir /deploy/app

Imports the app, detects ASGI or WSGI, wraps it to record activity (the file's mtime, at most once a
second) for the idle policy, and serves it with uvicorn on the unix socket.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import os
import sys
import time
from typing import Any


class Activity:
    def __init__(self, path: str) -> None:
        self.path = path
        self.last = 0.0
        open(path, "a").close()

    def touch(self) -> None:
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.last = now
            with contextlib.suppress(OSError):
                os.utime(self.path)


def is_asgi(app: Any) -> bool:
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app)


def wrap_asgi(app: Any, activity: Activity) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            activity.touch()
        await app(scope, receive, send)

    return wrapped


def wrap_wsgi(app: Any, activity: Activity) -> Any:
    def wrapped(environ: Any, start_response: Any) -> Any:
        activity.touch()
        return app(environ, start_response)

    return wrapped


def server_options() -> dict[str, str]:
    """uvicorn's fast HTTP parser and event loop (httptools, uvloop) where they import and work, else h11 and
    asyncio, with one line to the runtime log saying which fell back and why (they are optional: the build
    installs them only where pip can, and never over a version the app's own requirements chose)."""
    options = {"http": "h11", "loop": "asyncio"}
    missing = []
    try:
        import uvicorn.protocols.http.httptools_impl  # noqa: F401 (it imports httptools)

        options["http"] = "httptools"
    except Exception as exc:  # any failure to load it means: run without it
        missing.append(f"httptools ({type(exc).__name__}: {exc})")
    try:
        import uvloop

        uvloop.new_event_loop().close()
        options["loop"] = "uvloop"
    except Exception as exc:
        missing.append(f"uvloop ({type(exc).__name__}: {exc})")
    if missing:
        print(
            f"anchor: running uvicorn on {options['http']} and {options['loop']}: "
            + ", ".join(missing)
            + " did not load",
            file=sys.stderr,
            flush=True,
        )
    return options


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entry", required=True)
    parser.add_argument("--uds", required=True)
    parser.add_argument("--activity", required=True)
    parser.add_argument("--app-dir", required=True)
    args = parser.parse_args()
    os.chdir(args.app_dir)
    sys.path.insert(0, args.app_dir)
    module_name, _, attribute = args.entry.partition(":")
    app = getattr(importlib.import_module(module_name), attribute)
    activity = Activity(args.activity)
    import uvicorn

    speed = server_options()
    if is_asgi(app):
        uvicorn.run(
            wrap_asgi(app, activity),
            uds=args.uds,
            interface="asgi3",
            lifespan="auto",  # an ASGI app may run start-up and shut-down code
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=5,
            **speed,  # type: ignore[arg-type]
        )
    else:
        uvicorn.run(
            wrap_wsgi(app, activity),
            uds=args.uds,
            interface="wsgi",
            lifespan="off",  # WSGI has no lifespan: "auto" would log that the protocol is unsupported
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=5,
            **speed,  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
