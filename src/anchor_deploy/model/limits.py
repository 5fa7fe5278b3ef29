"""Limits on the JSON the API accepts, and on a deployment's ``meta``.

Python's json module is recursive, and an object of a few bytes (``{}``) costs some 60 bytes once parsed,
so a request body is measured *before* it is parsed: ``check_json_shape`` scans the raw bytes (with
C-speed bytes operations, no recursion) and refuses a document nested deeper than MAX_JSON_DEPTH or with
more than MAX_JSON_ITEMS values. A manifest of MAX_FILES (100,000) entries is 3 levels deep and some
500,000 items, well inside both.

A deployment's ``meta`` is free-form and shown back in every listing, so it gets tighter limits
(``parse_meta``), and ``displayable_meta`` guards the way out for a meta stored by an older version.
"""

from __future__ import annotations

import json
import math
from typing import Any

from anchor_deploy.model.errors import InvalidInput

MAX_JSON_DEPTH = 32
MAX_JSON_ITEMS = 1_000_000
MAX_META_DEPTH = 8
MAX_META_BYTES = 16 * 1024
MAX_META_KEY = 256

_STRUCTURE = b'"[]{},'
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_ONE_BRACKET = bytes.maketrans(b"{}", b"[]")


def check_json_shape(
    raw: bytes | bytearray, max_depth: int = MAX_JSON_DEPTH, max_items: int = MAX_JSON_ITEMS
) -> None:
    """InvalidInput if the JSON text ``raw`` nests deeper than ``max_depth`` (``{}`` and ``[]`` are depth
    1) or holds more than ``max_items`` values (counted as commas plus objects and arrays), or if its
    brackets do not pair up. Brackets inside strings do not count. Never recurses; linear in len(raw)."""
    # Drop escaped backslashes first, then escaped quotes: every '"' left opens or closes a string.
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    # Split on quotes: the even pieces are outside strings (an unterminated string swallows the rest).
    outside = b"".join(text.split(b'"')[0::2])
    opened = outside.count(b"[") + outside.count(b"{")
    if outside.count(b",") + opened > max_items:
        raise InvalidInput(f"request body holds more than {max_items} JSON values")
    brackets = outside.translate(_ONE_BRACKET, b",")
    if b"[" * (max_depth + 1) in brackets:
        raise InvalidInput(f"request body is nested deeper than {max_depth} levels")
    # Each pass removes the innermost pairs, i.e. exactly one level (replace does not rescan its output).
    for _level in range(max_depth):
        if not brackets:
            return
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    if not brackets:
        return
    if b"[]" in brackets:
        raise InvalidInput(f"request body is nested deeper than {max_depth} levels")
    raise InvalidInput("request body is not valid JSON: its brackets do not pair up")


def _problem(value: object, max_depth: int, max_nodes: int, max_key: int) -> str | None:
    """What makes ``value`` unfit as meta, walking it without recursion; None if it is fine."""
    stack: list[tuple[object, int]] = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            return f"must be at most {MAX_META_BYTES} bytes as JSON"
        if isinstance(item, dict):
            if depth > max_depth:
                return f"must be nested at most {max_depth} levels deep"
            for key, child in item.items():
                if not isinstance(key, str) or len(key) > max_key:
                    return f"keys must be strings of at most {max_key} characters"
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                return f"must be nested at most {max_depth} levels deep"
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "numbers must be finite"
        elif item is not None and not isinstance(item, str | int):  # bool is an int
            return f"holds a {type(item).__name__}, which is not JSON"
    return None


def _encoded(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def parse_meta(raw: object) -> dict[str, Any]:
    """A deployment's meta: a JSON object at most MAX_META_DEPTH levels deep (the object itself is level
    1), MAX_META_BYTES bytes as compact UTF-8 JSON, with keys of at most MAX_META_KEY characters.
    None means {}. InvalidInput otherwise."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput("meta must be a JSON object")
    # Every value costs at least one byte of JSON, so a walk of MAX_META_BYTES nodes settles the size.
    problem = _problem(raw, MAX_META_DEPTH, MAX_META_BYTES, MAX_META_KEY)
    if problem is None:
        try:
            size = len(_encoded(raw))
        except (ValueError, UnicodeError):
            problem = "must be valid JSON text (no lone surrogates)"
        else:
            if size > MAX_META_BYTES:
                problem = f"must be at most {MAX_META_BYTES} bytes as JSON, is {size}"
    if problem is not None:
        raise InvalidInput(f"meta {problem}")
    return raw


def displayable_meta(meta: object) -> dict[str, Any] | None:
    """``meta`` if it can be sent back as JSON safely, else None (the caller flags it as withheld).

    Older versions stored any object: one nested hundreds of levels deep, or holding NaN or a lone
    surrogate, made every listing of it fail. The depth allowed here is the request body's, not the
    (smaller) one new metas get, so that a meta stored under the old rules stays visible when it can."""
    if not isinstance(meta, dict):
        return None
    if _problem(meta, MAX_JSON_DEPTH, MAX_JSON_ITEMS, MAX_JSON_ITEMS) is not None:
        return None
    try:
        _encoded(meta)
    except (ValueError, UnicodeError):
        return None
    return meta
