"""Images per second of augpipe against Keras's ImageDataGenerator, Keras 3 layers in tf.data and
albumentations, with the same options on the same images, in one process and in two; then the
drop-in against Keras's own ImageDataGenerator with every option on, through ``flow()``.

    python bench/augment.py                                # full run, about 15 minutes on 2 cores
    python bench/augment.py --quick                        # smoke run
    python bench/augment.py --sizes 224 --only keras,augpipe --sections engine
    python bench/augment.py --sections flow --fill-modes reflect

Each measurement runs in a fresh interpreter (``--measure``): TensorFlow's thread pools can only be
set before it starts, and no contender's imports, threads or caches should leak into the next.
Results go to ``bench/results/augment.json`` (not from ``--quick`` runs): one record per section with
its own timestamp (a run of one section keeps the other's last record), and every section's target
checks together.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import _mnist
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "augment.json"
SECTIONS = ("engine", "flow")
BATCH = 64
# "All spatial and pixel options on", under ImageDataGenerator's names.
OPTIONS = dict(
    rotation_range=20, width_shift_range=0.1, height_shift_range=0.1, shear_range=10, zoom_range=0.1,
    horizontal_flip=True, vertical_flip=True, channel_shift_range=20, brightness_range=(0.8, 1.2),
    fill_mode="nearest",
)  # fmt: skip
CONTENDERS = ("keras", "layers", "albumentations", "augpipe", "augpipe_threads")
TITLES = {
    "keras": "Keras ImageDataGenerator (legacy)",
    "layers": "Keras 3 layers in tf.data",
    "albumentations": "albumentations 2.0.8",
    "augpipe": "augpipe",
    "augpipe_threads": "augpipe, OpenCV threads on",
}
NOTES = {
    "keras": "ImageDataGenerator(**options).flow(float32 x, batch_size=64, shuffle=False), iterated as "
    "model.fit does (PyDatasetAdapter); 2 processes: the iterator's own PyDataset workers=2, "
    "use_multiprocessing=True (Keras forks a pool each epoch, batches come back pickled).",
    "layers": "nearest equivalents, not the same semantics: RandomRotation, RandomTranslation, RandomZoom, "
    "RandomShear (x only, tan 10deg), RandomFlip, RandomBrightness(+-20/255 of range, for channel shift), "
    "RandomContrast(0.2, for brightness_range; Keras 3 has no multiplicative brightness), uint8 cast to "
    "float32 in the map. TF is threads in one process: '1 process' = intra/inter-op threads 1, tf.data "
    "pool 1, num_parallel_calls=1; '2 processes' = 2 of each.",
    "albumentations": "A.Compose([Affine(rotate, translate_percent, scale per axis, shear x, "
    "BORDER_REPLICATE), HorizontalFlip, VerticalFlip, RandomBrightnessContrast(brightness +-20/255 "
    "additive for channel shift, contrast 0.2 = x0.8-1.2)]) per uint8 image, float32 per batch; "
    "2 processes: multiprocessing.Pool(2) (fork) over batches, as a DataLoader does; workers return "
    "uint8 batches (pickled) and the parent converts them to float32, 3x faster at 224 than float32 pickles.",
    "augpipe": "Augmenter(cfg).augment_batch per batch of 64 (uint8 in, float32 out); "
    "2 processes: AugmentPool(workers=2).map over the whole set per epoch (memory-mapped files, "
    "default chunking: about 8 chunks per worker).",
    "augpipe_threads": "the same single process with OpenCV's own thread pool left on (its default: "
    "one thread per core); measured in one process only.",
}
Runner = tuple[Callable[[], None], Callable[[], None]]  # (one pass over every image, cleanup)

# ---- the flow section: every ImageDataGenerator option on, each side fed what its users pass -----------
FLOW_OPTIONS = dict(
    rotation_range=40, width_shift_range=0.2, height_shift_range=0.15, zoom_range=(0.6, 1.4), shear_range=30,
    horizontal_flip=True, vertical_flip=True, brightness_range=(0.3, 1.2), channel_shift_range=60.0,
    rescale=1 / 255,
)  # fmt: skip
FLOW_BATCH = 32
FLOW_FILL_MODES = ("reflect", "wrap", "constant")
FLOW_CONTENDERS = ("keras_flow", "augpipe_flow", "augpipe_flow_threads")
# What each contender is fed: Keras's users pass float32 (x.astype("float32")); augpipe takes all three.
FLOW_INPUTS = {"keras_flow": ("float32",), "augpipe_flow": ("uint8", "float32", "float64"),
               "augpipe_flow_threads": ("float32",)}  # fmt: skip
FLOW_TITLES = {
    "keras_flow": "Keras ImageDataGenerator (legacy)",
    "augpipe_flow": "augpipe ImageDataGenerator",
    "augpipe_flow_threads": "augpipe, OpenCV threads on",
}
FLOW_NOTES = {
    "keras_flow": "keras.src.legacy.preprocessing.image.ImageDataGenerator(**options, fill_mode).flow(x, y, "
    f"batch_size={FLOW_BATCH}) built once, its epochs iterated as model.fit does (PyDatasetAdapter, "
    "workers=1: one thread), on_epoch_end between passes.",
    "augpipe_flow": "pipeline.ImageDataGenerator, the same calls on the same images; one process, one core "
    "(cv2.setNumThreads(1)).",
    "augpipe_flow_threads": "the same with OpenCV's own thread pool left on (its default: one thread per "
    "core), as a training script gets it; still one process.",
}


# ---- data -------------------------------------------------------------------------------------------
def load_images(size: int, n: int, mnist: Path) -> tuple[np.ndarray, str]:
    """``n`` uint8 images (n, size, size, C) and a line saying where they come from.

    mnist: the folder of the canonical MNIST IDX files, read for size 28 (main checks it is there).
    """
    if size == 28:
        images = mnist / _mnist.TRAIN_IMAGES
        with gzip.open(images) as f:
            data = f.read()
        magic, count, rows, cols = struct.unpack(">IIII", data[:16])
        if magic != 2051:
            raise ValueError(f"{images}: not an IDX image file (magic {magic}, expected 2051)")
        x = np.frombuffer(data, np.uint8, count * rows * cols, 16).reshape(count, rows, cols, 1)
        return x[:n].copy(), f"MNIST train images {images.resolve()}, first {n}"
    import skimage.data
    from sklearn.datasets import load_sample_images

    names = "astronaut coffee chelsea rocket retina hubble_deep_field immunohistochemistry".split()
    photos = [*load_sample_images().images, *(getattr(skimage.data, name)() for name in names)]
    rng = np.random.default_rng(0)
    x = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(size, min(h, w) + 1))  # random crop of a random scale, resized
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = photo[top : top + side, left : left + side]
        x[i] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    source = "scikit-learn sample images and skimage.data photos"
    return x, f"{n} random crops of {len(photos)} photos resized to {size}x{size} ({source})"


# ---- contenders: each returns a function doing one pass over every image, and a cleanup ---------------
def keras(x: np.ndarray, procs: int) -> Runner:
    from keras.src.legacy.preprocessing.image import ImageDataGenerator
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    generator = ImageDataGenerator(**OPTIONS)
    xf = x.astype(np.float32)

    def run() -> None:
        flow = generator.flow(xf, batch_size=BATCH, shuffle=False)
        flow.workers, flow.use_multiprocessing = procs, procs > 1
        for _ in PyDatasetAdapter(flow).get_numpy_iterator():
            pass

    return run, lambda: None


def layers(x: np.ndarray, procs: int) -> Runner:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(procs)
    tf.config.threading.set_inter_op_parallelism_threads(procs)
    import keras

    fill = dict(fill_mode="nearest")
    model = keras.Sequential([
        keras.layers.RandomRotation(20 / 360, **fill),
        keras.layers.RandomTranslation(0.1, 0.1, **fill),
        keras.layers.RandomZoom(0.1, 0.1, **fill),
        keras.layers.RandomShear(x_factor=math.tan(math.radians(10)), y_factor=0.0, **fill),
        keras.layers.RandomFlip("horizontal_and_vertical"),
        keras.layers.RandomBrightness(20 / 255),
        keras.layers.RandomContrast(0.2),
    ])  # fmt: skip
    options = tf.data.Options()
    options.threading.private_threadpool_size = procs
    dataset = (
        tf.data.Dataset.from_tensor_slices(x)
        .batch(BATCH)
        .map(lambda b: model(tf.cast(b, tf.float32), training=True), num_parallel_calls=procs)
        .with_options(options)
    )

    def run() -> None:
        for _ in dataset:
            pass

    return run, lambda: None


_worker: dict = {}  # albumentations' state in forked pool workers


def _albumentations_batch(start: int) -> np.ndarray:
    x, transform = _worker["x"], _worker["transform"]
    return np.stack([transform(image=img)["image"] for img in x[start : start + BATCH]])


def _albumentations_init() -> None:
    cv2.setNumThreads(1)
    _worker["transform"].set_random_seed(os.getpid())  # forked workers would otherwise draw alike


def albumentations(x: np.ndarray, procs: int) -> Runner:
    import albumentations as A

    shift, zoom = OPTIONS["width_shift_range"], OPTIONS["zoom_range"]
    _worker["x"] = x
    _worker["transform"] = A.Compose([
        A.Affine(
            rotate=(-20, 20), translate_percent={"x": (-shift, shift), "y": (-shift, shift)},
            scale={"x": (1 - zoom, 1 + zoom), "y": (1 - zoom, 1 + zoom)}, shear={"x": (-10, 10), "y": 0},
            border_mode=cv2.BORDER_REPLICATE, p=1.0,
        ),
        A.HorizontalFlip(),
        A.VerticalFlip(),
        A.RandomBrightnessContrast(brightness_limit=20 / 255, contrast_limit=0.2, p=1.0),
    ], seed=0)  # fmt: skip
    starts = range(0, len(x), BATCH)
    if procs == 1:

        def run_here() -> None:
            for s in starts:
                _albumentations_batch(s).astype(np.float32)

        return run_here, lambda: None
    pool = mp.get_context("fork").Pool(procs, initializer=_albumentations_init)

    def run() -> None:
        for batch in pool.imap(_albumentations_batch, starts):
            batch.astype(np.float32)

    def close() -> None:
        pool.close()
        pool.join()

    return run, close


def augpipe(x: np.ndarray, procs: int) -> Runner:
    from pipeline import AugmentConfig, Augmenter
    from pipeline.workers import AugmentPool

    augmenter = Augmenter(AugmentConfig(**OPTIONS), output_dtype=np.float32)
    epoch = itertools.count()  # a new epoch each pass, so every pass draws new parameters
    if procs == 1:

        def run() -> None:
            e = next(epoch)
            for s in range(0, len(x), BATCH):
                augmenter.augment_batch(x[s : s + BATCH], np.arange(s, min(s + BATCH, len(x))), e, seed=0)

        return run, lambda: None
    pool = AugmentPool(augmenter, workers=procs)

    def run_pool() -> None:
        pool.map(x, epoch=next(epoch), seed=0)

    return run_pool, pool.close


def augpipe_threads(x: np.ndarray, procs: int) -> Runner:
    return augpipe(x, 1)


def _flow(generator: object, x: np.ndarray) -> Runner:
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    flow = generator.flow(x, np.zeros(len(x), np.float32), batch_size=FLOW_BATCH, seed=0)  # type: ignore[attr-defined]
    adapter = PyDatasetAdapter(flow)

    def run() -> None:
        for _ in adapter.get_numpy_iterator():
            pass
        adapter.on_epoch_end()

    return run, lambda: None


def keras_flow(x: np.ndarray, procs: int, input: str = "float32", fill_mode: str = "reflect") -> Runner:
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    return _flow(ImageDataGenerator(**FLOW_OPTIONS, fill_mode=fill_mode), x.astype(input))


def augpipe_flow(x: np.ndarray, procs: int, input: str = "float32", fill_mode: str = "reflect") -> Runner:
    from pipeline import ImageDataGenerator

    return _flow(ImageDataGenerator(**FLOW_OPTIONS, fill_mode=fill_mode), x.astype(input))


def augpipe_flow_threads(
    x: np.ndarray, procs: int, input: str = "float32", fill_mode: str = "reflect"
) -> Runner:
    return augpipe_flow(x, procs, input, fill_mode)


# ---- one measurement, in its own interpreter ----------------------------------------------------------
def measure(spec: dict) -> dict:
    """Warm up, then time ``repeats`` runs of the same number of passes over the set: the first timing
    fixes that number as the fewest passes lasting at least ``seconds``."""
    if spec["procs"] == 1 and not spec["contender"].endswith("_threads"):
        cv2.setNumThreads(1)  # one process means one core: no OpenCV worker threads
    x, _ = load_images(spec["size"], spec["images"], Path(spec["mnist"]))
    run, close = globals()[spec["contender"]](x, spec["procs"], **spec.get("args", {}))
    try:
        run()  # warm-up: pools, tracing, caches, page faults
        cpu, start, passes = time.process_time(), time.perf_counter(), 0
        while time.perf_counter() - start < spec["seconds"]:
            run()
            passes += 1
        timings = [(time.perf_counter() - start, time.process_time() - cpu)]
        for _ in range(spec["repeats"] - 1):
            cpu, start = time.process_time(), time.perf_counter()
            for _ in range(passes):
                run()
            timings.append((time.perf_counter() - start, time.process_time() - cpu))
    finally:
        close()
    rates = [passes * len(x) / wall for wall, _ in timings]
    return {
        "best": max(rates),
        "median": statistics.median(rates),
        "rates": rates,
        "passes": passes,
        "images_per_measurement": passes * len(x),
        "cores_this_process": statistics.median(cpu / wall for wall, cpu in timings),
    }


def run_isolated(spec: dict) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(spec)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"measurement {spec} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- report ------------------------------------------------------------------------------------------
def machine() -> dict:
    def ver(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    cpuinfo = Path("/proc/cpuinfo")
    models = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln]
    return {
        "cpu": models[0] if models else platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scipy": ver("scipy"),
        "tensorflow": ver("tensorflow-cpu"),
        "keras": ver("keras"),
        "albumentations": ver("albumentations"),
    }


def fmt(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def best(results: dict, name: str, procs: int) -> float | None:
    return results.get(name, {}).get(str(procs), {}).get("best")


def print_table(results: dict) -> None:
    rows = [("contender", "1 proc img/s", "2 proc img/s", "2/1", "1p cores", "augpipe x 1p", "augpipe x 2p")]
    for name, r in results.items():
        one, two = best(results, name, 1), best(results, name, 2)
        ours = [best(results, "augpipe", p) for p in (1, 2)]
        ratios = [fmt(o and t and o / t, ".1f", "x") for o, t in zip(ours, (one, two), strict=True)]
        if name.startswith("augpipe"):
            ratios = ["", ""]
        cores = fmt(r.get("1", {}).get("cores_this_process"), ".2f")
        scaling = fmt(one and two and two / one, ".2f", "x")
        rows.append((TITLES[name], fmt(one), fmt(two), scaling, cores, *ratios))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rows.insert(1, tuple("-" * w for w in widths))
    for row in rows:
        cells = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        print("  " + "  ".join([row[0].ljust(widths[0]), *cells]))
    for name, r in results.items():
        for procs, m in r.items():
            images = m["images_per_measurement"]
            print(f"    {name} {procs} proc: median {m['median']:,.0f} img/s, {images} images per timing")


def checks(results: dict) -> list[dict]:
    """The targets: augpipe in one process against ImageDataGenerator, and its scaling to two workers."""
    out = []
    for size, target in ((224, 15.0), (28, 10.0)):
        table = results.get(str(size), {})
        for name, how in (("augpipe", "one core"), ("augpipe_threads", "OpenCV threads on")):
            ours, keras_ = best(table, name, 1), best(table, "keras", 1)
            out.append({
                "check": f"augpipe 1 process ({how}) >= {target:g}x Keras ImageDataGenerator at {size}x{size}",  # noqa: E501
                "figure": ours and keras_ and ours / keras_, "target": target,
                "detail": f"{fmt(ours)} vs {fmt(keras_)} img/s",
            })  # fmt: skip
    for size in (224, 28):
        one, two = (best(results.get(str(size), {}), "augpipe", p) for p in (1, 2))
        out.append({
            "check": f"augpipe 2 workers >= 1.7x 1 worker at {size}x{size}",
            "figure": one and two and two / one, "target": 1.7, "detail": f"{fmt(two)} vs {fmt(one)} img/s",
        })  # fmt: skip
    for c in out:
        c["status"] = "SKIP" if c["figure"] is None else "PASS" if c["figure"] >= c["target"] else "FAIL"
    return out


def flow_table(table: dict) -> None:
    """One size's flow figures: img/s per fill mode and input, with the ratios the targets are on."""
    for mode, by_name in table.items():
        keras_ = best_flow(table, mode, "keras_flow", "float32")
        print(f"  fill_mode={mode}:")
        for name, by_input in by_name.items():
            for input, m in by_input.items():
                ratio = "" if name == "keras_flow" or not keras_ else f"  {m['best'] / keras_:5.1f}x Keras"
                ours_u8 = best_flow(table, mode, name, "uint8") or best_flow(
                    table, mode, "augpipe_flow", "uint8"
                )
                vs_u8 = f"  {m['best'] / ours_u8:5.2f} of uint8" if name != "keras_flow" and ours_u8 else ""
                print(f"    {FLOW_TITLES[name]:34} {input:8} {m['best']:10,.0f} img/s{ratio}{vs_u8}")


