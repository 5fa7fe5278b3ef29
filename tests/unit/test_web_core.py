"""The dashboard's core, in process on the fakes: signing in and out, sessions ending, the security headers,
CSRF and Origin checks, and what a project's token may see. Moves and live updates: test_web_moves.py."""

from __future__ import annotations

import pytest

from anchor_deploy.services.auth import hash_secret
from anchor_deploy.web.app import CONTENT_SECURITY_POLICY
from tests.unit.conftest import ADMIN
from tests.unit.web_harness import (
    ORIGIN,
    Browser,
    Web,
    csrf,
    hidden_field,
    rows,
    web_fixture,  # noqa: F401  (the `web` fixture)
)

SESSION = "anchor_session"


def set_cookies(answer_headers: list[str], name: str) -> list[str]:
    return [h for h in answer_headers if h.split("=", 1)[0].strip() == name]


def attributes(cookie_header: str) -> dict[str, str]:
    """A Set-Cookie header's attributes, names lowercased (the name=value pair left out)."""
    found = {}
    for part in cookie_header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        found[key.lower()] = value
    return found


def signed_out_to(answer_location: str) -> bool:
    return answer_location.startswith("/ui/sign-in")


# -- signing in ---------------------------------------------------------------------------------------------
def test_sign_in_gives_a_strict_http_only_cookie_holding_a_session_secret_not_the_token(web: Web) -> None:
    browser = web.anonymous()
    answer = browser.sign_in(web.admin_token)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
    (header,) = set_cookies(answer.headers.get_list("set-cookie"), SESSION)
    flags = attributes(header)
    assert "httponly" in flags and flags["samesite"].lower() == "strict" and flags["path"] == "/ui"
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    assert web.admin_token not in " ".join(answer.headers.get_list("set-cookie"))
    secret = browser.cookie(SESSION)
    assert secret and secret.startswith("ses_") and secret != web.admin_token
    stored = web.app.store.session_by_hash(hash_secret(secret))
    assert stored is not None and secret not in repr(stored)  # the store keeps a hash only
    home = browser.get("/ui/")
    assert home.status_code == 200 and "Signed in with <strong>admin</strong>" in home.text


def test_over_https_the_cookies_are_secure(web: Web) -> None:
    browser = Browser(web.transport)
    browser.http.base_url = "https://anchor.test"  # type: ignore[assignment]
    form = browser.get("/ui/sign-in")
    (nonce_cookie,) = set_cookies(form.headers.get_list("set-cookie"), "anchor_sign_in")
    assert "secure" in attributes(nonce_cookie)
    fields = {"token": web.admin_token, "nonce": hidden_field(form.text, "nonce") or ""}
    answer = browser.post("/ui/sign-in", fields, origin="https://anchor.test")
    assert answer.status_code == 303
    (header,) = set_cookies(answer.headers.get_list("set-cookie"), SESSION)
    assert "secure" in attributes(header)


def test_a_wrong_token_is_a_401_page_and_no_session(web: Web) -> None:
    browser = web.anonymous()
    answer = browser.sign_in("tok_not-a-real-token")
    assert answer.status_code == 401
    assert 'role="alert"' in answer.text and "was not accepted" in answer.text
    assert "tok_not-a-real-token" not in answer.text
    assert not set_cookies(answer.headers.get_list("set-cookie"), SESSION) and browser.cookie(SESSION) is None
    assert browser.get("/ui/").status_code == 303  # still signed out


def test_sign_in_without_the_nonce_cookie_or_with_another_nonce_is_refused(web: Web) -> None:
    browser = web.anonymous()
    form = browser.get("/ui/sign-in")
    nonce = hidden_field(form.text, "nonce") or ""
    stranger = web.anonymous()  # never opened the form: a cross-site login attempt
    refused = stranger.post("/ui/sign-in", {"token": web.admin_token, "nonce": nonce})
    assert refused.status_code == 403 and stranger.cookie(SESSION) is None
    wrong = browser.post("/ui/sign-in", {"token": web.admin_token, "nonce": nonce + "x"})
    assert wrong.status_code == 403 and browser.cookie(SESSION) is None
    missing = browser.post("/ui/sign-in", {"token": web.admin_token})
    assert missing.status_code == 403 and browser.cookie(SESSION) is None
    assert browser.post("/ui/sign-in", {"token": web.admin_token, "nonce": nonce}).status_code == 303


def test_sign_in_from_another_origin_is_refused(web: Web) -> None:
    browser = web.anonymous()
    nonce = hidden_field(browser.get("/ui/sign-in").text, "nonce") or ""
    answer = browser.post(
        "/ui/sign-in", {"token": web.admin_token, "nonce": nonce}, origin="https://evil.test"
    )
    assert answer.status_code == 403 and browser.cookie(SESSION) is None


