"""AWS clients configured only by the standard AWS environment and config files.

Region, credentials, profiles and endpoints come from where every AWS tool reads them (``AWS_REGION``,
``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``…, ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``,
``~/.aws/config``), so a moto server or LocalStack is reached with no setting of the platform's own.
Retries use botocore's standard mode: throttling and transient errors are retried with backoff.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

RETRIES = Config(
    retries={"mode": "standard", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=60,
    max_pool_connections=32,  # S3 HEADs a manifest's blobs 32 at a time
)


class AwsClients:
    """One boto3 session, one client per service, made on first use and shared between threads
    (botocore clients are thread-safe; the session is not, so clients are made under a lock)."""

    def __init__(self, session: boto3.Session | None = None, config: Config = RETRIES) -> None:
        self._session = session or boto3.Session()
        self._config = config
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str, str], None]] = []

    @property
    def region(self) -> str:
        region = self._session.region_name
        if not region:
            raise RuntimeError("no AWS region: set AWS_REGION (or a region in the AWS config profile)")
        return str(region)

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._watched(self._session.client(service, config=self._config))
            return self._clients[service]

    def presigner(self, service: str) -> Any:
        """A client whose presigned URLs are SigV4 (botocore presigns S3 with SigV2 unless the config names a
        signature version, and SigV2 signs no headers: a checksum or If-None-Match would not be bound)."""
        key = f"{service}#presign"
        with self._lock:
            if key not in self._clients:
                config = self._config.merge(Config(signature_version="s3v4" if service == "s3" else "v4"))
                self._clients[key] = self._session.client(service, config=config)
            return self._clients[key]

    def regional(self, service: str, region: str) -> Any:
        """A client pinned to another region (ACM for CloudFront lives in us-east-1)."""
        key = f"{service}@{region}"
        with self._lock:
            if key not in self._clients:
                client = self._session.client(service, region_name=region, config=self._config)
                self._clients[key] = self._watched(client)
            return self._clients[key]

    def on_call(self, listener: Callable[[str, str], None]) -> None:
        """Tell ``listener(service, operation)`` of every API call made from now on (one per call, retries
        not counted): the benchmark's and the tests' call counts."""
        self._listeners.append(listener)

    def count_calls(self) -> Counter[str]:
        """A counter of "service:Operation" that grows with every call made from now on."""
        counts: Counter[str] = Counter()
        self.on_call(lambda service, operation: counts.update([f"{service}:{operation}"]))
        return counts

    def _watched(self, client: Any) -> Any:
        service = client.meta.service_model.service_name

        def tell(model: Any, **_: Any) -> None:
            for listener in list(self._listeners):
                listener(service, model.name)

        client.meta.events.register("before-call.*.*", tell)
        return client