def best_flow(table: dict, mode: str, name: str, input: str) -> float | None:
    return table.get(mode, {}).get(name, {}).get(input, {}).get("best")


def flow_checks(results: dict) -> list[dict]:
    """The targets: float input within 25% of uint8, and each input >= 15x Keras at 224, 10x at 28."""
    out = []
    for size, target in ((224, 15.0), (28, 10.0)):
        for mode, _ in results.get(str(size), {}).items():
            table = results[str(size)]
            keras_ = best_flow(table, mode, "keras_flow", "float32")
            u8 = best_flow(table, mode, "augpipe_flow", "uint8")
            measured = [("augpipe_flow", i) for i in FLOW_INPUTS["augpipe_flow"]]
            measured += [("augpipe_flow_threads", i) for i in FLOW_INPUTS["augpipe_flow_threads"]]
            for name, input in measured:
                ours = best_flow(table, mode, name, input)
                how = "one core" if name == "augpipe_flow" else "OpenCV threads on"
                out.append({
                    "check": f"{size}x{size} {mode}: augpipe {input} ({how}) >= {target:g}x Keras float32",
                    "figure": ours and keras_ and ours / keras_, "target": target,
                    "detail": f"{fmt(ours)} vs {fmt(keras_)} img/s",
                })  # fmt: skip
                if name == "augpipe_flow" and input != "uint8":
                    out.append({
                        "check": f"{size}x{size} {mode}: augpipe {input} >= 0.75x augpipe uint8 (within 25%)",
                        "figure": ours and u8 and ours / u8, "target": 0.75,
                        "detail": f"{fmt(ours)} vs {fmt(u8)} img/s",
                    })  # fmt: skip
    for c in out:
        c["status"] = "SKIP" if c["figure"] is None else "PASS" if c["figure"] >= c["target"] else "FAIL"
    return out


