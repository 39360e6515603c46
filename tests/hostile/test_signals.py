"""Stopping a command: SIGTERM (docker stop, systemd, timeout) and Ctrl-C (SIGINT to the whole process
group) end ``augpipe prepare`` promptly, with 128+signal, its staging removed, Prefect's temporary
server stopped and the command's stdout closed; data in file names prints as text, not markup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


@pytest.fixture(scope="module")
def large_jpegs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 2,000x2,000 JPEGs (tens of milliseconds each to decode): 30 pictures, each linked 20 times."""
    root = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(2000), np.arange(2000)) % 256
    for name in ("a", "b"):
        (root / name).mkdir()
        for i in range(15):
            picture = (ramp + rng.integers(0, 8, (2000, 2000))).astype(np.uint8)
            first = root / name / f"{i}-0.jpg"
            cv2.imwrite(str(first), picture, [cv2.IMWRITE_JPEG_QUALITY, 90])
            for k in range(1, 20):
                os.link(first, root / name / f"{i}-{k}.jpg")
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


def _user_env() -> dict[str, str]:
    """The environment of a user's shell: not what in-process CLI tests left in this one."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TF_CPP_"))}


def _stop_and_check(process: subprocess.Popen[bytes], children: list[int], out: Path, signum: int,
                    whole_group: bool) -> None:  # fmt: skip
    """Send the signal; the command must end by itself with 128+signal, leave no process behind and
    no staging folder, version or CURRENT."""
    assert process.stdout is not None
    try:
        if whole_group:  # Ctrl-C in a terminal reaches every process of the foreground group
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        rest, _ = process.communicate(timeout=60)  # stdout closes: nothing holds it open any more
        # Children end by themselves once the command has: the fork server, for one, when it reads
        # the end of its parent's socket, a few milliseconds after the parent is gone.
        deadline = time.monotonic() + 10
        while [c for c in children if _alive(c)] and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = [c for c in children if _alive(c)]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()
        for child in _children(process.pid) + children:
            if _alive(child):
                os.kill(child, signal.SIGKILL)
    assert process.returncode == 128 + signum, rest.decode(errors="replace")[-2000:]
    assert not survivors, "a child process outlived the command"
    assert sorted(p.name for p in out.iterdir()) == ["versions"]  # no staging, nothing discarded left
    assert list((out / "versions").iterdir()) == []
    assert not (out / "CURRENT").exists()


@pytest.mark.parametrize(("signum", "whole_group"), [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_a_signal_mid_preparation_in_process_cleans_up_and_ends_the_command(
    large_jpegs, tmp_path, signum, whole_group
):
    out = tmp_path / "out"
    command = [AUGPIPE, "prepare", str(large_jpegs), "--out", str(out), "--chunk-size", "4", "--workers", "2"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        env=_user_env(),
    )  # fmt: skip
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".staging-*/chunk-*")):  # decoding has begun
            assert process.poll() is None and time.monotonic() < deadline, "decoding never began"
            time.sleep(0.05)
        children = _children(process.pid)
        assert children, "the decoding processes should be running as children"
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    _stop_and_check(process, children, out, signum, whole_group)


@pytest.mark.parametrize(("signum", "whole_group"), [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_a_signal_mid_preparation_as_flows_cleans_up_and_ends_the_command(
    many_pngs, tmp_path, signum, whole_group
):
    out = tmp_path / "out"
    command = [AUGPIPE, "prepare", str(many_pngs), "--out", str(out), "--chunk-size", "4", "--prefect",
               "--verbose"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        env=_user_env(),
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
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    _stop_and_check(process, children, out, signum, whole_group)


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
