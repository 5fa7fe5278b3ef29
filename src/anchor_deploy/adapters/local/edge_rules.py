"""What every edge shares, whichever web server reads the symlink tree (caddy_config.py, nginx_config.py):
where the tree and the app sockets are, the Cache-Control values and which paths get them, and the edge's
own error bodies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HTML_CACHE = "public, max-age=0, must-revalidate"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
# Names that carry a content hash (app.3f2a9c1b.js, chunk-0a1b2c3d4e.css): safe to cache forever anywhere.
HASHED_ASSET = r"[.-][0-9a-f]{8,64}\.[A-Za-z0-9]+$"
HTML_PATH = r"(/|\.html?)$"
EDGE_404_BODY = "404 Not Found: nothing is deployed at this address.\n"
MISDIRECTED_BODY = "421 Misdirected Request: this connection's TLS name is not the Host asked for.\n"
FILE_404_BODY = "404 Not Found\n"
TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class WorkerSockets:
    """Where app workers listen (``root``/worker/<id>.sock) and the activator's socket for cold starts."""

    root: Path
    activator: Path


@dataclass(frozen=True)
class EdgePaths:
    alias_hosts: Path  # edge/a
    deployment_hosts: Path  # edge/d
    deployments: Path  # deployments/
    custom_hosts: Path | None = None  # edge/c: custom domains, links to edge/a/<production host>
