"""Does augmentation help, and how fast does training run? ``augpipe compare`` on MNIST and on the
bundled digits, and with a GPU the input pipeline's options side by side.

    python bench/train.py                  # MNIST, then digits: about 7 minutes on 2 CPU cores
    python bench/train.py --only digits    # the bundled digits only (no MNIST needed), about 1 minute
    python bench/train.py --epochs 1       # smoke run
    python bench/train.py --gpu            # GPU throughput: engine on CPU workers, on device, float16

MNIST: ``mnist_convnet`` on the canonical MNIST (``--mnist``, default ../shared/data/mnist: 60,000
training and the official 10,000 test images), 5 epochs, batch 64, RMSprop from Keras's default
learning rate with a cosine decay (``--lr-schedule constant`` for the source material's constant rate),
pixels scaled to [0, 1]; once without augmentation and once with README's (rotation 10, shifts 0.1,
zoom 0.1). Target: >= 99.2% test accuracy both ways. Digits: ``shapes_net`` on scikit-learn's 1,797
8x8 digits (hash-split 80/10/10), 30 epochs, the same two configs. Each is one ``augpipe compare``
(pipeline.training.compare): same seed, same data, same epochs; the figures are test accuracy, the
best validation epoch's accuracy where there is a validation split, images/s and the share of step
time the loop waited for its next batch. Results go to bench/results/train.json.

``--gpu`` trains MNIST for 2 epochs three ways on the first visible GPU (the engine in CPU worker
processes, ``--augment-on-device``, and ``--mixed-precision``) and records images/s and input wait;
without a GPU it says so in one line and records nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _mnist

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "train.json"
GPU_RESULTS = ROOT / "bench" / "results" / "train_gpu.json"
TARGET = 0.992

AUGMENTATION = {  # README's augmentation for digits of MNIST's kind
    "rotation_range": 10,
    "width_shift_range": 0.1,
    "height_shift_range": 0.1,
    "zoom_range": 0.1,
}


def mnist_data(mnist: Path) -> Any:
    """MNIST's official splits: 60,000 training images and the 10,000 test images (no validation)."""
    from pipeline.ingest import load_idx_dataset
    from pipeline.training import Split, TrainData

    parts = {}
    for part in ("train", "t10k"):
        x, y = load_idx_dataset(
            mnist / f"{part}-images-idx3-ubyte.gz", mnist / f"{part}-labels-idx1-ubyte.gz"
        )
        parts[part] = Split(x, y.astype("int64"))
    return TrainData(parts["train"], None, parts["t10k"], [str(c) for c in range(10)], str(mnist))


def epoch_printer(label: str):
    def report(row: dict) -> None:
        val = f" val_accuracy {row['val_accuracy']:.4f}" if row.get("val_accuracy") is not None else ""
        print(f"  {label} epoch {row['epoch']}: loss {row['loss']:.4f} accuracy {row['accuracy']:.4f}{val} "
              f"{row['images_per_second']:,.0f} images/s, input wait {row['input_wait_fraction']:.1%}",
              flush=True)  # fmt: skip

    return report


def comparison(name: str, train: dict, runs_dir: str, data: Any = None) -> dict:
    """One ``augpipe compare`` of no augmentation against AUGMENTATION; its table and figures."""
    from pipeline.config import AugmentConfig, CompareConfig, TrainConfig
    from pipeline.training.compare import compare

    cfg = CompareConfig(
        name=name,
        train=TrainConfig(
            **train, augment=AugmentConfig(rescale=1 / 255), seed=0, runs_dir=runs_dir, mlflow=False
        ),
        augments={"augmented": AugmentConfig(**AUGMENTATION)},
    )
    current = {"variant": ""}

    def announce(variant: str, run: Any, done: bool) -> None:
        current["variant"] = variant
        print(f"{name} / {variant}: {run.model}, {run.epochs} epochs, batch {run.batch_size}, "
              f"{run.optimizer} ({run.lr_schedule})", flush=True)  # fmt: skip

    printer = epoch_printer(name)
    start = time.perf_counter()
    result = compare(cfg, on_variant=announce, data=data, on_epoch=lambda row: printer(row))
    seconds = time.perf_counter() - start
    print(result.table(), flush=True)
    rows = []
    for row in result.rows:
        summary = json.loads((Path(row.run_dir) / "summary.json").read_text())
        rows.append({
            **{k: v for k, v in row.__dict__.items() if k != "run_dir"},
            "augment": summary["config"]["augment"],
            "mean_input_wait_fraction": summary["mean_input_wait_fraction"],
            "weights": summary.get("weights"),
        })  # fmt: skip
    return {"train": {k: v for k, v in train.items() if k != "dataset"}, "seconds": seconds, "rows": rows}


