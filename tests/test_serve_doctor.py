"""``augpipe serve`` (prefect.yaml's deployments, served or by a worker) and ``augpipe doctor``."""

from __future__ import annotations

import datetime
import http.server
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.deployments.runner import RunnerDeployment
from typer.testing import CliRunner

import flows.doctor
import flows.serve
from flows.cli import app
from flows.doctor import check_api, diagnose
from flows.serve import (
    DeploymentSpec,
    ServeError,
    load_deployments,
    load_flow,
    schedule,
    select,
    to_deployment,
    worker_command,
)
from pipeline.config import CompareConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO / "prefect.yaml"
NAMES = ["prepare-dataset", "train-model", "compare-augmentations", "preview-augmentations"]
WORKER = ["-m", "prefect", "worker", "start"]
runner = CliRunner()


# prefect.yaml, as Prefect reads it


def test_prefect_yaml_is_accepted_by_prefects_deploy_models():
    """`prefect deploy` validates with these models; they ignore unknown keys, so check the keys too."""
    from prefect.cli.deploy._models import (
        DeploymentConfig,
        PrefectYamlModel,
        RawScheduleConfig,
        WorkPoolConfig,
    )

    data = yaml.safe_load(PREFECT_YAML.read_text())
    project = PrefectYamlModel.model_validate(data)
    assert [d.name for d in project.deployments] == NAMES
    for entry in data["deployments"]:
        assert set(entry) <= set(DeploymentConfig.model_fields), entry["name"]
        assert set(entry["work_pool"]) <= set(WorkPoolConfig.model_fields), entry["name"]
        for config in entry.get("schedules", []):
            RawScheduleConfig.model_validate(config)
    (train,) = [d for d in project.deployments if d.name == "train-model"]
    # What `prefect deploy` turns the mapping into (prefect/cli/deploy/_core.py)
    limit = ConcurrencyLimitConfig.model_validate(train.concurrency_limit.model_dump())
    assert (limit.limit, limit.collision_strategy) == (1, ConcurrencyLimitStrategy.ENQUEUE)
    assert train.work_pool.name == "gpu"


def test_load_deployments_resolves_the_anchors():
    specs = load_deployments(PREFECT_YAML)
    assert [s.name for s in specs] == NAMES
    prepare, train, compare, preview = specs
    assert (prepare.work_pool, train.work_pool, compare.work_pool, preview.work_pool) == (
        "cpu",
        "gpu",
        "cpu",
        "cpu",
    )
    assert prepare.schedules == ({"cron": "0 2 * * *", "timezone": "UTC", "active": True},)
    assert prepare.parameters["config"] == {"source": "digits", "out": "prepared/digits"}
    assert train.entrypoint == "flows/train.py:train_model"
    assert (train.path, train.function) == ("flows/train.py", "train_model")
    config = train.parameters["config"]
    assert (config["dataset"], config["model"]) == ("prepared/digits", "fashion_convnet")
    assert TrainConfig(**config).augment.rotation_range == 15  # a valid training config
    assert train.concurrency_limit == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert preview.entrypoint == "flows/preview.py:preview_augmentations"
    assert compare.entrypoint == "flows/compare.py:compare_augmentations"
    assert CompareConfig(**compare.parameters["config"]).variants().keys() == {
        "none",
        "shifts",
        "rotate-zoom",
    }
    assert all(s.work_queue == "default" and "augpipe" in s.tags for s in specs)


@pytest.mark.parametrize("name", NAMES)
def test_every_deployment_loads_and_becomes_a_runner_deployment(name):
    (spec,) = select(load_deployments(PREFECT_YAML), [name])
    flow = load_flow(spec, REPO)
    assert isinstance(flow, Flow) and flow.name == name
    deployment = to_deployment(spec, flow)  # validates prefect.yaml's parameters against the flow
    assert isinstance(deployment, RunnerDeployment)
    assert deployment.name == name
    assert deployment.entrypoint == f"flows.{Path(spec.path).stem}.{spec.function}"
    assert deployment.parameters == spec.parameters
    assert deployment.tags == list(spec.tags)
    assert deployment.description == spec.description
    if name == "prepare-dataset":
        (created,) = deployment.schedules
        assert created.schedule == CronSchedule(cron="0 2 * * *", timezone="UTC") and created.active
    if name == "train-model":
        assert deployment.concurrency_limit == 1
        assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE


