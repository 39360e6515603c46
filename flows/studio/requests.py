"""The bodies of the studio's requests, bounded field by field, and values made ready for JSON."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.studio import MAX_CELL_CHOICES, MAX_COPIES, MAX_STEPS


class ViewRequest(BaseModel):
    """What the grid shows: a source, the page's values, the seed, the first epoch and the layout."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(default="digits", max_length=1000)
    config: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    epoch: int = Field(default=0, ge=0, le=1_000_000)
    samples: int = Field(default=8, ge=1, le=32)
    copies: int = Field(default=8, ge=1, le=MAX_COPIES)
    max_cell: int = Field(default=128, ge=16, le=max(MAX_CELL_CHOICES))


class CellRequest(ViewRequest):
    """One cell of that grid (column 0 is the original)."""

    row: int = Field(ge=0, le=31)
    col: int = Field(ge=1, le=MAX_COPIES)


class SweepRequest(ViewRequest):
    """A sweep of one option over the grid's samples."""

    option: str = Field(max_length=100)
    steps: int = Field(default=7, ge=1, le=MAX_STEPS)


class RunRequest(BaseModel):
    """A training run of the page's config on a source."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(default="digits", max_length=1000)
    config: dict[str, Any] = Field(default_factory=dict)
    model: str = Field(default="shapes_net", max_length=100)
    epochs: int = Field(default=5, ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1, le=65_536)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    workers: int = Field(default=2, ge=0, le=64)
    max_train_samples: int | None = Field(default=None, ge=1)
    run_name: str | None = Field(default=None, max_length=100)


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers, tuples as lists, and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
