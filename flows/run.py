"""The main job, ``augpipe run``: the whole service end to end on the embedded default data.

One Prefect flow (on the embedded ephemeral API unless one is configured) runs the service's own
flows as subflows: prepare scikit-learn's bundled digits into a dataset version, preview the
augmentation on the digits and on the bundled photos, train a small convnet on augmented batches for
a few epochs, and record its metrics. Every step writes its results atomically, so an interrupted
run leaves the earlier results intact.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow

from pipeline import AugmentConfig, PixelTransform
from pipeline.config import PrepareConfig, TrainConfig

DIGITS_CONFIG = AugmentConfig(
    rotation_range=15, width_shift_range=0.1, height_shift_range=0.1, shear_range=10, zoom_range=0.1
)
PHOTOS_CONFIG = AugmentConfig(
    rotation_range=20,
    width_shift_range=0.1,
    height_shift_range=0.1,
    zoom_range=0.15,
    horizontal_flip=True,
    brightness_range=(0.7, 1.3),
    fill_mode="reflect",
    extras=[
        PixelTransform(name="hue", p=0.5),
        PixelTransform(name="gaussian_blur", params={"blur_limit": (3, 5)}, p=0.3),
    ],
)
# A convnet that learns the 8x8 digits in seconds: the source material's Fashion-MNIST network.
MODEL = "fashion_convnet"


@dataclass
class RunResult:
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    test_accuracy: float | None = None
    epochs: int = 0
    seconds: float = 0.0
    mlflow_run: str = ""


@flow(name="augpipe-run", log_prints=True)
def main_job(
    out: str = "augpipe-output",
    config: AugmentConfig | None = None,
    seed: int = 0,
    epochs: int = 8,
    workers: int = 2,
    model: str = MODEL,
) -> dict[str, Any]:
    """Prepare the digits, preview the augmentation, train ``model`` on augmented batches."""
    from flows.prepare import prepare_dataset
    from flows.preview import preview_augmentations
    from flows.train import train_model

    root = Path(out).resolve()
    digits_config = config or DIGITS_CONFIG
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "digits_augment.yaml"
    digits_config.to_yaml(config_path)

    prepared = prepare_dataset(PrepareConfig(source="digits", out=str(root / "prepared" / "digits")))
    dataset = str(root / "prepared" / "digits")
    digits_preview = preview_augmentations(
        source=dataset, config_path=str(config_path), seed=seed, out=str(root / "previews" / "digits")
    )
    photos_preview = preview_augmentations(source="photos", seed=seed, out=str(root / "previews" / "photos"))
    trained = train_model(
        TrainConfig(
            dataset=dataset,
            model=model,
            epochs=epochs,
            batch_size=64,
            optimizer="adam",
            learning_rate=3e-3,
            augment=digits_config.model_copy(update={"rescale": 1 / 255}),
            seed=seed,
            workers=workers,
            runs_dir=str(root / "runs"),
            run_name=f"digits-{time.strftime('%Y%m%d-%H%M%S')}",
        )  # fmt: skip
    )
    return {
        "dataset": str(prepared.version_dir),
        "digits preview": str(digits_preview.png),
        "digits preview page": str(digits_preview.html),
        "photos preview": str(photos_preview.png),
        "model": trained["model_path"],
        "metrics": trained["files"]["metrics"],
        "summary": trained["files"]["summary"],
        "confusion matrix": trained["files"]["confusion_matrix"],
        "tensorboard": trained["files"]["tensorboard"],
        "mlflow": f"{trained['mlflow_run_id']} in {root / 'runs' / 'mlflow.db'}"
        if trained["mlflow_run_id"]
        else "",
        "augmentation config": str(config_path),
        "test accuracy": trained["test_accuracy"],
        "epochs": len(trained["history"]),
    }


def run(
    out_dir: str | Path = "augpipe-output",
    config: AugmentConfig | None = None,
    seed: int = 0,
    epochs: int = 8,
    workers: int = 2,
    model: str = MODEL,
) -> RunResult:
    """Run the main job in this process (what ``augpipe run`` calls)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    start = time.perf_counter()
    out: dict[str, Any] = main_job(
        out=str(out_dir), config=config, seed=seed, epochs=epochs, workers=workers, model=model,
        return_state=True,
    ).result()  # fmt: skip
    accuracy = float(out.pop("test accuracy"))
    epochs_run = int(out.pop("epochs"))
    mlflow = out.pop("mlflow")
    files = {k: Path(v) for k, v in out.items()}
    seconds = time.perf_counter() - start
    return RunResult(Path(out_dir).resolve(), files, accuracy, epochs_run, seconds, mlflow)
