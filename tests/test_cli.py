"""Every `augpipe` command answers --help, and the list of commands is the one the README documents."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
COMMANDS = ("run", "prepare", "preview", "train", "compare", "models", "serve", "doctor", "studio")


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


# ---- one error format ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["train", "--epochs", "0"], "Invalid value for '--epochs'"),
        (["prepare", "digits", "--bogus"], "No such option: --bogus"),
        (["prepare"], "Missing argument"),
        (["nonsense"], "No such command 'nonsense'"),
        (["prepare", "digits"], "--out is required"),
        (["preview", "--sweep", "rotaton"], "rotation_range"),
    ],
)
def test_every_expected_mistake_is_one_error_line_and_status_2(args, says):
    result = runner.invoke(app, args, prog_name="augpipe")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.output


def test_verbose_shows_the_traceback_of_an_expected_mistake_before_its_error_line():
    quiet = runner.invoke(app, ["preview", "--sweep", "rotaton"], prog_name="augpipe")
    assert quiet.exit_code == 2 and "Traceback" not in quiet.output
    assert quiet.output.strip().splitlines() == [quiet.output.strip()]
    verbose = runner.invoke(app, ["preview", "--sweep", "rotaton", "--verbose"], prog_name="augpipe")
    assert verbose.exit_code == 2, verbose.output
    lines = verbose.output.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "pipeline.errors.ConfigError: cannot sweep option 'rotaton'" in verbose.output
    assert lines[-1] == quiet.output.strip()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]


def test_a_config_typo_names_the_file_and_the_close_match(tmp_path):
    config = tmp_path / "aug.yaml"
    config.write_text("rotaton_range: 10\n")
    result = runner.invoke(app, ["preview", "--config", str(config), "--out", str(tmp_path / "p")])
    assert result.exit_code == 2
    assert str(config) in result.output and "did you mean 'rotation_range'?" in result.output
    assert len(result.output.strip().splitlines()) == 1


# ---- in-process without a server, as flows with one -------------------------------------------------
def _user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TF_CPP_"))}
    return {**env, **extra}


def _imports_after(args: list[str], cwd: Path, **env: str) -> dict[str, bool]:
    """Run the command as `augpipe` would, in a fresh interpreter; which heavy packages it imported."""
    code = (
        "import sys\nfrom flows.cli import app\n"
        f"status = app({args!r}, prog_name='augpipe', standalone_mode=False)\n"
        "assert status in (None, 0), status\n"
        "print({m: m in sys.modules for m in ('prefect', 'tensorflow')})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_user_env(**env),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return eval(done.stdout.strip().splitlines()[-1])


def test_without_a_server_commands_run_in_process_and_import_only_what_they_need(tmp_path):
    assert _imports_after(["models"], tmp_path) == {"prefect": False, "tensorflow": False}
    assert _imports_after(["preview", "--out", "p"], tmp_path) == {"prefect": False, "tensorflow": False}
    assert (tmp_path / "p" / "preview.png").exists()
    assert _imports_after(["prepare", "digits", "--out", "d"], tmp_path) == {
        "prefect": False,
        "tensorflow": False,
    }
    assert (tmp_path / "d" / "CURRENT").exists()
    assert not (tmp_path / ".prefect").exists()


def test_with_a_server_configured_commands_run_as_flows_it_records(tmp_path, prefect_api):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()  # the session's temporary server, as a team's server would be
    assert _imports_after(["prepare", "digits", "--out", "d"], tmp_path, PREFECT_API_URL=url)["prefect"]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["prepare-dataset"])))
    assert any(run.parameters["config"]["out"] == str(tmp_path / "d") for run in runs)


# ---- TensorFlow's start-up lines --------------------------------------------------------------------
def test_tensorflow_start_up_lines_reach_the_user_only_with_verbose(tmp_path):
    command = [str(Path(sys.executable).parent / "augpipe"), "models", "shapes_net"]
    quiet = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=_user_env(), timeout=300
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "conv2d" in quiet.stdout.lower() and quiet.stderr == ""
    loud = subprocess.run(
        [*command, "--verbose"], capture_output=True, text=True, cwd=tmp_path, env=_user_env(), timeout=300
    )
    assert loud.returncode == 0
    # TensorFlow 2.21 prints these on every import: the test proves they are there to be dropped.
    assert "absl::InitializeLog()" in loud.stderr or "cpu_feature_guard" in loud.stderr
