"""Deployment runs' partial configs: merged over the deployment's own config at every depth."""

from __future__ import annotations

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow

from flows.parameters import merge, resolve_config
from pipeline.config import AugmentConfig, ConfigError, TrainConfig

DEPLOYED = {
    "dataset": "prepared/digits",
    "model": "fashion_convnet",
    "epochs": 10,
    "augment": {"rescale": 1 / 255, "rotation_range": 15, "zoom_range": 0.1},
}


def test_merge_goes_into_mappings_and_replaces_everything_else():
    given = {"epochs": 1, "augment": {"rotation_range": 5, "extras": [{"name": "hue"}]}}
    merged = merge(DEPLOYED, given)
    assert merged == {
        "dataset": "prepared/digits",
        "model": "fashion_convnet",
        "epochs": 1,
        "augment": {"rescale": 1 / 255, "rotation_range": 5, "zoom_range": 0.1, "extras": [{"name": "hue"}]},
    }
    assert DEPLOYED["augment"]["rotation_range"] == 15  # neither side is modified
    assert merge({"augment": {"rotation_range": 15}}, {"augment": None}) == {"augment": None}


def test_outside_a_deployment_a_config_is_taken_as_given(prefect_api):
    config = TrainConfig(model="fashion_convnet", epochs=2)
    assert resolve_config(TrainConfig, config) is config
    assert resolve_config(TrainConfig, {"epochs": 2}) == TrainConfig(epochs=2)
    with pytest.raises(ConfigError, match="parameter config must be a mapping of TrainConfig fields"):
        resolve_config(TrainConfig, "epochs=2")  # type: ignore[arg-type]


@flow(name="resolve-config-probe", validate_parameters=False)
def probe(config: TrainConfig) -> TrainConfig:
    return resolve_config(TrainConfig, config)


def test_a_deployment_run_overrides_only_what_it_names(prefect_api):
    deployment_id = probe.to_deployment(
        name="probe", parameters={"config": DEPLOYED}, enforce_parameter_schema=False
    ).apply()
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(
            deployment_id, parameters={"config": {"epochs": 1, "augment": {"rotation_range": 5}}}
        )
    assert flow_run.parameters["config"] == {"epochs": 1, "augment": {"rotation_range": 5}}  # Prefect's merge
    config = run_flow(probe, flow_run=flow_run, parameters=flow_run.parameters)
    assert config.model == "fashion_convnet" and config.dataset == "prepared/digits" and config.epochs == 1
    assert config.augment == AugmentConfig(rescale=1 / 255, rotation_range=5, zoom_range=0.1)


def test_a_bad_override_names_the_field(prefect_api):
    deployment_id = probe.to_deployment(
        name="probe-bad", parameters={"config": DEPLOYED}, enforce_parameter_schema=False
    ).apply()
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(deployment_id, parameters={"config": {"epoch": 1}})
    with pytest.raises(ConfigError, match="TrainConfig.epoch: unknown option"):
        run_flow(probe, flow_run=flow_run, parameters=flow_run.parameters)
