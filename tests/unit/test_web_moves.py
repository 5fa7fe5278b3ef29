"""The dashboard moving production (rollback, promote, unpin behind a from -> to confirmation), its paged
lists, what it escapes, and its live event streams; in process on the fakes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from anchor_deploy.model.entities import Deployment, MoveReason, Project
from tests.unit.conftest import ADMIN
from tests.unit.web_harness import (
    Browser,
    Web,
    events_url,
    hidden_field,
    rows,
    web_fixture,  # noqa: F401  (the `web` fixture)
)

SCRIPT = "<script>alert(1)</script>"


def three(web: Web) -> tuple[Project, list[Deployment]]:
    site = web.make_project("site")
    made = [web.deploy(site, {"index.html": f"v{n}".encode()}) for n in range(3)]
    return site, made


def confirm(browser: Browser, path: str) -> dict[str, str]:
    """Open a confirmation page and return the fields its form would send."""
    shown = browser.get(path)
    assert shown.status_code == 200, shown.text[:300]
    fields = {k: hidden_field(shown.text, k) for k in ("csrf", "from", "to")}
    assert all(v is not None for v in fields.values()), fields
    return {k: v or "" for k, v in fields.items()}


def moves(web: Web) -> list[tuple[str, str | None, str]]:
    history = web.app.aliases.history_page(web.project("site"), 100, 0)
    return [(m.reason.value, m.from_deployment_id, m.to_deployment_id) for m in history]


# -- moves --------------------------------------------------------------------------------------------------
def test_rollback_through_its_confirmation_moves_production_and_shows_in_history(web: Web) -> None:
    _site, (one, two, three_) = three(web)
    browser = web.browser()
    fields = confirm(browser, "/ui/projects/site/rollback")  # no target named: the previous production
    assert fields["from"] == three_.id and fields["to"] == two.id
    answer = browser.post("/ui/projects/site/rollback", fields)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/projects/site?notice=rolled-back"
    project = web.project("site")
    assert project.production_deployment_id == two.id and project.pinned
    assert web.served("site") == two.id
    shown = browser.follow(answer)
    assert "Production was rolled back." in shown.text
    assert f'<code id="production-id">{two.id}</code>' in shown.text and "Unpin" in shown.text
    history = browser.get("/ui/projects/site/history")
    assert history.status_code == 200
    newest = history.text.split('<tr data-move="', 2)[1]
    assert "rollback" in newest and three_.id in newest and two.id in newest and "admin" in newest
    assert moves(web)[0] == ("rollback", three_.id, two.id)
    assert len(rows(history.text, "data-move")) == 4  # three deploys, one rollback
    del one


def test_rollback_to_a_named_deployment(web: Web) -> None:
    _site, (one, _two, three_) = three(web)
    browser = web.browser()
    fields = confirm(browser, f"/ui/projects/site/rollback?to={one.id}")
    assert (fields["from"], fields["to"]) == (three_.id, one.id)
    assert browser.post("/ui/projects/site/rollback", fields).status_code == 303
    assert web.production("site") == one.id


def test_a_stale_confirmation_is_refused_and_changes_nothing(web: Web) -> None:
    site, (one, _two, _three) = three(web)
    browser = web.browser()
    fields = confirm(browser, f"/ui/projects/site/rollback?to={one.id}")
    newest = web.deploy(site, {"index.html": b"meanwhile"})  # production moves after the page was shown
    before = moves(web)
    answer = browser.post("/ui/projects/site/rollback", fields)
    assert answer.status_code == 409 and "production moved after this move was shown" in answer.text
    assert newest.id in answer.text
    assert web.production("site") == newest.id and moves(web) == before


def test_a_move_made_by_another_process_during_the_post_is_not_overridden(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production moves between the form's check and the compare-and-set (another control plane, say):
    the confirmation must not act on a production it did not show."""
    site, (one, two, three_) = three(web)
    browser = web.browser()
    fields = confirm(browser, f"/ui/projects/site/rollback?to={one.id}")
    real = web.app.store.move_production
    raced: list[str] = []

    def another_process_first(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append("moved")
            real(site.id, three_.id, two.id, MoveReason.PROMOTE, "other", False)
        return real(*args, **kwargs)

    monkeypatch.setattr(web.app.store, "move_production", another_process_first)
    answer = browser.post("/ui/projects/site/rollback", fields)
    assert raced and answer.status_code == 409
    assert web.production("site") == two.id and moves(web)[0] == ("promote", three_.id, two.id)


def test_promote_releases_the_pin(web: Web) -> None:
    site, (_one, two, three_) = three(web)
    web.app.aliases.rollback(site, None, ADMIN)
    browser = web.browser()
    fields = confirm(browser, f"/ui/projects/site/promote?to={three_.id}")
    assert (fields["from"], fields["to"]) == (two.id, three_.id)
    answer = browser.post("/ui/projects/site/promote", fields)
    assert answer.headers["location"] == "/ui/projects/site?notice=promoted"
    project = web.project("site")
    assert project.production_deployment_id == three_.id and not project.pinned
    assert moves(web)[0] == ("promote", two.id, three_.id)


def test_promote_needs_a_target_and_a_deployment_of_this_project(web: Web) -> None:
    three(web)
    other = web.make_project("other")
    foreign = web.deploy(other, {"index.html": b"other"})
    browser = web.browser()
    assert browser.get("/ui/projects/site/promote").status_code == 422
    assert browser.get(f"/ui/projects/site/promote?to={foreign.id}").status_code == 404
    production = web.production("site")
    answer = browser.post_form("/ui/projects/site/promote", {"from": production or "", "to": foreign.id})
    assert answer.status_code == 404 and web.production("site") == production


def test_unpin_lets_the_next_production_deployment_go_live(web: Web) -> None:
    site, (_one, two, _three) = three(web)
    web.app.aliases.rollback(site, None, ADMIN)
    browser = web.browser()
    waiting = web.deploy(site, {"index.html": b"waits"})
    assert web.production("site") == two.id  # pinned: the new deployment did not go live
    answer = browser.post_form("/ui/projects/site/unpin")
    assert answer.headers["location"] == "/ui/projects/site?notice=unpinned"
    project = web.project("site")
    assert not project.pinned and project.production_deployment_id == two.id
    assert "Production is no longer pinned" in browser.follow(answer).text
    assert web.deploy(site, {"index.html": b"live"}).id == web.production("site")
    del waiting


# -- lists --------------------------------------------------------------------------------------------------
def test_deployments_are_paged_fifty_at_a_time(web: Web) -> None:
    site = web.make_project("site")
    web.keep_deployments(120)
    made = [web.deploy(site, {"index.html": f"v{n}".encode()}) for n in range(120)]
    browser = web.browser()
    first = browser.get("/ui/projects/site")
    assert rows(first.text) == [d.id for d in reversed(made)][:50]
    third = browser.get("/ui/projects/site?page=3")
    assert third.status_code == 200
    assert rows(third.text) == [d.id for d in reversed(made[:20])]
    assert "Page 3 of 3 (120 in all)" in third.text
    assert 'href="/ui/projects/site?page=2" rel="prev"' in third.text and 'rel="next"' not in third.text
    for bad in ("0", "abc", "-1", "1.5"):
        answer = browser.get(f"/ui/projects/site?page={bad}")
        assert 400 <= answer.status_code < 500 and 'role="alert"' in answer.text, bad
        assert "page must be a whole number" in answer.text
    beyond = browser.get("/ui/projects/site?page=4")
    assert beyond.status_code == 404 and "there is no page 4: the list has 3" in beyond.text
    assert browser.get("/ui/projects/site/history?page=2").status_code == 200
    assert browser.get("/ui/projects/site/history?page=4").status_code == 404


def test_text_from_deployments_is_escaped(web: Web) -> None:
    site = web.make_project("site")
    git = {"branch": "main", "commitSha": "0" * 40, "commitMessage": f"{SCRIPT} fix"}
    first = web.deploy(site, {"index.html": b"one"}, meta={"git": git, "note": SCRIPT})
    web.deploy(site, {"index.html": b"two"}, meta={"git": git})
    browser = web.browser()
    for path in (
        "/ui/",
        "/ui/projects/site",
        "/ui/projects/site/history",
        f"/ui/projects/site/rollback?to={first.id}",
    ):
        shown = browser.get(path)
        assert shown.status_code == 200 and SCRIPT not in shown.text, path
    shown = browser.get("/ui/projects/site")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; fix" in shown.text
    inline = re.findall(r"<script\b[^>]*>", shown.text)
    assert inline and all("src=" in tag for tag in inline)  # no inline script: the page's own files only


# -- live updates -------------------------------------------------------------------------------------------
def test_the_project_stream_says_change_after_a_rollback(web: Web) -> None:
    site, _made = three(web)
    browser = web.browser()
    stream = events_url(browser.get("/ui/projects/site").text)
    assert stream.startswith("/ui/projects/site/events?since=")
    body = web.events(
        browser,
        stream,
        until=lambda text: "event: change" in text,
        during=lambda: web.app.aliases.rollback(web.project("site"), None, ADMIN),
    )
    assert body.startswith("retry: ") and "event: change" in body
    del site


def test_a_stream_stays_quiet_while_nothing_changes(web: Web) -> None:
    three(web)
    browser = web.browser()
    stream = events_url(browser.get("/ui/projects/site").text)
    body = web.events(browser, stream, until=lambda text: "event:" in text, timeout=1.2)
    assert body == "retry: 1000\n\n"


def test_the_projects_stream_says_change_after_a_deploy(web: Web) -> None:
    site, _made = three(web)
    browser = web.browser()
    stream = events_url(browser.get("/ui/").text)
    web.deploy(site, {"index.html": b"new"})  # between the page and its stream: not missed
    body = web.events(browser, stream, until=lambda text: "event: change" in text)
    assert "event: change" in body


def test_the_stream_says_signed_out_when_the_token_is_revoked(web: Web) -> None:
    site, _made = three(web)
    token, secret = web.app.tokens.create("ci", site)
    browser = web.browser(secret)
    stream = events_url(browser.get("/ui/projects/site").text)
    body = web.events(
        browser,
        stream,
        until=lambda text: "event: signed-out" in text,
        during=lambda: web.app.tokens.revoke(ADMIN, token.id),
    )
    assert "event: signed-out" in body and "event: change" not in body


def test_the_stream_says_signed_out_when_the_session_expires(web: Web) -> None:
    three(web)
    browser = web.browser()
    stream = events_url(browser.get("/ui/projects/site").text)

    def expire() -> None:
        web.app.clock.last += web.platform.sessions.lifetime

    body = web.events(browser, stream, until=lambda text: "event: signed-out" in text, during=expire)
    assert "event: signed-out" in body


def test_the_stream_says_gone_when_the_project_is_deleted(web: Web) -> None:
    three(web)
    browser = web.browser()
    stream = events_url(browser.get("/ui/projects/site").text)
    body = web.events(
        browser,
        stream,
        until=lambda text: "event: gone" in text,
        during=lambda: web.app.projects.delete("site", ADMIN),
    )
    assert "event: gone" in body and "not found" in body


def test_a_stream_without_a_session_is_refused(web: Web) -> None:
    three(web)
    for stream in ("/ui/projects/site/events", "/ui/events"):
        body = web.events(web.anonymous(), stream, until=lambda text: True)
        assert "Sign in again" in body and "event:" not in body
    web.make_project("events")  # a project's page whose path ends in /events is a page: sign in first
    assert web.anonymous().get("/ui/projects/events").headers["location"].startswith("/ui/sign-in")
