"""Git webhooks: checking a delivery's signature and reading a push out of it (GitHub, GitLab, Gitea,
Forgejo and the generic signed form). Pure functions of the headers, the body and the secret.

The format is told by the event header (Forgejo, then Gitea, GitLab, the generic form and GitHub: Gitea
and Forgejo also send GitHub's headers, so theirs are looked at first). Each format is checked with its own
signature header only, compared in constant time (``hmac.compare_digest``), before a byte of the body is
parsed:

- GitHub: X-GitHub-Event; X-Hub-Signature-256: sha256=<hex>; X-GitHub-Delivery.
- GitLab: X-Gitlab-Event; X-Gitlab-Token: the secret itself; Idempotency-Key (else X-Gitlab-Event-UUID,
  else X-Gitlab-Webhook-UUID).
- Gitea: X-Gitea-Event; X-Gitea-Signature: <hex>; X-Gitea-Delivery.
- Forgejo: X-Forgejo-Event; X-Forgejo-Signature: <hex>; X-Forgejo-Delivery.
- generic: X-Anchor-Event; X-Anchor-Signature: sha256=<hex>; X-Anchor-Delivery.

``<hex>`` is the lowercase hex HMAC-SHA256 of the raw body keyed by the webhook secret. GitLab's
Idempotency-Key comes first because it stays the same when GitLab retries a delivery.

The generic form, for any git server (a ``post-receive`` hook): ``X-Anchor-Event: push`` (or ``ping``),
a delivery id, the signature (``sign_generic``) and the body
``{"ref": "refs/heads/main", "before": sha, "after": sha, "repository": url, "message": str,
"author": str}``; ``before``, ``message`` and ``author`` may be left out (``before`` is then read as the
zero sha). ``after`` all zeros deletes the branch.

Answers: no signature, or a wrong one, is WebhookSignatureInvalid (401), as is a request with neither a
known event header nor any signature header; a known signature header without a known event header, a
missing or malformed delivery id and a body that is not the announced event are BadRequest (400).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from anchor_deploy.model.errors import BadRequest, InvalidInput, WebhookSignatureInvalid
from anchor_deploy.model.git import (
    BRANCH_REF,
    MAX_AUTHOR,
    MAX_URL,
    ZERO_SHA,
    Forge,
    first_line,
    is_sha,
    validate_branch,
)

MAX_DELIVERY_ID = 200
MAX_EVENT = 100
MAX_REF = 300
_GITLAB_PUSH_EVENTS = {"Push Hook": "push", "Tag Push Hook": "tag_push"}
_GITHUB_URL_KEYS = ("clone_url", "ssh_url", "html_url", "git_url", "url")
_GITEA_URL_KEYS = ("clone_url", "ssh_url", "html_url")  # Gitea's "url" is the API's
_GITLAB_PROJECT_URL_KEYS = ("git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url")
_GITLAB_REPOSITORY_URL_KEYS = ("git_http_url", "git_ssh_url", "homepage", "url")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git+ssh": 22, "ssh+git": 22, "git": 9418}


@dataclass(frozen=True, slots=True)
class PushEvent:
    """One push: a branch (or tag) moved from ``before`` to ``after`` (ZERO_SHA: created / deleted)."""

    delivery_id: str
    forge: Forge
    ref: str  # the full ref: refs/heads/main, refs/tags/v1
    branch: str | None  # the branch name for refs/heads/*, None for anything else
    before: str
    after: str
    deleted: bool
    forced: bool
    repository_urls: tuple[str, ...]  # every URL the payload names the repository by (clone, ssh, web)
    message: str = ""  # the head commit's message, first line
    author: str = ""  # the head commit's author, "Name <email>" or the name alone


@dataclass(frozen=True, slots=True)
class PingEvent:
    delivery_id: str
    forge: Forge


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """Any other event (issues, pull requests, …): acknowledged and ignored."""

    delivery_id: str
    forge: Forge
    event: str


WebhookEvent = PushEvent | PingEvent | OtherEvent


@dataclass(frozen=True, slots=True)
class _Format:
    """How one sender's deliveries look: which headers carry what, and how the signature is made."""

    name: str
    forge: Forge
    event_header: str
    signature_header: str
    signature_prefix: str | None  # "sha256=" / "" for an HMAC; None: the header is the secret (GitLab)
    delivery_headers: tuple[str, ...]


