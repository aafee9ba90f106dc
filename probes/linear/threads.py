"""CPU thread policy of the probe solvers: bookkeeping on one thread, GEMMs on the thread
count that measures fastest.

OpenMP's fork/join dominates small operations and becomes very expensive when other
processes share the cores, while the large matrix products do gain from a second thread on
idle cores. Which case holds can change while a run lasts, so the products are timed as
they run (:class:`GemmTuner`) instead of being configured once. No effect on CUDA.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["GemmTuner", "Threads", "configured_threads", "cpu_serial"]

#: Products below this many flops always run on one thread (fork/join would dominate).
SMALL_GEMM_FLOPS = 5e7


class GemmTuner:
    """Picks the thread count for large CPU matrix products from their measured speed.

    On idle cores two threads make a GEMM up to twice as fast; when other processes share
    the cores, OpenMP's barriers wait for descheduled threads and one thread is faster
    (measured on a busy 2-core machine: 34 ms vs 54 ms for ``[8000, 1280] @ [1280, 100]``,
    and 7.5 s vs 11.5 s for a whole logistic path). Which case holds can change while a
    run lasts, so every product the solver needs anyway is timed (seconds per flop per thread
    count, see :meth:`record`), the faster count is used, and the other one is
    re-tried every ``explore`` calls. No extra work is done to measure. Exploring costs: a
    logistic path of 77 iterations ran 13 of its 206 products on the slower count (2x) with
    ``explore=16``; a count that turns slow is seen after ``window`` slow products in a row
    (the chosen count is timed on every call), so only the way back needs exploring and it
    can be rare.
    """

    def __init__(self, explore: int = 64, window: int = 4) -> None:
        self.explore = explore
        self.cost: dict[int, float] = {}
        self.calls = 0
        self._recent: dict[int, deque[float]] = {}
        self._window = window

    def choose(self, n_max: int) -> int:
        """Thread count for the next product: an untried option first, then the fastest,
        with the other option re-tried every ``explore`` calls."""
        options = [n_max, 1] if n_max > 1 else [1]
        self.calls += 1
        for opt in options:
            if opt not in self.cost:
                return opt
        best = min(options, key=lambda o: self.cost[o])
        if self.calls % self.explore == 0:
            return options[1] if best == options[0] else options[0]
        return best

    def record(self, threads: int, seconds_per_flop: float) -> None:
        """Fold one measurement into the estimate for ``threads``.

        Timing noise is one-sided (other processes, page faults and a cold thread pool only
        ever slow a product down), so the estimate is the fastest of the last ``window``
        measurements: one slow product changes nothing, a slowdown that lasts ``window``
        products is seen. Measured on this VM, where single two-thread products run up to 4x
        slower than their median: the former rule (a slower measurement moved the estimate
        halfway) let one such outlier put the next ~64 products (until the next exploration)
        on one thread, 2x slower; with a plain exponential average, one slow first two-thread
        product (cold pool) kept a whole Caltech-101 path on one thread.
        """
        recent = self._recent.setdefault(threads, deque(maxlen=self._window))
        recent.append(seconds_per_flop)
        self.cost[threads] = min(recent)


_TUNER = GemmTuner()
_OUTER_THREADS: list[int] = []


@contextmanager
def cpu_serial() -> Iterator[None]:
    """Run the enclosed code on one torch CPU thread (see :class:`Threads` for why),
    remembering the configured count for the matrix products inside."""
    _OUTER_THREADS.append(configured_threads())
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)
        _OUTER_THREADS.pop()


def configured_threads() -> int:
    """torch's thread count as the caller configured it (outside :func:`cpu_serial`)."""
    return _OUTER_THREADS[-1] if _OUTER_THREADS else torch.get_num_threads()


class Threads:
    """CPU thread policy: large matrix products use the thread count :class:`GemmTuner`
    finds fastest (at most torch's configured count); all the L-BFGS bookkeeping (vector
    updates, inner products, the line search) runs on one thread.

    Why: the bookkeeping touches ~1e5-1e6 floats, is memory-bound, and gains nothing from a
    second thread, while OpenMP's fork/join costs ~10 us on an idle machine and whole
    milliseconds when the cores are shared (measured 15 ms vs 0.03 ms for one inner
    product on a busy 2-core box). Products below :data:`SMALL_GEMM_FLOPS` always run on
    one thread for the same reason. No effect on CUDA.
    """

    def __init__(self, device: torch.device, gemm_flops: float | None = None,
                 tuner: GemmTuner | None = None) -> None:
        self.cpu = device.type == "cpu"
        self.n = configured_threads()
        self.tuner = _TUNER if tuner is None else tuner
        if gemm_flops is not None and gemm_flops < SMALL_GEMM_FLOPS:
            self.n = 1

    @contextmanager
    def gemm(self, flops: float | None = None) -> Iterator[None]:
        """Run a matrix product; pass its ``flops`` to let the tuner time it."""
        if not self.cpu:
            yield
            return
        prev = torch.get_num_threads()
        small = flops is not None and flops < SMALL_GEMM_FLOPS
        # small products neither use nor teach the tuner: their seconds per flop are dominated
        # by fork/join and would make two threads look slow for the large ones
        timed = flops is not None and self.n > 1 and not small
        n = 1 if small else self.tuner.choose(self.n) if timed else self.n
        torch.set_num_threads(n)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if timed:
                assert flops is not None
                self.tuner.record(n, (time.perf_counter() - t0) / flops)
            torch.set_num_threads(prev)

    @contextmanager
    def fastest(self) -> Iterator[None]:
        """Run a one-off LAPACK call (an eigen-decomposition) on the thread count the tuner
        currently finds fastest for large products; one thread while it knows nothing.

        Not timed itself: one call cannot be explored. Measured on this 2-core machine, a
        float32 ``eigh`` of 1280 x 1280: 258 ms on one thread, 170 ms on two when idle; on
        busy cores the products show that two threads lose and this follows them.
        """
        if not self.cpu:
            yield
            return
        cost = self.tuner.cost
        n = self.n if self.n > 1 and self.n in cost and cost[self.n] < cost.get(1, 0.0) else 1
        prev = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(prev)

    @contextmanager
    def serial(self) -> Iterator[None]:
        """Run the enclosed bookkeeping on one CPU thread (no-op on CUDA)."""
        if not self.cpu:
            yield
            return
        with cpu_serial():
            yield
