"""Serve prefect.yaml's deployments from one process, or start a worker for one of its work pools.

What ``augpipe serve`` calls::

    serve(served_deployments(Path("prefect.yaml"), ["prepare-dataset"], api_url))
    worker = pool_worker(Path("prefect.yaml"), "gpu", None, 1, api_url)  # prefect worker start --pool gpu
    os.execv(worker.command[0], worker.command)

Serving needs no work pool and no worker: this process polls the API for the deployments' runs and
runs them itself. A worker runs the same deployments once ``prefect deploy --all`` has registered them.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import TypeAdapter

from flows.home import augpipe_home
from pipeline.errors import AugpipeError

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Schedule

SCHEDULE_KINDS = ("cron", "interval", "rrule")


class ServeError(AugpipeError, ValueError):
    """A prefect.yaml, entrypoint or name that cannot be served: the message says which and why."""


@dataclass(frozen=True)
class DeploymentSpec:
    """One entry of prefect.yaml's ``deployments:``, with its YAML anchors resolved."""

    name: str
    entrypoint: str  # "flows/prepare.py:prepare_dataset", relative to prefect.yaml's folder
    description: str | None = None
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[dict[str, Any], ...] = ()
    work_pool: str | None = None
    work_queue: str | None = None
    concurrency_limit: int | dict[str, Any] | None = None
    paused: bool | None = None
    enforce_parameter_schema: bool = True

    @property
    def path(self) -> str:
        return self.entrypoint.rpartition(":")[0]

    @property
    def function(self) -> str:
        return self.entrypoint.rpartition(":")[2]


