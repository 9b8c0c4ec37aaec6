"""run_ahead: results in item order, a bounded number started ahead, no thread left behind."""

import threading

import pytest

from edgecompress._ahead import run_ahead


def test_results_come_in_item_order_and_at_most_lookahead_run_ahead():
    started = []
    gate = threading.Event()

    def step(item):
        started.append(item)
        if item == 0:
            gate.wait(5)  # hold the worker so the queue can be inspected
        return item * item

    with run_ahead(step, range(6), 2, "test") as futures:
        first = next(futures)
        assert len(started) <= 1  # item 0 is blocked; items 1, 2 are queued, not run
        gate.set()
        results = [first.result()] + [future.result() for future in futures]
    assert results == [0, 1, 4, 9, 16, 25]
    assert started == list(range(6))


def test_an_error_in_the_caller_cancels_the_queued_steps_and_joins_the_thread():
    ran = []
    with pytest.raises(RuntimeError, match="caller"):
        with run_ahead(ran.append, range(100), 3, "test-cancel") as futures:
            next(futures).result()
            raise RuntimeError("caller failed")
    assert len(ran) <= 5
    assert not [t for t in threading.enumerate() if t.name.startswith("test-cancel")]


def test_an_error_in_a_step_reaches_the_caller_from_its_future():
    def step(item):
        if item == 2:
            raise ValueError("bad item 2")
        return item

    with run_ahead(step, range(4), 1, "test-error") as futures:
        assert [next(futures).result(), next(futures).result()] == [0, 1]
        with pytest.raises(ValueError, match="bad item 2"):
            next(futures).result()
