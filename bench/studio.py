"""Server time of the studio's re-render: a grid of 8 samples x 8 copies, augmented, tiled and
PNG-encoded, on one core, against its targets.

    python bench/studio.py                     # 224x224 photographs (target 300 ms), 28x28 digits (50 ms)
    python bench/studio.py --repeats 30 --json bench/results/studio.json

The figure is what ``POST /api/grid`` spends in ``pipeline.studio.render_grid`` (the studio reports it
as ``render_ms``): drawing every copy's parameters, augmenting, tiling the cells and encoding the PNG
the page shows. OpenCV runs on one thread (``cv2.setNumThreads(1)``). Each configuration is timed
``--repeats`` times after one warm-up render; the median is compared with the target, min and max
shown. The 224x224 images are crops of scikit-learn's two sample photographs; the 28x28 digits are
MNIST's first training images from ``--mnist`` when it is there, else the bundled 8x8 digits scaled up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._mnist import DEFAULT as MNIST_DEFAULT  # noqa: E402
from bench._mnist import TRAIN_IMAGES  # noqa: E402
from pipeline.config import AugmentConfig  # noqa: E402
from pipeline.defaults import DIGITS_CONFIG, PHOTOS_CONFIG  # noqa: E402
from pipeline.ingest import load_bundled_digits, load_bundled_photos, read_idx  # noqa: E402
from pipeline.studio import render_grid  # noqa: E402

SAMPLES, COPIES = 8, 8


class Case(NamedTuple):
    name: str
    images: np.ndarray
    config: AugmentConfig
    max_cell: int
    target_ms: float | None


def photo_crops(side: int = 224) -> np.ndarray:
    """8 different side x side crops of the two bundled photographs."""
    photos, _ = load_bundled_photos()
    crops = []
    for i in range(SAMPLES):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        size = min(h, w) - 40 * (i // 2)
        y, x = (h - size) * (i % 3) // 2, (w - size) * (i % 4) // 3
        crops.append(
            cv2.resize(photo[y : y + size, x : x + size], (side, side), interpolation=cv2.INTER_AREA)
        )
    return np.stack(crops)


def digits_28(mnist: Path) -> tuple[np.ndarray, str]:
    path = mnist / TRAIN_IMAGES
    if path.is_file():
        return read_idx(path)[:SAMPLES, :, :, None], f"MNIST ({path})"
    digits, _, _ = load_bundled_digits()
    scaled = np.stack([cv2.resize(d, (28, 28), interpolation=cv2.INTER_LINEAR) for d in digits[:SAMPLES]])
    return scaled[..., None], "the bundled 8x8 digits scaled to 28x28 (no MNIST at --mnist)"


def time_case(case: Case, repeats: int) -> list[float]:
    indices = list(range(SAMPLES))
    render_grid(case.images, indices, case.config, copies=COPIES, max_cell=case.max_cell)  # warm-up
    times = []
    for epoch in range(repeats):  # a new epoch each time: new draws, as a changed control gives
        start = time.perf_counter()
        render_grid(case.images, indices, case.config, epoch=epoch, copies=COPIES, max_cell=case.max_cell)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--mnist", type=Path, default=MNIST_DEFAULT, metavar="PATH")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    photos = photo_crops()
    digits, digits_from = digits_28(args.mnist)
    photos_keras_only = PHOTOS_CONFIG.model_copy(update={"extras": []})
    cases = [
        Case("224x224 photos, the page's default cell (128 px)", photos, photos_keras_only, 128, 300.0),
        Case("224x224 photos, + hue and blur extras (128 px)", photos, PHOTOS_CONFIG, 128, 300.0),
        Case("224x224 photos, full size cells (224 px)", photos, photos_keras_only, 256, None),
        Case("28x28 digits", digits, DIGITS_CONFIG, 128, 50.0),
    ]
    load = os.getloadavg()[0]
    print(
        f"studio re-render, {SAMPLES} samples x {COPIES} copies, one OpenCV thread, {args.repeats} repeats; "
        f"1-minute load {load:.2f} on {os.cpu_count()} CPUs; 28x28 digits: {digits_from}"
    )
    print(f"{'case':<52} {'median':>9} {'min':>9} {'max':>9} {'target':>9}")
    results, ok = [], True
    for case in cases:
        times = time_case(case, args.repeats)
        median = statistics.median(times)
        met = case.target_ms is None or median <= case.target_ms
        ok &= met
        target = "" if case.target_ms is None else f"{case.target_ms:.0f} ms" + ("" if met else " MISSED")
        print(f"{case.name:<52} {median:>6.1f} ms {min(times):>6.1f} ms {max(times):>6.1f} ms {target:>9}")
        results.append({"case": case.name, "median_ms": median, "min_ms": min(times), "max_ms": max(times),
                        "target_ms": case.target_ms, "met": met})  # fmt: skip
    if args.json is not None:
        args.json.write_text(
            json.dumps({"load": load, "repeats": args.repeats, "results": results}, indent=2)
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