def print_checks(verdicts: list[dict]) -> None:
    print("\ntarget checks:")
    for c in verdicts:
        print(f"  {c['status']:4}  {c['check']}: {fmt(c['figure'], '.2f', 'x')} ({c['detail']})")


def engine_section(
    args: argparse.Namespace, only: list[str], seconds: float, repeats: int, info: dict
) -> None:
    counts = {28: 2048, 224: 128} if args.quick else {28: 8192, 224: 512}
    print(f"options (ImageDataGenerator names): {OPTIONS}")
    print(
        f"method: batches of {BATCH}, float32 out; one warm-up pass excluded; figure = best of {repeats} "
        f"timings (median also shown) of the same number of passes over the set, each >= {seconds:g} s; "
        "each measurement in a fresh interpreter; 1 process = cv2.setNumThreads(1), one core."
    )
    for name in only:
        print(f"  {name}: {NOTES[name]}")
    results: dict = {}
    for size in args.sizes:
        print(f"\n{size}x{size}: {load_images(size, counts[size], args.mnist)[1]}")
        table = results[str(size)] = {}
        for name in only:
            for procs in (1,) if name == "augpipe_threads" else (1, 2):
                spec = {"contender": name, "procs": procs, "size": size, "images": counts[size],
                        "seconds": seconds, "repeats": repeats, "mnist": str(args.mnist)}  # fmt: skip
                m = table.setdefault(name, {})[str(procs)] = run_isolated(spec)
                print(f"  {name:15} {procs} proc {m['best']:10,.0f} img/s", flush=True)
        print()
        print_table(table)
    verdicts = checks(results)
    print_checks(verdicts)
    settings = {"batch": BATCH, "seconds": seconds, "repeats": repeats, "images": counts}
    record = {"options": OPTIONS, "settings": settings, "notes": {name: NOTES[name] for name in only}}
    write("engine", args.quick, info, {**record, "results": results, "checks": verdicts})


