"""Augment across worker processes, with the same bytes as one process.

Each sample's parameters depend only on (seed, epoch, index), so splitting the work into chunks
across processes cannot change the result. Images and results travel through memory-mapped files
(in /dev/shm where it exists), not through pickles.

>>> with AugmentPool(Augmenter(cfg), workers=2) as pool:     # a whole array at once
...     batch = pool.map(images, epoch=0, seed=42)
>>> with BatchFeeder(Augmenter(cfg), images, labels, batch_size=64, workers=2) as feeder:
...     for x, y, rows in feeder.epoch(0, seed=42):             # training batches, made ahead
...         model.train_on_batch(x, y)
"""

from __future__ import annotations

import math
import multiprocessing.context
import multiprocessing.pool
import os
import tempfile
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from pipeline.augment import Augmenter
from pipeline.params import epoch_order
from pipeline.processes import worker_context


class SharedArray(NamedTuple):
    """An array in a file that worker processes map rather than receive: where, and how to read it."""

    path: str
    dtype: str  # numpy's dtype.str, e.g. "|u1"
    shape: tuple[int, ...]
    offset: int = 0  # in bytes, of its first element in the file

    def open(self, mode: Literal["r", "r+", "w+"]) -> np.memmap:
        return np.memmap(self.path, dtype=self.dtype, mode=mode, offset=self.offset, shape=self.shape)


class MapJob(NamedTuple):
    """What AugmentPool.map sends with each chunk: images (N, H, W, C), the result buffer, the keys."""

    src: SharedArray
    dst: SharedArray
    epoch: int
    seed: int


class FeedJob(NamedTuple):
    """What a BatchFeeder sends with each batch: its slots of images and of results, each (slots,
    batch_size, H, W, C), and the seed; the epoch comes with each batch."""

    src: SharedArray
    dst: SharedArray
    seed: int


class _Worker:
    """What a worker process keeps between jobs: its engine, and its mappings of the shared files."""

    def __init__(self, augmenter: Augmenter):
        self.augmenter = augmenter
        self.maps: dict[tuple[SharedArray, SharedArray], tuple[np.memmap, np.memmap]] = {}
        # The slots of the feeder this pool serves (one feeder per pool), by its images' file.
        self.feed: tuple[SharedArray, np.memmap, np.memmap] | None = None


_worker: _Worker  # set in each worker process by _init_worker


