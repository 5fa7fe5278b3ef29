"""Typed settings, parsed once. The only module that reads the environment."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from anchor_deploy.model.errors import InvalidInput

DEFAULT_API_ADDR = "127.0.0.1:8400"
DEFAULT_HTTP_ADDR = "127.0.0.1:8000"
DEFAULT_HTTPS_ADDR = "127.0.0.1:8443"
DEFAULT_DNS_ADDR = "127.0.0.1:8053"
ISSUERS = ("internal", "acme")
SANDBOX_MODES = ("bwrap", "off")
APP_NETWORKS = ("none", "host")
PROVIDERS = ("local", "aws")
GIT_HOOK_TIMEOUT = "ANCHOR_GIT_HOOK_TIMEOUT"
GIT_HOOK_PROJECT = "ANCHOR_GIT_PROJECT"


def parse_addr(value: str, setting: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"{setting} must look like HOST:PORT, got {value!r}")
    return host, int(port)


# A stack name is part of every AWS name the platform makes (function names, a bucket name): short, lowercase,
# and without "_", which the project function names use after it (see adapters/aws/names.py).
AWS_STACK_MAX = 21
_AWS_STACK = re.compile(r"^[a-z](?:[a-z0-9-]{0,19}[a-z0-9])?$")


def parse_stack_name(value: str, setting: str = "--stack") -> str:
    if not _AWS_STACK.fullmatch(value):
        raise InvalidInput(
            f"{setting} must be 1-{AWS_STACK_MAX} characters of a-z, 0-9 and hyphens, starting with a letter "
            f"and ending with a letter or digit, got {value!r}"
        )
    return value


def _default_caddy() -> str:
    beside_python = Path(sys.executable).parent / "caddy"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("caddy") or "caddy"


def _default_nginx() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


EDGES = ("caddy", "nginx")


@dataclass(frozen=True)
class Settings:
    provider: str = "local"  # where the platform runs: "local" (this machine) or "aws"
    aws_stack: str = "anchor-deploy"  # the CloudFormation stack of the AWS provider (`anchor aws bootstrap`)
    # How an AWS app build's health check runs the new version: "lambda" (Invoke through its alias) or
    # "sandbox" (the published package run in the build sandbox: for emulators that cannot run code).
    aws_invoke: str = "lambda"
    # A CloudFront cache policy of the operator's to use instead of the platform's own (which it makes).
    aws_cache_policy: str = ""
    # Seconds between looks at a CloudFront distribution being disabled before it can be deleted (a
    # project's deletion, `anchor aws destroy`); CloudFront takes minutes, an emulator less.
    aws_cdn_poll: float = 20.0
    # AWS quotas custom domains plan by (0: the account's value from Service Quotas, else AWS's default).
    aws_quota_names_per_certificate: int = 0  # ACM, default 10
    aws_quota_aliases_per_distribution: int = 0  # CloudFront, default 100
    aws_quota_distributions: int = 0  # CloudFront distributions per account, default 500
    aws_quota_certificates: int = 0  # ACM certificates in us-east-1, default 2,500
    aws_quota_certificate_requests: int = 0  # ACM certificates requested a year, default 5,000
    data_dir: Path = Path(".anchor")
    api_addr: str = DEFAULT_API_ADDR
    http_addr: str = DEFAULT_HTTP_ADDR
    base_domain: str = "localhost"
    admin_token: str | None = None
    max_blob_size: int = 100 * 1024 * 1024
    max_json_body: int = 32 * 1024 * 1024  # any request body but a blob upload's
    api_read_timeout: float = 60.0  # the API's bound on reading a request's headers; on a body's stalls
    build_workers: int = 2
    caddy_bin: str = field(default_factory=_default_caddy)
    edge: str = "caddy"  # the web server reading the edge's symlink tree: "caddy" or "nginx"
    nginx_bin: str = field(default_factory=_default_nginx)
    build_timeout: float = 600.0
    build_memory: int = 4 * 1024**3
    health_timeout: float = 30.0
    idle_timeout: float = 300.0
    # Extra pip arguments for app builds, e.g. "--no-index --find-links /srv/wheels" for offline builds.
    pip_args: str = ""
    # Custom domains
    https_addr: str = DEFAULT_HTTPS_ADDR
    edge_hostname: str = ""  # where a subdomain's routing CNAME points; default edge.<base domain>
    edge_addresses: str = "127.0.0.1"  # A/AAAA for apex domains, comma-separated
    dns_resolvers: str = ""  # host[:port],... used to poll DNS; empty: the system's resolvers
    issuer: str = "internal"
    acme_directory: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str = ""
    acme_ca_bundle: str = ""  # extra trust for the ACME server's own HTTPS (a private CA such as pebble)
    validation_zone: str = ""  # zone served by the platform's DNS server; default acme-validation.<base>
    dns_addr: str = DEFAULT_DNS_ADDR  # the platform's authoritative DNS server (UDP and TCP)
    caa_identity: str = "letsencrypt.org"  # the ACME CA's CAA name, for the CAA warning
    validation_deadline: float = 72 * 3600.0
    domain_check_min: float = 5.0
    domain_check_max: float = 300.0
    domain_quota: int = 100  # custom domains per project
    certificate_lifetime: float = 45 * 86400.0  # internal CA
    # Log caps per deployment: the runtime log (<id>.log and <id>.log.1 together) and the build log (rows)
    log_max_bytes: int = 10 * 1024 * 1024
    build_log_max_bytes: int = 5 * 1024 * 1024
    build_log_max_lines: int = 20_000
    # The sandbox for user code (app workers and builds): "bwrap", or "off" (user code runs as the platform)
    app_sandbox: str = "bwrap"
    db_busy_timeout: float = 5.0  # a write waits this long for another writer's lock, then 503 + Retry-After
    app_memory: int = 512 * 1024 * 1024  # per app worker (cgroup memory, or RLIMIT_AS without cgroups)
    app_max_processes: int = 256  # per worker or build: processes and threads (pids cgroup / RLIMIT_NPROC)
    app_open_files: int = 1024  # per process (RLIMIT_NOFILE)
    app_tmp_bytes: int = 256 * 1024 * 1024  # each worker's private /tmp (tmpfs, counted in its memory)
    app_startup_cpu: float = 60.0  # CPU seconds a worker may use before its health check passes
    app_network: str = "none"  # "none": own network namespace, loopback only; "host": the machine's network
    sandbox_uid_base: int = 1_000_000_000  # when run as root: project n runs as uid base + n
    # The background scrub of stored blobs: a full pass at most every interval (s), at most rate bytes/s
    scrub_interval: float = 24 * 3600.0  # 0: off
    scrub_rate: int = 20 * 1024 * 1024  # 0: off
    # Leases shared by control-plane processes on one database (services/runner.py): a lease lasts lease_ttl
    # seconds, its holder renews it every lease_heartbeat (0: a third of the TTL), free work is looked for
    # every lease_poll seconds.
    lease_ttl: float = 30.0
    lease_heartbeat: float = 0.0
    lease_poll: float = 2.0
    # `git push` to the platform (adapters/local/git_http.py): the largest push or fetch request body, and
    # how long the push hook follows the builds it queued before it lets the push end
    git_push_max_bytes: int = 512 * 1024 * 1024
    git_hook_timeout: float = 900.0
    git_webhook_max_bytes: int = 5 * 1024 * 1024  # the largest webhook delivery taken (413 past it)
    # How long a dashboard sign-in lasts (seconds); revoking its token ends it sooner.
    session_lifetime: float = 7 * 24 * 3600.0
    # Test-only fault injection, e.g. "rollback:after_commit" makes the process SIGKILL itself there.
    fault: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        names = {
            "provider": "ANCHOR_PROVIDER",
            "aws_stack": "ANCHOR_AWS_STACK",
            "aws_invoke": "ANCHOR_AWS_INVOKE",
            "aws_cache_policy": "ANCHOR_AWS_CACHE_POLICY",
            "aws_cdn_poll": "ANCHOR_AWS_CDN_POLL",
            "aws_quota_names_per_certificate": "ANCHOR_AWS_QUOTA_NAMES_PER_CERTIFICATE",
            "aws_quota_aliases_per_distribution": "ANCHOR_AWS_QUOTA_ALIASES_PER_DISTRIBUTION",
            "aws_quota_distributions": "ANCHOR_AWS_QUOTA_DISTRIBUTIONS",
            "aws_quota_certificates": "ANCHOR_AWS_QUOTA_CERTIFICATES",
            "aws_quota_certificate_requests": "ANCHOR_AWS_QUOTA_CERTIFICATE_REQUESTS",
            "data_dir": "ANCHOR_DATA_DIR",
            "api_addr": "ANCHOR_API_ADDR",
            "http_addr": "ANCHOR_HTTP_ADDR",
            "base_domain": "ANCHOR_BASE_DOMAIN",
            "admin_token": "ANCHOR_ADMIN_TOKEN",
            "max_blob_size": "ANCHOR_MAX_BLOB_SIZE",
            "max_json_body": "ANCHOR_MAX_JSON_BODY",
            "api_read_timeout": "ANCHOR_API_READ_TIMEOUT",
            "build_workers": "ANCHOR_BUILD_WORKERS",
            "caddy_bin": "ANCHOR_CADDY_BIN",
            "edge": "ANCHOR_EDGE",
            "nginx_bin": "ANCHOR_NGINX_BIN",
            "fault": "ANCHOR_FAULT",
            "app_sandbox": "ANCHOR_APP_SANDBOX",
            "db_busy_timeout": "ANCHOR_DB_BUSY_TIMEOUT",
            "app_memory": "ANCHOR_APP_MEMORY",
            "app_max_processes": "ANCHOR_APP_MAX_PROCESSES",
            "app_open_files": "ANCHOR_APP_OPEN_FILES",
            "app_tmp_bytes": "ANCHOR_APP_TMP_BYTES",
            "app_startup_cpu": "ANCHOR_APP_STARTUP_CPU",
            "app_network": "ANCHOR_APP_NETWORK",
            "sandbox_uid_base": "ANCHOR_SANDBOX_UID_BASE",
            "build_timeout": "ANCHOR_BUILD_TIMEOUT",
            "build_memory": "ANCHOR_BUILD_MEMORY",
            "health_timeout": "ANCHOR_HEALTH_TIMEOUT",
            "idle_timeout": "ANCHOR_IDLE_TIMEOUT",
            "pip_args": "ANCHOR_PIP_ARGS",
            "https_addr": "ANCHOR_HTTPS_ADDR",
            "edge_hostname": "ANCHOR_EDGE_HOSTNAME",
            "edge_addresses": "ANCHOR_EDGE_ADDRESSES",
            "dns_resolvers": "ANCHOR_DNS_RESOLVERS",
            "issuer": "ANCHOR_ISSUER",
            "acme_directory": "ANCHOR_ACME_DIRECTORY",
            "acme_email": "ANCHOR_ACME_EMAIL",
            "acme_ca_bundle": "ANCHOR_ACME_CA_BUNDLE",
            "validation_zone": "ANCHOR_VALIDATION_ZONE",
            "dns_addr": "ANCHOR_DNS_ADDR",
            "caa_identity": "ANCHOR_CAA_IDENTITY",
            "validation_deadline": "ANCHOR_VALIDATION_DEADLINE",
            "domain_check_min": "ANCHOR_DOMAIN_CHECK_MIN",
            "domain_check_max": "ANCHOR_DOMAIN_CHECK_MAX",
            "domain_quota": "ANCHOR_DOMAIN_QUOTA",
            "certificate_lifetime": "ANCHOR_CERTIFICATE_LIFETIME",
            "log_max_bytes": "ANCHOR_LOG_MAX_BYTES",
            "build_log_max_bytes": "ANCHOR_BUILD_LOG_MAX_BYTES",
            "build_log_max_lines": "ANCHOR_BUILD_LOG_MAX_LINES",
            "scrub_interval": "ANCHOR_SCRUB_INTERVAL",
            "scrub_rate": "ANCHOR_SCRUB_RATE",
            "lease_ttl": "ANCHOR_LEASE_TTL",
            "lease_heartbeat": "ANCHOR_LEASE_HEARTBEAT",
            "lease_poll": "ANCHOR_LEASE_POLL",
            "git_push_max_bytes": "ANCHOR_GIT_PUSH_MAX_BYTES",
            "git_hook_timeout": GIT_HOOK_TIMEOUT,
            "git_webhook_max_bytes": "ANCHOR_GIT_WEBHOOK_MAX_BYTES",
            "session_lifetime": "ANCHOR_SESSION_LIFETIME",
        }
        for attr, var in names.items():
            if env.get(var):
                values[attr] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls._coerce(values)

    @classmethod
    def _coerce(cls, values: dict[str, Any]) -> Settings:
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        for attr, kind in (
            ("max_blob_size", int),
            ("max_json_body", int),
            ("api_read_timeout", float),
            ("build_workers", int),
            ("build_memory", int),
            ("build_timeout", float),
            ("health_timeout", float),
            ("idle_timeout", float),
            ("validation_deadline", float),
            ("domain_check_min", float),
            ("domain_check_max", float),
            ("domain_quota", int),
            ("aws_quota_names_per_certificate", int),
            ("aws_quota_aliases_per_distribution", int),
            ("aws_quota_distributions", int),
            ("aws_quota_certificates", int),
            ("aws_quota_certificate_requests", int),
            ("aws_cdn_poll", float),
            ("certificate_lifetime", float),
            ("log_max_bytes", int),
            ("build_log_max_bytes", int),
            ("build_log_max_lines", int),
            ("app_memory", int),
            ("db_busy_timeout", float),
            ("app_max_processes", int),
            ("app_open_files", int),
            ("app_tmp_bytes", int),
            ("app_startup_cpu", float),
            ("sandbox_uid_base", int),
            ("scrub_interval", float),
            ("scrub_rate", int),
            ("lease_ttl", float),
            ("lease_heartbeat", float),
            ("lease_poll", float),
            ("git_push_max_bytes", int),
            ("git_hook_timeout", float),
            ("git_webhook_max_bytes", int),
            ("session_lifetime", float),
        ):
            if attr in values:
                try:
                    values[attr] = kind(values[attr])
                except ValueError as exc:
                    raise InvalidInput(f"{attr} must be a number, got {values[attr]!r}") from exc
        settings = replace(cls(), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.provider not in PROVIDERS:
            raise InvalidInput(f"ANCHOR_PROVIDER must be local or aws, got {self.provider!r}")
        parse_stack_name(self.aws_stack, "ANCHOR_AWS_STACK")
        if self.aws_invoke not in ("lambda", "sandbox"):
            raise InvalidInput(f"ANCHOR_AWS_INVOKE must be lambda or sandbox, got {self.aws_invoke!r}")
        if not 0.05 <= self.aws_cdn_poll <= 600:
            raise InvalidInput(
                f"ANCHOR_AWS_CDN_POLL must be between 0.05 and 600 seconds, got {self.aws_cdn_poll}"
            )
        if self.aws_cache_policy and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", self.aws_cache_policy):
            raise InvalidInput("ANCHOR_AWS_CACHE_POLICY must be a CloudFront cache policy id")
        parse_addr(self.api_addr, "ANCHOR_API_ADDR")
        parse_addr(self.http_addr, "ANCHOR_HTTP_ADDR")
        numbers = (
            self.max_blob_size,
            self.max_json_body,
            self.api_read_timeout,
            self.build_workers,
            self.build_memory,
            self.build_timeout,
            self.health_timeout,
            self.idle_timeout,
            self.validation_deadline,
            self.domain_check_min,
            self.domain_check_max,
            self.domain_quota,
            self.certificate_lifetime,
            self.app_memory,
            self.db_busy_timeout,
            self.app_max_processes,
            self.app_open_files,
            self.app_tmp_bytes,
            self.app_startup_cpu,
            self.sandbox_uid_base,
            self.git_push_max_bytes,
            self.git_hook_timeout,
            self.git_webhook_max_bytes,
            self.session_lifetime,
        )
        if min(numbers) <= 0:
            raise InvalidInput("sizes, counts and timeouts in the settings must be positive")
        heartbeat = self.lease_heartbeat_seconds
        if not 0 < heartbeat <= self.lease_ttl / 2 or not 0 < self.lease_poll < self.lease_ttl:
            raise InvalidInput(
                "ANCHOR_LEASE_TTL, ANCHOR_LEASE_HEARTBEAT and ANCHOR_LEASE_POLL must be positive, the "
                "heartbeat at most half the TTL and the poll shorter than the TTL"
            )
        if min(self.aws_quotas.values(), default=0) < 0:
            raise InvalidInput("ANCHOR_AWS_QUOTA_* must be 0 (ask Service Quotas) or a positive number")
        if min(self.scrub_interval, self.scrub_rate) < 0:
            raise InvalidInput("ANCHOR_SCRUB_INTERVAL and ANCHOR_SCRUB_RATE must be 0 (off) or positive")
        if min(self.log_max_bytes, self.build_log_max_bytes) < 65536 or self.build_log_max_lines < 100:
            raise InvalidInput(
                "ANCHOR_LOG_MAX_BYTES and ANCHOR_BUILD_LOG_MAX_BYTES must be at least 65536, "
                "ANCHOR_BUILD_LOG_MAX_LINES at least 100"
            )
        base = self.base_domain
        if not base or base != base.lower() or base.startswith(".") or base.endswith("."):
            raise InvalidInput(f"ANCHOR_BASE_DOMAIN must be a lowercase domain, got {base!r}")
        parse_addr(self.https_addr, "ANCHOR_HTTPS_ADDR")
        parse_addr(self.dns_addr, "ANCHOR_DNS_ADDR")
        if self.edge not in EDGES:
            raise InvalidInput(f"ANCHOR_EDGE must be caddy or nginx, got {self.edge!r}")
        if self.app_sandbox not in SANDBOX_MODES:
            raise InvalidInput(f"ANCHOR_APP_SANDBOX must be bwrap or off, got {self.app_sandbox!r}")
        if self.app_network not in APP_NETWORKS:
            raise InvalidInput(f"ANCHOR_APP_NETWORK must be none or host, got {self.app_network!r}")
        if self.issuer not in ISSUERS:
            raise InvalidInput(f"ANCHOR_ISSUER must be one of {', '.join(ISSUERS)}, got {self.issuer!r}")
        for address in self.edge_address_list:
            try:
                ipaddress.ip_address(address)
            except ValueError as exc:
                raise InvalidInput(f"ANCHOR_EDGE_ADDRESSES must list IP addresses, got {address!r}") from exc
        for resolver in self.resolver_list:
            try:
                ipaddress.ip_address(resolver[0])
            except ValueError as exc:
                raise InvalidInput(f"ANCHOR_DNS_RESOLVERS must list IP[:port], got {resolver[0]!r}") from exc

    @property
    def aws_quotas(self) -> dict[str, int]:
        """The AWS quotas set by the operator, by QuotaUse code (0: not set)."""
        return {
            "acm_names_per_certificate": self.aws_quota_names_per_certificate,
            "cloudfront_aliases": self.aws_quota_aliases_per_distribution,
            "cloudfront_distributions": self.aws_quota_distributions,
            "acm_certificates": self.aws_quota_certificates,
            "acm_requests_per_year": self.aws_quota_certificate_requests,
        }

    @property
    def lease_heartbeat_seconds(self) -> float:
        return self.lease_heartbeat or self.lease_ttl / 3

    @property
    def edge_host(self) -> str:
        return self.edge_hostname or f"edge.{self.base_domain}"

    @property
    def validation_zone_name(self) -> str:
        return (self.validation_zone or f"acme-validation.{self.base_domain}").rstrip(".").lower()

    @property
    def edge_address_list(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.edge_addresses.split(",") if a.strip())

    @property
    def resolver_list(self) -> tuple[tuple[str, int], ...]:
        """(address, port) pairs; "127.0.0.1:5353" or "::1" (port 53) or "[::1]:5353"."""
        found: list[tuple[str, int]] = []
        for item in (r.strip() for r in self.dns_resolvers.split(",")):
            if not item:
                continue
            if item.count(":") == 1 or item.startswith("["):
                found.append(parse_addr(item, "ANCHOR_DNS_RESOLVERS"))
            else:
                found.append((item, 53))
        return tuple(found)

    @property
    def https_port(self) -> int:
        return parse_addr(self.https_addr, "ANCHOR_HTTPS_ADDR")[1]

    def https_url(self, host: str) -> str:
        port = self.https_port
        return f"https://{host}" if port == 443 else f"https://{host}:{port}"

    @property
    def public_port(self) -> int:
        return parse_addr(self.http_addr, "ANCHOR_HTTP_ADDR")[1]

    def public_url(self, host: str) -> str:
        port = self.public_port
        return f"http://{host}" if port == 80 else f"http://{host}:{port}"


@dataclass(frozen=True)
class ClientSettings:
    """What the CLI needs: where the API is and which token to send."""

    api_url: str
    token: str | None
    config_path: Path
    # Where `anchor deploy` keeps its hash cache (cli/hash_cache.py); None: ANCHOR_HASH_CACHE=off.
    cache_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientSettings:
        env = os.environ if env is None else env
        config_home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        config_path = Path(env.get("ANCHOR_CONFIG") or config_home / "anchor" / "config.json")
        cache_home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cls(
            api_url=env.get("ANCHOR_API_URL", "").rstrip("/"),
            token=env.get("ANCHOR_TOKEN") or None,
            config_path=config_path,
            cache_dir=None if env.get("ANCHOR_HASH_CACHE", "").lower() in ("off", "0", "no") else cache_home,
        )

    @staticmethod
    def named_variable(name: str, env: Mapping[str, str] | None = None) -> str | None:
        """The value of a variable the user named on the command line (`anchor git connect
        --forge-token-env VAR`), so a secret need not be on it; None when unset or empty."""
        env = os.environ if env is None else env
        return env.get(name) or None


@dataclass(frozen=True)
class GitHookSettings:
    """What a pushed repository's post-receive hook is told by the platform that runs it (in its
    environment, set by adapters/local/git_http.py): the API, the pusher's token and the project."""

    api_url: str
    token: str
    project: str
    timeout: float = 900.0

    def environment(self) -> dict[str, str]:
        return {
            "ANCHOR_API_URL": self.api_url,
            "ANCHOR_TOKEN": self.token,
            GIT_HOOK_PROJECT: self.project,
            GIT_HOOK_TIMEOUT: repr(self.timeout),
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GitHookSettings:
        env = os.environ if env is None else env
        missing = [k for k in ("ANCHOR_API_URL", "ANCHOR_TOKEN", GIT_HOOK_PROJECT) if not env.get(k)]
        if missing:
            raise InvalidInput(f"the push hook runs only under the platform: {', '.join(missing)} not set")
        try:
            timeout = float(env.get(GIT_HOOK_TIMEOUT) or 900.0)
        except ValueError as exc:
            raise InvalidInput(f"{GIT_HOOK_TIMEOUT} must be a number of seconds") from exc
        return cls(env["ANCHOR_API_URL"].rstrip("/"), env["ANCHOR_TOKEN"], env[GIT_HOOK_PROJECT], timeout)
