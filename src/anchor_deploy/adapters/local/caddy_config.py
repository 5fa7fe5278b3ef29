"""Caddy's JSON config for the edge. Built once from settings; it never changes with deployments.

Per request: the Host must be a strict lowercase hostname (a Host with capitals or one trailing dot is first
rewritten in place to that form, on a route of its own, so lowercase requests pay nothing for it); its
symlink (edge/a/<host> for production aliases, edge/d/<host> for immutable URLs) is resolved ONCE, by
globbing the deployment's id marker (deployments/<id>/<id>) through it, into {http.vars.deployment}.
Everything after that (the file, its ETag sidecar, the 404 page, the app worker) is read from
deployments/<id> itself, so a rollback in the middle of a request can never pair one deployment's body
with another's ETag.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anchor_deploy.adapters.local.edge_rules import (
    EDGE_404_BODY,
    FILE_404_BODY,
    HASHED_ASSET,
    HTML_CACHE,
    HTML_PATH,
    IMMUTABLE_CACHE,
    MISDIRECTED_BODY,
    TEXT_TYPE,
    EdgePaths,
    WorkerSockets,
)
from anchor_deploy.model.manifest import ETAG_SUFFIX
from anchor_deploy.model.names import HOSTNAME_PATTERN

HOST = "{http.request.host}"
SNI = "{http.request.tls.server_name}"
DEPLOYMENT = "{http.vars.deployment}"  # "/dpl_<id>", set once per request
ID_MARKER_GLOB = "/dpl_*"
WILDCARD = "{anchor_wild}"
SNI_COPY = "X-Anchor-Sni"  # request header, only while the SNI is lowercased; deleted before serving
SNI_COPY_VALUE = "{http.request.header.X-Anchor-Sni}"
LOWERED_SNI = "{http.vars.anchor_sni}"


@dataclass(frozen=True)
class HttpsEdge:
    """Custom domains over HTTPS: where to listen, and the loopback URL Caddy fetches certificates from."""

    listen: str
    port: int
    certificate_url: str


# The 404 page is an error response: answer it whole, never as a 304 or a partial 206.
_NO_CONDITIONALS = {
    "handler": "headers",
    "request": {
        "delete": [
            "If-None-Match",
            "If-Match",
            "Range",
            "If-Range",
            "If-Modified-Since",
            "If-Unmodified-Since",
        ]
    },
}
# A blob's mtime is a content stamp, not a date (fs_blobs.stamp_for): the date validators would compare it as
# one, so static files never see them. They are kept in variables and handed back to an app, whose dates
# are its own.
DATE_VALIDATORS = (("If-Modified-Since", "anchor_ims"), ("If-Unmodified-Since", "anchor_ius"))
_KEEP_DATE_VALIDATORS = {
    "handler": "vars",
    **{var: f"{{http.request.header.{field}}}" for field, var in DATE_VALIDATORS},
}


def _date_validators_back() -> list[dict[str, Any]]:
    """For an app: each date validator the request came with, set again (only if it came with one)."""
    return [
        {
            "match": [{"not": [{"vars": {f"{{http.vars.{var}}}": [""]}}]}],
            "handle": [{"handler": "headers", "request": {"set": {field: [f"{{http.vars.{var}}}"]}}}],
        }
        for field, var in DATE_VALIDATORS
    ]


def _cache(value: str, drop_dates: bool = False) -> dict[str, Any]:
    handler: dict[str, Any] = {"handler": "headers", "response": {"set": {"Cache-Control": [value]}}}
    if drop_dates:
        handler["request"] = {"delete": [field for field, _var in DATE_VALIDATORS]}
    return handler


def _app_route(paths: EdgePaths, workers: WorkerSockets) -> list[dict[str, Any]]:
    """Paths that are not static files go to the deployment's app worker, if it has one. A running worker
    has its ``.sock.up`` marker: that one check routes a warm request (only an app deployment has a worker,
    so it also says "this is an app"). Without it, an app deployment (it has a worker/ directory) goes to
    the activator. The dial string names the version, so Caddy's keep-alive pool never sends a request to a
    version that is no longer routed there."""
    # The static chain set a Cache-Control before it found no file: the app's own answer decides.
    no_cache_header = {"handler": "headers", "response": {"delete": ["Cache-Control"]}}
    return [
        {
            "match": [{"file": {"root": f"{workers.root}/worker", "try_files": [f"{DEPLOYMENT}.sock.up"]}}],
            "handle": [
                no_cache_header,
                {
                    "handler": "reverse_proxy",
                    "upstreams": [{"dial": f"unix/{workers.root}/worker{DEPLOYMENT}.sock"}],
                    # A restarting worker refuses connections a moment: wait, not fail.
                    "load_balancing": {"try_duration": "15s", "try_interval": "50ms"},
                },
            ],
            "terminal": True,
        },
        {
            "match": [{"file": {"root": str(paths.deployments), "try_files": [f"{DEPLOYMENT}/worker/"]}}],
            "handle": [
                no_cache_header,
                {
                    "handler": "reverse_proxy",
                    "upstreams": [{"dial": f"unix/{workers.activator}"}],
                    "headers": {"request": {"set": {"X-Anchor-Worker": [DEPLOYMENT]}}},
                    "transport": {"protocol": "http", "response_header_timeout": "60s"},
                },
            ],
            "terminal": True,
        },
    ]


def _serve_routes(paths: EdgePaths, immutable_host: bool, workers: WorkerSockets) -> list[dict[str, Any]]:
    """The handler chain for one deployment: static files, then the app (if any), then 404s. A blob's
    mtime is its content stamp, so the Last-Modified of a static file is that stamp; the date validators are
    taken off the request before the file server (and given back to an app), so the ETag alone decides."""
    root = f"{paths.deployments}{DEPLOYMENT}/public"
    # No `hide` list (it costs a glob per request): sidecar names never reach a file_server, since the
    # file route refuses them and the 404 route always rewrites to /404.html.
    file_server = {
        "handler": "file_server",
        "root": root,
        "index_names": ["index.html"],
        "etag_file_extensions": [ETAG_SUFFIX],
    }
    # Non-HTML files of an immutable URL can never change; on an alias only hashed names are safe.
    other_cache = IMMUTABLE_CACHE if immutable_host else HTML_CACHE
    # One map handler picks the Cache-Control (its regexps run only when the header is written).
    cache_policy = {
        "handler": "map",
        "source": "{http.request.uri.path}",
        "destinations": ["{anchor_cache}"],
        "mappings": [
            {"input_regexp": HASHED_ASSET, "outputs": [IMMUTABLE_CACHE]},
            {"input_regexp": HTML_PATH, "outputs": [HTML_CACHE]},
        ],
        "defaults": [other_cache],
    }
    return [
        {"handle": [cache_policy, _KEEP_DATE_VALIDATORS, _cache("{anchor_cache}", drop_dates=True)]},
        # Serve the file if there is one (sidecar names never: they are not files of the site)...
        {"match": [{"not": [{"path": [f"*{ETAG_SUFFIX}"]}]}], "handle": [{**file_server, "pass_thru": True}]},
        # ...else the app, if the deployment has one (with the date validators it was sent)...
        *_date_validators_back(),
        *_app_route(paths, workers),
        # ...else the deployment's 404.html, else a plain 404.
        {
            "handle": [
                _cache(HTML_CACHE),
                _NO_CONDITIONALS,
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
        "headers": {"Content-Type": [TEXT_TYPE], "Cache-Control": ["no-store"]},
        "body": body,
    }


def _host_kind_route(
    host_root: Path, paths: EdgePaths, immutable: bool, workers: WorkerSockets, host: str = HOST
) -> dict[str, Any]:
    return {
        # The glob lists the directory once, through the symlink; its result is used as is. A second look
        # (first_exist's Stat of <host>/dpl_<old id>) would go through the symlink again and miss when a
        # rollback swapped it in between, answering the edge 404.
        "match": [
            {
                "file": {
                    "root": f"{host_root}/{host}",
                    "try_files": [ID_MARKER_GLOB],
                    "try_policy": "first_exist_fallback",
                }
            }
        ],
        "handle": [
            {
                "handler": "subroute",
                "routes": [
                    {"handle": [{"handler": "vars", "deployment": "{http.matchers.file.relative}"}]},
                    *_serve_routes(paths, immutable, workers),
                ],
            }
        ],
        "terminal": True,
    }


def _wildcard_parent() -> dict[str, Any]:
    """{anchor_wild} = "_.<host minus its first label>": where a wildcard domain's link lives."""
    return {
        "handler": "map",
        "source": HOST,
        "destinations": [WILDCARD],
        "mappings": [{"input_regexp": r"^[^.]+\.(.+)$", "outputs": ["_.${1}"]}],
        "defaults": ["_"],
    }


