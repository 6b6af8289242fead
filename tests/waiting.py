"""Waiting in tests: until something is true, or fail after a while."""

from __future__ import annotations

import time


def wait_until(test, seconds: float = 60):
    """`test()`'s first truthy value, polled every 50 ms; an AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = test()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("waited in vain")
