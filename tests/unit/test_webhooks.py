"""Reading webhook deliveries: each forge's signed push (payloads shaped as the forges document them),
pings and other events, the bad-input table (signature first, then the body), and repository URLs."""

from __future__ import annotations

import hmac
from collections.abc import Callable

import pytest

from anchor_deploy.model.errors import AnchorError, BadRequest, WebhookSignatureInvalid
from anchor_deploy.model.git import ZERO_SHA, Forge
from anchor_deploy.model.webhooks import (
    OtherEvent,
    PingEvent,
    PushEvent,
    detect_forge,
    read_webhook,
    same_repository,
    sign_generic,
)

from .webhook_samples import (
    AFTER,
    BEFORE,
    SECRET,
    TAG_SHA,
    ZERO,
    encode,
    generic_headers,
    gitea_headers,
    gitea_push,
    github_headers,
    github_ping,
    github_push,
    gitlab_headers,
    gitlab_push,
    hex_hmac,
)

GITHUB_URLS = (
    "https://github.com/acme/shop.git",
    "git@github.com:acme/shop.git",
    "https://github.com/acme/shop",
    "git://github.com/acme/shop.git",
)
GITLAB_URLS = (
    "https://gitlab.acme.test/acme/shop.git",
    "git@gitlab.acme.test:acme/shop.git",
    "https://gitlab.acme.test/acme/shop",
)
GITEA_URLS = (
    "http://git.acme.test:3000/acme/shop.git",
    "ssh://git@git.acme.test:2222/acme/shop.git",
    "http://git.acme.test:3000/acme/shop",
)


def read_github(payload: object, event: str = "push") -> object:
    body = encode(payload)
    return read_webhook(github_headers(body, event), body, SECRET)


# --- each format's push --------------------------------------------------------------------------------


def test_a_github_push_is_read_from_its_signed_payload() -> None:
    assert read_github(github_push()) == PushEvent(
        delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        forge=Forge.GITHUB,
        ref="refs/heads/main",
        branch="main",
        before=BEFORE,
        after=AFTER,
        deleted=False,
        forced=False,
        repository_urls=GITHUB_URLS,
        message="Checkout: show the delivery date",
        author="Ada Lovelace <ada@acme.test>",
    )


def test_github_force_pushes_deletions_and_tags() -> None:
    forced = read_github(github_push("refs/heads/feature/x", forced=True))
    assert isinstance(forced, PushEvent) and forced.forced and not forced.deleted
    assert forced.branch == "feature/x"
    deleted = read_github(github_push("refs/heads/feature/old", after=ZERO))
    assert isinstance(deleted, PushEvent)
    assert (deleted.deleted, deleted.branch, deleted.after) == (True, "feature/old", ZERO_SHA)
    assert (deleted.message, deleted.author) == ("", "")  # GitHub sends no head commit for a deletion
    tag = read_github(github_push("refs/tags/v1.2.0", before=ZERO, after=TAG_SHA))
    assert isinstance(tag, PushEvent) and tag.branch is None and tag.ref == "refs/tags/v1.2.0"
    assert not tag.deleted


def test_a_github_ping_and_other_events_are_told_apart_but_still_signed() -> None:
    assert read_github(github_ping(), "ping") == PingEvent(
        "72d3162e-cc78-11e3-81ab-4c9367dc0958", Forge.GITHUB
    )
    other = read_github({"action": "opened", "number": 7}, "pull_request")
    assert other == OtherEvent("72d3162e-cc78-11e3-81ab-4c9367dc0958", Forge.GITHUB, "pull_request")
    body = encode(github_ping())
    unsigned = {k: v for k, v in github_headers(body, "ping").items() if k != "x-hub-signature-256"}
    with pytest.raises(WebhookSignatureInvalid):
        read_webhook(unsigned, body, SECRET)


def test_a_gitlab_push_takes_its_head_commit_by_sha_and_hides_a_redacted_email() -> None:
    event = read_webhook(gitlab_headers(), encode(gitlab_push()), SECRET)
    assert event == PushEvent(
        delivery_id="f5e5f430-f57b-4e6e-9fac-d9128cd7232f",  # the Idempotency-Key: the same on a retry
        forge=Forge.GITLAB,
        ref="refs/heads/main",
        branch="main",
        before=BEFORE,
        after=AFTER,
        deleted=False,
        forced=False,
        repository_urls=GITLAB_URLS,
        message="Checkout: show the delivery date",
        author="Ada Lovelace",
    )


