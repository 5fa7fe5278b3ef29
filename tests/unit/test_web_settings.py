"""The dashboard's environment-variable and token pages, in process (tests/unit/web_harness.py): what a
signed-in browser sees, and what changed in the store."""

from __future__ import annotations

import re

import httpx
import pytest

from anchor_deploy.model.apps import MAX_ENV_VALUE, AppConfig
from anchor_deploy.model.entities import Project, Token
from anchor_deploy.model.errors import Unauthorized
from tests.unit.web_harness import Browser, Web, hidden_field, web_fixture  # noqa: F401 (the web fixture)

SECRET_VALUE = "sk-live-7f3a9c2e1b"


def env_of(w: Web, name: str) -> dict[str, tuple[str, bool]]:
    """The project's variables as the service has them: key -> (shown value, secret)."""
    return {v.key: (v.value, v.secret) for v in w.platform.env.list(w.project(name))}


def sealed_values(w: Web, name: str) -> dict[str, str]:
    """The values a deployment would be built with (secrets included)."""
    return w.platform.env.freeze(w.project(name), AppConfig()).values


def set_env(browser: Browser, project: str, key: str, value: str, secret: bool = False) -> httpx.Response:
    fields = {"key": key, "value": value}
    if secret:
        fields["secret"] = "on"
    return browser.post_form(f"/ui/projects/{project}/env", fields)


def tokens_of(w: Web) -> dict[str, Token]:
    return {t.name: t for t in w.app.store.list_tokens()}


def env_row(page_html: str, key: str) -> str:
    found = re.search(rf'<tr data-env="{key}">.*?</tr>', page_html, re.DOTALL)
    assert found, f"no row for {key}"
    return re.sub(r"<time\b.*?</time>", "", found.group(0), flags=re.DOTALL)


# -- environment variables -----------------------------------------------------------------------------------
def test_set_list_and_delete_a_variable(web: Web) -> None:
    web.make_project("site")
    browser = web.browser()
    empty = browser.get("/ui/projects/site/env")
    assert empty.status_code == 200
    assert "No variables yet." in empty.text
    assert "next deployment" in empty.text  # the page says when a change takes effect

    answer = set_env(browser, "site", "API_URL", "https://api.example.com/v1?a=1&b=2")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/projects/site/env?notice=env-set"
    assert env_of(web, "site") == {"API_URL": ("https://api.example.com/v1?a=1&b=2", False)}
    shown = browser.follow(answer)
    assert "takes effect in the next deployment" in shown.text
    assert "https://api.example.com/v1?a=1&amp;b=2" in env_row(shown.text, "API_URL")
    assert "Delete API_URL" in shown.text

    deleted = browser.post_form("/ui/projects/site/env/API_URL/delete")
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/ui/projects/site/env?notice=env-deleted"
    assert env_of(web, "site") == {}
    assert "No variables yet." in browser.follow(deleted).text


def test_deleting_a_variable_that_is_not_set_is_a_404_page(web: Web) -> None:
    web.make_project("site")
    answer = web.browser().post_form("/ui/projects/site/env/NOPE/delete")
    assert answer.status_code == 404
    assert "NOPE is not set on site" in answer.text


def test_a_secret_value_is_never_in_the_page_not_even_its_length(web: Web) -> None:
    web.make_project("site")
    browser = web.browser()
    assert set_env(browser, "site", "STRIPE_KEY", SECRET_VALUE, secret=True).status_code == 303
    assert sealed_values(web, "site")["STRIPE_KEY"] == SECRET_VALUE  # stored, for the next deployment
    short = browser.get("/ui/projects/site/env")
    assert SECRET_VALUE not in short.text
    assert "secret-badge" in env_row(short.text, "STRIPE_KEY")

    longer = SECRET_VALUE * 20
    assert set_env(browser, "site", "STRIPE_KEY", longer, secret=True).status_code == 303
    again = browser.get("/ui/projects/site/env")
    assert SECRET_VALUE not in again.text
    # The row is the same whatever the value's length: nothing stands for its characters.
    assert env_row(again.text, "STRIPE_KEY") == env_row(short.text, "STRIPE_KEY")


