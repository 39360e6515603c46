"""Deployment parameters that override prefect.yaml's defaults field by field, not wholesale.

Prefect's server merges a run's parameters over its deployment's one level deep: a run given
``config={"epochs": 1}`` would get a ``config`` holding only ``epochs``, and every other field would
fall back to the model's class defaults (another model, no augmentation). The flows that take a config
model therefore take their ``config`` unvalidated and call :func:`resolve_config`, which merges what
the run names over the deployment's own ``config`` at every depth and then validates once::

    deployment: {"model": "fashion_convnet", "augment": {"rescale": 0.0039, "rotation_range": 15}}
    run:        {"epochs": 1, "augment": {"rotation_range": 5}}
    config:     {"model": "fashion_convnet", "epochs": 1, "augment": {"rescale": 0.0039, "rotation_range": 5}}

Those deployments set ``enforce_parameter_schema: false`` in prefect.yaml: the server would check the
run's partial ``config`` against the whole model's schema (``source`` and ``out`` are required) before
any merge. The merged config is checked here instead, and a bad one fails the run with the field named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from pipeline.config import ConfigError

M = TypeVar("M", bound=BaseModel)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: mappings on both sides merge key by key; anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = merge(below, value)
        else:
            merged[key] = value
    return merged


def deployment_parameters() -> dict[str, Any]:
    """The parameters stored with the deployment this flow run was created from; {} outside one."""
    from prefect import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    deployment_id = context.flow_run.deployment_id if context and context.flow_run else None
    if deployment_id is None:
        return {}
    with get_client(sync_client=True) as client:
        return dict(client.read_deployment(deployment_id).parameters or {})


def resolve_config(cls: type[M], given: M | Mapping[str, Any] | None, parameter: str = "config") -> M:
    """The flow's ``cls`` config: ``given`` itself when it is one (a call from Python), else the
    deployment's ``parameter`` default with ``given`` merged over it, validated."""
    if isinstance(given, cls):
        return given
    if given is not None and not isinstance(given, Mapping):
        raise ConfigError(
            f"parameter {parameter} must be a mapping of {cls.__name__} fields, "
            f"but got {type(given).__name__}: {given!r}"
        )
    default = deployment_parameters().get(parameter) or {}
    if not isinstance(default, Mapping):
        raise ConfigError(f"the deployment's {parameter} parameter must be a mapping, but got {default!r}")
    return cls(**merge(default, given or {}))