def test_gitlab_tag_pushes_deletions_and_pushes_without_commits() -> None:
    tag = read_webhook(
        gitlab_headers("Tag Push Hook"),
        encode(gitlab_push("refs/tags/v1.2.0", ZERO, TAG_SHA, kind="tag_push", commits=[])),
        SECRET,
    )
    assert isinstance(tag, PushEvent) and (tag.branch, tag.before, tag.deleted) == (None, ZERO, False)
    gone = read_webhook(gitlab_headers(), encode(gitlab_push("refs/heads/x", after=ZERO, commits=[])), SECRET)
    assert isinstance(gone, PushEvent) and gone.deleted and gone.branch == "x" and not gone.forced
    # a new branch at a commit already pushed: no commits, not a deletion, still a push to build
    fresh = read_webhook(
        gitlab_headers(), encode(gitlab_push("refs/heads/y", ZERO, AFTER, commits=[])), SECRET
    )
    assert isinstance(fresh, PushEvent) and not fresh.deleted and fresh.after == AFTER
    assert fresh.message == ""


def test_gitlab_system_hooks_and_other_hooks() -> None:
    system_push = read_webhook(gitlab_headers("System Hook"), encode(gitlab_push()), SECRET)
    assert isinstance(system_push, PushEvent) and system_push.after == AFTER
    created = encode({"event_name": "project_create", "name": "shop", "path_with_namespace": "acme/shop"})
    assert read_webhook(gitlab_headers("System Hook"), created, SECRET) == OtherEvent(
        "f5e5f430-f57b-4e6e-9fac-d9128cd7232f", Forge.GITLAB, "project_create"
    )
    merge = read_webhook(gitlab_headers("Merge Request Hook"), b"{}", SECRET)
    assert merge == OtherEvent("f5e5f430-f57b-4e6e-9fac-d9128cd7232f", Forge.GITLAB, "Merge Request Hook")


@pytest.mark.parametrize(
    ("dropped", "delivery"),
    [
        ((), "f5e5f430-f57b-4e6e-9fac-d9128cd7232f"),
        (("idempotency-key",), "13792a34-cac6-4fda-95a8-c58e00a3954e"),
        (("idempotency-key", "x-gitlab-event-uuid"), "02affd2d-2cba-4033-917d-ec22d5dc4b38"),
    ],
)
def test_a_gitlab_delivery_id_is_the_idempotency_key_else_an_older_gitlabs_uuid(
    dropped: tuple[str, ...], delivery: str
) -> None:
    headers = {k: v for k, v in gitlab_headers().items() if k not in dropped}
    event = read_webhook(headers, encode(gitlab_push()), SECRET)
    assert isinstance(event, PushEvent) and event.delivery_id == delivery


@pytest.mark.parametrize("forgejo", [False, True])
def test_gitea_and_forgejo_pushes(forgejo: bool) -> None:
    body = encode(gitea_push("refs/heads/feature/x"))
    event = read_webhook(gitea_headers(body, forgejo=forgejo), body, SECRET)
    assert event == PushEvent(
        delivery_id="f6266f16-1bf3-46a5-9ea4-602e06ead473",
        forge=Forge.GITEA,
        ref="refs/heads/feature/x",
        branch="feature/x",
        before=BEFORE,
        after=AFTER,
        deleted=False,
        forced=False,
        repository_urls=GITEA_URLS,  # not repository.url: that is Gitea's API
        message="Checkout: show the delivery date",
        author="Ada Lovelace <ada@acme.test>",
    )


def test_a_gitea_push_without_head_commit_takes_it_from_commits_and_a_zero_after_deletes() -> None:
    payload = gitea_push()
    del payload["head_commit"]
    body = encode(payload)
    event = read_webhook(gitea_headers(body), body, SECRET)
    assert isinstance(event, PushEvent) and event.message == "Checkout: show the delivery date"
    body = encode({**gitea_push(after=ZERO), "commits": [], "head_commit": None})
    gone = read_webhook(gitea_headers(body), body, SECRET)
    assert isinstance(gone, PushEvent) and gone.deleted


def test_forgejo_is_checked_by_its_own_signature_not_rescued_by_githubs() -> None:
    body = encode(gitea_push())
    headers = gitea_headers(body, forgejo=True) | {"x-forgejo-signature": hex_hmac(b"another body")}
    with pytest.raises(WebhookSignatureInvalid, match="X-Forgejo-Signature"):
        read_webhook(headers, body, SECRET)


