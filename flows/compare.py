"""The ``compare-augmentations`` Prefect flow: train one model once per augmentation config on the
same prepared dataset, then publish the table and the curves.

With a Prefect server whose ``train-model`` deployment is registered, each variant is a run of that
deployment, created at once, so the ``gpu`` pool's workers train them side by side as its limits
allow; otherwise (the embedded ephemeral API, or ``on_pool=False``) the variants train one after
another in this flow run as ``train-model`` subflows. The comparison itself lives in
:mod:`pipeline.training.compare`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.parameters import resolve_config
from flows.prepare import prepare_dataset
from flows.train import callbacks, train_model
from pipeline import training
from pipeline.config import CompareConfig, TrainConfig
from pipeline.errors import RunStateError
from pipeline.training import compare as comparing

TRAIN_DEPLOYMENT = "train-model/train-model"
POLL_SECONDS = 5.0
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def train_deployment_exists(name: str = TRAIN_DEPLOYMENT) -> bool:
    """Whether the API this flow run talks to has the ``train-model`` deployment registered."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


def train_on_pool(runs: dict[str, TrainConfig], flow_name: str) -> None:
    """Create one ``train-model`` run per variant, all at once, and wait for every one to end;
    raise naming the variants whose runs did not complete."""
    from prefect import get_client
    from prefect.deployments import run_deployment

    logger = get_run_logger()
    created = {}
    for name, run in runs.items():
        flow_run = run_deployment(
            TRAIN_DEPLOYMENT,
            parameters={"config": run.model_dump(mode="json")},
            flow_run_name=f"{flow_name}-{name}",
            timeout=0,  # created, not awaited: the pool's workers take them side by side
        )
        created[name] = flow_run.id  # type: ignore[union-attr]
        logger.info("variant %s: train-model flow run %s", name, flow_run.id)  # type: ignore[union-attr]
    states: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        while len(states) < len(created):
            for name, run_id in created.items():
                state = client.read_flow_run(run_id).state
                if name not in states and state is not None and state.type.value in FINAL:
                    states[name] = state.type.value
                    logger.info("variant %s: %s", name, state.type.value.lower())
            if len(states) < len(created):
                time.sleep(POLL_SECONDS)
    failed = {name: s for name, s in states.items() if s != "COMPLETED"}
    if failed:
        raise RunStateError(
            "the training runs of "
            + ", ".join(f"{name} ({s.lower()}, flow run {created[name]})" for name, s in failed.items())
            + " did not complete; their logs are on the server"
        )


@flow(
    name="compare-augmentations",
    log_prints=True,
    validate_parameters=False,  # resolve_config merges a deployment run's partial config, then validates
)
def compare_augmentations(config: CompareConfig, on_pool: bool | None = None) -> dict[str, Any]:
    """Train ``config.train`` once per augmentation of ``config.augments`` and ``none``, on one
    prepared dataset; on the ``train-model`` deployment when the server has it (``on_pool``: None
    decides so, True requires it, False trains here)."""
    config = resolve_config(CompareConfig, config)
    logger = get_run_logger()
    preparation = training.dataset_preparation(config.train)
    if preparation is not None:  # a source: prepared once for every variant
        prepare_dataset(preparation)
    dataset = training.dataset_folder(config.train)
    runs = config.variants(dataset=str(dataset))
    todo = {name: run for name, run in runs.items() if not comparing.is_finished(run)}
    for name in runs.keys() - todo.keys():
        logger.info("variant %s: finished already, read from %s", name, training.run_folder(runs[name]))
    pool = train_deployment_exists() if on_pool is None else on_pool
    if todo and pool:
        train_on_pool(todo, config.name)
    else:
        for run in todo.values():
            train_model(run)
    result = comparing.write_results(config, runs)
    publish(result)
    return {
        "folder": str(result.folder),
        "rows": [row.__dict__ for row in result.rows],
        "files": {k: str(v) for k, v in result.files.items()},
    }


def publish(result: comparing.CompareResult) -> None:
    key = "".join(c if c.isalnum() else "-" for c in result.folder.name.lower())
    create_table_artifact(
        [row.__dict__ for row in result.rows], key=f"compare-{key}", description=f"{result.folder}"
    )
    create_markdown_artifact(
        "\n".join(
            [
                "# Augmentation comparison",
                "",
                "```",
                result.table(),
                "```",
                "",
                f"curves: `{result.files['curves']}`",
            ]
        ),  # fmt: skip
        key=f"compare-{key}-table",
    )


def run_compare(
    config: CompareConfig,
    on_pool: bool | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> comparing.CompareResult:
    """Run the flow in this process and return its result (``augpipe compare`` with a Prefect API);
    ``on_epoch`` and ``on_step`` follow the variants trained here (not those on a work pool)."""
    with callbacks(on_epoch, on_step):
        out = compare_augmentations(config, on_pool=on_pool, return_state=True).result()  # raises what failed
    return comparing.read_result(Path(out["folder"]))
