"""CompareConfig: what ``augpipe compare`` trains, once per augmentation config, to see which helps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from pipeline.config.augment import STANDARDISATION_OPTIONS, AugmentConfig
from pipeline.config.base import Validated
from pipeline.config.train import TrainConfig

NO_AUGMENTATION = "none"  # the variant every comparison needs: normalisation only
# What a comparison may not vary between its runs: they share everything but the augmentation.
NORMALISATION_OPTIONS = ("rescale", *STANDARDISATION_OPTIONS, "zca_epsilon")


class CompareConfig(Validated):
    """The same model, epochs, seed and prepared dataset (``train``), trained once per entry of
    ``augments`` (name -> augmentation config).

    ``train.augment`` gives the normalisation of the ``none`` variant, which is always trained (a
    comparison without the baseline says nothing); each variant's runs go to
    ``<train.runs_dir>/<name>/<variant>/``, the table and curves to ``<train.runs_dir>/<name>/``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "compare"
    train: TrainConfig = Field(default_factory=TrainConfig)
    augments: dict[str, AugmentConfig] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not v or v in (".", "..") or "/" in v or "\\" in v or v.startswith("."):
            raise ValueError("name must be a plain folder name (no path separators, not hidden)")
        return v

    @field_validator("augments")
    @classmethod
    def _variant_names(cls, v: dict[str, AugmentConfig]) -> dict[str, AugmentConfig]:
        for name in v:
            if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
                raise ValueError(
                    f"augmentation names are run folder names: letters, digits, '-', '_' and '.'; "
                    f"got {name!r}"
                )
        return v

    @model_validator(mode="after")
    def _one_thing_varies(self) -> CompareConfig:
        if self.train.run_name is not None:
            raise ValueError(
                "train.run_name is set per variant (<name>/<variant>); name the comparison with name"
            )
        return self

    def variants(self, dataset: str | None = None) -> dict[str, TrainConfig]:
        """Variant name -> its run's config: ``none`` first, then ``augments`` in their order; all on
        ``dataset`` when given (the prepared folder of ``train.dataset``), else on ``train.dataset``.

        A variant that sets no normalisation option takes ``train.augment``'s, so that the runs
        differ in their augmentation only.
        """
        base = self.train.model_dump(mode="python", exclude={"augment", "runs_dir", "run_name"})
        if dataset is not None:
            base["dataset"] = dataset
        runs_dir = str(self.folder)
        augments = {NO_AUGMENTATION: AugmentConfig(), **self.augments}
        return {
            name: TrainConfig(**base, augment=self._normalised(augment), runs_dir=runs_dir, run_name=name)
            for name, augment in augments.items()
        }

    def _normalised(self, augment: AugmentConfig) -> AugmentConfig:
        if augment.states_normalisation:
            return augment
        given = augment.model_dump(mode="python", exclude_unset=True)
        base = self.train.augment
        kept = {k: getattr(base, k) for k in NORMALISATION_OPTIONS if k in type(base).model_fields}
        return AugmentConfig(**given, **kept)

    @property
    def folder(self) -> Path:
        """Where the comparison's table and curves go, beside its runs."""
        return Path(self.train.runs_dir) / self.name

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> CompareConfig:
        """Options from a YAML file (the mapping, or its ``compare:`` section), then ``overrides``."""
        return cls._from_yaml(path, "compare", overrides)