def _custom_redirect(custom_root: Path, https_port: int) -> dict[str, Any]:
    """Plain HTTP for a custom domain (exact or wildcard) answers with a permanent redirect to HTTPS."""
    port = "" if https_port == 443 else f":{https_port}"
    redirect = {
        "handler": "static_response",
        "status_code": 308,
        "headers": {"Location": [f"https://{HOST}{port}{{http.request.uri}}"], "Cache-Control": ["no-store"]},
    }
    exists = [f"/{HOST}/{ID_MARKER_GLOB[1:]}", f"/{WILDCARD}/{ID_MARKER_GLOB[1:]}"]
    return {
        "handle": [
            {
                "handler": "subroute",
                "routes": [
                    {"handle": [_wildcard_parent()]},
                    {
                        "match": [{"file": {"root": str(custom_root), "try_files": exists}}],
                        "handle": [redirect],
                        "terminal": True,
                    },
                ],
            }
        ]
    }


def _canonical_host() -> dict[str, Any]:
    """A strict lowercase hostname: '..', '.', '' or 'a/b' never reach a file path."""
    return {"vars_regexp": {HOST: {"name": "host", "pattern": HOSTNAME_PATTERN}}}


def _host_case_replacements() -> list[dict[str, str]]:
    """A Host's letters lowercased and one trailing dot dropped (before the port, if any). Caddy has no
    lowercase placeholder; its headers handler replaces substrings, and Host changed there is the
    request's host from then on (the placeholders, the file matchers, what an app worker sees)."""
    lowered = [{"search": c, "replace": c.lower()} for c in string.ascii_uppercase]
    return [*lowered, {"search": ".:", "replace": ":"}, {"search_regexp": r"\.$", "replace": ""}]