def gpu_section(args: argparse.Namespace, runs_dir: str) -> dict | None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        print("bench/train.py --gpu: no GPU is visible to TensorFlow on this machine; nothing measured")
        return None
    from pipeline.config import AugmentConfig, TrainConfig
    from pipeline.training import train

    details = tf.config.experimental.get_device_details(gpus[0])
    device = details.get("device_name", gpus[0].name)
    data = mnist_data(args.mnist)
    ways = {
        "engine on CPU workers": {"workers": args.workers},
        "--augment-on-device": {"augment_on_device": True, "workers": 0},
        "--mixed-precision": {"mixed_precision": True, "workers": args.workers},
        "--augment-on-device --mixed-precision": {
            "augment_on_device": True,
            "mixed_precision": True,
            "workers": 0,
        },
    }
    figures = {}
    for label, options in ways.items():
        print(f"gpu / {label}", flush=True)
        cfg = TrainConfig(
            dataset=str(args.mnist), model="mnist_convnet", epochs=2, batch_size=args.gpu_batch_size,
            augment=AugmentConfig(rescale=1 / 255, **AUGMENTATION), seed=0, runs_dir=runs_dir,
            run_name="gpu-" + "".join(c if c.isalnum() else "-" for c in label).strip("-"), mlflow=False,
            **options,
        )  # fmt: skip
        result = train(cfg, data=data, on_epoch=epoch_printer("gpu"))
        last = result.history[-1]  # epoch 2: past TensorFlow's tracing and the workers' start
        figures[label] = {
            "images_per_second": last["images_per_second"],
            "input_wait_fraction": last["input_wait_fraction"],
            "test_accuracy": result.test_accuracy,
            "options": options,
        }
    print(f"\n{device}, mnist_convnet, batch {args.gpu_batch_size}, epoch 2 of 2")
    print(f"{'input pipeline':<40} {'images/s':>9} {'input wait':>10}")
    for label, f in figures.items():
        print(f"{label:<40} {f['images_per_second']:>9,.0f} {f['input_wait_fraction']:>10.1%}")
    return {"device": device, "batch_size": args.gpu_batch_size, "runs": figures}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs of every run (default 5 MNIST, 30 digits)"
    )
    parser.add_argument("--workers", type=int, default=2, help="augmentation worker processes")
    parser.add_argument("--only", choices=("mnist", "digits"), default=None)
    parser.add_argument(
        "--lr-schedule", choices=("constant", "cosine", "exponential"), default="cosine",
        help="RMSprop's learning rate over the MNIST runs (the source material keeps it constant)",
    )  # fmt: skip
    parser.add_argument("--gpu", action="store_true", help="GPU throughput of the input pipeline's options")
    parser.add_argument("--gpu-batch-size", type=int, default=256)
    _mnist.add_option(parser)
    args = parser.parse_args()
    if args.gpu or args.only != "digits":  # before TensorFlow's import: a missing folder is one line
        _mnist.require(args.mnist, hint=" (or --only digits)")
    from pipeline.tf_import import import_tensorflow

    tf = import_tensorflow()  # without TensorFlow's start-up lines
    import keras

    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }
    with tempfile.TemporaryDirectory(prefix="augpipe-bench-train-") as runs_dir:
        if args.gpu:
            gpu = gpu_section(args, runs_dir)
            if gpu is not None:
                GPU_RESULTS.write_text(json.dumps({
                    "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                    "command": "python bench/train.py " + " ".join(sys.argv[1:]),
                    "machine": machine,
                    "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
                    **gpu,
                }, indent=2))  # fmt: skip
            return
        results: dict[str, Any] = {}
        if args.only in (None, "mnist"):
            results["mnist"] = comparison(
                "mnist",
                {"dataset": str(args.mnist), "model": "mnist_convnet", "epochs": args.epochs or 5,
                 "batch_size": 64, "optimizer": "rmsprop", "learning_rate": 1e-3,
                 "lr_schedule": args.lr_schedule, "workers": args.workers},
                runs_dir, data=mnist_data(args.mnist),
            )  # fmt: skip
        if args.only in (None, "digits"):
            results["digits"] = comparison(
                "digits",
                {"dataset": "digits", "model": "shapes_net", "epochs": args.epochs or 30, "batch_size": 64,
                 "learning_rate": 5e-3, "workers": args.workers},
                runs_dir,
            )  # fmt: skip

    print()
    if "mnist" in results:
        for row in results["mnist"]["rows"]:
            ok = "PASS" if row["test_accuracy"] >= TARGET else "MISS"
            accuracy = row["test_accuracy"]
            print(f"mnist {row['variant']:<10} test accuracy {accuracy:.2%} (target {TARGET:.1%}: {ok})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() and args.only else {}
    RESULTS.write_text(
        json.dumps(
            {
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": "python bench/train.py " + " ".join(sys.argv[1:]),
                "machine": machine,
                "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
                "target_test_accuracy": TARGET,
                "augmentation": AUGMENTATION,
                "comparisons": {**previous.get("comparisons", {}), **results},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
