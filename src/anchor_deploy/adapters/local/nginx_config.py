"""nginx's config for the edge: one static nginx.conf, rendered once from settings; no deploy, rollback or
domain change ever rewrites or reloads it. It reads the same symlink tree as the Caddy edge (caddy_edge.py).

Per request (server level): the Host must be a strict lowercase hostname (nginx's $host is lowercased, one
trailing dot dropped; a Host nginx refuses, such as "..", gets the edge 404 too) whose link (edge/a/<host>,
then edge/d/<host>) exists. A file is opened THROUGH the link: the kernel follows it inside that one open,
and size, mtime (so the ETag) and body come from the one descriptor, with no realpath. Only a miss resolves
the link ONCE into $anchor_id (a map, cached for the request), and all the rest comes from deployments/<id>:
the file again (the link may have moved to a deployment that has it), the app, the 404 page. A deployment
directory appears whole (renamed into place after its id marker), so a link resolving to
deployments/dpl_<id> names a complete deployment; anything else gets the edge 404.

ETags: nginx builds them from mtime and size, and a blob's mtime is a stamp of its content
(fs_blobs.stamp_for), so the ETag is content-derived. No Last-Modified is sent (the stamp is not a date) and
If-Modified-Since is ignored. There is no open_file_cache at all: it would keep answering from a
descriptor, an ETag or a "not found" of before a switch for as long as it caches.

Special answers are named locations reached through error_page with private status codes (48x), since
add_header and default_type cannot be set where the server-level checks run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
from anchor_deploy.adapters.local.nginx_assets import CERTIFICATE_JS, CHARSET_TYPES, MIME_TYPES
from anchor_deploy.adapters.local.worker_slots import KEEPALIVE_TIMEOUT, SLOT_COUNT, slot_socket
from anchor_deploy.model.manifest import ETAG_SUFFIX
from anchor_deploy.model.names import HOSTNAME_PATTERN

NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
# Private statuses (48x: none of nginx's own): a check hands the request to a named location with them.
_EDGE_404 = 480  # no deployment at this Host
_TO_HTTPS = 481  # plain HTTP for a custom domain
_WHOLE = 482  # a static file asked with If-Unmodified-Since
_MISDIRECTED = 483  # the Host is not the connection's TLS name
_WORKER = 484  # the deployment's worker is running
_ACTIVATE = 485  # an app deployment without a running worker
_RESOLVED = 486  # the host's link is resolved into $anchor_id: on to what the miss needs
# A request nginx refuses (a Host such as "..", a path above the root) goes to these internal URIs.
BAD_REQUEST_404 = "/.anchor-edge/404"
BAD_REQUEST_421 = "/.anchor-edge/421"
_PARENT = r"^[^.]+\.(.+)$"  # a host minus its first label: where a wildcard domain's link is
_SAME_NAME = r"^([^:]+):\1$"  # "<SNI>:<Host>" with the same name on both sides


@dataclass(frozen=True)
class NginxHttps:
    """Custom domains over HTTPS: where to listen, and the certificate bundles (cert_files.py)."""

    listen: str
    port: int
    certificates: Path


@dataclass(frozen=True)
class NginxFiles:
    """What nginx is started with: ``conf`` is nginx.conf; ``js`` the certificate picker (HTTPS only)."""

    conf: str
    js: str | None
    unix_sockets: tuple[Path, ...] = ()  # where nginx listens on unix sockets (a crash leaves them behind)


def _q(value: str) -> str:
    """A quoted nginx string (a constant: it has no '$')."""
    assert "$" not in value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _regex(pattern: str, flag: str = "~") -> str:
    """A quoted regex (map key or location). nginx keeps an unknown escape such as '\\.' as it is."""
    assert '"' not in pattern and "\\\\" not in pattern
    return f'"{flag}{pattern}"'


def _error_pages(pages: dict[int, str]) -> str:
    """``{404: "@app"}``: the status goes to that named location, which answers with its own status;
    a target "=404 @x" keeps the status."""
    lines = []
    for code, target in pages.items():
        sep = " " if target[0] in "=/" else " = "
        lines.append(f"        error_page {code}{sep}{target};\n")
    return "".join(lines)


def _text_answer(name: str, status: int, body: str, extra: str = "") -> str:
    """A location answering a plain text body, whatever the path's extension, never cached: a named one
    ("@x"), or an internal URI (for a request nginx refused with 400, whose URI may be unparsed: a named
    location cannot take it)."""
    where = name if name.startswith("@") else f"= {name}"
    internal = "" if name.startswith("@") else "        internal;\n"
    return (
        f"    location {where} {{\n{internal}        types {{ }}\n        default_type {_q(TEXT_TYPE)};\n"
        f"        add_header Cache-Control no-store always;\n{extra}"
        f"        return {status} {_q(body)};\n    }}\n"
    )


def _proxy_headers() -> str:
    """As Caddy proxies: the lowercased Host, X-Forwarded-*, HTTP/1.1, upgrades (WebSocket) passed on, and
    bodies streamed both ways as they come (server-sent events, uploads), never buffered to disk first."""
    return (
        "        proxy_http_version 1.1;\n"
        "        proxy_set_header Host $host;\n"
        "        proxy_set_header X-Forwarded-For $remote_addr;\n"
        "        proxy_set_header X-Forwarded-Proto $scheme;\n"
        "        proxy_set_header X-Forwarded-Host $http_host;\n"
        "        proxy_set_header Upgrade $http_upgrade;\n"
        "        proxy_set_header Connection $anchor_connection;\n"
        "        proxy_request_buffering off;\n"
        "        proxy_buffering off;\n"
    )


def _deployment_locations(paths: EdgePaths, workers: WorkerSockets) -> str:
    """A host's locations: its files through the link; on a miss, the file, the app and the 404 page of
    deployments/$anchor_id (the link resolved once)."""
    deployment = f"{paths.deployments}/$anchor_id"
    worker_socket = f"{workers.root}/worker/$anchor_id.sock"
    not_static = {403: "@app", 404: "@app", 405: "@app"}
    app_pages = {_WORKER: "@worker", _ACTIVATE: "@activate", 404: "=404 @page404"}
    index = "        try_files ${uri}index.html =404;\n"  # a directory's index.html in place, no redirect

    def static(root: str, miss: str) -> str:
        return (
            f"        root {root};\n        etag on;\n        if_modified_since off;\n"
            "        charset utf-8;\n"
            '        add_header Cache-Control $anchor_cache;\n        add_header Last-Modified "";\n'
            f"{_error_pages({403: miss, 404: miss, 405: miss, _WHOLE: '@miss_whole'})}"
            f"        if ($http_if_unmodified_since) {{ return {_WHOLE}; }}\n"
        )

    def resolving(name: str, then: str) -> str:  # the server's root is the link: its realpath, once
        return (
            f"    location {name} {{\n{_error_pages({_EDGE_404: '@edge404', _RESOLVED: then})}"
            f'        if ($anchor_id = "") {{ return {_EDGE_404}; }}\n        return {_RESOLVED};\n    }}\n'
        )

    return (
        # Static files: the ETag is content-derived (the mtime is a content stamp); dates are no validators.
        # A directory without its slash is redirected to it (by nginx's static module).
        f"    location / {{\n{static('$anchor_link/public', '@miss')}    }}\n"
        f"    location ~ /$ {{\n{static('$anchor_link/public', '@miss_index')}{index}    }}\n"
        # Sidecars are not files of the site: the same answer as an unknown path.
        f"    location ~ {_regex(_escaped(ETAG_SUFFIX) + '$', flag='')} {{\n"
        f"{_error_pages({404: '@miss_app'})}        return 404;\n    }}\n"
        # A miss: the link's deployment, resolved once (a link naming no deployment gets the edge 404).
        f"{resolving('@miss', '@static')}{resolving('@miss_index', '@index')}"
        f"{resolving('@miss_app', '@app')}{resolving('@miss_whole', '@whole')}"
        f"    location @static {{\n{static(f'{deployment}/public', '@app')}    }}\n"
        f"    location @index {{\n{static(f'{deployment}/public', '@app')}{index}    }}\n"
        # The app, if the deployment has one: a running worker has its .sock.up marker; an app deployment
        # without one (it has a worker/ folder) goes to the activator, which starts it.
        f"    location @app {{\n{_error_pages(app_pages)}"
        f"        if (-f {worker_socket}.up) {{ return {_WORKER}; }}\n"
        f"        if (-d {deployment}/worker) {{ return {_ACTIVATE}; }}\n"
        "        return 404;\n    }\n"
        # Through the worker's keep-alive slot (<id>.slot, worker_slots.py) if it has one, else its socket
        # dialed per request (nginx keeps upstream connections alive only for upstream blocks).
        f"    location @worker {{\n{_slot_upstream(workers)}        proxy_pass http://$anchor_upstream;\n"
        f"{_proxy_headers()}"
        '        proxy_set_header X-Anchor-Worker "";\n        proxy_read_timeout 3600s;\n'
        # A worker refusing connections while it restarts: the activator waits for it, then answers.
        f"{_error_pages({502: '@activate'})}    }}\n"
        f"    location @activate {{\n        proxy_pass http://unix:{workers.activator}:;\n{_proxy_headers()}"
        "        proxy_set_header X-Anchor-Worker /$anchor_id;\n        proxy_read_timeout 60s;\n    }\n"
        # The deployment's own 404.html, whole (no 304, no 206), else a plain 404.
        f"    location @page404 {{\n        root {deployment}/public;\n"
        "        etag off;\n        max_ranges 0;\n        if_modified_since off;\n        charset utf-8;\n"
        f"        add_header Cache-Control {_q(HTML_CACHE)} always;\n"
        '        add_header Last-Modified "";\n'
        f"{_error_pages({404: '=404 @plain404'})}"
        "        try_files /404.html =404;\n    }\n"
        f"{_text_answer('@plain404', 404, FILE_404_BODY)}"
        # nginx answers If-Unmodified-Since with 412 even with if_modified_since off (it compares it with
        # the mtime, a content stamp), and an error_page cannot catch a 412 its filter makes for a proxy: the
        # rare request that has one is sent, without it, to a server of our own on a private socket, for
        # the same deployment.
        f"    location @whole {{\n        proxy_pass http://unix:{whole_socket(workers)}:;\n{_proxy_headers()}"
        '        proxy_set_header If-Unmodified-Since "";\n        proxy_set_header If-Modified-Since "";\n'
        "        proxy_set_header X-Anchor-Deployment $anchor_id;\n"
        # No such static file there: the app (with the validators it was sent), else the 404 page.
        f"        proxy_intercept_errors on;\n{_error_pages(not_static)}"
        "        add_header Cache-Control $anchor_cache;\n    }\n"
    )


def _slot_upstream(workers: WorkerSockets) -> str:
    """$anchor_upstream: the worker's slot (an upstream block's name) if its link exists (checked first:
    $realpath_root of a missing path fails the request), else its socket. The root is the link, so
    $realpath_root (never cached) names the slot."""
    return (
        f"        root {workers.root}/worker/$anchor_id.slot;\n"
        f"        set $anchor_upstream unix:{workers.root}/worker/$anchor_id.sock:;\n"
        "        if (-d $document_root) { set $anchor_upstream $anchor_slot_upstream; }\n"
    )


def _slot_upstreams(workers: WorkerSockets) -> str:
    """One upstream block per slot, each keeping its idle connections to the worker lent that slot; and the
    map from a slot's real path to its block's name."""
    slots = workers.root.resolve() / "slot"
    pattern = _regex(f"^{_escaped(str(slots))}/([0-9]+)$")
    blocks = [
        f"    upstream anchor_slot_{k} {{ server unix:{slot_socket(workers.root, k)} max_fails=0; "
        f"keepalive 16; keepalive_timeout {KEEPALIVE_TIMEOUT}s; keepalive_requests 10000; }}\n"
        for k in range(SLOT_COUNT)
    ]
    fallback = f"unix:{workers.root}/worker/$anchor_id.sock:"
    return "".join(blocks) + (
        f"    map $realpath_root $anchor_slot_upstream {{\n        {pattern} anchor_slot_$1;\n"
        f"        default {fallback};\n    }}\n"
    )


def whole_socket(workers: WorkerSockets) -> Path:
    return workers.root / "nginx-whole.sock"


def _whole_server(paths: EdgePaths, workers: WorkerSockets) -> str:
    """Static files without the date validators (see @whole), on a socket only nginx itself reaches (the
    sockets folder is 0700); the deployment is the one the asking request resolved."""
    deployment_id = _regex("^dpl_[a-z0-9]{12}$")
    asked = "$http_x_anchor_deployment"
    return (
        f"    map {asked} $anchor_whole_id {{\n        {deployment_id} {asked};\n"
        '        default "";\n    }\n'
        f"    server {{\n        listen unix:{whole_socket(workers)};\n"
        f"        location / {{\n            root {paths.deployments}/$anchor_whole_id/public;\n"
        "            index index.html;\n            etag on;\n            if_modified_since off;\n"
        '            charset utf-8;\n            add_header Last-Modified "";\n        }\n    }\n'
    )


def _escaped(text: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\/-" else c for c in text)


def _resolve(kinds: list[tuple[str, str]]) -> str:
    """Server-level: the first host link that exists (each ``$link_var`` with its kind letter) becomes
    $anchor_link, the server's root: a file is opened through it, and only a miss reads $anchor_id (a map
    of $realpath_root, kept for the request). Then ``break``: the checks after it are skipped."""
    lines = []
    for link_var, kind in kinds:
        found = f"set $anchor_link {link_var}; set $anchor_kind {kind}; break;"
        lines.append(f"        if (-d {link_var}) {{ {found} }}\n")
    return "".join(lines)


def _http_server(listen: str, paths: EdgePaths, workers: WorkerSockets, https: NginxHttps | None) -> str:
    custom = ""
    if https is not None and paths.custom_hosts is not None:
        # Plain HTTP for a custom domain (its exact link or its wildcard's) answers with a redirect to HTTPS.
        custom = (
            f"        if (-d $anchor_c) {{ return {_TO_HTTPS}; }}\n"
            f"        if (-d $anchor_c_wild) {{ return {_TO_HTTPS}; }}\n"
        )
    port = "" if https is None or https.port == 443 else f":{https.port}"
    redirect = (
        f"    location @to_https {{\n        add_header Cache-Control no-store always;\n"
        f"        return 308 https://$anchor_host{port}$request_uri;\n    }}\n"
    )
    return (
        f'    server {{\n        listen {listen} default_server;\n        server_name "";\n'
        f"{_error_pages({400: BAD_REQUEST_404, _EDGE_404: '@edge404', _TO_HTTPS: '@to_https'})}"
        "        root $anchor_link;\n"
        f"{_resolve([('$anchor_a', 'a'), ('$anchor_d', 'd')])}{custom}"
        f"        return {_EDGE_404};\n"
        f"{_indent(_deployment_locations(paths, workers))}"
        f"{_indent(_text_answer('@edge404', 404, EDGE_404_BODY))}"
        f"{_indent(_text_answer(BAD_REQUEST_404, 404, EDGE_404_BODY))}"
        f"{_indent(redirect) if custom else ''}    }}\n"
    )


def _https_server(https: NginxHttps, paths: EdgePaths, workers: WorkerSockets) -> str:
    """Custom domains only. The SNI picks the certificate per handshake, read from its file (no reload on
    a new or renewed one); the Host must name the SNI (compared case-insensitively), else 421."""
    close = "        keepalive_timeout 0;\n"
    return (
        f'    server {{\n        listen {https.listen} ssl http2 default_server;\n        server_name "";\n'
        "        ssl_certificate $anchor_certificate;\n        ssl_certificate_key $anchor_certificate;\n"
        "        ssl_protocols TLSv1.2 TLSv1.3;\n"
        f"{_error_pages({400: BAD_REQUEST_421, _EDGE_404: '@edge404', _MISDIRECTED: '@misdirected'})}"
        f'        if ($anchor_sni_host = "") {{ return {_MISDIRECTED}; }}\n'
        "        root $anchor_link;\n"
        f"{_resolve([('$anchor_c', 'a'), ('$anchor_c_wild', 'a')])}"
        f"        return {_EDGE_404};\n"
        f"{_indent(_deployment_locations(paths, workers))}"
        f"{_indent(_text_answer('@edge404', 404, EDGE_404_BODY))}"
        f"{_indent(_text_answer('@misdirected', 421, MISDIRECTED_BODY, close))}"
        f"{_indent(_text_answer(BAD_REQUEST_421, 421, MISDIRECTED_BODY, close))}    }}\n"
    )


def _indent(block: str) -> str:
    return "".join("    " + line if line.strip() else line for line in block.splitlines(keepends=True))


def _maps(paths: EdgePaths) -> str:
    host = _regex(HOSTNAME_PATTERN)
    deployment_id = _regex(f"^{_escaped(str(paths.deployments))}/(dpl_[a-z0-9]{{12}})$")
    lines = [
        f'    map $host $anchor_host {{\n        {host} $host;\n        default "";\n    }}\n',
        _link_map("$anchor_a", paths.alias_hosts),
        _link_map("$anchor_d", paths.deployment_hosts),
        # Read once per request (nginx caches a map's value), at the server-level check.
        f'    map $realpath_root $anchor_id {{\n        {deployment_id} $1;\n        default "";\n    }}\n',
        # Hashed names are immutable anywhere; other non-HTML files only on an immutable deployment URL.
        "    map $anchor_kind:$uri $anchor_cache {\n"
        f"        {_regex(HASHED_ASSET)} {_q(IMMUTABLE_CACHE)};\n"
        f"        {_regex(HTML_PATH)} {_q(HTML_CACHE)};\n"
        f"        {_regex('^d:')} {_q(IMMUTABLE_CACHE)};\n"
        f"        default {_q(HTML_CACHE)};\n    }}\n",
        '    map $http_upgrade $anchor_connection {\n        default upgrade;\n        "" "";\n    }\n',
    ]
    if paths.custom_hosts is not None:
        custom = paths.custom_hosts
        lines += [
            _link_map("$anchor_c", custom),
            f"    map $anchor_host $anchor_c_wild {{\n        {_regex(_PARENT)} {custom}/_.$1;\n"
            '        default "";\n    }\n',
        ]
    return "".join(lines)


def _link_map(name: str, root: Path) -> str:
    return f'    map $anchor_host {name} {{\n        "~." {root}/$anchor_host;\n        default "";\n    }}\n'


def _tls_maps(js_path: Path) -> str:
    return (
        f"    js_import anchor from {js_path};\n"
        "    js_set $anchor_certificate anchor.certificate;\n"
        # The canonical Host, if it names the connection's TLS name (any case; nginx lowercased the Host).
        '    map "$ssl_server_name:$anchor_host" $anchor_sni_host {\n'
        f'        {_regex(_SAME_NAME, "~*")} $anchor_host;\n        default "";\n    }}\n'
    )


def render(
    *,
    http_listen: str,
    paths: EdgePaths,
    workers: WorkerSockets,
    run_dir: Path,
    error_log: Path,
    https: NginxHttps | None = None,
    as_root: bool | None = None,
    njs_module: Path = NJS_MODULE,
) -> NginxFiles:
    """nginx.conf (and the certificate picker, for HTTPS). Everything nginx writes is under ``run_dir``
    (pid, temp folders) or ``error_log``; nothing under /etc or /var."""
    root = os.geteuid() == 0 if as_root is None else as_root
    js_path = run_dir / "nginx-certificate.js"
    head = [
        "# Written by anchor-deploy at start; it never changes with deployments.\n",
        "daemon off;\nmaster_process on;\nworker_processes auto;\npcre_jit on;\n",
        f"pid {run_dir / 'nginx.pid'};\nerror_log {error_log} warn;\n",
        # As root, the workers keep the platform's rights (the data dir is 0700), as Caddy's do.
        "user root;\n" if root else "",
        f"load_module {njs_module};\n" if https is not None else "",
        "events {\n    worker_connections 4096;\n}\n",
    ]
    http = [
        "http {\n    access_log off;\n    log_not_found off;\n    server_tokens off;\n",
        *(f"    {folder.name}_temp_path {folder};\n" for folder in temp_folders(run_dir)),
        # tcp_nopush (TCP_CORK, used only with sendfile: never for proxied streams): a response's headers
        # and a small file's body leave in one segment, not two (about 3 us of server CPU per 1 KiB file).
        "    sendfile on;\n    tcp_nopush on;\n    tcp_nodelay on;\n    keepalive_requests 10000;\n",
        "    client_max_body_size 0;\n    absolute_redirect off;\n    recursive_error_pages on;\n",
        "    types {\n",
        *(f"        {kind} {extensions};\n" for kind, extensions in MIME_TYPES.items()),
        "    }\n    default_type application/octet-stream;\n",
        f"    charset_types {CHARSET_TYPES};\n",
        _maps(paths),
        _slot_upstreams(workers),
        _tls_maps(js_path) if https is not None else "",
        _http_server(http_listen, paths, workers, https),
        _https_server(https, paths, workers) if https is not None else "",
        _whole_server(paths, workers),
        "}\n",
    ]
    js = None
    if https is not None:
        js = f"const FOLDER = {str(https.certificates)!r};\n" + CERTIFICATE_JS
    return NginxFiles("".join(head + http), js, (whole_socket(workers),))


def temp_folders(run_dir: Path) -> list[Path]:
    """nginx's temp folders (request bodies, proxied answers, ...): its own, under the run folder."""
    return [run_dir / "nginx" / kind for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