def _shared_dir() -> str:
    return (
        "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    )


def _init_worker(augmenter: Augmenter) -> None:
    global _worker
    import cv2

    cv2.setNumThreads(1)  # one core per process: OpenCV's own threads would oversubscribe
    _worker = _Worker(augmenter)


def _open(job: MapJob) -> tuple[np.memmap, np.memmap]:
    maps = _worker.maps
    key = (job.src, job.dst)
    if key not in maps:
        if len(maps) >= 4:  # a few recycled result buffers alternate; keep their mappings warm
            maps.pop(next(iter(maps)))
        maps[key] = (job.src.open("r"), job.dst.open("r+"))
    return maps[key]


def _run_chunk(job: MapJob, start: int, stop: int, indices: np.ndarray) -> tuple[int, int]:
    src, dst = _open(job)
    batch, _ = _worker.augmenter.augment_batch(
        np.asarray(src[start:stop]), indices, epoch=job.epoch, seed=job.seed
    )
    dst[start:stop] = batch
    return start, stop


def _augment_slot(job: FeedJob, slot: int, n: int, indices: np.ndarray, epoch: int) -> None:
    if _worker.feed is None or _worker.feed[0] != job.src:
        _worker.feed = (job.src, job.src.open("r"), job.dst.open("r+"))
    _, src, dst = _worker.feed
    batch, _ = _worker.augmenter.augment_batch(np.asarray(src[slot, :n]), indices, epoch=epoch, seed=job.seed)
    dst[slot, :n] = batch


def _file_offset(view: np.memmap) -> int:
    """Byte offset in its file of a (possibly sliced) memmap's first element."""
    root = view
    while isinstance(root.base, np.memmap):
        root = root.base
    address = view.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return int(root.offset) + int(address)


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
        self._pool: multiprocessing.pool.Pool | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._src: np.memmap | None = None
        self._free: dict[tuple[tuple[int, ...], str], list[str]] = {}
        self._made = 0
        if workers > 1:
            self._pool = _start_pool(augmenter, workers, start_method)
            self._tmp = tempfile.TemporaryDirectory(dir=_shared_dir(), prefix="augpipe-")

    def map(
        self,
        images: np.ndarray,
        indices: Sequence[int] | np.ndarray | None = None,
        epoch: int = 0,
        seed: int = 0,
        chunk_size: int | None = None,
    ) -> np.ndarray:
        """Augment every image of ``images`` (N, H, W, C) as sample ``indices[i]`` of ``epoch``.

        ``chunk_size`` images go to a worker at a time (default: about 8 chunks per worker).
        """
        if not isinstance(images, np.ndarray):  # keep np.memmap: workers then read its file directly
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
            step = chunk_size or 64
            for start in range(0, n, step):
                batch, _ = self.augmenter.augment_batch(
                    images[start : start + step], idx[start : start + step], epoch, seed
                )
                if out is None:
                    out = np.empty((n, *batch.shape[1:]), batch.dtype)
                out[start : start + len(batch)] = batch
            assert out is not None
            return out
        assert self._tmp is not None
        src_path, src_offset = self._share_input(images)
        probe, _ = self.augmenter.augment_batch(images[:1], idx[:1], epoch, seed)
        dst_shape = (n, *probe.shape[1:])
        dst = self._shared_output(dst_shape, probe.dtype)
        job = MapJob(
            SharedArray(src_path, images.dtype.str, images.shape, src_offset),
            SharedArray(str(dst.filename), probe.dtype.str, dst_shape),
            epoch,
            seed,
        )
        step = chunk_size or max(8, math.ceil(n / (self.workers * 8)))
        chunks = [(job, s, min(s + step, n), idx[s : s + step]) for s in range(0, n, step)]
        self._pool.starmap(_run_chunk, chunks, chunksize=1)
        return dst.view(np.ndarray)

    def _shared_output(self, shape: tuple[int, ...], dtype: np.dtype) -> np.memmap:
        """A result buffer the workers write and the caller then owns.

        First touches of shared memory cost several times more than of private memory (no huge
        pages), so buffers are recycled: when the caller drops a result, its file goes back to a
        free list and the next call of the same shape writes into pages already mapped.
        """
        assert self._tmp is not None
        key = (shape, np.dtype(dtype).str)
        free = self._free.setdefault(key, [])
        if free:
            path = free.pop()
        else:
            self._made += 1
            path = str(Path(self._tmp.name) / f"out-{self._made}")
        buf = np.memmap(path, dtype=dtype, mode="r+" if os.path.exists(path) else "w+", shape=shape)
        weakref.finalize(buf, free.append, path)
        return buf

    def _share_input(self, images: np.ndarray) -> tuple[str, int]:
        """Where workers read the images: the caller's own file when ``images`` is a memmap (no
        copy), else a shared buffer reused while the shape and dtype stay the same."""
        if isinstance(images, np.memmap) and images.filename and images.flags.c_contiguous:
            return str(images.filename), _file_offset(images)
        assert self._tmp is not None
        if self._src is None or self._src.shape != images.shape or self._src.dtype != images.dtype:
            path = str(Path(self._tmp.name) / "src")
            self._src = np.memmap(path, dtype=images.dtype, mode="w+", shape=images.shape)
        self._src[:] = images
        return str(self._src.filename), 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
        self._src = None
        self._free.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> AugmentPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _start_pool(augmenter: Augmenter, workers: int, start_method: str | None) -> multiprocessing.pool.Pool:
    return worker_context(start_method).Pool(workers, initializer=_init_worker, initargs=(augmenter,))


class BatchFeeder:
    """Augmented training batches, epoch after epoch, made ahead of use by worker processes.

    Sample ``i`` of the images (its row) is augmented with key (seed, epoch, i), whichever batch it
    lands in, so batches are the same bytes with any number of workers. Each batch is gathered into
    one of ``prefetch`` shared slots, a worker augments it in place, and the caller receives a copy
    while the workers already make the next ones. ``workers=0`` augments in the calling process.

    images: anything indexable by an array of rows giving (n, H, W, C), e.g. a memmap or the
    ``ShardedImages`` of a prepared dataset.
    """

    def __init__(
        self,
        augmenter: Augmenter,
        images: Any,
        labels: np.ndarray,
        batch_size: int,
        workers: int = 2,
        prefetch: int = 4,
        shuffle: bool = True,
        start_method: str | None = None,
    ):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise ValueError("BatchFeeder received no images")
        if batch_size < 1 or workers < 0 or prefetch < 1:
            raise ValueError(
                f"batch_size and prefetch must be >= 1 and workers >= 0, but got {batch_size}, "
                f"{prefetch} and {workers}"
            )
        self.augmenter = augmenter
        self.images = images
        self.labels = np.asarray(labels)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.workers = workers
        self._slots = max(prefetch, workers)
        self._pool: multiprocessing.pool.Pool | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workers:
            self._pool = _start_pool(augmenter, workers, start_method)
            self._tmp = tempfile.TemporaryDirectory(dir=_shared_dir(), prefix="augpipe-feed-")
            first = np.asarray(images[np.arange(1)])
            probe, _ = augmenter.augment_batch(first, [0])
            shape = (self._slots, batch_size, *first.shape[1:])
            out_shape = (self._slots, batch_size, *probe.shape[1:])
            folder = Path(self._tmp.name)
            self._job = FeedJob(
                SharedArray(str(folder / "in"), first.dtype.str, shape),
                SharedArray(str(folder / "out"), probe.dtype.str, out_shape),
                seed=0,
            )
            self._in = self._job.src.open("w+")
            self._out = self._job.dst.open("w+")

    def __len__(self) -> int:
        """Batches per epoch."""
        return math.ceil(len(self.labels) / self.batch_size)

    def epoch(self, epoch: int, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The batches ``(images, labels, rows)`` of one epoch, in the order (seed, epoch) shuffles."""
        order = epoch_order(len(self.labels), self.shuffle, seed, epoch)
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        if self._pool is None:
            for rows in batches:
                x, _ = self.augmenter.augment_batch(self.images[rows], rows, epoch=epoch, seed=seed)
                yield x, self.labels[rows], rows
            return
        pool, job = self._pool, self._job._replace(seed=seed)
        pending: deque[tuple[int, np.ndarray, multiprocessing.pool.AsyncResult[None]]] = deque()

        def submit(b: int) -> None:
            rows, slot = batches[b], b % self._slots
            self._in[slot, : len(rows)] = self.images[rows]
            pending.append((slot, rows, pool.apply_async(_augment_slot, (job, slot, len(rows), rows, epoch))))

        try:
            for b in range(min(self._slots, len(batches))):
                submit(b)
            for b in range(len(batches)):
                slot, rows, result = pending.popleft()
                result.get()
                x = np.array(self._out[slot, : len(rows)])
                if b + self._slots < len(batches):
                    submit(b + self._slots)
                yield x, self.labels[rows], rows
        finally:
            # An epoch left early must not leave workers writing into slots the next one reuses.
            for _, _, result in pending:
                result.wait()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        if self._tmp is not None:
            self._in = self._out = None  # type: ignore[assignment]
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> BatchFeeder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
