"""The service as an operator runs it: PostgreSQL, ``prefect server start``, ``prefect deploy --all``,
a cpu and a gpu-pool worker started with ``augpipe serve --pool``, and the deployments run the way the
README says, with partial parameter overrides.

Everything here is real and local: a PostgreSQL cluster in a temporary folder (Debian's packages;
``.ci/run`` installs them), Prefect's server on a free localhost port with its scheduler, and workers
that run each flow run in a subprocess. Every process is started in its own session and stopped by its
id at the end, also when a test fails. Without PostgreSQL's binaries the module is skipped, except
where ``AUGPIPE_REQUIRE_SERVICE_TESTS=1`` (CI sets it) makes that an error.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pipeline.config import AugmentConfig

pytestmark = [pytest.mark.service, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM to the process's session (it and its children), SIGKILL after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class Service:
    api: str  # http://127.0.0.1:PORT/api
    env: dict[str, str]  # what a machine pointed at the server has: PREFECT_API_URL, AUGPIPE_HOME
    data: Path  # where the runs write (given to the deployments as partial overrides)
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]]

    def start(self, name: str, command: list[str], **env: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "wb") as log:  # the child keeps its own copy of the fd
            process = subprocess.Popen(
                command, cwd=REPO, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.processes[name] = process
        return process

    def stop(self, name: str) -> None:
        _stop(self.processes.pop(name))

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(BIN / args[0]), *args[1:]], cwd=REPO, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.post(f"{self.api}{path}", json=body or {}, timeout=30)
        response.raise_for_status()
        return response.json()

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.api}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def run_deployment(self, name: str, **params: Any) -> str:
        """``prefect deployment run NAME --param k=json`` as README says; the new flow run's id."""
        args = ["prefect", "deployment", "run", name]
        for key, value in params.items():
            args += ["--param", f"{key}={json.dumps(value)}"]
        out = self.cli(*args).stdout
        match = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
        assert match, out
        return match[1]

    def wait(self, run_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"/flow_runs/{run_id}")
            if run["state_type"] in FINAL:
                return run
            time.sleep(1)
        raise AssertionError(f"flow run {run_id} not finished after {timeout} s: {run['state_name']}")

    def logs_of(self, run_id: str, until: str | None = None, timeout: float = 30) -> str:
        """The flow run's log as the API has it; with ``until``, once that pattern is in it (a flow run
        sends its log in batches, which may land after its final state)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
            text = "\n".join(row["message"] for row in rows)
            if until is None or re.search(until, text) or time.monotonic() > deadline:
                return text
            time.sleep(1)

    def artifacts_of(self, run_id: str) -> dict[str, str]:
        rows = self.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
        return {row["key"]: row["data"] if isinstance(row["data"], str) else json.dumps(row["data"])
                for row in rows}  # fmt: skip

    def deployment(self, name: str) -> dict[str, Any]:
        return self.get(f"/deployments/name/{name}")


def _wait_for(check: Any, what: str, timeout: float, processes: dict[str, subprocess.Popen[bytes]]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode} while waiting for {what}")
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what}: not after {timeout} s")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    pg_bin = _postgres_bin()
    if pg_bin is None:
        if os.environ.get("AUGPIPE_REQUIRE_SERVICE_TESTS") == "1":
            pytest.fail("PostgreSQL's initdb is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL's initdb is not installed (apt-get install postgresql)")
    root = tmp_path_factory.mktemp("service")
    root.chmod(0o755)
    logs = root / "logs"
    logs.mkdir()
    # PostgreSQL refuses to run as root: as root (CI), the cluster belongs to the postgres user.
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # Not under pytest's temporary folder, which only its owner may enter.
    pg_root = Path(tempfile.mkdtemp(prefix="augpipe-pg-"))
    pgdata, pg_port = pg_root / "data", _free_port()
    api_port = _free_port()
    api = f"http://127.0.0.1:{api_port}/api"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AUGPIPE_"))}
    env = {
        **base_env,
        "PATH": f"{BIN}{os.pathsep}{base_env.get('PATH', '')}",
        "PREFECT_HOME": str(root / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": api,
        "AUGPIPE_HOME": str(REPO),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        # Workers poll every 2 s instead of 10, so that the test does not wait on them.
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }
    svc = Service(api, env, root / "data", logs, {})
    try:
        pg_root.chmod(0o755)
        pgdata.mkdir(mode=0o700)
        if as_postgres:
            shutil.chown(pgdata, "postgres", "postgres")
        initdb = subprocess.run(
            [*as_postgres, str(pg_bin / "initdb"), "-D", str(pgdata), "-U", "prefect", "-A", "trust"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert initdb.returncode == 0, initdb.stderr
        postgres = svc.start(
            "postgres",
            [*as_postgres, str(pg_bin / "postgres"), "-D", str(pgdata), "-p", str(pg_port),
             "-k", str(pgdata), "-c", "listen_addresses=127.0.0.1"],
        )  # fmt: skip
        _wait_for(
            lambda: subprocess.run(
                [str(pg_bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(pg_port)], capture_output=True
            ).returncode == 0,
            "PostgreSQL accepting connections", 60, {"postgres": postgres},
        )  # fmt: skip
        subprocess.run(
            [str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "prefect", "prefect"],
            check=True, capture_output=True,
        )  # fmt: skip
        svc.start(
            "server",
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(api_port)],
            PREFECT_API_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://prefect@127.0.0.1:{pg_port}/prefect",
            # The scheduler looks for deployments to schedule every 5 s instead of 60.
            PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        )
        _wait_for(lambda: svc.get("/health"), "the Prefect server's /api/health", 120, svc.processes)
        svc.cli("prefect", "work-pool", "create", "cpu", "--type", "process")
        svc.cli("prefect", "work-pool", "create", "gpu", "--type", "process")
        svc.cli("prefect", "--no-prompt", "deploy", "--all", timeout=300)
        svc.start("cpu-worker", [str(BIN / "augpipe"), "serve", "--pool", "cpu"])
        # No --limit: two train-model runs at once must be held apart by the deployment's own limit.
        svc.start("gpu-worker", [str(BIN / "augpipe"), "serve", "--pool", "gpu"])
        yield svc
    finally:
        for name in reversed(list(svc.processes)):  # workers, then the server, then PostgreSQL
            svc.stop(name)
        shutil.rmtree(pg_root, ignore_errors=True)


def _fmt_logs(svc: Service, *names: str) -> str:
    return "\n".join(f"--- {n}\n{svc.log(n)[-3000:]}" for n in names)


def test_the_scheduler_creates_the_nightly_preparation_runs(service: Service) -> None:
    deployment = service.deployment("prepare-dataset/prepare-dataset")
    assert deployment["work_pool_name"] == "cpu"

    def scheduled() -> list[dict[str, Any]]:
        runs = service.post("/flow_runs/filter", {
            "deployments": {"id": {"any_": [deployment["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        })  # fmt: skip
        return runs if len(runs) >= 3 else []

    runs = _wait_for(scheduled, "scheduled prepare-dataset runs", 120, service.processes)
    starts = sorted(dt.datetime.fromisoformat(r["expected_start_time"]) for r in runs)
    assert all((s.hour, s.minute, s.second) == (2, 0, 0) and s.utcoffset() == dt.timedelta(0) for s in starts)
    assert all(b - a == dt.timedelta(days=1) for a, b in zip(starts, starts[1:], strict=False))
    assert "Can't evaluate bulk DML" not in service.log("server")


def test_prepare_with_a_partial_config_keeps_the_default_source(service: Service) -> None:
    out = service.data / "prepared" / "digits"
    run_id = service.run_deployment("prepare-dataset/prepare-dataset", config={"out": str(out)})
    run = service.wait(run_id)
    assert run["state_type"] == "COMPLETED", _fmt_logs(service, "cpu-worker")
    version = out / "versions" / (out / "CURRENT").read_text().strip()
    report = json.loads((version / "report.json").read_text())
    assert report["images"] == 1797  # the deployment's source, digits, kept
    artifacts = service.artifacts_of(run_id)
    assert {"prepare-summary", "prepare-counts"} <= set(artifacts)
    assert "1797 images" in artifacts["prepare-summary"]
    logs = service.logs_of(run_id, until=r"1797 images \(train")
    assert f"preparing digits into {out}" in logs
    assert re.search(r"decoded \d+ of \d+ chunks", logs) and "1797 images (train" in logs


def test_train_runs_keep_the_deployments_model_and_augmentation_and_run_one_at_a_time(
    service: Service,
) -> None:
    dataset = service.data / "prepared" / "digits"
    if not (dataset / "CURRENT").exists():
        pytest.skip("needs the prepared digits of the previous test")
    runs_dir = service.data / "runs"
    ids = [
        service.run_deployment(
            "train-model/train-model",
            config={"dataset": str(dataset), "epochs": 1, "runs_dir": str(runs_dir), "run_name": name},
        )
        for name in ("first", "second")
    ]
    runs = [service.wait(i, timeout=400) for i in ids]
    assert [r["state_type"] for r in runs] == ["COMPLETED"] * 2, _fmt_logs(service, "gpu-worker")
    spans = sorted((dt.datetime.fromisoformat(r["start_time"]), dt.datetime.fromisoformat(r["end_time"]))
                   for r in runs)  # fmt: skip
    assert spans[0][1] <= spans[1][0], f"the two runs overlapped: {spans}"
    defaults = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (train,) = [d for d in defaults["deployments"] if d["name"] == "train-model"]
    for name, run_id in zip(("first", "second"), ids, strict=True):
        summary = json.loads((runs_dir / name / "summary.json").read_text())
        assert summary["model"] == train["parameters"]["config"]["model"] == "fashion_convnet"
        assert summary["epochs_run"] == 1
        config = yaml.safe_load((runs_dir / name / "config.yaml").read_text())
        assert AugmentConfig(**config["augment"]) == AugmentConfig(**train["parameters"]["config"]["augment"])
        epoch_line = (r"epoch 1 of 1: loss [0-9.]+, accuracy [0-9.]+, val_loss [0-9.]+, val_accuracy "
                      r"[0-9.]+, [0-9,]+ images/s, input wait [0-9.]+%")  # fmt: skip
        logs = service.logs_of(run_id, until=epoch_line)
        assert re.search(epoch_line, logs), logs
        assert f"train-{name}" in service.artifacts_of(run_id)


def test_compare_trains_its_variants_as_train_model_runs_on_the_gpu_pool(service: Service) -> None:
    dataset = service.data / "prepared" / "digits"
    if not (dataset / "CURRENT").exists():
        pytest.skip("needs the prepared digits of the preparation test")
    runs_dir = service.data / "runs-compare"
    # A partial config: the deployment's two augmentations (shifts, rotate-zoom) are kept, and
    # the run's own shifts replace the deployment's shifts field by field.
    run_id = service.run_deployment(
        "compare-augmentations/compare-augmentations",
        config={
            "name": "cmp",
            "train": {"dataset": str(dataset), "epochs": 1, "runs_dir": str(runs_dir), "mlflow": False},
            "augments": {"shifts": {"width_shift_range": 0.2}},
        },
    )
    run = service.wait(run_id, timeout=600)
    assert run["state_type"] == "COMPLETED", _fmt_logs(service, "cpu-worker", "gpu-worker")
    trained = service.post("/flow_runs/filter", {"flow_runs": {"name": {"like_": "cmp-"}}})
    assert sorted(r["name"] for r in trained) == ["cmp-none", "cmp-rotate-zoom", "cmp-shifts"]
    deployment_id = service.deployment("train-model/train-model")["id"]
    assert {r["deployment_id"] for r in trained} == {deployment_id}  # the gpu pool trained them
    assert {r["state_type"] for r in trained} == {"COMPLETED"}
    table = json.loads((runs_dir / "cmp" / "compare.json").read_text())
    assert [row["variant"] for row in table["rows"]] == ["none", "shifts", "rotate-zoom"]
    for variant in ("none", "shifts", "rotate-zoom"):
        config = yaml.safe_load((runs_dir / "cmp" / variant / "config.yaml").read_text())
        assert config["dataset"] == str(dataset) and config["epochs"] == 1
        assert config["augment"]["rescale"] == pytest.approx(1 / 255)  # every variant's normalisation
    shifts = yaml.safe_load((runs_dir / "cmp" / "shifts" / "config.yaml").read_text())["augment"]
    assert shifts["width_shift_range"] == 0.2 and shifts["height_shift_range"] == 0.1
    assert (runs_dir / "cmp" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "compare-cmp" in service.artifacts_of(run_id)


def test_a_missing_dataset_fails_once_naming_the_folder(service: Service) -> None:
    runs_dir = service.data / "runs-missing"
    run_id = service.run_deployment(
        "train-model/train-model", config={"dataset": "prepared/nowhere", "runs_dir": str(runs_dir)}
    )
    run = service.wait(run_id)
    assert run["state_type"] == "FAILED"
    tasks = service.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
    (prepare,) = [t for t in tasks if t["name"].startswith("prepare-data")]
    assert prepare["run_count"] == 1  # not retried: it cannot change
    message = f"source not found: prepared/nowhere (resolved as {REPO}/prepared/nowhere)"
    assert message in service.logs_of(run_id, until=re.escape(message))
    assert not runs_dir.exists()


def test_preview_with_a_partial_override(service: Service) -> None:
    out = service.data / "previews"
    run_id = service.run_deployment("preview-augmentations/preview-augmentations", out=str(out))
    run = service.wait(run_id)
    assert run["state_type"] == "COMPLETED", _fmt_logs(service, "cpu-worker")
    assert (out / "preview.png").stat().st_size > 0 and (out / "preview.html").exists()
    assert "# Augmentation preview of `digits`" in service.artifacts_of(run_id)["augpipe-preview"]


def test_serve_refuses_a_worker_deployment_and_pauses_what_it_served(service: Service) -> None:
    refused = service.cli("augpipe", "serve", "preview-augmentations", check=False)
    assert refused.returncode == 2
    message = " ".join(refused.stderr.split())  # errors go to stderr
    assert "preview-augmentations/preview-augmentations is registered on this server for work pool 'cpu'" in (
        message
    )
    name = "preview-augmentations/preview-augmentations"
    service.cli("prefect", "deployment", "delete", name)
    served = service.start("serve", [str(BIN / "augpipe"), "serve", "preview-augmentations"])
    _wait_for(lambda: _exists(service, name), "the served deployment", 120, {"serve": served})
    deployment = service.deployment(name)
    assert deployment["work_pool_name"] is None and deployment["paused"] is False
    out = service.data / "served-previews"
    run = service.wait(service.run_deployment(name, out=str(out)))
    assert run["state_type"] == "COMPLETED", service.log("serve")[-3000:]
    assert (out / "preview.png").exists()
    os.killpg(served.pid, signal.SIGTERM)
    assert served.wait(60) == 0, service.log("serve")[-3000:]
    service.processes.pop("serve")
    assert service.deployment(name)["paused"] is True
    assert "never awaited" not in service.log("serve")


def _exists(service: Service, name: str) -> bool:
    try:
        service.deployment(name)
    except httpx.HTTPStatusError:
        return False
    return True


def test_a_worker_with_a_wrong_home_fails_the_run_naming_it(service: Service, tmp_path: Path) -> None:
    service.stop("cpu-worker")
    # prefect's own worker command, as an operator might start it without augpipe serve's check
    service.start("bad-worker", [str(BIN / "prefect"), "worker", "start", "--pool", "cpu"],
                  AUGPIPE_HOME=str(tmp_path))  # fmt: skip
    try:
        run = service.wait(
            service.run_deployment("prepare-dataset/prepare-dataset", config={"out": str(tmp_path / "p")})
        )
    finally:
        service.stop("bad-worker")
    assert run["state_type"] in {"FAILED", "CRASHED"}
    where = f"AUGPIPE_HOME={tmp_path} (resolved as {tmp_path}) is not an augpipe checkout"
    assert where in service.logs_of(run["id"], until=re.escape(where)) + str(run["state"]["message"])
    assert not (tmp_path / "p").exists()