def test_the_generic_form() -> None:
    payload = {
        "ref": "refs/heads/main",
        "before": BEFORE,
        "after": AFTER,
        "repository": "/srv/git/shop.git",
        "message": "Checkout: show the delivery date\n\nMore.",
        "author": "Ada Lovelace <ada@acme.test>",
    }
    body = encode(payload)
    assert read_webhook(generic_headers(body), body, SECRET) == PushEvent(
        delivery_id="push-1764489540-main",
        forge=Forge.GENERIC,
        ref="refs/heads/main",
        branch="main",
        before=BEFORE,
        after=AFTER,
        deleted=False,
        forced=False,
        repository_urls=("/srv/git/shop.git",),
        message="Checkout: show the delivery date",
        author="Ada Lovelace <ada@acme.test>",
    )
    short = encode({"ref": "refs/heads/x", "after": ZERO, "repository": "https://git.acme.test/shop.git"})
    gone = read_webhook(generic_headers(short), short, SECRET)
    assert isinstance(gone, PushEvent) and gone.deleted and gone.before == ZERO_SHA and gone.message == ""
    ping = read_webhook(generic_headers(b"{}", "ping"), b"{}", SECRET)
    assert ping == PingEvent("push-1764489540-main", Forge.GENERIC)
    assert generic_headers(body)["x-anchor-signature"] == sign_generic(body, SECRET)


def test_sha256_repositories_and_text_cleaned_for_terminals() -> None:
    after = "ab" * 32
    payload = {
        "ref": "refs/heads/main",
        "after": after,
        "repository": "/srv/git/shop.git",
        "message": "\x1b[31mred\x1b[0m title\r\nbody",
        "author": "A" * 300,
    }
    body = encode(payload)
    event = read_webhook(generic_headers(body), body, SECRET)
    assert isinstance(event, PushEvent) and event.after == after
    assert event.message == "[31mred [0m title" and len(event.author) == 200
    body = encode({**payload, "after": "0" * 64})
    assert read_webhook(generic_headers(body), body, SECRET).deleted  # type: ignore[union-attr]


def test_the_forge_is_told_by_the_event_header() -> None:
    body = encode(gitea_push())
    assert detect_forge(gitea_headers(body)) is Forge.GITEA  # Gitea also sends X-GitHub-Event
    assert detect_forge(github_headers(body)) is Forge.GITHUB
    assert detect_forge(gitlab_headers()) is Forge.GITLAB
    assert detect_forge(generic_headers(body)) is Forge.GENERIC
    assert detect_forge({"content-type": "application/json"}) is None


# --- bad input -----------------------------------------------------------------------------------------

Case = Callable[[], tuple[dict[str, str], bytes]]
SIG = "x-hub-signature-256"
DELIVERY = "x-github-delivery"


def github_case(
    payload: object = None, *, body: bytes | None = None, set_: dict[str, str] | None = None, drop: str = ""
) -> Case:
    """A GitHub delivery of ``payload`` (or of the raw ``body``), signed, then its headers changed."""

    def make() -> tuple[dict[str, str], bytes]:
        raw = body if body is not None else encode(payload if payload is not None else github_push())
        return dropped(github_headers(raw) | (set_ or {}), drop), raw

    return make


def dropped(headers: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in names}


def changed(payload: dict[str, object], **fields: object) -> dict[str, object]:
    return {**payload, **fields}


