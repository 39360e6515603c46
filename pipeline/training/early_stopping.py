"""Early stopping on the monitored loss, as Keras's ``EarlyStopping(patience=...)`` with mode "min"."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipeline.training.result import EpochMetrics


@dataclass(frozen=True)
class EarlyStopping:
    """The best monitored loss so far (validation loss, else training loss), the epoch that reached
    it, and how many epochs since then did not improve on it.

    patience: epochs without improvement after which to stop; None never stops.
    """

    patience: int | None
    best: float | None = None
    best_epoch: int | None = None
    wait: int = 0

    def update(self, metrics: EpochMetrics) -> EarlyStopping:
        """This record after the epoch of ``metrics``."""
        monitored = metrics.val_loss if metrics.val_loss is not None else metrics.loss
        if self.best is None or monitored < self.best:
            return replace(self, best=monitored, best_epoch=metrics.epoch, wait=0)
        return replace(self, wait=self.wait + 1)

    @property
    def stop(self) -> bool:
        """Whether the run stops here: ``patience`` epochs in a row without improvement."""
        return self.patience is not None and self.wait >= self.patience
