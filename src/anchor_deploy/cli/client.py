"""A small typed client of the v1 API; every failure becomes one readable ClientError."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import httpx

from anchor_deploy.settings import ClientSettings

DEFAULT_API_URL = "http://127.0.0.1:8400"
NO_TOKEN = "no token is set: run `anchor login`, or set ANCHOR_TOKEN"  # noqa: S105 (a message)
TOKEN_REFUSED = "the token was refused (revoked or wrong): run `anchor login`, or set ANCHOR_TOKEN"  # noqa: S105


class ClientError(Exception):
    def __init__(self, message: str, status: int = 0, code: str = "", body: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = body or {}


def load_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_config(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


class ApiClient:
    def __init__(self, base_url: str, token: str | None, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=60, transport=transport)

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> ApiClient:
        config = load_config(settings.config_path)
        url = settings.api_url or config.get("api_url") or DEFAULT_API_URL
        token = settings.token or config.get("token")
        if not token:
            raise ClientError(NO_TOKEN)
        return cls(url, token)

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        ok: tuple[int, ...] = (200, 201),
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """``timeout``: seconds to wait for the answer, for a call that works long (fsck); default 60."""
        wait = httpx.USE_CLIENT_DEFAULT if timeout is None else httpx.Timeout(timeout, connect=10)
        try:
            response = self._http.request(method, path, json=json_body, content=content, timeout=wait)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the anchor API at {self.base_url}: {exc}") from exc
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if response.status_code in ok:
            return body if isinstance(body, dict) else {"items": body}
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message") or f"HTTP {response.status_code}"
        if response.status_code == 401:
            message = TOKEN_REFUSED
        raise ClientError(message, response.status_code, error.get("code", ""), error)

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> dict[str, Any]:
        return self.request("POST", path, json_body=body if body is not None else {})

    def put_blob(self, digest: str, data: bytes) -> None:
        self.request("PUT", f"/v1/blobs/{digest}", content=data)

    def download(self, path: str, out: IO[bytes], read_timeout: float = 600.0) -> int:
        """GET ``path`` into ``out`` as it arrives (a long wait for the first byte is allowed); the bytes
        written. An error answer, or a body that ends early, is a ClientError."""
        timeout = httpx.Timeout(60, read=read_timeout)
        try:
            with self._http.stream("GET", path, timeout=timeout) as response:
                if response.status_code != 200:
                    response.read()
                    self._refuse(response)
                written = 0
                for chunk in response.iter_raw():
                    out.write(chunk)
                    written += len(chunk)
        except httpx.HTTPError as exc:
            raise ClientError(f"the download from {self.base_url} broke off: {exc}") from exc
        return written

    @staticmethod
    def _refuse(response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message") or f"HTTP {response.status_code}"
        raise ClientError(message, response.status_code, error.get("code", ""), error)
