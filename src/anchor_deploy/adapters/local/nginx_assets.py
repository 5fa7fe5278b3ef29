"""The fixed texts nginx_config.py puts in nginx's config: the MIME types of static files (our own table,
not Debian's /etc/nginx/mime.types) and the njs function that picks a handshake's certificate file."""

from __future__ import annotations

MIME_TYPES = {
    "text/html": "html htm",
    "text/css": "css",
    "text/javascript": "js mjs",
    "text/plain": "txt",
    "text/markdown": "md",
    "text/csv": "csv",
    "text/xml": "xml",
    "application/json": "json map",
    "application/manifest+json": "webmanifest",
    "application/wasm": "wasm",
    "application/pdf": "pdf",
    "application/zip": "zip",
    "application/gzip": "gz",
    "application/rss+xml": "rss",
    "application/atom+xml": "atom",
    "image/svg+xml": "svg svgz",
    "image/png": "png",
    "image/jpeg": "jpg jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/avif": "avif",
    "image/x-icon": "ico",
    "font/woff": "woff",
    "font/woff2": "woff2",
    "font/ttf": "ttf",
    "font/otf": "otf",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "video/mp4": "mp4",
    "video/webm": "webm",
}
CHARSET_TYPES = "text/css text/javascript text/plain text/markdown text/csv text/xml application/json"
CERTIFICATE_JS = """\
import fs from 'fs';
const NONE = '/dev/null/no-certificate-for-this-name';  // never a file: the handshake fails
const NAME = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;
function readable(path) {
    try { fs.accessSync(path, fs.constants.R_OK); return true; } catch (e) { return false; }
}
// The certificate of this handshake's name: the exact name's bundle, else the wildcard one a level up.
// An unknown name, or an SNI with a trailing dot, gets none: the handshake fails.
function certificate(r) {
    const name = (r.variables.ssl_server_name || '').toLowerCase();
    if (!NAME.test(name) || name.indexOf('..') >= 0) { return NONE; }
    const exact = FOLDER + '/' + name + '.pem';
    if (readable(exact)) { return exact; }
    const dot = name.indexOf('.');
    const wildcard = FOLDER + '/_.' + name.slice(dot + 1) + '.pem';
    return dot > 0 && readable(wildcard) ? wildcard : NONE;
}
export default { certificate };
"""