def load_deployments(path: Path) -> list[DeploymentSpec]:
    """Every deployment declared in the prefect.yaml at ``path``, in file order."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ServeError(f"{path} not found: run from the repository root or give --file") from None
    except (OSError, yaml.YAMLError) as err:
        raise ServeError(f"cannot read {path}: {err}") from None
    entries = data.get("deployments") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ServeError(f"{path} declares no deployments (expected a `deployments:` list)")
    specs = [_spec(entry, i, path) for i, entry in enumerate(entries)]
    names = [s.name for s in specs]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise ServeError(f"{path} declares deployments {', '.join(duplicates)} more than once")
    return specs


def _spec(entry: Any, index: int, path: Path) -> DeploymentSpec:
    if not isinstance(entry, dict):
        raise ServeError(f"{path}: deployment #{index} must be a mapping, but got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ServeError(f"{path}: deployment #{index} has no name")
    where = f"{path}: deployment {name}"
    entrypoint = entry.get("entrypoint")
    if not isinstance(entrypoint, str) or not entrypoint.partition(":")[2]:
        raise ServeError(f"{where}: entrypoint must be 'path/file.py:flow_function', but got {entrypoint!r}")
    schedules = entry.get("schedules") or []
    pool = entry.get("work_pool") or {}
    if not isinstance(schedules, list) or not isinstance(pool, dict):
        raise ServeError(f"{where}: schedules must be a list and work_pool a mapping")
    for config in schedules:
        if not isinstance(config, dict):
            raise ServeError(f"{where}: a schedule must be a mapping, but got {config!r}")
        try:
            schedule(config)
        except ServeError as err:
            raise ServeError(f"{where}: {err}") from None
    return DeploymentSpec(
        name=name,
        entrypoint=entrypoint,
        description=entry.get("description"),
        tags=tuple(entry.get("tags") or ()),
        parameters=dict(entry.get("parameters") or {}),
        schedules=tuple(dict(s) for s in schedules),
        work_pool=pool.get("name"),
        work_queue=pool.get("work_queue_name"),
        concurrency_limit=entry.get("concurrency_limit"),
        paused=entry.get("paused"),
        enforce_parameter_schema=bool(entry.get("enforce_parameter_schema", True)),
    )


def select(specs: list[DeploymentSpec], names: list[str] | None) -> list[DeploymentSpec]:
    """The deployments called ``names`` (all of them without names), in the order given."""
    if not names:
        return list(specs)
    by_name = {s.name: s for s in specs}
    if unknown := [n for n in names if n not in by_name]:
        raise ServeError(
            f"unknown deployment {', '.join(map(repr, unknown))}: prefect.yaml declares {', '.join(by_name)}"
        )
    return [by_name[n] for n in dict.fromkeys(names)]


def work_pools(specs: list[DeploymentSpec]) -> list[str]:
    """The work pools the deployments run on, in order of first use."""
    return list(dict.fromkeys(s.work_pool for s in specs if s.work_pool))


def load_flow(spec: DeploymentSpec, root: Path) -> Flow[..., Any]:
    """The flow ``spec.entrypoint`` names, imported as a module of the package tree under ``root``."""
    from prefect import Flow

    file = (root / spec.path).resolve()
    if not file.is_file():
        raise ServeError(f"deployment {spec.name}: entrypoint file {spec.path} not found in {root.resolve()}")
    module_name = ".".join(Path(spec.path).with_suffix("").parts)
    root_dir = str(root.resolve())
    if root_dir not in {str(Path(p).resolve()) for p in sys.path}:  # "" is the working directory
        sys.path.insert(0, root_dir)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ServeError(f"deployment {spec.name}: cannot import {spec.path}: {err}") from None
    imported = Path(getattr(module, "__file__", "") or "").resolve()
    if imported != file:
        raise ServeError(
            f"deployment {spec.name}: {module_name} is imported from {imported}, not {file}: "
            "serve from the checkout augpipe is installed from"
        )
    flow = getattr(module, spec.function, None)
    if flow is None:
        raise ServeError(f"deployment {spec.name}: {spec.path} defines no {spec.function}")
    if not isinstance(flow, Flow):
        raise ServeError(f"deployment {spec.name}: {spec.entrypoint} is not a Prefect flow (no @flow)")
    return flow


def schedule(config: dict[str, Any]) -> Schedule:
    """A prefect.yaml schedule (one of cron, interval or rrule, with its options) as a Prefect schedule."""
    from prefect.schedules import Schedule

    options = {k: v for k, v in config.items() if v is not None}
    if unknown := sorted(set(options) - {f.name for f in dataclasses.fields(Schedule)}):
        raise ServeError(f"unknown schedule option {', '.join(unknown)} in {config!r}")
    if not any(k in options for k in SCHEDULE_KINDS):  # Schedule itself refuses two of them
        raise ServeError(f"a schedule needs one of cron, interval or rrule, but got {config!r}")
    try:
        for key, kind in (("interval", datetime.timedelta), ("anchor_date", datetime.datetime)):
            if key in options:  # seconds or ISO 8601, as `prefect deploy` reads them
                options[key] = TypeAdapter(kind).validate_python(options[key])
        return Schedule(**options)
    except (ValueError, TypeError) as err:  # pydantic's ValidationError is a ValueError
        raise ServeError(f"bad schedule {config!r}: {' '.join(str(err).split())}") from None


def to_deployment(spec: DeploymentSpec, flow: Flow[..., Any]) -> RunnerDeployment:
    """``flow.to_deployment`` with the name, parameters, schedules, tags and limit prefect.yaml gives.

    The parameters are validated against the flow's signature here, so that a bad default fails now
    rather than at the first run. Work pools do not apply: a served deployment runs in this process.
    """
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import ParameterTypeError

    try:
        flow.validate_parameters(spec.parameters)
    except ParameterTypeError as err:
        message = " ".join(str(err).split())
        raise ServeError(f"deployment {spec.name}: bad parameters in prefect.yaml: {message}") from None
    limit = spec.concurrency_limit
    try:
        concurrency_limit = ConcurrencyLimitConfig(**limit) if isinstance(limit, dict) else limit
    except ValueError as err:
        raise ServeError(f"deployment {spec.name}: bad concurrency_limit {limit!r}: {err}") from None
    return flow.to_deployment(
        name=spec.name,
        description=spec.description,
        tags=list(spec.tags),
        parameters=spec.parameters,
        schedules=[schedule(s) for s in spec.schedules],
        paused=spec.paused,
        concurrency_limit=concurrency_limit,
        enforce_parameter_schema=spec.enforce_parameter_schema,
        # A module path (flows.prepare.prepare_dataset) loads the same way from any working directory.
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def runner_deployments(specs: list[DeploymentSpec], root: Path) -> list[RunnerDeployment]:
    """Each spec's flow, loaded from under ``root``, as a deployment ready to serve."""
    return [to_deployment(spec, load_flow(spec, root)) for spec in specs]


