"""model/limits.py: a JSON body's shape measured before parsing; a deployment's meta, in and out."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from typing import Any

import pytest

from anchor_deploy.api.serialize import deployment_json
from anchor_deploy.model.entities import DeploymentStatus
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.model.limits import (
    MAX_JSON_DEPTH,
    MAX_JSON_ITEMS,
    MAX_META_BYTES,
    MAX_META_DEPTH,
    MAX_META_KEY,
    check_json_shape,
    displayable_meta,
    parse_meta,
)
from anchor_deploy.model.manifest import MAX_FILES
from anchor_deploy.services.urls import UrlService
from anchor_deploy.settings import Settings
from tests.support import sha
from tests.unit.conftest import ADMIN, App

PAGE = b"<h1>hi</h1>"


def nested(depth: int, kind: str = "object", leaf: Any = 1) -> Any:
    """``depth`` levels of objects, arrays, or both in turn, around ``leaf``; built without recursion."""
    value = leaf
    for level in range(depth):
        as_object = kind == "object" or (kind == "mixed" and level % 2 == 0)
        value = {"k": value} if as_object else [value]
    return value


def encoded(value: Any) -> bytes:
    # json.dumps is recursive: the recursion limit would stop it before the deepest documents here.
    return json.dumps(value).encode()


def shape_error(raw: bytes, **limits: int) -> str | None:
    try:
        check_json_shape(raw, **limits)
    except InvalidInput as exc:
        return exc.message
    return None


# -- the body's shape --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["object", "array", "mixed"])
def test_depth_up_to_the_limit_passes_and_one_more_level_is_refused(kind: str) -> None:
    assert shape_error(encoded(nested(MAX_JSON_DEPTH, kind))) is None
    message = shape_error(encoded(nested(MAX_JSON_DEPTH + 1, kind)))
    assert message == f"request body is nested deeper than {MAX_JSON_DEPTH} levels"


def test_depth_counts_the_deepest_branch_not_the_sum_of_siblings() -> None:
    siblings = {"a": [nested(MAX_JSON_DEPTH - 2)] * 50, "b": nested(MAX_JSON_DEPTH - 1)}
    assert shape_error(encoded(siblings)) is None
    # [[]] [[]] side by side is depth 3 in all, also when written without spaces.
    assert shape_error(b'{"x":[[1],[2]],"y":[[3]]}', max_depth=3) is None
    assert shape_error(b'{"x":[[1],[[2]]]}', max_depth=3) is not None


def test_a_hundred_thousand_open_brackets_are_refused_without_recursion() -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100)  # a recursive check would blow up on the first few levels
    try:
        assert shape_error(b"[" * 100_000) == f"request body is nested deeper than {MAX_JSON_DEPTH} levels"
        assert shape_error(b'{"a":' * 50_000 + b"1" + b"}" * 50_000) is not None
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"s": "[[[[{{{{"}',  # brackets inside a string
        b'{"s": "\\"[[[["}',  # after an escaped quote, still inside the string
        b'{"s": "\\\\", "t": [1]}',  # an escaped backslash ends right before the closing quote
        b'{"s": "\\\\\\"[[[[", "t": 2}',  # escaped backslash, escaped quote, then brackets: all string
        b'{"[[[[": "]]]]"}',  # in keys too
    ],
)
def test_brackets_inside_strings_do_not_count(raw: bytes) -> None:
    json.loads(raw)  # the cases are valid JSON
    assert shape_error(raw, max_depth=2) is None


def test_unpaired_brackets_are_invalid_json() -> None:
    assert shape_error(b'{"a": [1, 2}') == "request body is not valid JSON: its brackets do not pair up"
    assert shape_error(b"]]]") == "request body is not valid JSON: its brackets do not pair up"


def test_the_number_of_values_is_limited() -> None:
    nine = b"[" + b",".join(b"0" for _ in range(9)) + b"]"  # 8 commas and 1 array: 9 items
    assert shape_error(nine, max_items=9) is None
    assert shape_error(b"[" + b"0," * 9 + b"0]", max_items=9) == "request body holds more than 9 JSON values"
    many_objects = b"[" + b"{}," * MAX_JSON_ITEMS + b"{}]"
    assert shape_error(many_objects) == f"request body holds more than {MAX_JSON_ITEMS} JSON values"


def test_the_largest_manifest_fits_the_limits() -> None:
    files = [
        {"path": f"dir{i % 100}/file-{i}.html", "sha256": sha(str(i).encode()), "size": 12345, "mode": 420}
        for i in range(MAX_FILES)
    ]
    raw = encoded({"files": files, "target": "production", "meta": nested(MAX_META_DEPTH)})
    assert len(raw) < Settings().max_json_body
    assert shape_error(raw) is None


# -- meta --------------------------------------------------------------------------------------------
def test_meta_within_the_limits_is_kept() -> None:
    assert parse_meta(None) == {}
    meta = {"branch": "main", "k" * MAX_META_KEY: nested(MAX_META_DEPTH - 1, "mixed", "x")}
    assert parse_meta(meta) is meta


def test_meta_exactly_at_the_size_limit_passes() -> None:
    padding = MAX_META_BYTES - len(b'{"k":""}')
    assert parse_meta({"k": "v" * padding}) == {"k": "v" * padding}
    with pytest.raises(
        InvalidInput, match=f"at most {MAX_META_BYTES} bytes as JSON, is {MAX_META_BYTES + 1}"
    ):
        parse_meta({"k": "v" * (padding + 1)})
    # UTF-8 bytes count, not characters.
    with pytest.raises(InvalidInput, match="bytes as JSON"):
        parse_meta({"k": "é" * (padding // 2 + 1)})


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("main", "meta must be a JSON object"),
        ([1], "meta must be a JSON object"),
        (nested(MAX_META_DEPTH + 1), f"meta must be nested at most {MAX_META_DEPTH} levels deep"),
        ({"a": nested(MAX_META_DEPTH, "array")}, f"at most {MAX_META_DEPTH} levels deep"),
        (nested(300), f"at most {MAX_META_DEPTH} levels deep"),
        ({"k" * (MAX_META_KEY + 1): 1}, f"keys must be strings of at most {MAX_META_KEY} characters"),
        ({"a": {"b": {"k" * (MAX_META_KEY + 1): 1}}}, "keys must be strings"),
        ({1: "x"}, "keys must be strings"),
        ({"x": "y" * 20_000}, f"at most {MAX_META_BYTES} bytes"),
        ({"x": list(range(MAX_META_BYTES + 1))}, f"at most {MAX_META_BYTES} bytes"),  # stops counting early
        ({"x": float("nan")}, "numbers must be finite"),
        ({"x": [float("-inf")]}, "numbers must be finite"),
        ({"x": "\ud800"}, "no lone surrogates"),
        ({"x": {1, 2}}, "holds a set, which is not JSON"),
    ],
)
def test_meta_outside_the_limits_is_refused(meta: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_meta(meta)


def test_a_deployment_with_bad_meta_stores_nothing(app: App) -> None:
    project = app.project()
    app.upload(PAGE)
    files = [{"path": "index.html", "sha256": sha(PAGE), "size": len(PAGE)}]
    for meta in (nested(MAX_META_DEPTH + 1), {"x": "y" * MAX_META_BYTES}, {"k" * 300: 1}):
        with pytest.raises(InvalidInput):
            app.deployments.create(project, {"files": files, "meta": meta}, ADMIN)
    assert app.store.list_deployments(project.id) == []
    kept = app.deployments.create(project, {"files": files, "meta": nested(MAX_META_DEPTH)}, ADMIN)
    stored = app.store.deployment(kept.id)
    assert stored is not None and stored.meta == nested(MAX_META_DEPTH)


# -- meta on the way out -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stored",
    [nested(300), nested(MAX_JSON_DEPTH + 1, "array"), {"x": float("nan")}, {"x": "\ud800"}, {"x": {1}}],
)
def test_a_stored_meta_that_cannot_be_sent_is_withheld(app: App, stored: Any) -> None:
    assert displayable_meta(stored) is None
    project = app.project()
    deployment = app.create(project)
    old = app.store.deployment(deployment.id)
    assert old is not None and old.status == DeploymentStatus.QUEUED
    shown = deployment_json(_with_meta(old, stored), project, Settings(), _urls())
    assert shown["meta"] is None and shown["metaOmitted"] is True
    json.dumps(shown, allow_nan=False).encode()  # what the API sends: no error


def test_a_meta_stored_under_the_old_rules_stays_visible_when_it_can() -> None:
    older = nested(MAX_META_DEPTH + 4)  # deeper than new metas may be, shallow enough to send
    assert displayable_meta(older) is older
    assert displayable_meta({}) == {}


def test_a_good_meta_is_shown_without_a_flag(app: App) -> None:
    project = app.project()
    deployment = app.create(project)
    shown = deployment_json(_with_meta(deployment, {"branch": "main"}), project, Settings(), _urls())
    assert shown["meta"] == {"branch": "main"} and "metaOmitted" not in shown


def _with_meta(deployment: Any, meta: Any) -> Any:
    return dataclasses.replace(deployment, meta=meta)


def _urls() -> UrlService:
    settings = Settings()
    return UrlService(settings.public_url, settings.base_domain, None)
