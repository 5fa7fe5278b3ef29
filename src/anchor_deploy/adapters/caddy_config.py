"""Caddy's JSON config for the edge. Built once from settings; it never changes with deployments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anchor_deploy.adapters.fs_blobs import MARKER
from anchor_deploy.model.manifest import ETAG_SUFFIX
from anchor_deploy.model.names import HOSTNAME_PATTERN

HOST = "{http.request.host}"


@dataclass(frozen=True)
class WorkerSockets:
    """Where app workers listen (``root``/worker/<id>.sock) and the activator's socket for cold starts."""

    root: Path
    activator: Path


HTML_CACHE = "public, max-age=0, must-revalidate"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
# Names that carry a content hash (app.3f2a9c1b.js, chunk-0a1b2c3d4e.css): safe to cache forever anywhere.
HASHED_ASSET = r"[.-][0-9a-f]{8,64}\.[A-Za-z0-9]+$"
HTML_PATH = r"(/|\.html?)$"
EDGE_404_BODY = "404 Not Found: nothing is deployed at this address.\n"
FILE_404_BODY = "404 Not Found\n"


# The 404 page is an error response: answer it whole, never as a 304 or a partial 206.
_NO_CONDITIONALS = {
    "handler": "headers",
    "request": {"delete": ["If-None-Match", "If-Match", "Range", "If-Range"]},
}


def _cache(value: str) -> dict[str, Any]:
    return {"handler": "headers", "response": {"set": {"Cache-Control": [value]}}}


def _static_match(root: str) -> list[dict[str, Any]]:
    """The request names a file of the deployment's public directory (or a directory with index.html)."""
    path = "{http.request.uri.path}"
    not_sidecar = {"not": [{"path": [f"*{ETAG_SUFFIX}"]}]}
    return [
        {
            "path_regexp": {"pattern": "[^/]$"},
            "file": {"root": root, "try_files": [path, f"{path}/index.html"]},
            **not_sidecar,
        },
        {
            "path_regexp": {"pattern": "/$"},
            "file": {"root": root, "try_files": [f"{path}index.html"]},
            **not_sidecar,
        },
    ]


def _app_route(kind_root: Path, workers: WorkerSockets) -> dict[str, Any]:
    """Paths that are not static files go to the deployment's app worker, if it has one. The dial string
    names the version, so Caddy's keep-alive pool never sends a request to a version no longer routed."""
    # /worker/<deployment id>.sock, from the deployment's marker; kept in a variable because the next
    # file matcher overwrites the matcher placeholders.
    worker = "{http.vars.anchor_worker}"
    return {
        "match": [{"file": {"root": f"{kind_root}/{HOST}", "try_files": ["/worker/*.sock"]}}],
        "handle": [
            {
                "handler": "subroute",
                "routes": [
                    {"handle": [{"handler": "vars", "anchor_worker": "{http.matchers.file.relative}"}]},
                    {
                        "match": [{"file": {"root": str(workers.root), "try_files": [f"{worker}.up"]}}],
                        "handle": [
                            {
                                "handler": "reverse_proxy",
                                "upstreams": [{"dial": f"unix/{workers.root}{worker}"}],
                                # A restarting worker refuses connections a moment: wait, not fail.
                                "load_balancing": {"try_duration": "15s", "try_interval": "50ms"},
                            }
                        ],
                        "terminal": True,
                    },
                    {
                        "handle": [
                            {
                                "handler": "reverse_proxy",
                                "upstreams": [{"dial": f"unix/{workers.activator}"}],
                                "headers": {"request": {"set": {"X-Anchor-Worker": [worker]}}},
                                "transport": {"protocol": "http", "response_header_timeout": "60s"},
                            }
                        ],
                    },
                ],
            }
        ],
        "terminal": True,
    }


def _serve_routes(kind_root: Path, immutable_host: bool, workers: WorkerSockets) -> list[dict[str, Any]]:
    """The handler chain for one kind of host: static files, then the app (if any), then 404s."""
    root = f"{kind_root}/{HOST}/public"
    file_server = {
        "handler": "file_server",
        "root": root,
        "index_names": ["index.html"],
        "hide": [f"*{ETAG_SUFFIX}"],
        "etag_file_extensions": [ETAG_SUFFIX],
    }
    # Non-HTML files of an immutable URL can never change; on an alias only hashed names are safe.
    other_cache = IMMUTABLE_CACHE if immutable_host else HTML_CACHE
    static = [
        {
            "handle": [
                {
                    "handler": "headers",
                    # ETags are content hashes; mtimes are shared by hard links, so no date validators.
                    "request": {"delete": ["If-Modified-Since", "If-Unmodified-Since"]},
                    "response": {"delete": ["Last-Modified"], "deferred": True},
                },
                _cache(other_cache),
            ],
        },
        {"match": [{"path_regexp": {"pattern": HASHED_ASSET}}], "handle": [_cache(IMMUTABLE_CACHE)]},
        {"match": [{"path_regexp": {"pattern": HTML_PATH}}], "handle": [_cache(HTML_CACHE)]},
        {"handle": [file_server]},
    ]
    return [
        {
            "match": _static_match(root),
            "handle": [{"handler": "subroute", "routes": static}],
            "terminal": True,
        },
        _app_route(kind_root, workers),
        {
            "handle": [
                _cache(HTML_CACHE),
                _NO_CONDITIONALS,
                {
                    "handler": "headers",
                    "request": {"delete": ["If-Modified-Since", "If-Unmodified-Since"]},
                    "response": {"delete": ["Last-Modified"], "deferred": True},
                },
                {"handler": "rewrite", "uri": "/404.html"},
                {**file_server, "status_code": 404, "pass_thru": True},
            ]
        },
        {"handle": [_not_found(FILE_404_BODY)]},
    ]


def _not_found(body: str = EDGE_404_BODY) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": 404,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"], "Cache-Control": ["no-store"]},
        "body": body,
    }


def _host_route(kind_root: Path, immutable_host: bool, workers: WorkerSockets) -> dict[str, Any]:
    return {
        "match": [
            {
                # A strict lowercase hostname first: '..', '.', '' or 'a/b' never reach a file path.
                "vars_regexp": {HOST: {"name": "host", "pattern": HOSTNAME_PATTERN}},
                "file": {"root": f"{kind_root}/{HOST}", "try_files": [f"/{MARKER}"]},
            }
        ],
        "handle": [{"handler": "subroute", "routes": _serve_routes(kind_root, immutable_host, workers)}],
        "terminal": True,
    }


def edge_config(
    *,
    http_listen: str,
    admin_socket: Path,
    alias_root: Path,
    deployment_root: Path,
    storage_root: Path,
    workers: WorkerSockets,
) -> dict[str, Any]:
    return {
        "admin": {"listen": f"unix/{admin_socket}", "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "storage": {"module": "file_system", "root": str(storage_root)},
        "apps": {
            "http": {
                "servers": {
                    "edge": {
                        "listen": [http_listen],
                        "automatic_https": {"disable": True},
                        "routes": [
                            _host_route(deployment_root, immutable_host=True, workers=workers),
                            _host_route(alias_root, immutable_host=False, workers=workers),
                            {"handle": [_not_found()]},
                        ],
                    }
                }
            }
        },
    }
