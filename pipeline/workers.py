"""Augment a whole array across worker processes, with the same bytes as one process.

Each sample's parameters depend only on (seed, epoch, index), so splitting the work into chunks
across processes cannot change the result. Images and results travel through memory-mapped files
(in /dev/shm where it exists), not through pickles.

>>> with AugmentPool(Augmenter(cfg), workers=2) as pool:
...     batch = pool.map(images, epoch=0, seed=42)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.augment import Augmenter

_state: dict[str, Any] = {}


def _shared_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def _init_worker(augmenter: Augmenter) -> None:
    import cv2

    cv2.setNumThreads(1)  # one core per process: OpenCV's own threads would oversubscribe
    _state["augmenter"] = augmenter
    _state["maps"] = {}


def _open(job: dict[str, Any]) -> tuple[np.memmap, np.memmap]:
    maps = _state.setdefault("maps", {})
    if job["src"] not in maps:
        maps.clear()  # one job at a time: drop the previous job's files
        maps[job["src"]] = (
            np.memmap(job["src"], dtype=job["src_dtype"], mode="r", shape=job["src_shape"]),
            np.memmap(job["dst"], dtype=job["dst_dtype"], mode="r+", shape=job["dst_shape"]),
        )
    return maps[job["src"]]


def _run_chunk(job: dict[str, Any], start: int, stop: int, indices: np.ndarray) -> None:
    src, dst = _open(job)
    batch, _ = _state["augmenter"].augment_batch(
        np.asarray(src[start:stop]), indices, epoch=job["epoch"], seed=job["seed"]
    )
    dst[start:stop] = batch


class AugmentPool:
    """A pool of worker processes that augments arrays with an :class:`Augmenter`.

    ``workers=1`` runs in the calling process. The pool starts once and serves many ``map`` calls
    (one per epoch, typically); close it, or use it as a context manager.
    """

    def __init__(self, augmenter: Augmenter, workers: int | None = None, start_method: str | None = None):
        if workers is None:
            workers = os.cpu_count() or 1
        if workers < 1:
            raise ValueError(f"workers must be >= 1, but got {workers}")
        self.augmenter = augmenter
        self.workers = workers
        self._pool = None
        if workers > 1:
            method = start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            ctx = mp.get_context(method)
            self._pool = ctx.Pool(workers, initializer=_init_worker, initargs=(augmenter,))

    def map(
        self,
        images: np.ndarray,
        indices: Sequence[int] | np.ndarray | None = None,
        epoch: int = 0,
        seed: int = 0,
        chunk_size: int = 64,
    ) -> np.ndarray:
        """Augment every image of ``images`` (N, H, W, C) as sample ``indices[i]`` of ``epoch``."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        n = len(images)
        idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if idx.shape != (n,):
            raise ValueError(f"indices must give one index per image ({n}), but got shape {idx.shape}")
        if n == 0:
            raise ValueError("map received no images")
        if self._pool is None:
            out = None
            for start in range(0, n, chunk_size):
                batch, _ = self.augmenter.augment_batch(
                    images[start : start + chunk_size], idx[start : start + chunk_size], epoch, seed
                )
                if out is None:
                    out = np.empty((n, *batch.shape[1:]), batch.dtype)
                out[start : start + len(batch)] = batch
            assert out is not None
            return out
        probe, _ = self.augmenter.augment_batch(images[:1], idx[:1], epoch, seed)
        with tempfile.TemporaryDirectory(dir=_shared_dir(), prefix="augpipe-") as tmp:
            src_path, dst_path = str(Path(tmp) / "src"), str(Path(tmp) / "dst")
            src = np.memmap(src_path, dtype=images.dtype, mode="w+", shape=images.shape)
            src[:] = images
            src.flush()
            dst_shape = (n, *probe.shape[1:])
            dst = np.memmap(dst_path, dtype=probe.dtype, mode="w+", shape=dst_shape)
            job = {
                "src": src_path, "src_dtype": images.dtype.str, "src_shape": images.shape,
                "dst": dst_path, "dst_dtype": probe.dtype.str, "dst_shape": dst_shape,
                "epoch": epoch, "seed": seed,
            }  # fmt: skip
            chunks = [(job, s, min(s + chunk_size, n), idx[s : s + chunk_size]) for s in range(0, n, chunk_size)]
            self._pool.starmap(_run_chunk, chunks, chunksize=1)
            out = np.array(dst)
            del src, dst
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> AugmentPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
