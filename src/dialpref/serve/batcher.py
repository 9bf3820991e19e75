"""Dynamic batching: concurrent requests share one model call.

One worker runs the model in a single thread (the runtime's own threads do the maths). While it runs,
new requests queue; the next call takes everything queued, up to `max_batch` windows. When a batch
already has company it waits at most `max_wait_ms` for more; a lone request never waits, so the latency
at concurrency 1 is the model's own.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np


class MicroBatcher:
    def __init__(self, predict_proba: Callable[[Sequence], np.ndarray], max_batch: int = 32,
                 max_wait_ms: float = 2.0, on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_ms >= 0")
        self.predict_proba, self.max_batch, self.max_wait = predict_proba, max_batch, max_wait_ms / 1000
        self.on_batch = on_batch
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dialpref-model")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def classify(self, windows: Sequence) -> np.ndarray:
        """Probabilities [len(windows), C], computed in some batch with other requests' windows."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((list(windows), future))
        return await future

    async def _gather(self) -> list:
        items = [await self._queue.get()]
        size = len(items[0][0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while size < self.max_batch:
            if not self._queue.empty():
                item = self._queue.get_nowait()
            elif len(items) > 1 and loop.time() < deadline:
                try:
                    item = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
                except TimeoutError:
                    break
            else:
                break
            items.append(item)
            size += len(item[0])
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            items = [(w, f) for w, f in items if not f.done()]  # a client that left needs no answer
            windows = [w for ws, _ in items for w in ws]
            if not windows:
                continue
            try:
                probs = await loop.run_in_executor(self._executor, self._predict, windows)
            except Exception as err:  # noqa: BLE001 - the requests of this batch get the error, the server goes on
                for _, future in items:
                    if not future.done():
                        future.set_exception(err)
                continue
            start = 0
            for ws, future in items:
                if not future.done():
                    future.set_result(probs[start:start + len(ws)])
                start += len(ws)

    def _predict(self, windows: list) -> np.ndarray:
        if self.on_batch is not None:
            self.on_batch(len(windows))
        return self.predict_proba(windows, batch_size=max(self.max_batch, 1))
