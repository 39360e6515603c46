"""Stopping a command: SIGTERM (docker stop, systemd, timeout) and Ctrl-C (SIGINT to the whole process
group) end ``augpipe prepare`` promptly, with 128+signal, its staging removed, Prefect's temporary
server stopped and the command's stdout closed; data in file names prints as text, not markup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app

pytestmark = pytest.mark.slow
AUGPIPE = str(Path(sys.executable).parent / "augpipe")


@pytest.fixture(scope="module")
def many_pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4,000 small PNGs in two classes: with 4 per chunk, decoding takes 1,000 task runs."""
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir()
        for i in range(2000):
            cv2.imwrite(str(root / name / f"{i}.png"), rng.integers(0, 256, (8, 8), dtype=np.uint8))
    return root


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.mark.parametrize(("signum", "whole_group"), [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_a_signal_mid_preparation_cleans_up_and_ends_the_command(many_pngs, tmp_path, signum, whole_group):
    out = tmp_path / "out"
    command = [AUGPIPE, "prepare", str(many_pngs), "--out", str(out), "--chunk-size", "4", "--verbose"]
    # The environment of a user's shell: not what in-process CLI tests left in this one.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        env=env,
    )  # fmt: skip
    children: list[int] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # --verbose prints each finished task: decoding has begun
            if b"decode-chunk" in line:
                break
        children = _children(process.pid)
        assert children, "Prefect's temporary server should be running as a child"
        assert list(out.glob(".staging-*"))
        if whole_group:  # Ctrl-C in a terminal reaches every process of the foreground group
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        rest, _ = process.communicate(timeout=60)  # stdout closes: nothing holds it open any more
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for child in _children(process.pid) + children:
            if _alive(child):
                os.kill(child, signal.SIGKILL)
    assert process.returncode == 128 + signum, rest.decode(errors="replace")[-2000:]
    assert not [c for c in children if _alive(c)], "the temporary server outlived the command"
    assert sorted(p.name for p in out.iterdir()) == ["versions"]  # no staging, nothing discarded left
    assert list((out / "versions").iterdir()) == []
    assert not (out / "CURRENT").exists()


def test_file_and_class_names_print_as_text_not_markup(tmp_path):
    source = tmp_path / "src"
    for name in ("[bold]cats", "["):
        (source / name).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(source / name / f"{i}.png"), np.full((8, 8), 40 * i, np.uint8))
    cv2.imwrite(str(source / "[" / ":x:.png"), np.zeros((8, 8), np.uint8))
    (source / "[" / "red].png").write_bytes(b"not a png at all")  # its key: "[/red].png", a closing tag
    command = ["prepare", str(source), "--out", str(tmp_path / "out"), "--splits", "train=1.0"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "[bold]cats" in result.output and "[/red].png" in result.output
    report = json.loads(next((tmp_path / "out" / "versions").glob("v*/report.json")).read_text())
    assert [q["key"] for q in report["quarantined"]] == ["[/red].png"]
    assert report["class_counts"] == {"[": 4, "[bold]cats": 3}  # ":x:.png" kept
    assert "\u274c" not in result.output  # ":x:" is text, not an emoji code
