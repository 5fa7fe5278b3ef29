"""JSON request bodies as typed models: ``body: Annotated[Model, Depends(JsonBody(Model))]``.

The body is read by ``json_object`` (its size limited as it streams, its depth and value count measured on
the raw bytes before it is parsed, no NaN, no lone surrogate) and only then validated into the model, so a
hostile body is refused before the parser or pydantic see it. FastAPI's own body parameters would parse
first; they are not used. The OpenAPI document learns each route's body from this dependency
(api/openapi.py), so a route that takes one cannot leave it undocumented.
"""

# No `from __future__ import annotations` here: FastAPI reads JsonBody.__call__'s annotations at runtime,
# and an instance has no module globals to resolve strings against.
from typing import Generic, TypeVar

from fastapi import Request
from fastapi.dependencies.models import Dependant

from anchor_deploy.api.deps import json_bytes, json_object, json_value
from anchor_deploy.api.schemas_requests import RequestBody

Body = TypeVar("Body", bound=RequestBody)


class JsonBody(Generic[Body]):
    def __init__(self, model: type[Body]) -> None:
        self.model = model

    async def __call__(self, request: Request) -> Body:
        return self.model.from_json(await json_object(request))


class Unchecked(Generic[Body]):
    """A body read but not yet looked at: ``check()`` parses and validates it (422), after the route has
    authenticated its caller, so a bad body never answers before a 401 or 404."""

    def __init__(self, model: type[Body], raw: bytes) -> None:
        self._model = model
        self._raw = raw

    def check(self) -> Body:
        return self._model.from_json(json_value(self._raw))


class LaterJsonBody(JsonBody[Body]):
    """JsonBody whose checks wait for ``Unchecked.check()``: for a route that authenticates, finds its
    project and does its work in one worker-thread round trip (documented as JsonBody is)."""

    async def __call__(self, request: Request) -> Unchecked[Body]:  # type: ignore[override]
        return Unchecked(self.model, await json_bytes(request))


def body_model(dependant: Dependant) -> type[RequestBody] | None:
    """The model of the JSON body a route reads through JsonBody, if it reads one."""
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, JsonBody):
            model: type[RequestBody] = dependency.call.model
            return model
        found = body_model(dependency)
        if found is not None:
            return found
    return None


def reads_raw_json(dependant: Dependant) -> bool:
    """True if a route reads its body as an untyped dict (``json_object`` itself, not through JsonBody)."""
    return any(
        dependency.call is json_object or reads_raw_json(dependency)
        for dependency in dependant.dependencies
        if not isinstance(dependency.call, JsonBody)
    )
