"""The deployment page (/ui/deployments/ID) and its build log stream, in this process on the fakes."""

from __future__ import annotations

import json
import re
import time
from html import unescape
from typing import Any

import pytest

from anchor_deploy.model.entities import DeploymentStatus, Target
from anchor_deploy.web import routes_deployment
from anchor_deploy.web.session import COOKIE
from tests.unit import web_harness
from tests.unit.conftest import ADMIN
from tests.unit.web_harness import Web

SCRIPT = "<script>alert('x')</script>"
SECRET_VALUE = "hunter2-s3cr3t-value"
web = web_harness.web  # the fixture
_PRE = re.compile(r'<pre class="log" id="build-log"[^>]*>(.*?)</pre>', re.DOTALL)
_ROW = re.compile(r'<tr data-file="([^"]*)">')


def _events(body: str) -> list[dict[str, Any]]:
    """The server-sent events in a stream's body: their name, id and JSON data."""
    found = []
    for block in body.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name in ("event", "id", "data"):
                fields[name] = value
        if "event" in fields:
            fields["data"] = json.loads(fields.get("data", "{}"))
            found.append(fields)
    return found


def _log_text(html: str) -> str:
    match = _PRE.search(html)
    assert match, "the page has no build log"
    return unescape(match.group(1))


def _sign_out(web: Web, cookie: str | None) -> None:
    assert web.platform.sessions.sign_out(cookie)


def _build(web: Web, deployment_id: str) -> None:
    built = web.app.deployments.build(deployment_id)
    assert built is not None and built.status == DeploymentStatus.READY


def _app_files() -> dict[str, bytes]:
    return {"app.py": b"app = None\n", "requirements.txt": b"", "public/a.css": b"a{}"}


def test_page_shows_the_deployment_its_commit_and_its_log(web: Web) -> None:
    site = web.make_project("site")
    first = web.deploy(site, {"index.html": b"one", "about.html": b"two"}, meta={"ticket": "T-1"})
    second = web.deploy(site, {"index.html": b"new"})
    browser = web.browser()

    answer = browser.get(f"/ui/deployments/{first.id}")

    assert answer.status_code == 200
    html = answer.text
    assert f'<code id="deployment-id">{first.id}</code>' in html
    assert 'href="/ui/projects/site" id="deployment-project"' in html
    assert "status-ready" in html and 'id="production-marker"' not in html  # the second is production
    assert f"/ui/projects/site/rollback?to={first.id}" in html  # older than production: a rollback
    assert _ROW.findall(html) == ["about.html", "index.html"]
    assert "meta.ticket" in html and "T-1" in html
    log = _log_text(html)
    assert log.startswith(f"building {first.id}: 2 files") and log.endswith("ready\n")
    assert 'data-final="true"' in html

    newest = browser.get(f"/ui/deployments/{second.id}").text
    assert 'id="production-marker"' in newest
    assert "/promote?to=" not in newest and "/rollback?to=" not in newest  # it is production already


def test_a_newer_ready_preview_offers_promote_and_a_failed_one_shows_its_error(web: Web) -> None:
    site = web.make_project("site")
    web.deploy(site)
    preview = web.deploy(site, {"index.html": b"preview"}, target=Target.PREVIEW)
    broken = web.app.deployments.create(
        site, {"files": [{"path": "app.py", "sha256": web.app.upload(b"x"), "size": 1}]}, ADMIN
    )
    web.app.store.set_status(broken.id, DeploymentStatus.BUILDING)
    web.app.store.set_status(broken.id, DeploymentStatus.ERROR, "the health check failed: 502")
    browser = web.browser()

    assert f"/ui/projects/site/promote?to={preview.id}" in browser.get(f"/ui/deployments/{preview.id}").text
    failed = browser.get(f"/ui/deployments/{broken.id}").text
    assert 'id="deployment-error"' in failed and "the health check failed: 502" in failed
    assert "/promote?to=" not in failed and "/rollback?to=" not in failed