_FORMATS = (  # header names as their senders document them; looked up lowercased
    _Format("Forgejo", Forge.GITEA, "X-Forgejo-Event", "X-Forgejo-Signature", "", ("X-Forgejo-Delivery",)),
    _Format("Gitea", Forge.GITEA, "X-Gitea-Event", "X-Gitea-Signature", "", ("X-Gitea-Delivery",)),
    _Format(
        "GitLab",
        Forge.GITLAB,
        "X-Gitlab-Event",
        "X-Gitlab-Token",
        None,
        ("Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"),
    ),
    _Format(
        "generic", Forge.GENERIC, "X-Anchor-Event", "X-Anchor-Signature", "sha256=", ("X-Anchor-Delivery",)
    ),
    _Format(
        "GitHub", Forge.GITHUB, "X-GitHub-Event", "X-Hub-Signature-256", "sha256=", ("X-GitHub-Delivery",)
    ),
)
_EXPECTED_EVENT_HEADERS = "X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event, X-Forgejo-Event or X-Anchor-Event"


def sign_generic(body: bytes, secret: bytes) -> str:
    """The ``X-Anchor-Signature`` value for ``body`` (GitHub's ``X-Hub-Signature-256`` has the same form)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def detect_forge(headers: Mapping[str, str]) -> Forge | None:
    """The forge whose event header a delivery carries (None: no known one)."""
    found = _detect(headers)
    return found.forge if found else None


def read_webhook(headers: Mapping[str, str], body: bytes, secret: bytes) -> WebhookEvent:
    """Check the signature, then parse. ``headers`` are keyed by lowercase name.
    WebhookSignatureInvalid (401) for a missing or wrong signature (checked before the body is parsed),
    BadRequest (400) for a body that is not the JSON of the event its headers announce."""
    form = _detect(headers)
    if form is None:
        if not any(f.signature_header.lower() in headers for f in _FORMATS):
            raise WebhookSignatureInvalid("the delivery is not signed (no known signature header)")
        raise BadRequest(f"not a webhook delivery this endpoint reads: expected {_EXPECTED_EVENT_HEADERS}")
    _check_signature(form, headers, body, secret)
    delivery_id = _delivery_id(form, headers)
    event = _event_name(headers[form.event_header.lower()])
    if form.forge is Forge.GITLAB:
        return _read_gitlab(delivery_id, event, body)
    if event == "ping":
        return PingEvent(delivery_id, form.forge)
    if event != "push":
        return OtherEvent(delivery_id, form.forge, event)
    payload = _json_object(body)
    if form.forge is Forge.GENERIC:
        return _generic_push(delivery_id, payload)
    return _github_like_push(delivery_id, form.forge, payload)


def _detect(headers: Mapping[str, str]) -> _Format | None:
    return next((form for form in _FORMATS if form.event_header.lower() in headers), None)


def _check_signature(form: _Format, headers: Mapping[str, str], body: bytes, secret: bytes) -> None:
    given = headers.get(form.signature_header.lower())
    if given is None:
        raise WebhookSignatureInvalid(f"a {form.name} delivery must carry {form.signature_header}")
    if form.signature_prefix is None:
        expected = secret
    else:
        expected = (form.signature_prefix + hmac.new(secret, body, hashlib.sha256).hexdigest()).encode()
    matches = hmac.compare_digest(given.strip().encode("utf-8", "backslashreplace"), expected)
    if not matches or not secret:  # an empty secret is one anybody knows: it signs nothing
        raise WebhookSignatureInvalid(f"{form.signature_header} does not match the webhook secret")


def _delivery_id(form: _Format, headers: Mapping[str, str]) -> str:
    name = next((h for h in form.delivery_headers if headers.get(h.lower(), "").strip()), None)
    if name is None:
        raise BadRequest(f"a {form.name} delivery must carry {' or '.join(form.delivery_headers)}")
    value = headers[name.lower()].strip()
    if len(value) > MAX_DELIVERY_ID or _has_control(value):
        raise BadRequest(f"{name} must be at most {MAX_DELIVERY_ID} printable characters")
    return value


def _event_name(value: str) -> str:
    event = value.strip()
    if not event or len(event) > MAX_EVENT or _has_control(event):
        raise BadRequest(f"the event header must be 1-{MAX_EVENT} printable characters")
    return event


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


# --- payloads ---------------------------------------------------------------------------------------------


def _read_gitlab(delivery_id: str, event: str, body: bytes) -> WebhookEvent:
    """Push Hook and Tag Push Hook are pushes; a System Hook is one when its ``event_name`` says so."""
    kind = _GITLAB_PUSH_EVENTS.get(event)
    if kind is None and event != "System Hook":
        return OtherEvent(delivery_id, Forge.GITLAB, event)
    payload = _json_object(body)
    if kind is None:  # a system hook: the body names the event
        name = payload.get("event_name", payload.get("object_kind"))
        if name not in _GITLAB_PUSH_EVENTS.values():
            named = name if isinstance(name, str) and name.strip() else event
            return OtherEvent(delivery_id, Forge.GITLAB, _event_name(named))
    elif payload.get("object_kind", kind) != kind:
        raise BadRequest(f"a {event} delivery must have object_kind {kind!r}")
    ref, before, after = _ref_and_shas(payload)
    head = next((c for c in _objects(payload.get("commits")) if c.get("id") == after), None)
    urls = _urls(payload.get("project"), _GITLAB_PROJECT_URL_KEYS) + _urls(
        payload.get("repository"), _GITLAB_REPOSITORY_URL_KEYS
    )
    return _push(delivery_id, Forge.GITLAB, ref, (before, after), (False, False), urls, _head_text(head))


def _github_like_push(delivery_id: str, forge: Forge, payload: dict[str, Any]) -> PushEvent:
    """GitHub's push, and Gitea's and Forgejo's (the same shape; the head commit may only be in commits)."""
    ref, before, after = _ref_and_shas(payload)
    head = payload.get("head_commit")
    if not isinstance(head, dict):
        head = next((c for c in _objects(payload.get("commits")) if c.get("id") == after), None)
    keys = _GITHUB_URL_KEYS if forge is Forge.GITHUB else _GITEA_URL_KEYS
    urls = _urls(payload.get("repository"), keys)
    deleted, forced = payload.get("deleted") is True, payload.get("forced") is True
    return _push(delivery_id, forge, ref, (before, after), (deleted, forced), urls, _head_text(head))