def _lowercase_host() -> dict[str, Any]:
    return {"handler": "headers", "request": {"replace": {"Host": _host_case_replacements()}}}


def _normalized_then(serve: dict[str, Any], before: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """For a Host that is not canonical as sent: lowercase it (and drop one trailing dot), then the same
    serving route again. Browsers send lowercase hosts, so only curl, bots and hand-typed dots come here;
    the lowercase hot path is untouched. What is still not canonical falls through to the 404."""
    return {
        "match": [{"not": [serve["match"][0]]}],
        "handle": [*(before or [_lowercase_host()]), {"handler": "subroute", "routes": [serve]}],
    }


def _misdirected() -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": 421,
        "headers": {"Content-Type": [TEXT_TYPE], "Cache-Control": ["no-store"]},
        "body": MISDIRECTED_BODY,
        "close": True,
    }


def _https_serve(paths: EdgePaths, workers: WorkerSockets, sni: str) -> dict[str, Any]:
    """Custom domains, when the Host is canonical and names the connection's TLS name ``sni`` (so no
    reaching one domain through another's certificate): the exact name's link, else the wildcard's."""
    assert paths.custom_hosts is not None
    return {
        "match": [{**_canonical_host(), "vars": {sni: [HOST]}}],
        "handle": [
            {
                "handler": "subroute",
                "routes": [
                    {"handle": [_wildcard_parent()]},
                    _host_kind_route(paths.custom_hosts, paths, False, workers),
                    _host_kind_route(paths.custom_hosts, paths, False, workers, host=WILDCARD),
                ],
            }
        ],
    }


