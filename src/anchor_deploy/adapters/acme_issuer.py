"""The `acme` issuer: certificates from an ACME certificate authority (Let's Encrypt, or Pebble in tests),
validated with dns-01 through a delegated CNAME.

The user points ``_acme-challenge.<name>`` (CNAME) at ``validation_fqdn``, a name in the platform's own
validation zone; this issuer publishes the dns-01 values there as one TXT set (a wildcard and its apex
share ``_acme-challenge.<apex>``, so all values of an order go out at once) and withdraws them afterwards,
whatever happened. The account key (EC P-256, ES256) is created once and kept 0600 in ``account_dir``
(0700) with the account URL, so later runs reuse the account.

Thread-safe: the account is set up once under a lock; each call then talks to the CA over its own
connection (the acme package's nonce pool and HTTP session are not meant to be shared between threads).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.errors import DeserializationError
from josepy.jwa import ES256, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA

from anchor_deploy.adapters.local.internal_ca import write_private
from anchor_deploy.model.errors import IssuanceFailed
from anchor_deploy.ports.domains import Certificate, ValidationZone

log = logging.getLogger(__name__)

ACCOUNT_KEY = "account.key"
ACCOUNT_FILE = "account.json"
USER_AGENT = "anchor-deploy"
MAX_REQUEST_SECONDS = 30.0
REASON_UNSPECIFIED = 0
# Problem types where the CA looked at our TXT values and did not find its own: the CNAME is the likely cause.
_DNS_PROBLEMS = frozenset({"unauthorized", "dns", "incorrectResponse"})


class AcmeIssuer:
    kind = "acme"

    def __init__(
        self,
        directory_url: str,
        account_dir: Path,
        zone: ValidationZone,
        *,
        email: str | None = None,
        ca_bundle: str | None = None,
        timeout: float = 120.0,
        poll_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory_url = directory_url
        self.account_dir = account_dir
        self.zone = zone
        self.email = email
        self.ca_bundle = ca_bundle  # trust for the CA's HTTPS (None: the system's)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._directory: messages.Directory | None = None
        self._account: messages.RegistrationResource | None = None
        account_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(account_dir, 0o700)
        self._jwk, self._alg = self._load_or_create_key()

    # -- account ------------------------------------------------------------------------------------

    @property
    def account_key_path(self) -> Path:
        return self.account_dir / ACCOUNT_KEY

    @property
    def account_path(self) -> Path:
        return self.account_dir / ACCOUNT_FILE

    def _load_or_create_key(self) -> tuple[JWK, JWASignature]:
        if not self.account_key_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            write_private(self.account_key_path, pem)
        loaded = serialization.load_pem_private_key(self.account_key_path.read_bytes(), password=None)
        if isinstance(loaded, ec.EllipticCurvePrivateKey) and isinstance(loaded.curve, ec.SECP256R1):
            return JWKEC(key=loaded), ES256
        if isinstance(loaded, rsa.RSAPrivateKey):
            return JWKRSA(key=loaded), RS256
        raise ValueError(f"{self.account_key_path}: the ACME account key must be EC P-256 or RSA")

    def account_url(self) -> str | None:
        """The URL of the registered account, as stored for this directory (None before the first issue)."""
        try:
            stored = json.loads(self.account_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("directory") != self.directory_url:
            return None  # registered at another CA (same key, but not the same account)
        uri = stored.get("uri")
        return uri if isinstance(uri, str) and uri else None

    def _network(self, account: messages.RegistrationResource | None) -> client.ClientNetwork:
        net = client.ClientNetwork(
            self._jwk,
            alg=self._alg,
            # requests takes a CA bundle path where acme declares a bool; it passes the value straight on.
            verify_ssl=self.ca_bundle or True,  # type: ignore[arg-type]
            user_agent=USER_AGENT,
            timeout=max(1, round(min(self.timeout, MAX_REQUEST_SECONDS))),
        )
        net.account = account
        return net

    def _connect(self) -> client.ClientV2:
        """A client on its own connection, for one call; the account is set up the first time."""
        with self._lock:
            if self._directory is None or self._account is None:
                net = self._network(None)
                try:
                    directory = client.ClientV2.get_directory(self.directory_url, net)
                    self._account = self._register(client.ClientV2(directory, net))
                    self._directory = directory
                finally:
                    net.session.close()
            directory, account = self._directory, self._account
        return client.ClientV2(directory, self._network(account))

    def _register(self, acme: client.ClientV2) -> messages.RegistrationResource:
        uri = self.account_url()
        if uri is not None:
            try:
                return acme.query_registration(self._resource(uri))
            except messages.Error as exc:
                if exc.code != "accountDoesNotExist":
                    raise
                log.warning("ACME account %s is unknown to %s; registering again", uri, self.directory_url)
        registration = messages.NewRegistration.from_data(email=self.email, terms_of_service_agreed=True)
        try:
            account = acme.new_account(registration)
        except errors.ConflictError as exists:  # this key already has an account there
            account = acme.query_registration(self._resource(exists.location))
        stored = {"directory": self.directory_url, "uri": account.uri}
        write_private(self.account_path, json.dumps(stored, indent=2).encode())
        log.info("registered ACME account %s at %s", account.uri, self.directory_url)
        return account

    def _forget_account_if_unknown(self, exc: BaseException) -> None:
        """The CA lost the account (a test CA restarted, or it was deactivated): set it up again next time."""
        if isinstance(exc, messages.Error) and exc.code == "accountDoesNotExist":
            with self._lock:
                self._account = None

    @staticmethod
    def _resource(uri: str) -> messages.RegistrationResource:
        return messages.RegistrationResource(uri=uri, body=messages.Registration())

    # -- issue --------------------------------------------------------------------------------------

    def issue(self, names: Sequence[str], validation_fqdn: str) -> Certificate:
        names = list(names)
        if not names:
            raise IssuanceFailed("a certificate needs at least one name")
        action = f"issue a certificate for {', '.join(names)}"
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        deadline = self._clock() + self.timeout
        acme: client.ClientV2 | None = None
        try:
            acme = self._connect()
            fullchain = self._obtain(acme, crypto_util.make_csr(key_pem, names), validation_fqdn, deadline)
            return _certificate(fullchain.encode(), key_pem, key)
        except IssuanceFailed:
            raise
        except Exception as exc:
            log.info("ACME issuance for %s failed", names, exc_info=True)
            self._forget_account_if_unknown(exc)
            raise IssuanceFailed(self._explain(exc, action)) from exc
        finally:
            self._withdraw(validation_fqdn)
            if acme is not None:
                acme.net.session.close()

    def _obtain(self, acme: client.ClientV2, csr_pem: bytes, validation_fqdn: str, deadline: float) -> str:
        order = acme.new_order(csr_pem)
        answers: list[tuple[messages.AuthorizationResource, messages.ChallengeBody]] = []
        for authz in order.authorizations:
            status = authz.body.status
            if status == messages.STATUS_VALID:
                continue  # the CA still remembers an earlier validation
            if status != messages.STATUS_PENDING:
                raise IssuanceFailed(
                    f"the CA will not validate {_name(authz)}: its authorization is {status}"
                )
            answers.append((authz, _dns01(authz)))
        if answers:
            values = list(dict.fromkeys(challb.chall.validation(self._jwk) for _, challb in answers))
            try:
                self.zone.publish(validation_fqdn, values)
            except Exception as exc:
                log.warning("publishing TXT at %s failed", validation_fqdn, exc_info=True)
                raise IssuanceFailed(
                    f"could not publish the validation record at {validation_fqdn}: {_short(exc)}"
                ) from exc
            for _, challb in answers:
                acme.answer_challenge(challb, challb.chall.response(self._jwk))
            self._wait_for_authorizations(acme, [authz for authz, _ in answers], validation_fqdn, deadline)
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise errors.TimeoutError()
        wall_deadline = datetime.datetime.now() + datetime.timedelta(seconds=remaining)  # acme's clock
        order = acme.finalize_order(order, wall_deadline)
        if not order.fullchain_pem:
            raise IssuanceFailed("the CA finished the order without a certificate")
        return order.fullchain_pem

    def _wait_for_authorizations(
        self,
        acme: client.ClientV2,
        pending: list[messages.AuthorizationResource],
        validation_fqdn: str,
        deadline: float,
    ) -> None:
        while pending:
            waiting = []
            for authz in pending:
                updated, _ = acme.poll(authz)
                status = updated.body.status
                if status == messages.STATUS_PENDING:
                    waiting.append(updated)
                elif status != messages.STATUS_VALID:
                    raise IssuanceFailed(_validation_failure(updated, validation_fqdn))
            pending = waiting
            if pending:
                if self._clock() >= deadline:
                    names = ", ".join(_name(authz) for authz in pending)
                    raise IssuanceFailed(
                        f"the CA did not finish validating {names} within {self.timeout:g} s"
                    )
                time.sleep(self.poll_interval)

    def _withdraw(self, validation_fqdn: str) -> None:
        try:
            self.zone.withdraw(validation_fqdn)
        except Exception:
            log.warning("withdrawing TXT at %s failed", validation_fqdn, exc_info=True)

    # -- revoke -------------------------------------------------------------------------------------

    def outdated(self, issuer: str) -> bool:
        return False  # an ACME CA's certificates are renewed on their own schedule

    def revoke(self, chain_pem: bytes) -> None:
        try:
            leaf = x509.load_pem_x509_certificates(chain_pem)[0]
        except ValueError as exc:
            raise IssuanceFailed("could not revoke the certificate: it is not a PEM certificate") from exc
        action = f"revoke the certificate {format(leaf.serial_number, 'x')}"
        acme: client.ClientV2 | None = None
        try:
            acme = self._connect()
            acme.revoke(leaf, REASON_UNSPECIFIED)
        except messages.Error as exc:
            if exc.code == "alreadyRevoked":
                return
            self._forget_account_if_unknown(exc)
            raise IssuanceFailed(self._explain(exc, action)) from exc
        except Exception as exc:
            log.info("ACME revocation failed", exc_info=True)
            raise IssuanceFailed(self._explain(exc, action)) from exc
        finally:
            if acme is not None:
                acme.net.session.close()

    # -- errors -------------------------------------------------------------------------------------

    def _explain(self, exc: BaseException, action: str) -> str:
        """One readable sentence for a failed call (the traceback goes to the log, never to the user)."""
        where = f"the certificate authority at {self.directory_url}"
        if isinstance(exc, messages.Error):
            return f"the CA refused to {action}: {_problem(exc)}"
        if isinstance(exc, errors.IssuanceError):
            return f"the CA refused to {action}: {_problem(exc.error)}"
        if isinstance(exc, errors.TimeoutError):
            return f"the CA did not {action} within {self.timeout:g} s"
        if isinstance(exc, requests.exceptions.SSLError):
            return f"could not reach {where}: its TLS certificate is not trusted ({_network_reason(exc)})"
        if isinstance(exc, requests.exceptions.Timeout):
            return f"{where} did not answer within {min(self.timeout, MAX_REQUEST_SECONDS):g} s"
        if isinstance(exc, requests.exceptions.ConnectionError):
            return f"could not reach {where}: {_network_reason(exc)}"
        if isinstance(exc, requests.exceptions.JSONDecodeError | DeserializationError):
            return f"{where} did not answer like an ACME server ({_short(exc)})"
        if isinstance(exc, requests.exceptions.RequestException):  # a malformed URL, mostly
            return f"cannot use the ACME directory URL {self.directory_url}: {_short(exc)}"
        if isinstance(exc, errors.ClientError):
            first = exc.args[0] if exc.args else None
            if isinstance(first, tuple) and first:
                first = first[0]
            detail = f"HTTP {first.status_code}" if isinstance(first, requests.Response) else _short(exc)
            return f"{where} gave an unexpected answer when asked to {action} ({detail})"
        return f"could not {action}: {_short(exc)}"


def _dns01(authz: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challb in authz.body.challenges:
        if isinstance(challb.chall, challenges.DNS01):
            return challb
    raise IssuanceFailed(f"the CA offers no dns-01 validation for {_name(authz)}")


def _name(authz: messages.AuthorizationResource) -> str:
    value: str = authz.body.identifier.value
    return f"*.{value}" if authz.body.wildcard else value


def _validation_failure(authz: messages.AuthorizationResource, validation_fqdn: str) -> str:
    name = _name(authz)
    problem = next((c.error for c in authz.body.challenges if c.error is not None), None)
    if problem is None:
        return f"the CA could not validate {name} (its authorization is {authz.body.status})"
    sentence = f"the CA could not validate {name}: {_problem(problem)}"
    if problem.code in _DNS_PROBLEMS or problem.code is None:
        record = f"_acme-challenge.{authz.body.identifier.value}"
        sentence += f" (check that {record} is a CNAME to {validation_fqdn})"
    return sentence


def _problem(problem: messages.Error) -> str:
    text = problem.detail or problem.title or problem.description or problem.typ
    return str(text).strip().rstrip(".")


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _network_reason(exc: BaseException) -> str:
    """The innermost OS or TLS error under requests' and urllib3's wrappers, in words."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    found: str | None = None
    while todo:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        verify_message = getattr(current, "verify_message", None)
        if isinstance(verify_message, str) and verify_message:
            return verify_message
        strerror = getattr(current, "strerror", None)
        if isinstance(current, OSError) and isinstance(strerror, str) and strerror:
            found = strerror[0].lower() + strerror[1:]
        todo.extend([*current.args, getattr(current, "reason", None), current.__cause__, current.__context__])
    return found or _short(exc)


def _certificate(chain_pem: bytes, key_pem: bytes, key: ec.EllipticCurvePrivateKey) -> Certificate:
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise IssuanceFailed("the CA sent a certificate that could not be read") from exc
    leaf = chain[0]
    if leaf.public_key() != key.public_key():
        raise IssuanceFailed("the CA sent a certificate for another key")
    return Certificate(
        chain_pem=chain_pem if chain_pem.endswith(b"\n") else chain_pem + b"\n",
        key_pem=key_pem,
        serial=format(leaf.serial_number, "x"),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        issuer=leaf.issuer.rfc4514_string(),
    )