def _generic_push(delivery_id: str, payload: dict[str, Any]) -> PushEvent:
    payload = {"before": ZERO_SHA, **payload}
    ref, before, after = _ref_and_shas(payload)
    repository = payload.get("repository")
    urls = (repository,) if isinstance(repository, str) and 0 < len(repository) <= MAX_URL else ()
    message, author = payload.get("message", ""), payload.get("author", "")
    if not isinstance(message, str) or not isinstance(author, str):
        raise BadRequest("message and author must be strings")
    return _push(delivery_id, Forge.GENERIC, ref, (before, after), (False, False), urls, (message, author))


def _push(
    delivery_id: str,
    forge: Forge,
    ref: str,
    shas: tuple[str, str],
    deleted_forced: tuple[bool, bool],
    urls: tuple[str, ...],
    message_author: tuple[str, str],
) -> PushEvent:
    """The event; ``deleted`` also when ``after`` is all zeros; message and author cleaned and cut."""
    (before, after), (deleted, forced), (message, author) = shas, deleted_forced, message_author
    if not urls:
        raise BadRequest("the push names no repository URL")
    return PushEvent(
        delivery_id=delivery_id,
        forge=forge,
        ref=ref,
        branch=_branch(ref),
        before=before,
        after=after,
        deleted=deleted or set(after) == {"0"},
        forced=forced,
        repository_urls=tuple(dict.fromkeys(urls)),
        message=_clean(first_line(message)),
        author=_clean(author),
    )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # ValueError covers bad JSON and bad UTF-8
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    return payload


