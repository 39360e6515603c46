"""The main job on the embedded default data: augment the bundled digits and photos, write results.

Later issues grow this into prepare -> preview -> train; today it exercises the engine end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline import AugmentConfig, Augmenter, PixelTransform
from pipeline.ingest import load_bundled_digits, load_bundled_photos
from pipeline.preview import grid, save_png
from pipeline.workers import AugmentPool

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


@dataclass
class RunResult:
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    images: int = 0
    seconds: float = 0.0
    images_per_second: float = 0.0


def run(
    out_dir: str | Path = "augpipe-output",
    config: AugmentConfig | None = None,
    seed: int = 0,
    epochs: int = 1,
    workers: int = 2,
    copies: int = 6,
) -> RunResult:
    """Augment every bundled digit for ``epochs`` epochs and a preview of the photos.

    Everything is written to a temporary folder beside ``out_dir`` and moved into place only when
    complete, so an interrupted run never leaves a half-written result.
    """
    out_dir = Path(out_dir)
    digits_cfg = config or DIGITS_CONFIG
    images, labels, classes = load_bundled_digits()
    augmenter = Augmenter(digits_cfg, output_dtype=np.uint8)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        t0 = time.perf_counter()
        epochs_out = []
        with AugmentPool(augmenter, workers=workers) as pool:
            for epoch in range(epochs):
                epochs_out.append(pool.map(images, epoch=epoch, seed=seed))
        seconds = time.perf_counter() - t0
        batch = np.stack(epochs_out)
        np.savez_compressed(tmp / "digits_augmented.npz", images=batch, labels=labels, classes=classes)
        params = augmenter.draw(images.shape[1:], np.arange(len(images)), epoch=0, seed=seed)
        with open(tmp / "digits_params_epoch0.jsonl", "w") as f:
            for i, p in enumerate(params):
                f.write(json.dumps({"index": i, **p}) + "\n")
        digit_rows = [
            [images[i]] + [batch[e, i] for e in range(epochs)]
            + [augmenter.augment_batch(images[i : i + 1], [i], epoch=e, seed=seed)[0][0]
               for e in range(epochs, epochs + copies - 1)]
            for i in range(8)
        ]  # fmt: skip
        save_png(grid(digit_rows), tmp / "digits_preview.png")

        photos, _ = load_bundled_photos()
        small = photos[:, ::2, ::2].copy()
        photo_aug = Augmenter(PHOTOS_CONFIG, output_dtype=np.uint8)
        photo_rows = [
            [small[i]] + [photo_aug.augment_batch(small[i : i + 1], [i], epoch=e, seed=seed)[0][0]
                          for e in range(copies)]
            for i in range(len(small))
        ]  # fmt: skip
        save_png(grid(photo_rows, min_cell=160), tmp / "photos_preview.png")
        digits_cfg.to_yaml(tmp / "digits_config.yaml")
        PHOTOS_CONFIG.to_yaml(tmp / "photos_config.yaml")
        summary = {
            "images": int(batch.shape[0] * batch.shape[1]),
            "epochs": epochs,
            "seed": seed,
            "workers": workers,
            "seconds": round(seconds, 3),
            "classes": classes,
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = {p.name: p for p in sorted(out_dir.iterdir())}
    n = int(batch.shape[0] * batch.shape[1])
    return RunResult(out_dir, files, n, seconds, n / seconds if seconds else 0.0)