def flow_section(args: argparse.Namespace, seconds: float, repeats: int, info: dict) -> None:
    counts = {28: 2048, 224: 64} if args.quick else {28: 8192, 224: 256}
    print(
        f"\nflow(): every option on (ImageDataGenerator names): {FLOW_OPTIONS}, fill_mode {args.fill_modes}"
    )
    print(
        f"method: flow(x, y, batch_size={FLOW_BATCH}) built once, a pass is one epoch; one warm-up epoch "
        f"excluded; figure = best of {repeats} timings, each >= {seconds:g} s; each in a fresh interpreter."
    )
    for name in FLOW_CONTENDERS:
        print(f"  {name}: {FLOW_NOTES[name]}")
    results: dict = {}
    for size in args.sizes:
        print(f"\n{size}x{size}: {load_images(size, counts[size], args.mnist)[1]}")
        table = results[str(size)] = {}
        for mode in args.fill_modes:
            for name in FLOW_CONTENDERS:
                for input in FLOW_INPUTS[name]:
                    spec = {"contender": name, "procs": 1, "size": size, "images": counts[size],
                            "seconds": seconds, "repeats": repeats, "mnist": str(args.mnist),
                            "args": {"input": input, "fill_mode": mode}}  # fmt: skip
                    m = table.setdefault(mode, {}).setdefault(name, {})[input] = run_isolated(spec)
                    print(f"  {mode:8} {name:20} {input:8} {m['best']:10,.0f} img/s", flush=True)
        print()
        flow_table(table)
    verdicts = flow_checks(results)
    print_checks(verdicts)
    settings = {"batch": FLOW_BATCH, "seconds": seconds, "repeats": repeats, "images": counts,
                "fill_modes": list(args.fill_modes)}  # fmt: skip
    record = {"options": FLOW_OPTIONS, "settings": settings, "notes": FLOW_NOTES}
    write("flow", args.quick, info, {**record, "results": results, "checks": verdicts})


