"""The domains page (/ui/projects/NAME/domains): adding, the records to create, retry, check, removal, and
who may see it, in this process on the fakes."""

from __future__ import annotations

import re
from dataclasses import replace
from html import unescape

from anchor_deploy.api.serialize import iso
from anchor_deploy.model.domains import CertificateStatus, Domain
from anchor_deploy.web.render import utc
from anchor_deploy.web.routes_domains import NOTICES
from tests.unit import web_harness
from tests.unit.domain_fakes import FakeDnsLookup
from tests.unit.web_harness import Web

web = web_harness.web  # the fixture

PAGE = "/ui/projects/site/domains"
SCRIPT = "<script>alert('x')</script>"
_COPY = re.compile(r'<button type="button" class="secondary copy" data-copy="([^"]*)">Copy<span')
_ROW = re.compile(
    r'<tr class="record" data-type="([^"]*)" data-purpose="([^"]*)"(?: data-deletable="(\w+)")?>'
)
_ERROR = re.compile(r'<p class="error" role="alert"[^>]*>(.*?)</p>', re.DOTALL)
_TYPED = re.compile(r'<input type="text" id="domain-name" name="domain" value="([^"]*)"')
_EVENTS = re.compile(r'<body data-events="([^"]*)"')
_ARTICLE = re.compile(r'<article class="card domain" data-domain="([^"]*)"')


def _stored(web: Web, name: str) -> Domain | None:
    found = web.app.store.domain(name)
    return None if found is None or found.deleting else found


def _held(web: Web, name: str) -> Domain:
    found = _stored(web, name)
    assert found is not None, name
    return found


def _copies(html: str) -> list[str]:
    return [unescape(v) for v in _COPY.findall(html)]


def _first(pattern: re.Pattern[str], html: str) -> str:
    match = pattern.search(html)
    assert match, f"the page has no {pattern.pattern}"
    return unescape(match.group(1))


def _error(html: str) -> str:
    return _first(_ERROR, html)


def _live_part(html: str) -> str:
    start = html.index('<section id="domains" data-live')
    return html[start : html.index("</section>", start)]


def test_adding_a_domain_shows_the_records_to_create_with_copy_buttons(web: Web) -> None:
    web.make_project("site")
    browser = web.browser()
    browser.get(PAGE)

    answer = browser.post_form(PAGE, {"domain": "WWW.Example.com"})

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PAGE}?notice=added"
    stored = _stored(web, "www.example.com")
    assert stored is not None and stored.project_id == web.project("site").id
    page = browser.follow(answer)
    assert page.status_code == 200
    assert NOTICES["added"] in unescape(page.text)
    live = _live_part(page.text)
    assert _ARTICLE.findall(live) == ["www.example.com"]
    records = web.platform.domains.view(stored).records
    assert {r.purpose for r in records} == {"validation", "routing"}
    # Every record's name and value, each with its own copy button, in the order the service gives them.
    assert _copies(live) == [part for r in records for part in (r.name, r.value)]
    assert [(t, p) for t, p, _ in _ROW.findall(live)] == [(r.type, r.purpose) for r in records]
    assert "PENDING_VALIDATION" in live and unescape(stored.status_reason) in unescape(live)
    assert "1 of 100 custom domains used" in live
    # The copy buttons say which record they copy, for a screen reader.
    assert f'Copy<span class="visually-hidden"> {records[1].type} record value for {records[1].name}' in live


def test_a_refused_name_is_shown_beside_the_form_and_nothing_is_stored(web: Web) -> None:
    web.make_project("site")
    browser = web.browser()
    browser.get(PAGE)

    answer = browser.post_form(PAGE, {"domain": "bad..<b>name"})

    assert answer.status_code == 422
    assert "empty label" in _error(answer.text) or "invalid" in _error(answer.text).lower()
    assert "<b>" not in answer.text.split("<main", 1)[1]  # what was typed comes back escaped
    assert _first(_TYPED, answer.text) == "bad..<b>name"
    assert 'aria-invalid="true"' in answer.text
    assert web.app.store.project_domains(web.project("site").id) == []
    assert _ARTICLE.findall(answer.text) == []


