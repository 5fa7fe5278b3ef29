"""Schema version 4 on a database the last release wrote (tests/fixtures/database-v3.sql, made by that
release's own SqliteStore: see make_database_v3.py): every row kept, each domain's failure kind read out
of what the old code recorded, and the new columns written and read back."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from anchor_deploy.adapters.local.sqlite_migrations import migrate, schema_version
from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.model.domains import CdnStatus, CertificateStatus, DnsRecord, FailureKind

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "database-v3.sql"


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=30)


def _tables(db: sqlite3.Connection) -> dict[str, str]:
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    return {name: " ".join(sql.split()) for name, sql in rows}


def test_version_4_upgrades_the_last_release_s_domains_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "anchor.db"
    db = _connect(path)
    db.executescript(FIXTURE.read_text())
    assert schema_version(db) == 3
    old_columns = [row[1] for row in db.execute("PRAGMA table_info(domains)")]
    before = db.execute(f"SELECT {', '.join(old_columns)} FROM domains ORDER BY name").fetchall()
    leases = db.execute("SELECT * FROM leases").fetchall()
    assert len(before) == 4 and leases

    store = SqliteStore(path, clock=lambda: 1000.0)

    assert schema_version(db) >= 4
    assert db.execute(f"SELECT {', '.join(old_columns)} FROM domains ORDER BY name").fetchall() == before
    assert db.execute("SELECT * FROM leases").fetchall() == leases
    fresh = _connect(tmp_path / "fresh.db")
    migrate(fresh)
    assert _tables(fresh) == _tables(db)  # an upgraded database has exactly a new one's schema

    refused = store.domain("refused.example.com")
    edge = store.domain("edge.example.com")
    active = store.domain("www.example.com")
    going = store.domain("going.example.com")
    assert refused is not None and edge is not None and active is not None and going is not None
    assert (refused.failure, refused.failures) == (FailureKind.REFUSED, 2)
    assert (edge.failure, edge.cdn_status) == (FailureKind.EDGE, CdnStatus.FAILED)
    assert active.failure == FailureKind.NONE and active.certificate_status == CertificateStatus.ISSUED
    assert active.certificate is not None and active.certificate.serial == "01ab"
    assert store.domain_certificate("www.example.com") == (b"chain-pem", b"sealed-key")
    assert going.deleting and going.failure == FailureKind.NONE
    assert (active.certificate_ref, active.validation_records, active.renewal_status) == ("", (), "")

    record = DnsRecord("CNAME", "_x.www.example.com", "_y.acm-validations.aws", "validation", "keep it")
    updated = dataclasses.replace(
        active, certificate_ref="arn:aws:acm:us-east-1:1:certificate/a", validation_records=(record,)
    )
    assert store.save_domain(dataclasses.replace(updated, renewal_status="PENDING_AUTO_RENEWAL"))
    again = store.domain("www.example.com")
    assert again is not None and again.validation_records == (record,)
    assert (again.certificate_ref, again.renewal_status) == (updated.certificate_ref, "PENDING_AUTO_RENEWAL")
    assert store.domain_certificate("www.example.com") == (b"chain-pem", b"sealed-key")  # kept by the save
    assert store.defer_domain_removal("going.example.com", 2000.0, 3, "waiting for CloudFront")
    assert not store.defer_domain_removal("www.example.com", 2000.0, 3, "not being removed")
    deferred = store.domain("going.example.com")
    assert deferred is not None and (deferred.next_check_at, deferred.failure) == (
        2000.0,
        FailureKind.REMOVAL,
    )
