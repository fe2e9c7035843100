"""Native handles are freed exactly once, never under a running call, and
never before the handles that depend on them."""

from __future__ import annotations

import gc
import threading

import pytest

from distlock._handle import Handle, HandleClosed


class FreeLog:
    def __init__(self):
        self.freed = []

    def __call__(self, ptr):
        self.freed.append(ptr)


def test_close_twice_and_gc_free_once():
    log = FreeLog()
    h = Handle(0x10, log)
    h.close()
    h.close()
    del h
    gc.collect()
    assert log.freed == [0x10]


def test_garbage_handle_is_freed_by_del():
    log = FreeLog()
    Handle(0x11, log)
    gc.collect()
    assert log.freed == [0x11]


def test_close_during_a_use_waits_for_the_use_to_end():
    log = FreeLog()
    h = Handle(0x12, log)
    with h.use() as ptr:
        assert ptr == 0x12
        h.close()
        assert log.freed == []  # still in use
        with pytest.raises(HandleClosed):
            with h.use():
                pass
    assert log.freed == [0x12]


def test_parent_outlives_its_children():
    order = []
    parent = Handle(0x20, lambda p: order.append(("parent", p)))
    with parent.use():
        child = Handle(0x21, lambda p: order.append(("child", p)), parent=parent)
    parent.close()
    assert order == []  # the child still needs it
    child.close()
    assert order == [("child", 0x21), ("parent", 0x20)]


def test_concurrent_closes_free_once():
    log = FreeLog()
    for i in range(200):
        h = Handle(0x1000 + i, log)
        start = threading.Barrier(4)

        def close():
            start.wait(10)
            h.close()

        threads = [threading.Thread(target=close) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert sorted(log.freed) == [0x1000 + i for i in range(200)]
