"""The README's usage lines and the CLI agree: every `anchor …` line in its ```sh blocks names a real
command with real options (its --help runs), and every command that prints data or a result takes --json."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from anchor_deploy.cli.main import main

README = Path(__file__).resolve().parents[2] / "README.md"
NO_JSON = {("up",)}  # runs the platform in the foreground: it prints a log, not a result


def readme_commands() -> list[str]:
    """Each `anchor …` command of the README's ```sh blocks, comments and `[optional]` brackets removed;
    a line listing several (`a | b`, `a · b`) gives each."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = []
    for line in "\n".join(blocks).splitlines():
        line = line.split(" #", 1)[0].strip()
        if " | anchor " in line and not line.startswith("anchor "):  # `echo TOKEN | anchor login …`
            line = line.split(" | ", 1)[1]
        if not line.startswith("anchor "):
            continue
        for part in re.split(r" [|·] ", line):
            part = part.strip().replace("[", "").replace("]", "")
            found.append(part if part.startswith("anchor ") else f"anchor {part}")
    return found


def resolve(words: list[str]) -> tuple[list[str], click.Command]:
    """The command path of a command line (group names, then the command) and the command."""
    path: list[str] = []
    command: click.Command = main
    for word in words:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
        path.append(word)
    return path, command


def options_of(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}


def leaf_commands(group: click.Group = main, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command that does something: the leaves, and groups that act on their own (`projects`)."""
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found += leaf_commands(command, path)
            if command.invoke_without_command:
                found.append(path)
        else:
            found.append(path)
    return found


def test_the_readme_has_usage_lines() -> None:
    commands = readme_commands()
    assert len(commands) >= 20, commands
    assert "anchor projects add NAME" in commands and "anchor domains rm www.example.com" in commands


@pytest.mark.parametrize("line", readme_commands())
def test_every_readme_command_exists_with_its_options(line: str) -> None:
    words = shlex.split(line)[1:]
    path, command = resolve(words)
    assert path, f"{line!r} names no command"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, (line, result.output)
    options = [w.split("=")[0] for w in words if w.startswith("-")]
    unknown = [option for option in options if option not in options_of(command)]
    assert not unknown, f"{line!r}: {unknown} are not options of anchor {' '.join(path)}"
    if tuple(path) not in NO_JSON:
        assert "--json" in options_of(command), f"anchor {' '.join(path)} has no --json"


@pytest.mark.parametrize("path", leaf_commands(), ids=" ".join)
def test_every_command_that_prints_a_result_takes_json(path: tuple[str, ...]) -> None:
    _found, command = resolve(list(path))
    if path in NO_JSON:
        return
    assert "--json" in options_of(command), f"anchor {' '.join(path)} has no --json"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0 and "--json" in result.output
