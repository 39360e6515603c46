"""Every `augpipe` command answers --help, and the list of commands is the one the README documents."""

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
COMMANDS = ("run", "prepare", "preview", "train", "models", "serve", "doctor")


def test_the_commands_are_the_documented_ones():
    assert sorted(get_command(app).commands) == sorted(COMMANDS)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    documented = set(re.findall(r"^\| `augpipe (\w+)", readme, flags=re.MULTILINE))
    assert documented == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    out = runner.invoke(app, [command, "--help"], prog_name="augpipe")
    assert out.exit_code == 0, out.output
    assert f"Usage: augpipe {command}" in out.output and "--help" in out.output


def test_the_app_lists_its_commands():
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    for command in COMMANDS:
        assert command in out.output