def https_routes(paths: EdgePaths, workers: WorkerSockets) -> list[dict[str, Any]]:
    """The HTTPS server serves custom domains only. The SNI picks the certificate (its name is lowercased
    by the certificate endpoint; Go keeps it as sent and refuses a trailing dot in it), and the Host must
    name the same name, compared once both are lowercased: a request for another name on this connection
    gets 421 (Misdirected Request), as Caddy's strict_sni_host would answer; that setting stays off because
    it compares before the Host's trailing dot could be dropped."""
    lower_sni: list[dict[str, Any]] = [
        {
            "handler": "headers",
            "request": {
                "set": {SNI_COPY: [SNI]},
                "replace": {"Host": _host_case_replacements(), SNI_COPY: _host_case_replacements()},
            },
        },
        {"handler": "vars", "anchor_sni": SNI_COPY_VALUE},
        {"handler": "headers", "request": {"delete": [SNI_COPY]}},
    ]
    normalized = _normalized_then(_https_serve(paths, workers, LOWERED_SNI), lower_sni)
    normalized["handle"][-1]["routes"].append(
        {"match": [{"not": [{"vars": {LOWERED_SNI: [HOST]}}]}], "handle": [_misdirected()]}
    )
    return [_https_serve(paths, workers, SNI), normalized, {"handle": [_not_found()]}]


def _http_serve(paths: EdgePaths, workers: WorkerSockets, https_port: int | None) -> dict[str, Any]:
    custom = (
        [_custom_redirect(paths.custom_hosts, https_port)]
        if paths.custom_hosts is not None and https_port is not None
        else []
    )
    return {
        "match": [_canonical_host()],
        "handle": [
            {
                "handler": "subroute",
                "routes": [  # production aliases first: they carry most of the traffic
                    _host_kind_route(paths.alias_hosts, paths, False, workers),
                    _host_kind_route(paths.deployment_hosts, paths, True, workers),
                    *custom,
                ],
            }
        ],
    }


def edge_routes(
    paths: EdgePaths, workers: WorkerSockets, https_port: int | None = None
) -> list[dict[str, Any]]:
    serve = _http_serve(paths, workers, https_port)
    normalized = _normalized_then(_http_serve(paths, workers, https_port))
    return [serve, normalized, {"handle": [_not_found()]}]


def edge_config(
    *,
    http_listen: str,
    admin_socket: Path,
    paths: EdgePaths,
    storage_root: Path,
    workers: WorkerSockets,
    https: HttpsEdge | None = None,
) -> dict[str, Any]:
    servers: dict[str, Any] = {
        "edge": {
            "listen": [http_listen],
            "automatic_https": {"disable": True},
            "routes": edge_routes(paths, workers, https.port if https else None),
        }
    }
    apps: dict[str, Any] = {"http": {"servers": servers}}
    if https is not None:
        servers["edge_tls"] = {
            "listen": [https.listen],
            "automatic_https": {"disable": True},
            "tls_connection_policies": [{}],
            # The routes check that the Host names the SNI (https_routes), after lowercasing both.
            "routes": https_routes(paths, workers),
        }
        # Caddy asks for each handshake's certificate over loopback (not cached): installing or renewing a
        # certificate is a file rename on our side, never a config reload.
        apps["tls"] = {
            "automation": {"policies": [{"get_certificate": [{"via": "http", "url": https.certificate_url}]}]}
        }
    return {
        "admin": {"listen": f"unix/{admin_socket}", "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "storage": {"module": "file_system", "root": str(storage_root)},
        "apps": apps,
    }