# Expected mistakes


def test_a_missing_prefect_yaml_is_one_clear_error(tmp_path):
    with pytest.raises(ServeError, match=r"missing\.yaml not found"):
        load_deployments(tmp_path / "missing.yaml")
    result = runner.invoke(app, ["serve", "--file", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "missing.yaml not found" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("deployments: []\n", "declares no deployments"),
        ("a: [b\n", "cannot read"),
        ("deployments:\n  - entrypoint: flows/prepare.py:prepare_dataset\n", "#0 has no name"),
        ("deployments:\n  - {name: a, entrypoint: flows/prepare.py}\n", "entrypoint must be"),
        (
            "deployments:\n  - {name: a, entrypoint: a.py:f}\n  - {name: a, entrypoint: b.py:g}\n",
            "more than once",
        ),
        ("deployments:\n  - {name: a, entrypoint: a.py:f, schedules: [{timezone: UTC}]}\n", "one of cron"),
        ("deployments:\n  - {name: a, entrypoint: a.py:f, schedules: [{cron: '* * *'}]}\n", "bad schedule"),
        (
            "deployments:\n  - {name: a, entrypoint: a.py:f, schedules: [{cron: '0 2 * * *', x: 1}]}\n",
            "option x",
        ),
    ],
)
def test_bad_prefect_yaml(tmp_path, text, message):
    path = tmp_path / "prefect.yaml"
    path.write_text(text)
    with pytest.raises(ServeError, match=message):
        load_deployments(path)


def test_unknown_deployment_name():
    specs = load_deployments(PREFECT_YAML)
    with pytest.raises(ServeError, match="unknown deployment 'nope': prefect.yaml declares prepare-dataset"):
        select(specs, ["train-model", "nope"])
    assert [s.name for s in select(specs, ["train-model", "prepare-dataset", "train-model"])] == [
        "train-model",
        "prepare-dataset",
    ]
    result = runner.invoke(app, ["serve", "nope", "--file", str(PREFECT_YAML)])
    assert result.exit_code == 2 and "unknown deployment 'nope'" in result.output


@pytest.fixture
def package_root(tmp_path, monkeypatch) -> Path:
    """A folder with a package of flows, importable under a name no other test uses."""
    package = tmp_path / "served_flows_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(
        "from prefect import flow\n\n"
        "@flow(name='double')\ndef double(x: int = 1) -> int:\n    return 2 * x\n\n"
        "def plain() -> None:\n    pass\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for module in [m for m in sys.modules if m.startswith("served_flows_pkg")]:
        del sys.modules[module]


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        ("served_flows_pkg/missing.py:double", "entrypoint file served_flows_pkg/missing.py not found"),
        ("served_flows_pkg/jobs.py:triple", "served_flows_pkg/jobs.py defines no triple"),
        ("served_flows_pkg/jobs.py:plain", "is not a Prefect flow"),
    ],
)
def test_entrypoint_not_found(package_root, entrypoint, message):
    spec = DeploymentSpec(name="job", entrypoint=entrypoint)
    with pytest.raises(ServeError, match=message):
        load_flow(spec, package_root)


def test_an_entrypoint_elsewhere_loads_and_bad_parameters_are_refused(package_root):
    spec = DeploymentSpec(name="job", entrypoint="served_flows_pkg/jobs.py:double", parameters={"x": 3})
    flow = load_flow(spec, package_root)
    assert flow.name == "double" and flow.fn(3) == 6
    assert to_deployment(spec, flow).entrypoint == "served_flows_pkg.jobs.double"
    bad = DeploymentSpec(name="job", entrypoint=spec.entrypoint, parameters={"x": "three"})
    with pytest.raises(ServeError, match="deployment job: bad parameters in prefect.yaml"):
        to_deployment(bad, flow)
    limit = DeploymentSpec(name="job", entrypoint=spec.entrypoint, concurrency_limit={"limt": 1})
    with pytest.raises(ServeError, match="bad concurrency_limit"):
        to_deployment(limit, flow)