BODY = encode(github_push())
NO_GITLAB_ID = ("idempotency-key", "x-gitlab-event-uuid", "x-gitlab-webhook-uuid")
UNSIGNED, BAD = WebhookSignatureInvalid, BadRequest
BAD_INPUT: list[tuple[str, Case, type[AnchorError], int]] = [
    ("missing signature", github_case(drop=SIG), UNSIGNED, 401),
    ("wrong signature", github_case(set_={SIG: "sha256=" + "0" * 64}), UNSIGNED, 401),
    ("another body's signature", github_case(set_={SIG: "sha256=" + hex_hmac(b"{}")}), UNSIGNED, 401),
    ("wrong prefix", github_case(set_={SIG: "sha1=" + hex_hmac(BODY)}), UNSIGNED, 401),
    ("no prefix", github_case(set_={SIG: hex_hmac(BODY)}), UNSIGNED, 401),
    ("another secret", github_case(set_={SIG: "sha256=" + hex_hmac(BODY, b"x")}), UNSIGNED, 401),
    ("wrong GitLab token", lambda: (gitlab_headers(token=b"guess"), encode(gitlab_push())), UNSIGNED, 401),
    (
        "no GitLab token",
        lambda: (dropped(gitlab_headers(), "x-gitlab-token"), encode(gitlab_push())),
        UNSIGNED,
        401,
    ),
    (
        "Gitea signature with a prefix",
        lambda: (gitea_headers(BODY) | {"x-gitea-signature": "sha256=" + hex_hmac(BODY)}, BODY),
        UNSIGNED,
        401,
    ),
    ("bad JSON, bad signature", github_case(body=b"{nope", set_={SIG: "sha256=" + "0" * 64}), UNSIGNED, 401),
    ("no known header at all", lambda: ({"content-type": "application/json"}, BODY), UNSIGNED, 401),
    ("no event header", lambda: ({SIG: "sha256=" + hex_hmac(BODY)}, BODY), BAD, 400),
    ("malformed JSON", github_case(body=b'{"ref": "refs/heads/main",'), BAD, 400),
    ("not UTF-8", github_case(body=b'{"ref": "\xff"}'), BAD, 400),
    ("deeply nested JSON", github_case(body=b"[" * 100_000 + b"]" * 100_000), BAD, 400),
    ("JSON array", github_case(body=b"[]"), BAD, 400),
    ("missing ref", github_case(dropped(github_push(), "ref")), BAD, 400),
    ("ref not a full ref", github_case(changed(github_push(), ref="main")), BAD, 400),
    ("invalid branch name", github_case(changed(github_push(), ref="refs/heads/a..b")), BAD, 400),
    ("short sha", github_case(changed(github_push(), after=AFTER[:12])), BAD, 400),
    ("uppercase sha", github_case(changed(github_push(), after=AFTER.upper())), BAD, 400),
    ("sha not a string", github_case(changed(github_push(), before=7)), BAD, 400),
    ("no repository", github_case(dropped(github_push(), "repository")), BAD, 400),
    ("missing delivery id", github_case(drop=DELIVERY), BAD, 400),
    ("long delivery id", github_case(set_={DELIVERY: "d" * 201}), BAD, 400),
    ("control character in delivery id", github_case(set_={DELIVERY: "a\x1bb"}), BAD, 400),
    (
        "GitLab push of another kind",
        lambda: (gitlab_headers(), encode(changed(gitlab_push(), object_kind="note"))),
        BAD,
        400,
    ),
    (
        "GitLab without a delivery id",
        lambda: (dropped(gitlab_headers(), *NO_GITLAB_ID), encode(gitlab_push())),
        BAD,
        400,
    ),
]


@pytest.mark.parametrize(
    ("case", "error", "status"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_is_refused_with_its_error(case: Case, error: type[AnchorError], status: int) -> None:
    headers, body = case()
    with pytest.raises(error) as caught:
        read_webhook(headers, body, SECRET)
    assert type(caught.value) is error and caught.value.status == status and caught.value.message


def test_an_empty_secret_signs_nothing() -> None:
    body = encode(github_push())
    headers = github_headers(body) | {"x-hub-signature-256": "sha256=" + hex_hmac(body, b"")}
    with pytest.raises(WebhookSignatureInvalid):
        read_webhook(headers, body, b"")
    with pytest.raises(WebhookSignatureInvalid):
        read_webhook(gitlab_headers(token=b""), encode(gitlab_push()), b"")


def test_every_signature_is_decided_by_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return verdict

    monkeypatch.setattr("anchor_deploy.model.webhooks.hmac.compare_digest", recording)
    body = encode(github_push())
    generic = encode({"ref": "refs/heads/main", "after": AFTER, "repository": "/srv/git/shop.git"})
    cases = [
        (github_headers(body), body, b"sha256=" + hex_hmac(body).encode()),
        (gitlab_headers(), encode(gitlab_push()), SECRET),
        (gitea_headers(body), body, hex_hmac(body).encode()),
        (gitea_headers(body, forgejo=True), body, hex_hmac(body).encode()),
        (generic_headers(generic), generic, b"sha256=" + hex_hmac(generic).encode()),
    ]
    verdict = True
    for headers, raw, expected in cases:
        calls.clear()
        read_webhook(headers, raw, SECRET)
        assert calls == [(expected, expected)]
    # the answer is compare_digest's: a wrong signature it accepts passes, a right one it refuses fails
    read_webhook(github_headers(body) | {"x-hub-signature-256": "sha256=" + "0" * 64}, body, SECRET)
    verdict = False
    for headers, raw, _ in cases:
        with pytest.raises(WebhookSignatureInvalid):
            read_webhook(headers, raw, SECRET)
    assert hmac.compare_digest is recording


def test_a_pushs_urls_match_the_connected_repository_in_any_of_its_forms() -> None:
    event = read_github(github_push())
    assert isinstance(event, PushEvent)
    for connected in ("git@github.com:acme/shop.git", "https://github.com/acme/shop"):
        assert any(same_repository(connected, url) for url in event.repository_urls)
    assert not any(same_repository("https://github.com/acme/blog", url) for url in event.repository_urls)