def test_a_name_another_project_holds_and_a_full_quota_are_refused_in_plain_words(web: Web) -> None:
    web.make_project("site")
    other = web.make_project("other")
    web.platform.domains.add(other, "shop.example.com")
    browser = web.browser()
    browser.get(PAGE)

    taken = browser.post_form(PAGE, {"domain": "shop.example.com"})

    assert taken.status_code == 409
    assert "shop.example.com" in _error(taken.text)
    assert _held(web, "shop.example.com").project_id == other.id

    web.platform.domains.settings = replace(web.platform.domains.settings, quota=1)
    assert browser.post_form(PAGE, {"domain": "a.example.com"}).status_code == 303
    full = browser.post_form(PAGE, {"domain": "b.example.com"})

    assert full.status_code == 422
    assert "quota" in _error(full.text)
    assert _stored(web, "b.example.com") is None
    assert "1 of 1 custom domains used" in full.text and "quota is reached" in full.text


def test_a_status_reason_with_markup_is_shown_as_text(web: Web) -> None:
    site = web.make_project("site")
    web.platform.domains.add(site, "www.example.com")
    domain = _held(web, "www.example.com")
    web.app.store.save_domain(replace(domain, status_reason=f"resolver said {SCRIPT}"))

    page = web.browser().get(PAGE)

    assert page.status_code == 200
    assert SCRIPT not in page.text
    assert "resolver said &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text


def test_retry_restarts_a_failed_certificate(web: Web) -> None:
    site = web.make_project("site")
    web.platform.domains.add(site, "www.example.com")
    domain = _held(web, "www.example.com")
    failed = replace(
        domain,
        certificate_status=CertificateStatus.FAILED,
        status_reason="the authority refused",
        next_check_at=None,
        failures=3,
    )
    web.app.store.save_domain(failed)
    browser = web.browser()
    page = browser.get(PAGE)
    assert 'Retry<span class="visually-hidden"> www.example.com</span>' in page.text
    assert "Check now" not in page.text  # nothing pending: only a retry helps

    answer = browser.post_form(f"{PAGE}/www.example.com/retry")

    assert answer.status_code == 303 and answer.headers["location"] == f"{PAGE}?notice=retried"
    after = _held(web, "www.example.com")
    assert after.certificate_status == CertificateStatus.PENDING_VALIDATION
    assert after.status_reason.startswith("retrying") and after.failures == 0
    shown = browser.follow(answer)
    assert NOTICES["retried"] in unescape(shown.text) and "Retry<span" not in shown.text


def test_retrying_a_domain_that_has_not_failed_is_refused_and_changes_nothing(web: Web) -> None:
    site = web.make_project("site")
    web.platform.domains.add(site, "www.example.com")
    before = _stored(web, "www.example.com")
    browser = web.browser()
    browser.get(PAGE)

    answer = browser.post_form(f"{PAGE}/www.example.com/retry")

    assert answer.status_code == 409
    assert "retry is for FAILED" in _error(answer.text)
    assert _stored(web, "www.example.com") == before


def test_check_now_issues_the_certificate_once_the_record_is_there(web: Web) -> None:
    site = web.make_project("site")
    view = web.platform.domains.add(site, "www.example.com")
    web.platform.domains.checks = None  # no worker in this process: the check runs in the request
    validation = next(r for r in view.records if r.purpose == "validation")
    lookup = web.platform.domains.lookup
    assert isinstance(lookup, FakeDnsLookup)
    lookup.cname(validation.name, validation.value)
    browser = web.browser()
    browser.get(PAGE)

    answer = browser.post_form(f"{PAGE}/www.example.com/check")

    assert answer.status_code == 303 and answer.headers["location"] == f"{PAGE}?notice=checked"
    after = _held(web, "www.example.com")
    assert after.certificate_status == CertificateStatus.ISSUED
    live = _live_part(browser.follow(answer).text)
    assert "ISSUED" in live
    assert 'class="issuer">CN=Fake CA<' in live
    assert after.certificate is not None
    assert (
        f'class="not-after" datetime="{iso(after.certificate.not_after)}">{utc(after.certificate.not_after)}<'
        in live
    )