def test_schedules_of_every_kind():
    hourly = schedule({"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"})
    assert hourly.interval == datetime.timedelta(hours=1)
    assert hourly.anchor_date == datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert schedule({"interval": "PT30M"}).interval == datetime.timedelta(minutes=30)
    assert schedule({"rrule": "FREQ=DAILY;INTERVAL=1", "active": False}).active is False
    spec = DeploymentSpec(name="x", entrypoint="a.py:f", schedules=({"interval": 60},))
    deployment_schedule = [schedule(s) for s in spec.schedules]
    assert deployment_schedule[0].interval == datetime.timedelta(seconds=60)
    assert IntervalSchedule(interval=deployment_schedule[0].interval).interval.total_seconds() == 60


# Workers


def test_worker_command():
    specs = load_deployments(PREFECT_YAML)
    assert worker_command("cpu", specs) == [sys.executable, *WORKER, "--pool", "cpu"]
    assert worker_command("gpu", specs, limit=1)[-4:] == ["--pool", "gpu", "--limit", "1"]
    with pytest.raises(ServeError, match="unknown work pool 'gpus': prefect.yaml's deployments use cpu, gpu"):
        worker_command("gpus", specs)


def test_serve_with_a_pool_execs_a_worker(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.append((path, argv)))
    env = {"PREFECT_API_URL": "http://prefect.example:4200/api", "AUGPIPE_HOME": str(REPO)}
    result = runner.invoke(
        app, ["serve", "--pool", "gpu", "--limit", "1", "--file", str(PREFECT_YAML)], env=env
    )
    assert result.exit_code == 0, result.output
    assert f"running flows from {REPO}" in " ".join(result.output.split())
    ((path, argv),) = calls
    assert path == sys.executable and argv[1:] == [*WORKER, "--pool", "gpu", "--limit", "1"]


@pytest.mark.parametrize(
    ("home", "message"),
    [
        ("", "AUGPIPE_HOME is not set: workers run the flows from an augpipe checkout"),
        ("{tmp}/nowhere", "AUGPIPE_HOME={tmp}/nowhere (resolved as {tmp}/nowhere) is not a folder"),
        (
            "{tmp}",
            "AUGPIPE_HOME={tmp} (resolved as {tmp}) is not an augpipe checkout: it has no prefect.yaml",
        ),  # noqa: E501
    ],
)
def test_a_worker_without_a_checkout_refuses_to_start(monkeypatch, tmp_path, home, message):
    monkeypatch.setattr(os, "execv", lambda path, argv: pytest.fail("no worker without AUGPIPE_HOME"))
    env = {"PREFECT_API_URL": "http://prefect.example:4200/api", "AUGPIPE_HOME": home.format(tmp=tmp_path)}
    result = runner.invoke(app, ["serve", "--pool", "cpu", "--file", str(PREFECT_YAML)], env=env)
    assert result.exit_code == 2
    assert " ".join(result.output.split()).startswith(f"error: {message.format(tmp=tmp_path)}")


def test_the_pull_step_changes_into_the_checkout_or_names_what_is_wrong(monkeypatch, tmp_path):
    from flows.home import HomeError, set_augpipe_home

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUGPIPE_HOME", str(REPO))
    assert set_augpipe_home() == {"directory": str(REPO)} and Path.cwd() == REPO
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUGPIPE_HOME", "relative/home")
    with pytest.raises(HomeError, match=f"resolved as {tmp_path}/relative/home"):
        set_augpipe_home()
    assert Path.cwd() == tmp_path


def test_serve_with_a_pool_needs_an_api(monkeypatch):
    monkeypatch.setattr(flows.doctor, "configured_api_url", lambda: None)
    monkeypatch.setattr(os, "execv", lambda path, argv: pytest.fail("no worker without an API"))
    result = runner.invoke(app, ["serve", "--pool", "cpu", "--file", str(PREFECT_YAML)])
    assert result.exit_code == 2 and "--pool needs PREFECT_API_URL" in result.output
    result = runner.invoke(app, ["serve", "train-model", "--pool", "gpu", "--file", str(PREFECT_YAML)])
    assert result.exit_code == 2 and "not both" in result.output