def test_script_in_a_log_line_and_in_meta_is_shown_as_text(web: Web) -> None:
    site = web.make_project("site")
    commit = {"commitSha": "a" * 40, "branch": "main", "commitMessage": SCRIPT}
    made = web.deploy(site, meta={"git": commit, "note": SCRIPT, SCRIPT: 1})
    web.app.store.append_log(made.id, [SCRIPT])

    html = web.browser().get(f"/ui/deployments/{made.id}").text

    assert f'<code title="{"a" * 40}">aaaaaaa</code>' in html  # the commit, by its short sha
    assert "<script>alert" not in html
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    assert html.count(escaped) >= 4  # the commit, a meta key and a meta value, the log line
    assert _log_text(html).endswith(SCRIPT + "\n")


def test_another_projects_deployment_is_not_found_for_a_project_token(web: Web) -> None:
    mine, theirs = web.make_project("mine"), web.make_project("theirs")
    web.deploy(mine)
    hidden = web.deploy(theirs, {"index.html": b"private"}, meta={"note": "their-note"})
    browser = web.browser(web.make_token("ci", mine))

    for path in (f"/ui/deployments/{hidden.id}", f"/ui/deployments/{hidden.id}/log"):
        answer = browser.get(path)
        assert answer.status_code == 404, path
        assert "their-note" not in answer.text and "theirs" not in answer.text
    missing = browser.get("/ui/deployments/dpl_" + "0" * 20)
    assert missing.status_code == 404
    assert web.browser().get(f"/ui/deployments/{hidden.id}").status_code == 200  # the admin sees it


def test_secret_values_never_reach_the_page(web: Web) -> None:
    site = web.make_project("site")
    env = web.app.services.env
    env.set(site, "API_KEY", SECRET_VALUE, True)
    env.set(site, "PUBLIC_NAME", "shown-value", False)
    made = web.deploy(site, _app_files())
    env.set(site, "LATER", "not-frozen", False)  # set after the deployment: not part of it
    web.app.runtime.logs[made.id] = ["worker started", SCRIPT]

    html = web.browser().get(f"/ui/deployments/{made.id}").text

    assert SECRET_VALUE not in html
    rows = re.findall(r'<tr data-env="([^"]*)">\s*<th[^>]*><code>[^<]*</code></th>\s*<td>(.*?)</td>', html)
    assert rows == [
        ("API_KEY", '<span class="secret-badge">secret</span>'),
        ("PUBLIC_NAME", "<code>shown-value</code>"),
    ]
    kind = re.search(r'<dd id="deployment-kind">(.*?)</dd>', html, re.DOTALL)
    assert kind and " ".join(kind.group(1).split()) == (
        "app: entry <code>app:app</code>, the platform's Python, health check <code>/</code>, "
        "static files from <code>public/</code>"
    )
    runtime = re.search(r'<pre class="log" id="runtime-lines"[^>]*>(.*?)</pre>', html, re.DOTALL)
    assert runtime and unescape(runtime.group(1)) == f"worker started\n{SCRIPT}\n"
    assert "<script>alert" not in html


def test_files_are_listed_a_hundred_to_a_page(web: Web) -> None:
    site = web.make_project("site")
    made = web.deploy(site, {f"f{n:03}.txt": str(n).encode() for n in range(150)})
    browser = web.browser()

    first = browser.get(f"/ui/deployments/{made.id}").text
    second = browser.get(f"/ui/deployments/{made.id}?page=2").text

    assert _ROW.findall(first) == [f"f{n:03}.txt" for n in range(100)]
    assert _ROW.findall(second) == [f"f{n:03}.txt" for n in range(100, 150)]
    assert f"/ui/deployments/{made.id}?page=2#files" in first and "Page 1 of 2 (150 files)" in first
    assert "<td><code>644</code></td>" in first
    bad = browser.get(f"/ui/deployments/{made.id}?page=zero")
    assert bad.status_code == 422 and 'role="alert"' in bad.text


