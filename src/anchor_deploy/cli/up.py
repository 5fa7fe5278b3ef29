"""`anchor up`: the supervisor process (API, reconciler, build queue, and a supervised Caddy)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI

from anchor_deploy.api.app import create_app
from anchor_deploy.api.http_protocol import timed_protocol
from anchor_deploy.providers import build_platform
from anchor_deploy.providers.platform import Platform
from anchor_deploy.settings import Settings, parse_addr
from anchor_deploy.web.app import close_streams

log = logging.getLogger("anchor")


def write_secret_file(path: Path, secret: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    os.replace(tmp, path)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its own shutdown, which would kill us before the platform
    (and Caddy) stop; here a signal only asks the server to exit, and run_platform stops the rest. Its
    shutdown first ends the dashboard's event streams, which would otherwise hold it for the graceful
    timeout."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        close_streams(self._app)
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def ask_exit(signum: int, _frame: FrameType | None) -> None:
            self.force_exit = self.should_exit
            self.should_exit = True

        previous = {sig: signal.signal(sig, ask_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_platform(settings: Settings, say: Callable[[str], None] = print) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    platform = build_platform(settings)
    try:
        _serve(platform, settings, say)
    finally:
        platform.stop()
        say("anchor-deploy stopped")


def _serve(platform: Platform, settings: Settings, say: Callable[[str], None]) -> None:
    admin = platform.start()
    api_host, api_port = parse_addr(settings.api_addr, "ANCHOR_API_ADDR")
    # On AWS nothing serves here but the API: Lambda and CloudFront serve the deployments.
    edge = f"  edge http://{settings.http_addr}" if settings.provider == "local" else ""
    say(f"anchor-deploy is up: API http://{settings.api_addr}{edge}")
    say(f"dashboard: http://{settings.api_addr}/ui/ (sign in with a token)")
    say(f"data dir: {settings.data_dir.resolve()}")
    for line in platform.notes():
        say(line)
    for token in admin.revoked:
        say(f"ANCHOR_ADMIN_TOKEN changed: the previous env admin token ({token.id}) is revoked")
    if admin.secret:
        token_file = settings.data_dir.resolve() / "admin-token"
        write_secret_file(token_file, admin.secret)
        say(f"admin token (shown once, also saved to {token_file} with mode 0600):\n  {admin.secret}")
    app = create_app(platform)
    server = _Server(
        uvicorn.Config(
            app,
            host=api_host,
            port=api_port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            # httptools (uvicorn's choice when installed) plus a header/body read timeout, a header cap.
            http=timed_protocol(settings.api_read_timeout),
        ),
        app,
    )
    # Everything built so far (the app, its routes and models, the platform) lives as long as the process:
    # out of the collector's sight, a full collection scans only what requests made since, not these
    # ~125,000 objects (about 70 ms on this machine, paid by whichever request triggered it).
    gc.collect()
    gc.freeze()
    server.run()