@pytest.mark.parametrize(
    "target",
    [
        "//evil.test/ui/",
        "https://evil.test/ui/",
        "http://anchor.test.evil.test/ui/",
        "/ui/../x",
        "/ui/%2e%2e/v1/tokens",
        "/ui/.%2E/x",
        "/ui/./../x",
        "/ui/.\t./x",
        "/ui/\\..\\x",
        "/\\evil.test",
        "javascript:alert(1)",
        "/v1/tokens",
        "ui/projects",
    ],
)
def test_next_never_leads_out_of_the_dashboard(web: Web, target: str) -> None:
    answer = web.anonymous().sign_in(web.admin_token, next_target=target)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"


def test_next_within_the_dashboard_is_followed(web: Web) -> None:
    web.make_project("site")
    browser = web.anonymous()
    asked = browser.get("/ui/projects/site/history?page=1")
    assert asked.status_code == 303 and signed_out_to(asked.headers["location"])
    form = browser.follow(asked)
    assert hidden_field(form.text, "next") == "/ui/projects/site/history?page=1"
    answer = browser.sign_in(web.admin_token, next_target="/ui/projects/site/history?page=1")
    assert answer.headers["location"] == "/ui/projects/site/history?page=1"
    assert browser.follow(answer).status_code == 200
    # signed in already: the sign-in page sends on, as safely
    assert browser.get("/ui/sign-in?next=//evil.test").headers["location"] == "/ui/"


# -- sessions ending ----------------------------------------------------------------------------------------
def test_sign_out_ends_the_session_on_the_server(web: Web) -> None:
    browser = web.browser()
    secret = browser.cookie(SESSION)
    assert secret
    answer = browser.post_form("/ui/sign-out")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/sign-in"
    assert browser.cookie(SESSION) is None
    assert web.app.store.session_by_hash(hash_secret(secret)) is None
    replay = web.anonymous()  # someone who kept the old cookie
    replay.http.cookies.set(SESSION, secret, domain="anchor.test", path="/ui")
    assert signed_out_to(replay.get("/ui/").headers["location"])
    refused = replay.post("/ui/sign-out", {"csrf": browser.last_csrf or ""})
    assert refused.status_code == 401


def test_revoking_the_token_ends_its_sessions(web: Web) -> None:
    site = web.make_project("site")
    first = web.deploy(site, {"index.html": b"one"})
    web.deploy(site, {"index.html": b"two"})
    token, secret = web.app.tokens.create("ci", site)
    browser = web.browser(secret)
    assert browser.get("/ui/projects/site").status_code == 200
    web.app.tokens.revoke(ADMIN, token.id)
    assert signed_out_to(browser.get("/ui/projects/site").headers["location"])
    production = web.production("site")
    answer = browser.post_form("/ui/projects/site/rollback", {"from": production or "", "to": first.id})
    assert answer.status_code == 401 and web.production("site") == production


def test_an_expired_session_sends_to_sign_in(web: Web) -> None:
    web.make_project("site")
    browser = web.browser()
    assert browser.get("/ui/projects/site").status_code == 200
    web.app.clock.last += web.platform.sessions.lifetime
    answer = browser.get("/ui/projects/site")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in?next=%2Fui%2Fprojects%2Fsite"
    assert browser.post_form("/ui/sign-out").status_code == 401


# -- headers ------------------------------------------------------------------------------------------------
PAGES = [
    "/ui/",
    "/ui/projects/site",
    "/ui/projects/site/history",
    "/ui/projects/site/rollback",
    "/ui/projects/missing",
    "/ui/no/such/page",
    "/ui/projects/site?page=abc",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_the_csp_no_framing_and_no_store(web: Web, path: str) -> None:
    site = web.make_project("site")
    web.deploy(site, {"index.html": b"one"})
    web.deploy(site, {"index.html": b"two"})
    for answer in (web.browser().get(path), web.anonymous().get(path)):
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_sign_in_page_and_static_files_have_the_csp(web: Web) -> None:
    form = web.anonymous().get("/ui/sign-in")
    assert form.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert form.headers["cache-control"] == "no-store"
    script = web.anonymous().get("/ui/static/dashboard.js?v=1")
    assert script.status_code == 200 and script.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "immutable" in script.headers["cache-control"]


@pytest.mark.parametrize(
    "method,path", [("GET", "/ui/nope"), ("GET", "/ui/projects/a/b/c"), ("POST", "/ui/x")]
)
def test_unknown_dashboard_paths_are_404_pages(web: Web, method: str, path: str) -> None:
    for browser in (web.browser(), web.anonymous()):
        answer = browser.http.request(method, path)
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
        assert "Not found" in answer.text and "Traceback" not in answer.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "POST"])
