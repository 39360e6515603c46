"""Where a run's chunks are decoded: in this process, on worker processes beside it, or on a Dask
cluster; every way gives the same records."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

from pipeline.prepare.chunks import ChunkOptions, decode_chunk
from pipeline.prepare.records import ChunkRecord, Item, RunDirs
from pipeline.processes import worker_context

ChunkCallback = Callable[[int, int], None]  # (chunks decoded, chunks in all)


@contextmanager
def decoding_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """Processes for decode_chunk (give it ChunkOptions), forked by a fork server that has imported
    the decoders: forking this process could deadlock, as numpy and OpenCV start threads at import.
    On an error (a failed chunk, SIGTERM, Ctrl-C) the chunks not started are dropped, not decoded."""
    ctx = worker_context(preload=[decode_chunk.__module__])  # a script without a main guard: one error
    pool = ProcessPoolExecutor(workers, mp_context=ctx)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # a chunk being decoded takes under a second
        raise
    pool.shutdown(wait=True)


class _Progress:
    """Counts decoded chunks and passes (done, total) to ``on_chunk``, from whichever thread."""

    def __init__(self, total: int, on_chunk: ChunkCallback | None):
        self.total, self.done, self.on_chunk = total, 0, on_chunk
        self._lock = threading.Lock()

    def add(self, *_: object) -> None:
        with self._lock:
            self.done += 1
            if self.on_chunk is not None:
                self.on_chunk(self.done, self.total)


def decode_here(
    options: ChunkOptions, chunks: list[list[Item]], run: RunDirs, on_chunk: ChunkCallback | None
) -> list[ChunkRecord]:
    """Every chunk, one after another, in this process."""
    progress = _Progress(len(chunks), on_chunk)
    records = []
    for i, chunk in enumerate(chunks):
        records.append(decode_chunk(options, chunk, run.staging, i))
        progress.add()
    return records


def decode_on_processes(
    options: ChunkOptions,
    chunks: list[list[Item]],
    run: RunDirs,
    workers: int,
    on_chunk: ChunkCallback | None,
) -> list[ChunkRecord]:
    """The chunks on ``workers`` worker processes and this one, which takes chunks from the back."""
    with decoding_pool(workers) as pool:
        # Starting a worker waits for the fork server to import the decoders: that wait goes to a
        # thread, so that this process starts decoding meanwhile.
        starter = threading.Thread(target=lambda: [pool.submit(int) for _ in range(workers)])
        starter.start()
        try:
            progress = _Progress(len(chunks), on_chunk)
            # This process decodes chunks from the back: while the workers start (up to its share of
            # them), and then those that no worker has taken yet, rather than only wait.
            done_here: dict[int, ChunkRecord] = {}
            queued = len(chunks)
            while len(done_here) < len(chunks) // (workers + 1) and starter.is_alive():
                queued -= 1
                done_here[queued] = decode_chunk(options, chunks[queued], run.staging, queued)
                progress.add()
        finally:
            starter.join()
        futures = {
            i: pool.submit(decode_chunk, options, chunk, run.staging, i)
            for i, chunk in enumerate(chunks[:queued])
        }
        for i in reversed(range(queued)):
            if futures[i].cancel():
                done_here[i] = decode_chunk(options, chunks[i], run.staging, i)
                progress.add()
            else:
                futures[i].add_done_callback(progress.add)
        return [done_here.get(i) or futures[i].result() for i in range(len(chunks))]


def decode_on_dask(
    options: ChunkOptions,
    chunks: list[list[Item]],
    run: RunDirs,
    address: str,
    on_chunk: ChunkCallback | None,
) -> list[ChunkRecord]:
    """The chunks on the Dask cluster at ``address``, whose workers see the source and ``out`` at the
    same paths as this process."""
    from distributed import Client

    progress = _Progress(len(chunks), on_chunk)
    with Client(address, set_as_default=False) as client:
        futures = [
            client.submit(decode_chunk, options, chunk, run.staging, i, pure=False)
            for i, chunk in enumerate(chunks)
        ]
        for future in futures:
            future.add_done_callback(progress.add)  # called on the client's thread
        try:
            records: list[ChunkRecord] = client.gather(futures)
            return records
        except BaseException:
            client.cancel(futures)
            raise