def test_the_log_stream_sends_each_line_live_then_ends(web: Web) -> None:
    site = web.make_project("site")
    made = web.app.deployments.create(
        site, {"files": [{"path": "index.html", "sha256": web.app.upload(b"hi"), "size": 2}]}, ADMIN
    )
    web.app.store.append_log(made.id, ["queued behind another build"])
    browser = web.browser()

    body = web.events(
        browser,
        f"/ui/deployments/{made.id}/log",
        until=lambda text: "event: end" in text,
        during=lambda: _build(web, made.id),  # builds while the stream is open
    )

    events = _events(body)
    lines = [e for e in events if e["event"] == "line"]
    stored = web.app.deployments.logs(made.id)
    assert [(int(e["id"]), e["data"]["text"]) for e in lines] == [(seq, text) for seq, _at, text in stored]
    assert lines[0]["data"]["text"] == "queued behind another build" and lines[-1]["data"]["text"] == "ready"
    assert events[-1] == {"event": "end", "data": {"status": "READY"}}


def test_the_log_stream_resumes_after_the_last_event_id(web: Web) -> None:
    site = web.make_project("site")
    made = web.deploy(site)
    web.app.store.append_log(made.id, ["four", "five"])
    stored = web.app.deployments.logs(made.id)
    browser = web.browser()
    path = f"/ui/deployments/{made.id}/log"

    resumed = _events(browser.get(path, headers={"last-event-id": "2"}).text)
    by_query = _events(browser.get(f"{path}?after=3").text)
    before_last = str(stored[-2][0])
    header_wins = _events(browser.get(f"{path}?after=0", headers={"last-event-id": before_last}).text)

    def texts(events: list[dict[str, Any]]) -> list[str]:
        return [e["data"]["text"] for e in events if e["event"] == "line"]

    assert texts(resumed) == [text for seq, _at, text in stored if seq > 2]
    assert texts(by_query) == [text for seq, _at, text in stored if seq > 3]
    assert texts(header_wins) == ["five"]
    assert resumed[-1]["event"] == by_query[-1]["event"] == "end"
    bad = browser.get(path, headers={"last-event-id": "-1"})
    assert bad.status_code == 422 and "text/html" in bad.headers["content-type"]


def test_the_log_stream_stops_when_the_session_ends(web: Web) -> None:
    site = web.make_project("site")
    made = web.app.deployments.create(
        site, {"files": [{"path": "index.html", "sha256": web.app.upload(b"hi"), "size": 2}]}, ADMIN
    )
    web.app.store.append_log(made.id, ["waiting"])
    browser = web.browser()
    cookie = browser.cookie(COOKIE)

    body = web.events(
        browser,
        f"/ui/deployments/{made.id}/log",
        until=lambda text: "signed-out" in text,
        during=lambda: _sign_out(web, cookie),
        timeout=3.0,
    )

    assert [e["event"] for e in _events(body)] == ["signed-out"]
    assert web.app.deployments.find(made.id).status == DeploymentStatus.QUEUED  # type: ignore[union-attr]


def test_the_log_stream_says_gone_when_the_deployment_is_deleted(web: Web) -> None:
    site = web.make_project("site")
    made = web.app.deployments.create(
        site, {"files": [{"path": "index.html", "sha256": web.app.upload(b"hi"), "size": 2}]}, ADMIN
    )
    browser = web.browser()

    body = web.events(
        browser,
        f"/ui/deployments/{made.id}/log",
        until=lambda text: "event: gone" in text,
        during=lambda: _delete_project(web, "site"),
        timeout=3.0,
    )

    assert [e["event"] for e in _events(body)] == ["gone"]


def test_the_log_stream_ends_after_its_time_and_the_browser_resumes(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes_deployment, "STREAM_SECONDS", 0.5)
    site = web.make_project("site")
    made = web.app.deployments.create(
        site, {"files": [{"path": "index.html", "sha256": web.app.upload(b"hi"), "size": 2}]}, ADMIN
    )
    web.app.store.append_log(made.id, ["one", "two"])
    browser = web.browser()

    started = time.monotonic()
    body = web.events(browser, f"/ui/deployments/{made.id}/log", until=lambda _text: False, timeout=4.0)

    assert time.monotonic() - started < 3.0  # it ended by itself, not at the reader's timeout
    events = _events(body)
    assert [(e["event"], e["id"]) for e in events] == [("line", "1"), ("line", "2")]  # no end: still queued
    assert body.startswith("retry: ")  # the browser reconnects, sending the last id it saw


def _delete_project(web: Web, name: str) -> None:
    web.app.projects.delete(name, ADMIN)