def test_a_page_asked_with_a_method_it_does_not_take_is_a_405_page(web: Web, method: str) -> None:
    web.make_project("site")
    answer = web.browser().http.request(method, "/ui/projects/site")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET"
    assert answer.headers["content-type"].startswith("text/html") and 'role="alert"' in answer.text
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    unpin = web.browser().http.request(method if method != "POST" else "GET", "/ui/projects/site/unpin")
    assert unpin.status_code == 405 and unpin.headers["allow"] == "POST"


def test_a_form_too_large_or_not_a_form_is_a_4xx_page_and_changes_nothing(web: Web) -> None:
    first, second = two_deployments(web)
    browser = web.browser()
    big = browser.post_form("/ui/projects/site/rollback", {"from": second, "to": first, "x": "a" * 70_000})
    assert big.status_code == 413 and big.headers["content-type"].startswith("text/html")
    token = browser.last_csrf or ""
    as_json = browser.http.post(
        "/ui/projects/site/rollback",
        json={"csrf": token, "from": second, "to": first},
        headers={"origin": ORIGIN},
    )
    assert as_json.status_code == 422 and "x-www-form-urlencoded" in as_json.text
    assert web.production("site") == second


def test_the_sign_in_page_escapes_what_it_is_given(web: Web) -> None:
    markup = '/ui/"><script>alert(1)</script>'
    form = web.anonymous().get("/ui/sign-in", params={"next": markup})
    assert form.status_code == 200 and "<script>alert(1)" not in form.text
    assert hidden_field(form.text, "next") == markup  # kept, as text: it stays within /ui
    answer = web.anonymous().sign_in(web.admin_token, next_target="/ui/\r\nSet-Cookie: x=1")
    assert answer.headers["location"] == "/ui/" and "x" not in answer.cookies


# -- CSRF and Origin ----------------------------------------------------------------------------------------
def two_deployments(web: Web) -> tuple[str, str]:
    site = web.make_project("site")
    first = web.deploy(site, {"index.html": b"one"})
    second = web.deploy(site, {"index.html": b"two"})
    return first.id, second.id


@pytest.mark.parametrize("sent", [None, "", "forged", "other-session"])
def test_a_post_without_the_session_csrf_is_refused_and_changes_nothing(web: Web, sent: str | None) -> None:
    first, second = two_deployments(web)
    browser = web.browser()
    fields = {"from": second, "to": first}
    if sent == "other-session":
        fields["csrf"] = csrf(web.browser().get("/ui/").text)
    elif sent is not None:
        fields["csrf"] = sent
    answer = browser.post("/ui/projects/site/rollback", fields)
    assert answer.status_code == 403 and "out of date" in answer.text
    assert web.production("site") == second and web.app.aliases.count_moves(web.project("site")) == 2


@pytest.mark.parametrize(
    "origin", ["https://evil.test", "null", "https://anchor.test", "http://anchor.test:8080"]
)
def test_a_post_from_another_origin_is_refused_and_changes_nothing(web: Web, origin: str) -> None:
    first, second = two_deployments(web)
    browser = web.browser()
    answer = browser.post_form("/ui/projects/site/rollback", {"from": second, "to": first}, origin=origin)
    assert answer.status_code == 403 and "another site" in answer.text
    assert web.production("site") == second
    same = browser.post_form("/ui/projects/site/rollback", {"from": second, "to": first}, origin=ORIGIN)
    assert same.status_code == 303 and web.production("site") == first


# -- a project's token --------------------------------------------------------------------------------------
def test_a_project_token_sees_its_project_only(web: Web) -> None:
    site = web.make_project("site")
    other = web.make_project("other")
    old = web.deploy(other, {"index.html": b"old"})
    current = web.deploy(other, {"index.html": b"new"})
    web.deploy(site, {"index.html": b"site"})
    browser = web.browser(web.make_token("ci", site))
    listed = browser.get("/ui/")
    assert rows(listed.text, "data-project") == ["site"] and "other" not in listed.text
    missing = browser.get("/ui/projects/nothing-here")
    for path in (
        "/ui/projects/other",
        "/ui/projects/other/history",
        "/ui/projects/other/rollback",
        f"/ui/projects/other/promote?to={old.id}",
        f"/ui/projects/site/promote?to={old.id}",
        f"/ui/projects/site/rollback?to={old.id}",
    ):
        answer = browser.get(path)
        assert answer.status_code == 404 and "Not found" in answer.text, path
        assert current.id not in answer.text  # nothing of the other project shows, but what was asked
    assert missing.status_code == 404
    for path in ("/ui/projects/other/rollback", "/ui/projects/other/promote", "/ui/projects/other/unpin"):
        answer = browser.post_form(path, {"from": current.id, "to": old.id})
        assert answer.status_code == 404, path
    assert web.production("other") == current.id and web.app.aliases.count_moves(web.project("other")) == 2
