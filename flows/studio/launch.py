"""Starting a training run from the studio: the ``train-model`` deployment when a Prefect API is
configured, otherwise ``augpipe train --config FILE`` in a background process of its own, whose
folder then appears under the runs folder. Either way a launch record says how it was started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import yaml

from flows import doctor
from pipeline.config import TrainConfig
from pipeline.studio import LaunchRecord, launches_dir, write_launch

DEPLOYMENT = "train-model/train-model"
STOP_GRACE_SECONDS = 10.0  # SIGTERM lets a run end its epoch's files cleanly; then SIGKILL


class Launcher(Protocol):
    mode: str

    def start(self, config: TrainConfig) -> LaunchRecord: ...

    def stop_all(self) -> None: ...


def augpipe_command() -> list[str]:
    """The ``augpipe`` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("augpipe")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from flows.cli import app; app()"]


class LocalLauncher:
    """Runs ``augpipe train`` in background processes, each in its own session, and records how they end."""

    mode = "local"

    def __init__(self, runs_dir: Path, command: list[str] | None = None):
        self.runs_dir = runs_dir
        self.command = command or augpipe_command()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(self, config: TrainConfig) -> LaunchRecord:
        name = config.run_name or ""
        folder = launches_dir(self.runs_dir)
        folder.mkdir(parents=True, exist_ok=True)
        config_file, log_file = f"{name}.yaml", f"{name}.log"
        (folder / config_file).write_text(
            yaml.safe_dump({"train": config.model_dump(mode="json")}, sort_keys=False)
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with (folder / log_file).open("wb") as log:
            process = subprocess.Popen(
                [*self.command, "train", "--config", str(folder / config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in the studio's terminal does not reach the run
            )
        record = LaunchRecord(name, "local", time.time(), pid=process.pid, log=log_file, config=config_file)
        write_launch(self.runs_dir, record)
        with self._lock:
            self._processes[name] = process
        threading.Thread(target=self._wait, args=(record, process), daemon=True).start()
        return record

    def _wait(self, record: LaunchRecord, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        write_launch(self.runs_dir, replace(record, exit_code=code))
        with self._lock:
            self._processes.pop(record.run, None)

    def running(self) -> dict[str, int]:
        """Run name -> process id of the runs still going."""
        with self._lock:
            return {name: p.pid for name, p in self._processes.items() if p.poll() is None}

    def stop_all(self) -> None:
        """End the runs this launcher started that are still going: SIGTERM, then SIGKILL."""
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the run's process group (its id is the run's: it was started in a session of its own),
    so that its augmentation workers get the signal too."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


class PrefectLauncher:
    """Creates flow runs of the ``train-model`` deployment; the workers write the run folder."""

    mode = "prefect"

    def __init__(self, runs_dir: Path, deployment: str = DEPLOYMENT):
        self.runs_dir = runs_dir
        self.deployment = deployment

    def start(self, config: TrainConfig) -> LaunchRecord:
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment

        flow_run = run_deployment(
            self.deployment,
            parameters={"config": config.model_dump(mode="json")},
            flow_run_name=config.run_name,
            timeout=0,  # return once the run is created: the runs page follows it from its folder
        )
        if not isinstance(flow_run, FlowRun):  # only in an event loop, which a request's thread has not
            raise TypeError("run_deployment was called from an event loop")
        record = LaunchRecord(config.run_name or "", "prefect", time.time(), flow_run_id=str(flow_run.id))
        write_launch(self.runs_dir, record)
        return record

    def stop_all(self) -> None:
        """Flow runs belong to the server and its workers: they go on without the studio."""


def launcher_for(runs_dir: Path) -> Launcher:
    """The deployment when a Prefect API is configured (PREFECT_API_URL or Prefect's profile), else local."""
    if doctor.configured_api_url() is not None:
        return PrefectLauncher(runs_dir)
    return LocalLauncher(runs_dir)
