"""`anchor dns link`: arguments that cannot make a link are one readable line and exit 2, before any call;
good ones make the API body, the TSIG key read from a line or from the files BIND and Knot write."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from click.testing import CliRunner

from anchor_deploy.cli.dns import link_body
from anchor_deploy.cli.main import main

SECRET = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["link", "example.com", "--rfc2136", "192.0.2.1", "--tsig-key", f"k:hmac-sha256:{SECRET}"],
            "--project",
        ),
        (["link", "example.com", "--project", "shop"], "one of --route53"),
        (["link", "example.com", "--project", "shop", "--route53", "Z1", "--rfc2136", "192.0.2.1"], "one of"),
        (["link", "example.com", "--project", "shop", "--rfc2136", "192.0.2.1"], "needs its TSIG key"),
        (
            ["link", "example.com", "--project", "shop", "--rfc2136", "192.0.2.1", "--tsig-key", "nope"],
            "NAME:",
        ),
        (
            [
                "link",
                "example.com",
                "--project",
                "shop",
                "--rfc2136",
                "192.0.2.1",
                "--tsig-key",
                "k:hmac-md5:" + SECRET,
            ],
            "not supported",
        ),
        (
            [
                "link",
                "example.com",
                "--project",
                "shop",
                "--rfc2136",
                "192.0.2.1",
                "--tsig-key-file",
                "/nonexistent/k",
            ],
            "cannot read",
        ),
        (
            ["link", "example.com", "--project", "shop", "--route53", "Z1", "--tsig-key", "k:a:b"],
            "no TSIG key",
        ),
        (["links"], "--project"),
        (["unlink", "example.com"], "--project"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(args: list[str], words: str) -> None:
    result = CliRunner().invoke(
        main, ["dns", *args], env={"ANCHOR_URL": "http://127.0.0.1:9", "ANCHOR_TOKEN": "t"}
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], result.stderr


def test_a_key_file_as_tsig_keygen_writes_it_makes_the_body(tmp_path: Path) -> None:
    key_file = tmp_path / "anchor.key"
    key_file.write_text(f'key "anchor-update" {{\n\talgorithm hmac-sha512;\n\tsecret "{SECRET}";\n}};\n')
    body = link_body("example.com", None, "192.0.2.1:5353", None, str(key_file))
    assert body == {
        "zone": "example.com",
        "rfc2136": {
            "server": "192.0.2.1:5353",
            "keyName": "anchor-update",
            "keyAlgorithm": "hmac-sha512",
            "keySecret": SECRET,
        },
    }
    assert link_body("example.com", "Z0123", None, None, None) == {
        "zone": "example.com",
        "route53": {"zoneId": "Z0123"},
    }