def test_a_refused_secret_keeps_the_key_but_never_echoes_the_value(web: Web) -> None:
    web.make_project("site")
    browser = web.browser()
    set_env(browser, "site", "KEEP", "kept")
    too_long = SECRET_VALUE + "x" * MAX_ENV_VALUE
    answer = set_env(browser, "site", "STRIPE_KEY", too_long, secret=True)
    assert answer.status_code == 422
    assert f"at most {MAX_ENV_VALUE} characters" in answer.text
    assert hidden_field(answer.text, "key") == "STRIPE_KEY"  # the typed key is kept
    assert SECRET_VALUE not in answer.text
    assert re.search(r'id="env-secret"[^>]*checked', answer.text)
    bad_key = set_env(browser, "site", "1BAD", SECRET_VALUE, secret=True)
    assert bad_key.status_code == 422
    assert "is not a valid environment variable name" in bad_key.text
    assert SECRET_VALUE not in bad_key.text
    assert env_of(web, "site") == {"KEEP": ("kept", False)}  # nothing changed


def test_a_textareas_crlf_line_ends_are_stored_as_newlines(web: Web) -> None:
    web.make_project("site")
    pem = "-----BEGIN KEY-----\r\nabc\r\n-----END KEY-----"
    assert set_env(web.browser(), "site", "PEM", pem).status_code == 303
    assert env_of(web, "site")["PEM"] == ("-----BEGIN KEY-----\nabc\n-----END KEY-----", False)


def test_a_refused_plain_variable_keeps_what_was_typed(web: Web) -> None:
    web.make_project("site")
    answer = set_env(web.browser(), "site", "BAD-KEY", "plain <value>")
    assert answer.status_code == 422
    assert hidden_field(answer.text, "key") == "BAD-KEY"
    # HTML drops a newline right after <textarea>: the one the page puts there keeps a typed first line end.
    assert ">\nplain &lt;value&gt;</textarea>" in answer.text
    assert env_of(web, "site") == {}


# -- tokens --------------------------------------------------------------------------------------------------
def test_a_created_token_is_shown_once_and_works(web: Web) -> None:
    site = web.make_project("site")
    browser = web.browser()
    form = browser.get("/ui/tokens")
    assert 'id="token-name"' in form.text
    answer = browser.post_form("/ui/tokens", {"name": "ci", "project": "site"})
    assert answer.status_code == 201
    assert answer.headers["cache-control"] == "no-store"
    found = re.search(r'data-copy="(anc_[A-Za-z0-9_-]+)"', answer.text)
    assert found, answer.text[:500]
    secret = found.group(1)
    assert "shown this once" in answer.text
    made = web.app.tokens.authenticate(f"Bearer {secret}")
    assert made.name == "ci"
    assert made.project_id == site.id

    listed = browser.get("/ui/tokens")
    assert f'data-token="{made.id}"' in listed.text
    assert secret not in listed.text
    assert secret not in browser.get(f"/ui/tokens/{made.id}/revoke").text
    assert secret not in browser.get("/ui/projects/site/env").text


def test_an_admin_token_is_made_when_no_project_is_chosen(web: Web) -> None:
    answer = web.browser().post_form("/ui/tokens", {"name": "ops", "project": ""})
    assert answer.status_code == 201
    assert tokens_of(web)["ops"].is_admin
    assert "admin" in answer.text


def test_a_refused_token_form_says_why_and_makes_nothing(web: Web) -> None:
    browser = web.browser()
    before = set(tokens_of(web))
    long_name = browser.post_form("/ui/tokens", {"name": "n" * 65, "project": ""})
    assert long_name.status_code == 422
    assert "token name must be 1-64 characters" in long_name.text
    unknown = browser.post_form("/ui/tokens", {"name": "ci", "project": "ghost"})
    assert unknown.status_code == 404
    assert hidden_field(unknown.text, "name") == "ci"
    assert set(tokens_of(web)) == before


def test_revoking_a_token_after_its_confirmation(web: Web) -> None:
    web.make_token("deploy-bot")
    target = tokens_of(web)["deploy-bot"]
    browser = web.browser()
    confirm = browser.get(f"/ui/tokens/{target.id}/revoke")
    assert confirm.status_code == 200
    assert "Revoke token deploy-bot?" in confirm.text
    assert "signs you out" not in confirm.text  # not this browser's token
    answer = browser.post_form(f"/ui/tokens/{target.id}/revoke")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/tokens?notice=token-revoked"
    assert "deploy-bot" not in tokens_of(web)
    assert f'data-token="{target.id}"' not in browser.follow(answer).text