def _ref_and_shas(payload: dict[str, Any]) -> tuple[str, str, str]:
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/") or len(ref) > MAX_REF or _has_control(ref):
        raise BadRequest(
            f"ref must be a full git ref (refs/heads/…, refs/tags/…) of at most {MAX_REF} characters"
        )
    shas = []
    for key in ("before", "after"):
        if not is_sha(payload.get(key)):
            raise BadRequest(f"{key} must be a full commit sha (40 or 64 lowercase hex characters)")
        shas.append(str(payload[key]))
    return ref, shas[0], shas[1]


def _branch(ref: str) -> str | None:
    if not ref.startswith(BRANCH_REF):
        return None
    try:
        return validate_branch(ref[len(BRANCH_REF) :])
    except InvalidInput as exc:
        raise BadRequest(exc.message) from None


def _objects(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _urls(holder: object, keys: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(holder, dict):
        return ()
    return tuple(v for k in keys if isinstance(v := holder.get(k), str) and 0 < len(v) <= MAX_URL)


def _text(holder: dict[str, Any] | None, key: str) -> str:
    value = holder.get(key) if holder else None
    return value if isinstance(value, str) else ""


def _head_text(head: dict[str, Any] | None) -> tuple[str, str]:
    """The head commit's message and author: ``Name <email>``, the name alone or the email alone (GitLab
    sends ``[REDACTED]`` for an email its owner keeps private)."""
    person = head.get("author") if head else None
    if not isinstance(person, dict):
        return _text(head, "message"), ""
    name, email = _clean(_text(person, "name")), _clean(_text(person, "email"))
    email = "" if email == "[REDACTED]" else email
    return _text(head, "message"), f"{name} <{email}>" if name and email else name or email


def _clean(text: str) -> str:
    """Control characters (terminal escapes among them) become spaces; cut to MAX_AUTHOR characters."""
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text).strip()
    return text if len(text) <= MAX_AUTHOR else text[: MAX_AUTHOR - 1] + "…"


# --- repository URLs --------------------------------------------------------------------------------------


def same_repository(a: str, b: str) -> bool:
    """Whether two URLs name one repository (scheme, user, ``.git`` suffix, trailing slash and host case
    set aside; ``git@host:owner/repo`` is ``https://host/owner/repo``).

    Compared: the host (lowercased, a default port dropped, a port that is not the scheme's default kept)
    and the path, without regard to case on a server (GitHub, GitLab and Gitea match owner and repository
    names so: ``Acme/Shop`` is ``acme/shop``), as written on this machine. A local path, ``file:///path``
    and ``file://localhost/path`` are one repository (the path normalized). A URL that is none of these
    (a relative path, an unknown scheme) is the same as nothing."""
    left, right = _repository_key(a), _repository_key(b)
    if left is None or right is None or left[0] != right[0]:
        return False
    return left[1] == right[1] if not left[0] else left[1].lower() == right[1].lower()


def _repository_key(url: str) -> tuple[str, str] | None:
    """(host[:port], path) with the suffixes dropped; host "" for a local repository; None if unreadable."""
    url = url.strip()
    if not url or len(url) > MAX_URL or _has_control(url):
        return None
    if url.startswith("/"):
        return "", _trim(posixpath.normpath(url))
    if "://" not in url:
        return _scp_key(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    if scheme == "file":
        if host not in ("", "localhost") or not parts.path.startswith("/"):
            return None
        return "", _trim(posixpath.normpath(parts.path))
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    path = _trim(parts.path)
    return (host, path) if path != "/" else None


def _scp_key(url: str) -> tuple[str, str] | None:
    """``[user@]host:path`` (git's scp-like form: a colon before any slash)."""
    where, colon, path = url.partition(":")
    if not colon or "/" in where or not path:
        return None
    host = where.rpartition("@")[2].lower().rstrip(".")
    path = _trim("/" + path.lstrip("/"))
    return (host, path) if host and path != "/" else None


def _trim(path: str) -> str:
    path = path.rstrip("/")
    path = path[: -len(".git")] if path.endswith(".git") else path
    return path.rstrip("/") or "/"