def test_removal_is_confirmed_by_name_then_lists_the_records_to_delete(web: Web) -> None:
    site = web.make_project("site")
    web.platform.domains.add(site, "example.com")
    web.platform.domains.add(site, "*.example.com")  # shares the validation record with example.com
    browser = web.browser()

    confirm = browser.get(f"{PAGE}/example.com/remove")

    assert confirm.status_code == 200
    assert '<span id="remove-domain">example.com</span>' in confirm.text
    assert f'action="{PAGE}/example.com/remove"' in confirm.text
    assert _stored(web, "example.com") is not None  # looking at the confirmation removes nothing

    removed = browser.post_form(f"{PAGE}/example.com/remove")

    assert removed.status_code == 200
    assert _stored(web, "example.com") is None
    assert _stored(web, "*.example.com") is not None
    rows = {(kind, purpose): deletable for kind, purpose, deletable in _ROW.findall(removed.text)}
    assert rows[("CNAME", "validation")] == "no"  # *.example.com still validates through it
    assert {d for (_, purpose), d in rows.items() if purpose == "routing"} == {"yes"}
    assert "keep it: *.example.com validates through the same name" in unescape(removed.text)
    assert '<span id="removed-domain">example.com</span> was removed' in removed.text
    left = browser.get(PAGE).text
    assert _ARTICLE.findall(left) == ["*.example.com"]
    # The wildcard's own links work through its quoted name.
    link = _first(re.compile(r'<a class="button secondary" href="([^"]*)">Remove<span'), left)
    assert link == f"{PAGE}/%2A.example.com/remove"
    assert '<span id="remove-domain">*.example.com</span>' in browser.get(link).text


def test_removing_with_a_wrong_csrf_field_changes_nothing(web: Web) -> None:
    site = web.make_project("site")
    web.platform.domains.add(site, "www.example.com")
    browser = web.browser()

    answer = browser.post(f"{PAGE}/www.example.com/remove", {"csrf": "not-the-sessions"})

    assert answer.status_code == 403
    assert "out of date" in _error(answer.text)
    assert _stored(web, "www.example.com") is not None


def test_a_project_token_cannot_see_or_change_another_projects_domains(web: Web) -> None:
    site = web.make_project("site")
    other = web.make_project("other")
    web.platform.domains.add(site, "www.example.com")
    failed = replace(_held(web, "www.example.com"), certificate_status=CertificateStatus.FAILED)
    web.app.store.save_domain(failed)
    browser = web.browser(web.make_token("ci", other))
    assert browser.get("/ui/projects/other/domains").status_code == 200

    for path in (PAGE, f"{PAGE}/www.example.com/remove"):
        seen = browser.get(path)
        assert seen.status_code == 404, path
        assert "www.example.com" not in seen.text
    for path, fields in (
        (PAGE, {"domain": "new.example.com"}),
        (f"{PAGE}/www.example.com/retry", {}),
        (f"{PAGE}/www.example.com/check", {}),
        (f"{PAGE}/www.example.com/remove", {}),
    ):
        assert browser.post_form(path, fields).status_code == 404, path
    assert _stored(web, "new.example.com") is None
    assert _stored(web, "www.example.com") == failed
    # Its own project's page does not reach the other's domain either.
    assert browser.post_form("/ui/projects/other/domains/www.example.com/remove").status_code == 404
    assert _stored(web, "www.example.com") == failed


def test_the_project_stream_tells_the_domains_page_when_a_status_changes(web: Web) -> None:
    site = web.make_project("site")
    web.platform.domains.add(site, "www.example.com")
    browser = web.browser()
    page = browser.get(PAGE).text
    events = _first(_EVENTS, page)
    assert events.startswith("/ui/projects/site/events?since=")

    def fail() -> None:
        domain = _held(web, "www.example.com")
        web.app.store.save_domain(replace(domain, certificate_status=CertificateStatus.FAILED))

    body = web.events(browser, events, until=lambda text: "event: change" in text, during=fail)

    assert "event: change" in body
    assert "Retry<span" in browser.get(PAGE).text