def test_serve_without_a_pool_serves_every_deployment(monkeypatch):
    served = []
    monkeypatch.setattr(
        flows.serve, "serve", lambda deployments, limit=None: served.append((deployments, limit))
    )
    monkeypatch.setattr(flows.doctor, "configured_api_url", lambda: None)
    result = runner.invoke(app, ["serve", "--limit", "2", "--file", str(PREFECT_YAML)])
    assert result.exit_code == 0, result.output
    assert "PREFECT_API_URL is not set" in result.output
    ((deployments, limit),) = served
    assert [d.name for d in deployments] == NAMES and limit == 2


# doctor


@contextmanager
def health_server(status: int) -> Iterator[str]:
    """A local HTTP server answering GET /api/health with ``status``; yields its API URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"true" if self.path == "/api/health" and status == 200 else b"{}"
            self.send_response(status if self.path == "/api/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_doctor_reports_versions_devices_and_an_unanswering_api():
    report = diagnose(api_url="http://127.0.0.1:9/api", timeout=1.0)
    assert report.versions["prefect"] == metadata.version("prefect")
    assert report.versions["augpipe"] == metadata.version("augpipe")
    for name in ("numpy", "opencv", "tensorflow", "keras", "albumentations", "dask"):
        assert report.versions[name], name
    import tensorflow as tf

    assert report.versions["tensorflow"].startswith(tf.__version__)
    assert "mlflow" in report.versions  # None when it is not installed
    assert report.python.startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert report.gpus == [d.name for d in tf.config.list_physical_devices("GPU")]
    assert report.tensorflow_build == "CPU only" or report.tensorflow_build.startswith("CUDA")
    assert report.cpu_count == os.cpu_count() and 1 <= report.cpus_usable <= report.cpu_count
    assert report.problems == []
    assert report.api.url == "http://127.0.0.1:9/api"
    assert report.api.answered is False and not report.ok
    assert report.api.seconds is not None and "timeout 1 s" in report.api.detail


def test_check_api_gives_up_on_a_server_that_never_answers():
    import socket

    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        check = check_api(f"http://127.0.0.1:{silent.getsockname()[1]}/api", timeout=0.2)
    assert check.answered is False and "ReadTimeout" in check.detail, check.detail


def test_check_api_answers_and_fails():
    with health_server(200) as url:
        check = check_api(url + "/", timeout=2.0)
        assert check.answered is True and check.url == url + "/" and "healthy" in check.detail
    with health_server(503) as url:
        check = check_api(url, timeout=2.0)
        assert check.answered is False and "HTTP 503" in check.detail


def test_doctor_without_an_api_url_says_commands_run_in_process():
    report = diagnose(api_url=None, gpus=False)
    assert report.api.answered is None and report.ok
    assert "commands run in-process" in report.api.detail
    assert report.gpus == [] and report.tensorflow_build == "not checked"


def test_configured_api_url_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    assert flows.doctor.configured_api_url() == "http://prefect.example:4200/api"


def test_doctor_command_fails_when_the_api_does_not_answer():
    result = runner.invoke(
        app, ["doctor", "--timeout", "1"], env={"PREFECT_API_URL": "http://127.0.0.1:9/api"}
    )
    assert result.exit_code == 1
    assert "error: Prefect API http://127.0.0.1:9/api does not answer" in result.output
    assert "prefect" in result.output and metadata.version("prefect") in result.output


def test_doctor_command_succeeds_with_an_answering_api():
    with health_server(200) as url:
        result = runner.invoke(app, ["doctor"], env={"PREFECT_API_URL": url})
    assert result.exit_code == 0, result.output
    assert "answers" in result.output and "GPUs" in result.output and "CPUs" in result.output


@pytest.mark.slow
def test_check_ephemeral_api_asks_the_api_flows_would_use(prefect_api):
    """On the session's temporary API (conftest.py) rather than a second server of its own."""
    check = flows.doctor.check_ephemeral_api()
    assert check.answered is True and check.url is None, check.detail


@pytest.mark.parametrize("command", ["serve", "doctor"])
def test_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert {"serve": "--pool", "doctor": "--timeout"}[command] in result.output