def write(section: str, quick: bool, info: dict, record: dict) -> None:
    """Record ``section`` (options, settings, notes, results, checks) in :data:`RESULTS`, keeping
    the other sections' last records; a quick run records nothing."""
    if quick:
        print(f"\nquick run: the {section} section is not recorded in {RESULTS.relative_to(ROOT)}")
        return
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    records = {name: previous[name] for name in SECTIONS if name in previous}
    records[section] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "machine": info,
        **record,
    }
    checks = [{"section": name, **c} for name in SECTIONS if name in records for c in records[name]["checks"]]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**records, "checks": checks}, indent=2) + "\n")
    print(f"\nwrote the {section} section of {RESULTS.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sets, short timings: a smoke run")
    parser.add_argument("--sizes", type=int, nargs="+", choices=(28, 224), default=[28, 224])
    parser.add_argument("--sections", default="engine,flow", help="engine, flow or both (default)")
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help=f"engine section: any of {','.join(CONTENDERS)}"
    )
    parser.add_argument("--fill-modes", nargs="+", choices=FLOW_FILL_MODES, default=list(FLOW_FILL_MODES))
    parser.add_argument("--seconds", type=float, help="minimum seconds per timing (default 3; quick 0.3)")
    parser.add_argument("--repeats", type=int, help="timings per figure (default 3; quick 2)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement, JSON out
    _mnist.add_option(parser)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))))
        return
    if 28 in args.sizes:
        _mnist.require(
            args.mnist, (_mnist.TRAIN_IMAGES,), hint=", or run --sizes 224 alone, which needs none"
        )
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    if unknown := set(only) - set(CONTENDERS):
        parser.error(f"--only accepts {', '.join(CONTENDERS)}, but got {', '.join(sorted(unknown))}")
    sections = [c.strip() for c in args.sections.split(",") if c.strip()]
    if unknown := set(sections) - {"engine", "flow"}:
        parser.error(f"--sections accepts engine, flow, but got {', '.join(sorted(unknown))}")
    seconds = args.seconds or (0.3 if args.quick else 3.0)
    repeats = args.repeats or (2 if args.quick else 3)

    info = machine()
    print(f"augpipe augmentation benchmark, {datetime.now().isoformat(timespec='seconds')}")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    if "engine" in sections:
        engine_section(args, only, seconds, repeats, info)
    if "flow" in sections:
        flow_section(args, seconds, repeats, info)


if __name__ == "__main__":
    main()
