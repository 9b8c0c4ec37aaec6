"""Run a numpy step a few items ahead on one worker thread, while the caller does the TF work.

Large numpy/LAPACK calls release the GIL, so a decomposition or a k-means on a worker thread
overlaps the TF passes of the main thread on a second core. Results come back in item order, and
each item's step is independent, so the outcome never depends on the overlap.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor


@contextlib.contextmanager
def run_ahead(step: Callable, items: Iterable, lookahead: int, name: str) -> Iterator[Iterator[Future]]:
    """Yield an iterator of the futures of ``step(item)``, in item order.

    The first ``lookahead`` steps start at once; taking the next future starts one more, so at
    most ``lookahead + 1`` results are held. Leaving the block cancels what has not started and
    waits for the rest (an error in the caller does not leave a thread running).

    Example:
        >>> with run_ahead(decompose, layers, 2, "factorize") as futures:
        ...     for layer, future in zip(layers, futures):
        ...         measure(layer, future.result())
    """
    items = list(items)
    pool = ThreadPoolExecutor(1, thread_name_prefix=name)
    pending = collections.deque(pool.submit(step, item) for item in items[:lookahead])

    def in_order():
        for i in range(len(items)):
            if i + lookahead < len(items):
                pending.append(pool.submit(step, items[i + lookahead]))
            yield pending.popleft()

    try:
        yield in_order()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
