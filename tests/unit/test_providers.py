"""ANCHOR_PROVIDER / `anchor up --provider` choose the assembly; a provider that cannot be assembled is
refused in one line before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from anchor_deploy.cli.main import main
from anchor_deploy.model.errors import InvalidInput, StackMissing
from anchor_deploy.providers import build_platform
from anchor_deploy.settings import Settings
from tests.aws_support import MotoServer


def test_the_provider_is_local_unless_set() -> None:
    assert Settings.from_env({}).provider == "local"
    assert Settings.from_env({"ANCHOR_PROVIDER": "aws"}).provider == "aws"
    assert Settings.from_env({"ANCHOR_PROVIDER": "aws"}, provider="local").provider == "local"


@pytest.mark.parametrize("value", ["gcp", "AWS", "local "])
def test_an_unknown_provider_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="ANCHOR_PROVIDER must be local or aws"):
        Settings.from_env({"ANCHOR_PROVIDER": value})


def test_the_aws_provider_without_its_stack_is_refused(aws: MotoServer, tmp_path: Path) -> None:
    settings = Settings.from_env({}, provider="aws", data_dir=str(tmp_path / "data"))
    with pytest.raises(
        StackMissing, match=r"no AWS stack 'anchor-deploy' in us-east-1: run `anchor aws bootstrap`"
    ):
        build_platform(settings)
    assert not (tmp_path / "data").exists()


def test_the_local_provider_builds_the_services_on_its_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=str(tmp_path / "data"), app_sandbox="off")
    platform = build_platform(settings, with_caddy=False)
    assert (tmp_path / "data" / "anchor.db").exists()
    admin = platform.tokens.ensure_admin("t" * 40)
    assert admin.secret is None and platform.tokens.authenticate("Bearer " + "t" * 40).project_id is None


def test_up_with_the_aws_provider_and_no_stack_fails_in_one_line(aws: MotoServer, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["up", "--provider", "aws", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: no AWS stack 'anchor-deploy' in us-east-1: run `anchor aws bootstrap`"
    ]


def test_up_refuses_an_unknown_provider(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["up", "--provider", "gcp", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2 and "'gcp' is not one of 'local', 'aws'" in result.output
    assert not (tmp_path / "d").exists()