def check_not_on_a_pool(deployments: list[RunnerDeployment]) -> None:
    """Refuse to serve a deployment the server already holds for a work pool (``prefect deploy``).

    Serving it would re-register it under the same name with this process's entrypoint and no pull
    step, but the server keeps its work pool: once this process stops, a worker would take its runs
    and run them in a temporary folder that is deleted afterwards.
    """
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for deployment in deployments:
            full_name = deployment.full_name
            try:
                existing = client.read_deployment_by_name(full_name)
            except ObjectNotFound:
                continue
            if existing.work_pool_name:
                raise ServeError(
                    f"deployment {full_name} is registered on this server for work pool "
                    f"{existing.work_pool_name!r} (by `prefect deploy`), so its runs go to that pool's "
                    f"workers: start one with `augpipe serve --pool {existing.work_pool_name}`, or, to "
                    f"serve it from this process instead, first `prefect deployment delete {full_name}`"
                )


def serve(deployments: list[RunnerDeployment], limit: int | None = None) -> None:
    """Serve ``deployments`` from this process until SIGINT or SIGTERM, then pause them.

    ``limit``: concurrent runs at most. Prefect's own SIGTERM handler calls the runner's async stop
    without awaiting it (``coroutine 'Runner.astop' was never awaited``) and exits, which left the
    deployments unpaused in 2 of 3 tries; here SIGTERM stops the runner on its event loop, and every
    served deployment is paused again after the runner has stopped, however it stopped.
    """
    import asyncio

    from prefect import get_client
    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=True, limit=limit)
    ids = [runner.add_deployment(deployment) for deployment in deployments]

    def stop(*_: object) -> None:  # a signal handler: runs in the main thread, inside the event loop
        asyncio.get_running_loop().create_task(runner.astop())

    runner.handle_sigterm = stop  # type: ignore[method-assign]
    try:
        asyncio.run(runner.start())
    except KeyboardInterrupt:
        pass
    finally:
        with get_client(sync_client=True) as client:
            for deployment_id in ids:
                client.pause_deployment(deployment_id)


@dataclass(frozen=True)
class Worker:
    """A Prefect worker to start for a work pool, and the checkout its flow runs change into."""

    command: list[str]
    home: Path


def pool_worker(
    file: Path, pool: str, names: list[str] | None, limit: int | None, api_url: str | None
) -> Worker:
    """The worker for ``pool`` of ``file``'s deployments; ServeError, or HomeError without a checkout
    at ``$AUGPIPE_HOME``, when it could not take a single run."""
    specs = load_deployments(file)
    if names:
        raise ServeError("give deployment names or --pool, not both: a worker serves a pool")
    if not api_url:
        raise ServeError(
            "--pool needs PREFECT_API_URL: a worker takes its runs from a Prefect server's work pool"
        )
    command = worker_command(pool, specs, limit=limit)
    return Worker(command, augpipe_home())  # the pull step of every run needs it: refuse now, not at each run


def served_deployments(file: Path, names: list[str] | None, api_url: str | None) -> list[RunnerDeployment]:
    """``names`` of ``file``'s deployments (default: all), ready to serve from this process; with a
    server at ``api_url``, none that it holds for a work pool."""
    deployments = runner_deployments(select(load_deployments(file), names), file.resolve().parent)
    if api_url:
        check_not_on_a_pool(deployments)
    return deployments


def worker_command(pool: str, specs: list[DeploymentSpec], limit: int | None = None) -> list[str]:
    """The command line of a Prefect worker for ``pool``, one of the pools the deployments use."""
    pools = work_pools(specs)
    if pool not in pools:
        raise ServeError(f"unknown work pool {pool!r}: prefect.yaml's deployments use {', '.join(pools)}")
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool]
    return command if limit is None else [*command, "--limit", str(limit)]
