"""Preparing MNIST written out as 70,000 PNG files, against Keras's image_dataset_from_directory.

    python bench/prepare.py            # about a minute on 2 cores
    python bench/prepare.py --workers 2 --folder /tmp/mnist_png

1. Writes the canonical MNIST (``--mnist``, default ../shared/data/mnist) as PNG files in class folders,
   once.
2. Files/s: one pass of ``keras.utils.image_dataset_from_directory`` over the folder, against
   ``pipeline.prepare.prepare`` (scan, decode, validate, hash, split, write shards and manifest).
3. Epoch read speed: one pass over the prepared train shards (memory-mapped), against re-decoding
   the same PNG files with OpenCV.
Each figure is the best of ``--repeats`` runs, each in a fresh interpreter. Keras and augpipe runs
alternate, so that on a shared machine both sides meet the same load, and every file is read once,
untimed, before each run, so that both start from a warm page cache (pages left unread for a while
can be reclaimed). Results go to bench/results/prepare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import _mnist

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "prepare.json"


def write_pngs(folder: Path, mnist: Path) -> int:
    import cv2

    from pipeline.ingest import load_idx_dataset

    marker = folder / ".complete"
    if marker.exists():
        return int(marker.read_text())
    _mnist.require(mnist, hint=" (or --folder FOLDER, where an earlier run wrote the PNG files)")
    shutil.rmtree(folder, ignore_errors=True)
    n = 0
    for part in ("train", "t10k"):
        x, y = load_idx_dataset(
            mnist / f"{part}-images-idx3-ubyte.gz", mnist / f"{part}-labels-idx1-ubyte.gz"
        )
        for c in range(10):
            (folder / str(c)).mkdir(parents=True, exist_ok=True)
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            cv2.imwrite(str(folder / str(label) / f"{part}-{i:05d}.png"), img[..., 0])
            n += 1
    marker.write_text(str(n))
    return n


# ---- measurements, each run in its own interpreter -----------------------------------------------------
def keras_pass(folder: str) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    start = time.perf_counter()
    ds = keras.utils.image_dataset_from_directory(
        folder, color_mode="grayscale", image_size=(28, 28), batch_size=256, shuffle=False, verbose=False
    )
    n = sum(int(x.shape[0]) for x, _ in ds)
    return {"images": n, "seconds": time.perf_counter() - start}


def augpipe_prepare(folder: str, out: str, workers: int) -> dict:
    from pipeline.config import PrepareConfig
    from pipeline.prepare import prepare

    shutil.rmtree(out, ignore_errors=True)
    cfg = PrepareConfig(source=folder, out=out, color_mode="grayscale", chunk_size=2000)
    start = time.perf_counter()
    result = prepare(cfg, workers=workers)
    return {"images": result.report["images"], "seconds": time.perf_counter() - start}


def read_shards(out: str) -> dict:
    import numpy as np

    from pipeline.dataset import PreparedDataset

    ds = PreparedDataset(out)  # opened once, as a training job does; an epoch is what is timed
    start = time.perf_counter()
    n = 0
    for split in ds.splits:
        images = ds.images(split)
        for shard in images.shards:
            for b in range(0, len(shard), 256):
                batch = np.ascontiguousarray(shard[b : b + 256])  # what a training step consumes
                n += len(batch)
    return {"images": n, "seconds": time.perf_counter() - start}


def redecode(folder: str) -> dict:
    import cv2

    cv2.setNumThreads(1)
    start = time.perf_counter()
    n = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".png"):
                img = cv2.imread(os.path.join(dirpath, name), cv2.IMREAD_GRAYSCALE)
                n += img is not None
    return {"images": n, "seconds": time.perf_counter() - start}


def isolated(kind: str, *args: object) -> dict:
    cmd = [sys.executable, __file__, "--measure", json.dumps([kind, *args])]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def warm(folder: str) -> None:
    """Read every file under folder once, so that the run that follows finds them in the page cache."""
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                f.read()


def summary(runs: list[dict]) -> dict:
    rates = [r["images"] / r["seconds"] for r in runs]
    return {"images": runs[0]["images"], "best": max(rates), "rates": rates}


def best(kind: str, repeats: int, folder: str, *args: object) -> dict:
    """``repeats`` runs of measurement ``kind`` on folder, each after warming it."""
    runs = []
    for _ in range(repeats):
        warm(folder)
        runs.append(isolated(kind, folder, *args))
    return summary(runs)


def keras_against_prepare(repeats: int, folder: str, out: str, workers: int) -> tuple[dict, dict]:
    """Keras's pass and augpipe's preparation, alternated run by run."""
    keras_runs, prepare_runs = [], []
    for _ in range(repeats):
        warm(folder)
        keras_runs.append(isolated("keras", folder))
        warm(folder)
        prepare_runs.append(isolated("prepare", folder, out, workers))
    return summary(keras_runs), summary(prepare_runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "augpipe-bench-mnist-png"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    _mnist.add_option(parser)
    args = parser.parse_args()
    if args.measure:
        kind, *rest = json.loads(args.measure)
        print(json.dumps({"keras": keras_pass, "prepare": augpipe_prepare, "read": read_shards,
                          "redecode": redecode}[kind](*rest)))  # fmt: skip
        return
    folder = args.folder / "mnist"
    out = str(args.folder / "prepared")
    t0 = time.perf_counter()
    n = write_pngs(folder, args.mnist)
    stamp = datetime.now().isoformat(timespec="seconds")
    print(f"augpipe preparation benchmark, {stamp}, {os.cpu_count()} cores")
    print(f"{n} PNG files in class folders at {folder} ({time.perf_counter() - t0:.1f} s to check or write)")
    keras_, ours = keras_against_prepare(args.repeats, str(folder), out, args.workers)
    shards = best("read", args.repeats, out)
    decode = best("redecode", args.repeats, str(folder))
    prep_ratio, read_ratio = ours["best"] / keras_["best"], shards["best"] / decode["best"]
    paired = [p / k for k, p in zip(keras_["rates"], ours["rates"], strict=True)]
    print("  (best of the runs; each run's figure in brackets)")
    for label, figures, unit in (
        ("keras image_dataset_from_directory, one pass", keras_, "files/s"),
        (f"augpipe prepare ({args.workers} worker processes and the caller)", ours, "files/s"),
        ("epoch over prepared shards (memory-mapped)", shards, "images/s"),
        ("epoch re-decoding the PNG files (OpenCV)", decode, "images/s"),
    ):
        runs = ", ".join(f"{r:,.0f}" for r in figures["rates"])
        print(f"  {label:54s} {figures['best']:12,.0f} {unit}  [{runs}]")
    print(f"  prepare / keras, run by run: {', '.join(f'{r:.2f}x' for r in paired)}")
    checks = [
        ("augpipe prepare >= 2x Keras's single pass", prep_ratio, 2.0),
        ("reading prepared shards >= 20x re-decoding", read_ratio, 20.0),
    ]
    for name, value, target in checks:
        print(f"  {'PASS' if value >= target else 'FAIL'}  {name}: {value:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]), "files": n, "workers": args.workers,
        "keras_files_per_s": keras_, "prepare_files_per_s": ours, "prepare_over_keras_by_run": paired,
        "read_shards": shards, "redecode": decode,
        "checks": [{"check": c, "figure": v, "target": t} for c, v, t in checks],
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
