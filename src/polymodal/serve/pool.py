"""Where the server does its heavy work: a fixed number of worker threads that embed
queries and search (off the event loop, so health probes, thumbnails and new requests
are answered while searches run), a bounded queue in front of them, and single-flight
sharing of identical requests that are in flight at the same time.

- At most ``workers`` jobs run at once; up to ``max_waiting`` more wait their turn; past
  that a request is refused at once (:class:`PoolFull`, a 503 with ``Retry-After``)
  rather than piling up behind the others.
- A request whose key equals that of a job already admitted and not yet finished waits
  for that job and gets its result (or its error): identical concurrent searches are
  embedded and searched once. Nothing is kept once the job finishes: the next request
  runs afresh, so a search sent after an index run sees the new rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: requests that may wait for a worker (beyond those running) before more are refused
MAX_WAITING = 64


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity, where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """The server's default number of query workers: ``min(4, cores)``."""
    return min(4, available_cores())


def torch_threads_for(workers: int, cores: int | None = None) -> int:
    """Torch intra-op threads per worker so that ``workers x threads <= cores``: each
    thread that calls into torch runs its own team of that many threads."""
    return max(1, (cores or available_cores()) // max(1, workers))


def limit_torch_threads(workers: int) -> int:
    """Lower torch's intra-op threads to :func:`torch_threads_for` ``workers`` (never
    raise them); the number now in use. Process-wide: the server's own process calls
    it (:func:`polymodal.serve.app.serve`), an app made in another process does not."""
    import torch

    wanted = torch_threads_for(workers)
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()


class PoolFull(Exception):
    """Every worker is busy and the queue is full; try again in ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"every worker is busy and the queue is full; retry in "
                         f"{retry_after} s")
        self.retry_after = retry_after


class QueryPool:
    """``workers`` threads, at most ``max_waiting`` jobs waiting for one, and (with
    ``dedup``) one job per key in flight. Counters (``admitted``, ``running``,
    ``joined``, ``refused``, ``ran``) are read under :attr:`state`;
    :meth:`wait_until` waits for them to reach a state (for tests and probes)."""

    def __init__(self, workers: int, max_waiting: int = MAX_WAITING, *,
                 dedup: bool = True) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be 0 or more, got {max_waiting}")
        self.workers, self.max_waiting, self.dedup = workers, max_waiting, dedup
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="polymodal-query")
        self.state = threading.Condition()
        self._in_flight: dict[Hashable, Future[Any]] = {}
        self.admitted = 0  # jobs submitted and not finished: running or waiting
        self.running = 0
        self.joined = 0  # requests answered by a job that another request started
        self.refused = 0
        self.ran = 0  # jobs finished
        self._job_s = 0.05  # a moving average of a job's seconds, for Retry-After

    def retry_after(self) -> int:
        """Seconds until a place in the queue is likely free (1 to 60)."""
        ahead = max(1, self.admitted - self.workers + 1)
        return min(60, max(1, math.ceil(self._job_s * ahead / self.workers)))

    def submit(self, key: Hashable | None, fn: Callable[[], T]) -> Future[T]:
        """The future of ``fn()``, or of the job in flight with the same ``key`` (None:
        never shared). Raises :class:`PoolFull` when the pool and its queue are full."""
        with self.state:
            if self.dedup and key is not None and key in self._in_flight:
                self.joined += 1
                self.state.notify_all()
                return self._in_flight[key]
            if self.admitted >= self.workers + self.max_waiting:
                self.refused += 1
                self.state.notify_all()
                raise PoolFull(self.retry_after())
            self.admitted += 1
            future = self._executor.submit(self._job, key, fn)
            if self.dedup and key is not None:
                self._in_flight[key] = future
            self.state.notify_all()
        return future

    def _job(self, key: Hashable | None, fn: Callable[[], T]) -> T:
        with self.state:
            self.running += 1
            self.state.notify_all()
        start = time.perf_counter()
        try:
            return fn()
        finally:
            with self.state:  # before the result is set: no one joins a finished job
                if self.dedup and key is not None:
                    self._in_flight.pop(key, None)
                self._job_s = 0.8 * self._job_s + 0.2 * (time.perf_counter() - start)
                self.admitted -= 1
                self.running -= 1
                self.ran += 1
                self.state.notify_all()

    async def run(self, key: Hashable | None, fn: Callable[[], T]) -> T:
        """``fn()``'s result (or error), computed in the pool or shared with the job in
        flight under ``key``, awaited without blocking the event loop. A request
        that goes away does not cancel a job that others may share."""
        future = self.submit(key, fn)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()

        def settle(done: Future[T]) -> None:
            if waiter.cancelled():
                return
            error = done.exception()
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(done.result())

        def hand_over(done: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: no one waits
                loop.call_soon_threadsafe(settle, done)

        future.add_done_callback(hand_over)
        return await waiter

    def wait_until(self, predicate: Callable[[QueryPool], bool], timeout: float = 30.0
                   ) -> bool:
        """Wait until ``predicate(self)`` holds (checked whenever a counter changes);
        whether it did within ``timeout`` seconds."""
        with self.state:
            return self.state.wait_for(lambda: predicate(self), timeout)

    def stats(self) -> dict[str, int]:
        with self.state:
            return {"workers": self.workers, "max_waiting": self.max_waiting,
                    "admitted": self.admitted, "running": self.running,
                    "joined": self.joined, "refused": self.refused, "ran": self.ran}


__all__ = ["MAX_WAITING", "PoolFull", "QueryPool", "default_workers",
           "limit_torch_threads", "torch_threads_for"]
