"""PixelTransform: one pixel-level extra beyond Keras, its parameters checked by albumentations."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from pipeline.config.base import Validated, check_finite_inside
from pipeline.config.messages import did_you_mean


class PixelTransform(Validated):
    """One pixel-level extra: ``{name, params, p}``, applied after Keras's own transforms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    p: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        # Imported here, not above: the extras are albumentations classes (which import OpenCV and
        # SciPy), and only a config that names an extra pays for them.
        from pipeline.functional.pixel import EXTRA_TRANSFORMS

        if name not in EXTRA_TRANSFORMS:
            raise ValueError(
                f"unknown extra transform {name!r}{did_you_mean(name, EXTRA_TRANSFORMS)}; "
                f"accepted: {', '.join(sorted(EXTRA_TRANSFORMS))}"
            )
        return name

    @field_validator("params")
    @classmethod
    def _params_finite(cls, params: dict[str, Any]) -> dict[str, Any]:
        check_finite_inside(params, "params")
        return params

    @model_validator(mode="after")
    def _params_accepted(self) -> PixelTransform:
        from pipeline.functional.pixel import CROPS, build_extra  # albumentations: see _known

        if self.name in CROPS and self.p != 1.0:
            raise ValueError(
                f"extra {self.name!r} changes the image size, so p must be 1 (got {self.p}): "
                "every image of a batch must come out the same size"
            )
        build_extra(self.name, self.params)  # raises ValueError naming the bad parameter
        return self
