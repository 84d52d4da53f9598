"""Where back halves run: one worker thread — the edge is one processor, requests queue for it —
so the event loop keeps reading, refusing and answering while a model runs; decompression and
dequantisation on a second thread. Concurrent requests for the same (model, cut, exit) may be
batched within a window: one forward, each request its slice."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from coinfer.dtypes import from_numpy
from coinfer.edge.stats import ServerStats
from coinfer.edge.store import ModelStore
from coinfer.graph.outputs import output_tensors
from coinfer.wire.protocol import ErrorCode, ProtocolError
from coinfer.wire.tensors import WireTensor, decode

Key = tuple[str, int, int | None]  # model, cut, exit


class Outcome(NamedTuple):
    """A back half's run for one request: its outputs, the run's seconds, when it started
    (``time.perf_counter``) and the request's share of the forward (1 / the batch's size)."""

    outputs: list[torch.Tensor]
    compute_s: float
    started: float
    share: float = 1.0


@dataclass
class _Pending:
    tensors: list[torch.Tensor]
    future: asyncio.Future[Outcome]


class Compute:
    """``await run(key, tensors)``: the back half's outputs and compute time; ``await
    decode(wires, payload)``: the request's tensors (views of the receive buffer where nothing
    needs decoding)."""

    def __init__(self, store: ModelStore, stats: ServerStats, batch_window_s: float = 0.0) -> None:
        self.store = store
        self.stats = stats
        self.batch_window_s = batch_window_s
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge")
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self._pending: dict[Key, list[_Pending]] = {}

    async def decode(
        self, wires: list[WireTensor], payload: bytes | bytearray
    ) -> list[torch.Tensor]:
        if any(w.needs_work for w in wires):  # decompress/dequantise off the event loop
            loop = asyncio.get_running_loop()
            arrays = await loop.run_in_executor(self._decoder, decode, wires, payload)
        else:
            arrays = decode(wires, payload)  # views of the receive buffer
        return [from_numpy(a) for a in arrays]

    def background(self, work: Any) -> None:
        """Housekeeping off the event loop (giving memory back)."""
        self._decoder.submit(work)

    async def run(self, key: Key, tensors: list[torch.Tensor]) -> Outcome:
        loop = asyncio.get_running_loop()
        if self.batch_window_s <= 0:
            return await loop.run_in_executor(self._worker, forward, self.store, *key, tensors)
        future: asyncio.Future[Outcome] = loop.create_future()
        queue = self._pending.setdefault(key, [])
        queue.append(_Pending(tensors, future))
        if len(queue) == 1:
            loop.call_later(self.batch_window_s, lambda: asyncio.ensure_future(self._flush(key)))
        return await future

    async def _flush(self, key: Key) -> None:
        batch = self._pending.pop(key, [])
        if not batch:
            return
        self.stats.batches += 1
        self.stats.batched_requests += len(batch)
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(
                self._worker, forward_batch, self.store, *key, [p.tensors for p in batch]
            )
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, ProtocolError)
                else ProtocolError(ErrorCode.INTERNAL, f"the back half raised: {exc}")
            )
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(error)
            return
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)

    def shutdown(self) -> None:
        self._worker.shutdown(wait=True)
        self._decoder.shutdown(wait=True)


def forward(
    store: ModelStore, model: str, cut: int, exit: int | None, tensors: list[torch.Tensor]
) -> Outcome:
    """Run one request's back half; its outputs and compute time."""
    module = store.back(model, cut, exit)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            out = output_tensors(module(*tensors))
    except Exception as exc:  # the back half raised, or returned something not tensors
        raise ProtocolError(ErrorCode.INTERNAL, f"the back half raised: {exc}") from None
    return Outcome(out, time.perf_counter() - start, start)


def forward_batch(
    store: ModelStore,
    model: str,
    cut: int,
    exit: int | None,
    requests: list[list[torch.Tensor]],
) -> list[Outcome]:
    """One forward for several requests (stacked on the batch dimension), each getting its
    slice of the outputs and the whole batch's time: what it waited on the edge."""
    if len(requests) == 1:
        return [forward(store, model, cut, exit, requests[0])]
    module = store.back(model, cut, exit)
    start = time.perf_counter()
    stacked = [torch.cat(parts, dim=0) for parts in zip(*requests, strict=True)]
    try:
        with torch.no_grad():
            outputs = output_tensors(module(*stacked))
    except Exception as exc:
        raise ProtocolError(ErrorCode.INTERNAL, f"the back half raised: {exc}") from None
    elapsed = time.perf_counter() - start
    sizes = [r[0].shape[0] for r in requests]
    split = [torch.split(o, sizes, dim=0) for o in outputs]
    share = 1.0 / len(requests)
    return [Outcome([s[i] for s in split], elapsed, start, share) for i in range(len(requests))]