def test_revoking_your_own_token_signs_you_out(web: Web) -> None:
    secret = web.make_token("ops")
    browser = web.browser(secret)
    mine = tokens_of(web)["ops"]
    confirm = browser.get(f"/ui/tokens/{mine.id}/revoke")
    assert "This is the token you are signed in with: revoking it signs" in confirm.text
    assert "Revoke ops and sign out" in confirm.text
    answer = browser.post_form(f"/ui/tokens/{mine.id}/revoke")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in"
    assert "ops" not in tokens_of(web)
    after = browser.get("/ui/tokens")
    assert after.status_code == 303
    assert after.headers["location"].startswith("/ui/sign-in")
    with pytest.raises(Unauthorized):
        web.app.tokens.authenticate(f"Bearer {secret}")


def test_the_last_admin_token_is_kept(web: Web) -> None:
    browser = web.browser()
    mine = tokens_of(web)["admin"]
    answer = browser.post_form(f"/ui/tokens/{mine.id}/revoke")
    assert answer.status_code == 409
    assert "last admin token" in answer.text
    assert "admin" in tokens_of(web)


# -- a project token's session -------------------------------------------------------------------------------
def _project_browser(web: Web) -> tuple[Browser, Project, Project]:
    mine, other = web.make_project("mine"), web.make_project("other")
    web.platform.env.set(other, "OTHER_KEY", "theirs", False)
    web.make_token("theirs-ci", other)
    return web.browser(web.make_token("mine-ci", mine)), mine, other


def test_a_project_token_cannot_see_or_touch_another_projects_env(web: Web) -> None:
    browser, _mine, _other = _project_browser(web)
    assert browser.get("/ui/projects/mine/env").status_code == 200
    assert browser.get("/ui/projects/other/env").status_code == 404
    assert set_env(browser, "other", "INJECTED", "x").status_code == 404
    assert browser.post_form("/ui/projects/other/env/OTHER_KEY/delete").status_code == 404
    assert env_of(web, "other") == {"OTHER_KEY": ("theirs", False)}


def test_a_project_token_sees_its_projects_tokens_and_creates_none(web: Web) -> None:
    browser, _mine, _other = _project_browser(web)
    listed = browser.get("/ui/tokens")
    assert listed.status_code == 200
    names = set(re.findall(r'<tr data-token="([^"]+)"', listed.text))
    assert names == {tokens_of(web)["mine-ci"].id}
    assert 'id="token-name"' not in listed.text  # no create form
    assert 'href="/ui/tokens"' not in listed.text  # the nav link is an admin's
    before = set(tokens_of(web))
    for project in ("", "mine", "other"):
        answer = browser.post_form("/ui/tokens", {"name": "escalate", "project": project})
        assert answer.status_code == 403
    assert set(tokens_of(web)) == before
    theirs = tokens_of(web)["theirs-ci"]
    assert browser.get(f"/ui/tokens/{theirs.id}/revoke").status_code == 404
    assert browser.post_form(f"/ui/tokens/{theirs.id}/revoke").status_code == 404
    assert "theirs-ci" in tokens_of(web)


# -- CSRF ----------------------------------------------------------------------------------------------------
def test_posts_without_the_csrf_field_are_refused_and_change_nothing(web: Web) -> None:
    site = web.make_project("site")
    web.platform.env.set(site, "KEEP", "kept", False)
    web.make_token("bot")
    bot = tokens_of(web)["bot"]
    browser = web.browser()
    browser.get("/ui/tokens")
    posts = {
        "/ui/projects/site/env": {"key": "NEW", "value": "v"},
        "/ui/projects/site/env/KEEP/delete": {"submit": ""},  # a form that only had its csrf field
        "/ui/tokens": {"name": "sneaky", "project": ""},
        f"/ui/tokens/{bot.id}/revoke": {"submit": ""},
    }
    for path, fields in posts.items():
        assert browser.post(path, fields).status_code == 403, path
        assert browser.post(path, {**fields, "csrf": "wrong"}).status_code == 403, path
    assert env_of(web, "site") == {"KEEP": ("kept", False)}
    assert set(tokens_of(web)) == {"admin", "bot"}
